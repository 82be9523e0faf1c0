"""Start a ZooKeeper or Keel ensemble on loopback ports.

An `Ensemble` is N participants (ids 1..N) plus optional observers (ids N+1..),
each a `Member` (a `servers.Server` with its own workdir, data dir, `myid` and
zoo.cfg).  Every member gets the same `server.N` lines:

    server.N=127.0.0.1:<peerPort>:<electionPort>[:observer];127.0.0.1:<clientPort>

plus tickTime / initLimit / syncLimit, its own dataDir and clientPort, and
`peerType=observer` for an observer (ZooKeeper needs it in the observer's own
config).  Processes are launched exactly as standalone ones (`Server.command()`:
same JVM flags, classpath and -D properties for ZooKeeper, same -D properties
for Keel).

"Serving" means: every running member answers `srvr` with a mode (not "not
currently serving"), exactly one says `Mode: leader`, participants say
`follower` and observers `observer`.  `wait_serving` polls that with a deadline
and on timeout raises EnsembleError with each member's last `srvr` answer and
log tail.

Dynamic reconfiguration (tests/test_reconfig.py): `Ensemble.add_member()`
starts one more member (next id, fresh ports) whose zoo.cfg lists every member
so far plus itself, while the running members keep the configs they were
started with; `Member.server_line(explicit_role=True)` is the spec `reconfig`
takes (`server.N=host:peer:election:participant;host:client`);
`Member.config_members` overrides which members' `server.N` lines a member's
zoo.cfg gets.  With `reconfigEnabled=true` ZooKeeper rewrites its zoo.cfg
(server lines moved to `zoo.cfg.dynamic.<version>`, `dynamicConfigFile=` added);
`spawn()` writes the harness's zoo.cfg again, so a member restarted after a
reconfig starts from its original server list.

Network namespaces (tests/faults/): `Ensemble(..., net=placement)` hands every
member (those of `add_member` too) to `placement.place(member)`, which sets its
`host`, `port`, `peer_port`, `election_port` and `netns` (a `Server` with a
netns is started with `ip netns exec` and answers four-letter words from
inside it) instead of free loopback ports.
"""
import os
import re
import socket
import time

from . import servers as srv

TICK_TIME = 200      # ms; ZooKeeper's default minSessionTimeout is 2 x tickTime
INIT_LIMIT = 10      # ticks
SYNC_LIMIT = 5       # ticks
# kazoo asks for 10 s; ZooKeeper caps sessions at 20 x tickTime (4 s with 200 ms
# ticks) unless maxSessionTimeout says otherwise.  A roomier cap keeps sessions
# alive across an election on a loaded 2-core machine.
MAX_SESSION_TIMEOUT = 20000

START_TIMEOUT = float(os.environ.get("KEEL_TEST_ENSEMBLE_START_TIMEOUT", "60"))


class EnsembleError(srv.ServerError):
    pass


def free_ports(n):
    """n distinct currently free TCP ports on 127.0.0.1 (all held open while
    choosing, so they differ from one another)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def parse_mode(srvr):
    """'leader' / 'follower' / 'observer' / 'standalone' from a srvr answer,
    or None (not serving, no answer)."""
    m = re.search(r"^Mode: (\w+)", srvr or "", re.M)
    return m.group(1) if m else None


class Member(srv.Server):
    """One ensemble member: a Server whose zoo.cfg carries the ensemble."""

    def __init__(self, ensemble, sid, observer, workdir):
        super().__init__(ensemble.kind, workdir, cfg=ensemble.extra_cfg,
                         sysprops=ensemble.sysprops, name="%s-%d" % (ensemble.kind, sid))
        self.ensemble = ensemble
        self.sid = sid
        self.observer = observer
        self.peer_port = self.election_port = None
        # members whose server.N lines go into this member's zoo.cfg (None:
        # every member of the ensemble, see Ensemble.add_member)
        self.config_members = None

    def __repr__(self):
        return "<Member %s%s %s:%s pid=%s>" % (
            self.name, " (observer)" if self.observer else "", self.host, self.port,
            self.proc.pid if self.proc else None)

    def server_line(self, explicit_role=False):
        """`server.N=host:peer:election[:observer];host:client`; with
        explicit_role the role is always written (`:participant` /
        `:observer`), as ZooKeeper writes it in /zookeeper/config and as
        `reconfig`'s joining / new_members take it."""
        if explicit_role:
            role = ":observer" if self.observer else ":participant"
        else:
            role = ":observer" if self.observer else ""
        return "server.%d=%s:%d:%d%s;%s:%d" % (
            self.sid, self.host, self.peer_port, self.election_port,
            role, self.host, self.port)

    def _write_cfg(self):
        e = self.ensemble
        lines = [
            "tickTime=%d" % e.tick_time,
            "initLimit=%d" % e.init_limit,
            "syncLimit=%d" % e.sync_limit,
            "dataDir=%s" % self.data_dir,
            "clientPort=%d" % self.port,
            "clientPortAddress=%s" % self.host,
        ]
        if self.observer:
            lines.append("peerType=observer")
        for k, v in self.extra_cfg.items():
            lines.append("%s=%s" % (k, v))
        listed = e.members if self.config_members is None else self.config_members
        lines += [m.server_line() for m in listed]
        with open(self.cfg_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(self.data_dir, "myid"), "w") as f:
            f.write("%d\n" % self.sid)

    def spawn(self):
        """Start the process without waiting (a member alone cannot serve)."""
        if self.alive():
            raise EnsembleError("%r already running" % self)
        self._write_cfg()
        self._spawn()
        return self

    def srvr(self, timeout=1.0):
        try:
            return self.four_letter("srvr", timeout=timeout)
        except OSError as e:
            return "(%s)" % e

    def mode(self, timeout=1.0):
        return parse_mode(self.srvr(timeout))

    def isro(self, timeout=1.0):
        try:
            return self.four_letter("isro", timeout=timeout).strip()
        except OSError as e:
            return "(%s)" % e


class Ensemble:
    """participants (>= 2) + observers members of one kind, on free loopback
    ports, each with its own directory under `workdir`.

    cfg: extra zoo.cfg keys for every member; sysprops: extra -D properties
    (merged over servers.DEFAULT_SYSPROPS, which enables every 4lw)."""

    def __init__(self, kind, workdir, participants=3, observers=0, cfg=None, sysprops=None,
                 tick_time=TICK_TIME, init_limit=INIT_LIMIT, sync_limit=SYNC_LIMIT, net=None):
        self.kind = kind
        self.net = net  # placement in network namespaces, or None: loopback
        self.workdir = str(workdir)
        self.tick_time = tick_time
        self.init_limit = init_limit
        self.sync_limit = sync_limit
        self.extra_cfg = {"maxSessionTimeout": MAX_SESSION_TIMEOUT}
        self.extra_cfg.update(cfg or {})
        self.sysprops = dict(sysprops or {})
        self.members = []
        n = participants + observers
        for sid in range(1, n + 1):
            d = os.path.join(self.workdir, "member%d" % sid)
            self.members.append(Member(self, sid, sid > participants, d))
        self._assign_ports()

    def _assign_ports(self):
        if self.net is not None:
            for m in self.members:
                self.net.place(m)
            return
        ports = free_ports(3 * len(self.members))
        for i, m in enumerate(self.members):
            m.port, m.peer_port, m.election_port = ports[3 * i:3 * i + 3]

    def add_member(self, observer=False, spawn=True, config_members=None):
        """One more member: the next id, fresh ports, its own directory.  Its
        zoo.cfg lists `config_members` (default: every member so far, itself
        included, i.e. the running ensemble plus the newcomer); the zoo.cfg of
        members already running is not touched (they learn about the new one
        only through `reconfig`; one restarted later gets every member's
        line, the newcomer's included).  Started without waiting when `spawn`
        (ZooKeeper's newcomer follows the leader as a non-voting follower
        before the reconfig; wait on `mode()` rather than `wait_serving`).
        The newcomer is in `members` / `participants` from now on.  Returns
        the Member."""
        sid = max(m.sid for m in self.members) + 1
        d = os.path.join(self.workdir, "member%d" % sid)
        m = Member(self, sid, observer, d)
        if self.net is not None:
            self.net.place(m)
        else:
            m.port, m.peer_port, m.election_port = free_ports(3)
        self.members.append(m)
        if config_members is not None:
            m.config_members = list(config_members)
        else:
            m.config_members = list(self.members)
        if spawn:
            m.spawn()
        return m

    # -- who is who ---------------------------------------------------------
    @property
    def participants(self):
        return [m for m in self.members if not m.observer]

    @property
    def observers(self):
        return [m for m in self.members if m.observer]

    def running(self):
        return [m for m in self.members if m.alive()]

    def hosts(self, members=None):
        """Connect string for kazoo: the given members (default: participants)."""
        members = self.participants if members is None else members
        return ",".join(m.hosts for m in members)

    def modes(self):
        return {m.sid: m.mode() for m in self.members if m.alive()}

    def leader(self):
        """The member saying `Mode: leader` (waits until the ensemble serves)."""
        return self.wait_serving()[0]

    def followers(self):
        leader = self.leader()
        return [m for m in self.participants if m is not leader and m.alive()]

    # -- lifecycle ----------------------------------------------------------
    def start(self, timeout=START_TIMEOUT):
        """Start every member and wait until the ensemble serves.  A port taken
        meanwhile by someone else is retried once on fresh ports."""
        for attempt in range(2):
            for m in self.members:
                m.spawn()
            try:
                self.wait_serving(members=self.members, timeout=timeout)
                return self
            except EnsembleError:
                in_use = any("Address already in use" in m.log_tail(200) for m in self.members)
                if attempt == 0 and in_use:
                    self.kill_all()
                    self._assign_ports()
                    continue
                raise

    def wait_serving(self, members=None, timeout=START_TIMEOUT, old_leader=None):
        """Poll `srvr` on `members` (default: every running member) until one is
        leader and the others follower/observer.  With old_leader, the leader
        must be another member.  Returns (leader, {sid: mode})."""
        deadline = time.monotonic() + timeout
        while True:
            members_now = self.running() if members is None else members
            answers = {}
            for m in members_now:
                if not m.alive():
                    raise EnsembleError("%r exited with code %s; log tail:\n%s" % (
                        m, m.proc.returncode if m.proc else None, m.log_tail(40)))
                answers[m.sid] = m.srvr()
            modes = {sid: parse_mode(a) for sid, a in answers.items()}
            leaders = [m for m in members_now if modes[m.sid] == "leader"]
            ok = (len(leaders) == 1 and leaders[0] is not old_leader and all(
                modes[m.sid] == ("observer" if m.observer else "follower")
                for m in members_now if m is not leaders[0]))
            if ok:
                return leaders[0], modes
            if time.monotonic() >= deadline:
                raise EnsembleError(self._report(
                    "%s ensemble not serving after %.0fs: modes %s" % (self.kind, timeout, modes),
                    answers))
            time.sleep(0.05)

    def _report(self, headline, answers=None):
        parts = [headline]
        for m in self.members:
            parts.append("---- %r alive=%s srvr=%r\n%s" % (
                m, m.alive(), (answers or {}).get(m.sid), m.log_tail(30)))
        return "\n".join(parts)

    def kill9(self, member):
        member.kill9()

    def stop(self, member):
        member.stop()

    def restart(self, member, kill=False):
        """kill -9 (kill=True) or stop one member and start it again (same
        ports and data dir); does not wait (use wait_serving)."""
        if kill:
            member.kill9()
        else:
            member.stop()
        return member.spawn()

    def kill_all(self):
        """SIGKILL every running member at once (signals first, then reap)."""
        for m in self.members:
            if m.alive():
                try:
                    m.proc.kill()
                except ProcessLookupError:
                    pass
        for m in self.members:
            m.kill9()

    def stop_all(self):
        for m in self.members:
            m.stop()


def module_ensemble(kind, workdir, **kw):
    """For a module-scoped fixture: starts an `Ensemble(kind, workdir, **kw)`,
    yields it, and kills it at the end.  A start-up failure fails the tests
    (with every member's srvr and log tail) instead of erroring them."""
    import pytest

    e = Ensemble(kind, workdir, **kw)
    try:
        e.start()
    except EnsembleError as err:
        e.kill_all()
        pytest.fail(str(err), pytrace=False)
    try:
        yield e
    finally:
        e.kill_all()
