"""A 3-member ensemble (Keel or ZooKeeper) in network namespaces, with faults.

Built on harness.ensemble.Ensemble (same zoo.cfg, same launch commands as the
rest of the suite) placed by net.Network: each member in its own namespace,
started with `ip netns exec`.  Faults: iptables partitions, SIGSTOP/SIGCONT,
kill -9 of one member or all, and `reconfig` (reconfigEnabled=true, the
suite's superuser) issued while they last.  Every fault and its undoing is
logged with its time (`events`).
"""
import shutil
import time

from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from harness import servers as srv
from harness.ensemble import Ensemble, EnsembleError

from . import net as netmod
from .workload import close_client, make_client, now

CONFIG = "/zookeeper/config"
SUPER_AUTH = [("digest", "super:%s" % srv.SUPER_PASSWORD)]


class ClusterError(AssertionError):
    pass


class FaultCluster:
    def __init__(self, kind, workdir, tick_time=200, init_limit=10, sync_limit=5,
                 cfg=None, sysprops=None, log=print):
        self.kind = kind
        self.log = log
        self.net = netmod.Network()
        c = {"reconfigEnabled": "true"}
        c.update(cfg or {})
        try:
            self.ens = Ensemble(kind, workdir, participants=3, cfg=c, tick_time=tick_time,
                                init_limit=init_limit, sync_limit=sync_limit, net=self.net,
                                sysprops=sysprops)
        except Exception:
            self.net.close()
            raise
        self.tick_time = tick_time
        self.sync_limit = sync_limit
        self.events = []
        self.first_fault = None   # monotonic_ns of the first fault since clear_events()
        self._t0 = now()
        self._clients = []

    # -- life cycle -------------------------------------------------------------
    def start(self, timeout=90):
        self.ens.start(timeout=timeout)
        return self

    def close(self):
        for c in self._clients:
            close_client(c)
        self._clients = []
        try:
            self.ens.kill_all()
        finally:
            self.net.close()

    def drop_data(self):
        """Delete the members' data directories (Keel preallocates 128 MiB of log
        per member), keeping logs and configs; for a closed cluster whose rounds
        found nothing worth keeping."""
        for m in self.members:
            if not m.alive():
                shutil.rmtree(m.data_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- who is who -------------------------------------------------------------
    @property
    def members(self):
        return self.ens.members

    def member(self, sid):
        return next(m for m in self.ens.members if m.sid == sid)

    def hosts(self, members=None):
        return self.ens.hosts(members)

    def usable(self):
        return [m for m in self.members if m.alive() and not m.paused]

    def wait_serving(self, members=None, timeout=60, old_leader=None):
        """(leader, modes) once `members` (default: every member) serve with
        one leader among them."""
        members = self.members if members is None else members
        return self.ens.wait_serving(members=members, timeout=timeout, old_leader=old_leader)

    def leader(self, timeout=60):
        return self.wait_serving(timeout=timeout)[0]

    # -- clients ------------------------------------------------------------------
    def client(self, members=None, superuser=False, **kw):
        """A started kazoo client in the hub namespace (closed by close())."""
        c = make_client(self.net.hub, self.hosts(members), auth=SUPER_AUTH if superuser else None, **kw)
        self._clients.append(c)
        return c

    def drop_client(self, c):
        close_client(c)
        if c in self._clients:
            self._clients.remove(c)

    # -- events -------------------------------------------------------------------
    def event(self, text, fault=False):
        t_ns = now()
        if fault and self.first_fault is None:
            self.first_fault = t_ns
        t = (t_ns - self._t0) / 1e9
        self.events.append((round(t, 3), text))
        self.log("    [%7.2fs] %s" % (t, text))

    def clear_events(self):
        self.events = []
        self.first_fault = None

    # -- faults ---------------------------------------------------------------------
    def isolate(self, m, others=None):
        others = [x for x in (others or self.members) if x is not m]
        self.net.isolate(m.sid, [o.sid for o in others])
        self.event("partition: %s cut from %s" % (m.name, ", ".join(o.name for o in others)), fault=True)

    def cut(self, a, b):
        self.net.cut(a.sid, b.sid)
        self.event("partition: link %s <-> %s cut" % (a.name, b.name), fault=True)

    def heal_network(self):
        if self.net.rules:
            self.net.heal()
            self.event("partition healed")

    def pause(self, m):
        m.pause()
        self.event("SIGSTOP %s" % m.name, fault=True)

    def resume(self, m):
        if m.paused and m.alive():
            m.resume()
            self.event("SIGCONT %s" % m.name)

    def kill9(self, m):
        m.kill9()
        self.event("kill -9 %s" % m.name, fault=True)

    def kill_all(self):
        self.ens.kill_all()
        self.event("kill -9 every member", fault=True)

    def restart(self, m):
        if not m.alive():
            m.spawn()
            self.event("restarted %s" % m.name)

    def heal_all(self):
        """Undo every fault: network healed, paused members continued, dead
        ones started again."""
        self.heal_network()
        for m in self.members:
            self.resume(m)
        for m in self.members:
            self.restart(m)

    # -- reconfiguration ------------------------------------------------------------
    def reconfig(self, client, joining=None, leaving=None, new_members=None, timeout=15):
        """Issue a reconfig; returns (outcome, detail, seconds): outcome is
        "ok", an exception class name (e.g. NewConfigNoQuorumError) or
        "timeout"."""
        what = "joining=%s leaving=%s new_members=%s" % (joining, leaving, new_members)
        t0 = time.monotonic()
        try:
            data, stat = client.reconfig_async(joining, leaving, new_members, -1).get(timeout=timeout)
            out, detail = "ok", data.decode()
        except KazooTimeoutError:
            out, detail = "timeout", ""
        except KazooException as e:
            out, detail = type(e).__name__, str(e)
        dt = time.monotonic() - t0
        self.event("reconfig %s -> %s after %.2fs" % (what, out, dt))
        return out, detail, dt

    def config_members(self, client):
        """Voter ids in /zookeeper/config as `client`'s member sees it after sync."""
        client.sync_async("/").get(timeout=10)
        data, _ = client.get_async(CONFIG).get(timeout=10)
        sids = set()
        for line in data.decode().split("\n"):
            if line.startswith("server."):
                sids.add(int(line[len("server."):line.index("=")]))
        return sids

    def restore_membership(self, timeout=60):
        """Make /zookeeper/config list every member again (bulk reconfig),
        once the ensemble serves.  Returns True if it had to change it."""
        want = set(m.sid for m in self.members)
        deadline = time.monotonic() + timeout
        c = self.client(superuser=True)
        changed = False
        try:
            while True:
                try:
                    have = self.config_members(c)
                    if have == want:
                        return changed
                    spec = ",".join(m.server_line(explicit_role=True) for m in self.members)
                    c.reconfig_async(None, None, spec, -1).get(timeout=10)
                    changed = True
                    self.event("membership restored (was %s)" % sorted(have))
                except (KazooException, KazooTimeoutError) as e:
                    if time.monotonic() > deadline:
                        raise ClusterError("could not restore membership: %r" % e)
                    # a member still catching up (NewConfigNoQuorum) or kazoo
                    # reconnecting: retry after a short back-off
                    time.sleep(0.2)
        finally:
            self.drop_client(c)

    def describe(self):
        out = []
        for m in self.members:
            out.append("%s alive=%s paused=%s mode=%s" % (
                m.name, m.alive(), m.paused,
                m.mode(timeout=0.5) if m.alive() and not m.paused else "-"))
        return "; ".join(out)

    def log_tails(self, lines=40):
        return "\n".join("---- %s (%s)\n%s" % (m.name, m.log_path, m.log_tail(lines)) for m in self.members)


__all__ = ["FaultCluster", "ClusterError", "EnsembleError"]
