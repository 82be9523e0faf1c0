"""Under a supervisor: SIGTERM stops the server promptly (Keel: exit status 0 after
flushing its log), and a restart on the same port serves again at once with the data."""
import signal
import time

from kazoo.client import KazooClient


def test_sigterm_exits_promptly_and_restart_rebinds(server_kind, server_factory):
    s = server_factory()
    zk = KazooClient(hosts=s.hosts, timeout=10.0)
    zk.start(timeout=15)
    zk.create("/lifecycle", b"kept")
    zk.stop()
    zk.close()

    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    code = s.proc.wait(timeout=10)
    took = time.monotonic() - t0
    assert took < 5, "SIGTERM took %.1fs" % took
    if server_kind == "keel":
        assert code == 0, "keel should exit 0 on SIGTERM, got %s" % code

    t0 = time.monotonic()
    s.restart()  # same data dir and port; fails if the port cannot be bound
    assert time.monotonic() - t0 < 10
    zk = KazooClient(hosts=s.hosts, timeout=10.0)
    zk.start(timeout=15)
    try:
        assert zk.get("/lifecycle")[0] == b"kept"
    finally:
        zk.stop()
        zk.close()
