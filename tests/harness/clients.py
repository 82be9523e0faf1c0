"""kazoo clients for tests: a factory that stops and closes every client it made,
and a reconnect policy quick enough to follow an election."""
import contextlib

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry


def fast_retry():
    """kazoo's default reconnect back-off doubles up to 60 s; an election takes
    well under a second, so retry often."""
    return KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5)


@contextlib.contextmanager
def kazoo_clients(fast=False):
    """Gives make(hosts, start=True, **KazooClient kwargs) -> KazooClient (a 10 s
    session timeout unless given; with `fast`, `fast_retry()` reconnects); every
    client made is stopped and closed on exit."""
    clients = []

    def make(hosts, start=True, **kw):
        kw.setdefault("timeout", 10.0)
        if fast:
            kw.setdefault("connection_retry", fast_retry())
        c = KazooClient(hosts=hosts, **kw)
        clients.append(c)
        if start:
            c.start(timeout=15)
        return c

    try:
        yield make
    finally:
        for c in clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass
