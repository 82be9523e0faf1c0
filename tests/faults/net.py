"""Network namespaces for an ensemble under test, and iptables partitions.

Topology (all of it created here, deleted by `Network.close()`):

    hub namespace  kf<pid>-<n>-h : bridge br0, address <prefix>.254 (the clients)
       |- veth hv<sid> ==== eth0 in member namespace kf<pid>-<n>-m<sid>, address <prefix>.<sid>

<prefix> is a /24 of 10.0.0.0/8 that no route or address of the machine's own
namespace covers; it is used only inside these namespaces.  Every member
listens on its own address with the same ports (client 2181, peer 2888,
election 3888).  Clients (kazoo, four-letter words) make their sockets inside
the hub namespace (`harness.netns.in_netns`), member processes are started
with `ip netns exec`; nothing is ever sent in the machine's own namespace.

Partitions are iptables DROP rules inside member namespaces (INPUT from and
OUTPUT to the other member's address), so packets vanish as on a broken link:
established TCP connections hang until a timeout notices, nothing is reset.
Client traffic (from the hub address) is never dropped, so a client may keep
talking to a member that the others cannot hear: a deposed leader is
reachable, which is what the barrier reads of workload.py must survive.

Namespaces left by a run that died (its pid gone) are swept when a new
Network is made.
"""
import atexit
import ipaddress
import os
import re
import shutil
import subprocess
import threading

from harness.netns import in_netns

CLIENT_PORT, PEER_PORT, ELECTION_PORT = 2181, 2888, 3888
PREFIX = "kf"
_NAME_RE = re.compile(r"^%s(\d+)-(\d+)-" % PREFIX)

_counter = [0]
_lock = threading.Lock()
_open = []


class Unavailable(RuntimeError):
    """Namespaces or iptables cannot be used on this machine (skip, not fail)."""


def _run(*cmd, check=True, timeout=20):
    p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, out.strip()))
    return out


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _list_netns():
    out = _run("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def sweep_stale():
    """Delete namespaces of this suite whose creating process is gone (a run
    killed before its cleanup), and the server processes still inside them."""
    for name in _list_netns():
        m = _NAME_RE.match(name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        for pid in _run("ip", "netns", "pids", name, check=False).split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        _run("ip", "netns", "del", name, check=False)


_probe = {}


def check_available():
    """Raise Unavailable with the reason unless this process can create a
    namespace, a veth pair into it and an iptables rule inside it (checked
    once per process)."""
    if "result" in _probe:
        if _probe["result"]:
            raise Unavailable(_probe["result"])
        return
    reason = None
    if os.geteuid() != 0:
        reason = "network namespaces need root (running as uid %d)" % os.geteuid()
    elif not shutil.which("ip"):
        reason = "`ip` (iproute2) not found: run scripts/setup.sh"
    elif not shutil.which("iptables"):
        reason = "`iptables` not found: run scripts/setup.sh"
    else:
        name = "%s%d-probe" % (PREFIX, os.getpid())
        try:
            _run("ip", "netns", "add", name)
            try:
                _run("ip", "-n", name, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
                _run("ip", "-n", name, "link", "add", "b0", "type", "bridge")
                _run("ip", "netns", "exec", name, "iptables", "-w", "-A", "INPUT",
                     "-s", "10.255.255.1", "-j", "DROP")
                in_netns(name, lambda: None)
            finally:
                _run("ip", "netns", "del", name, check=False)
        except Exception as e:  # any failure means: not here
            reason = "network namespaces unusable here: %s" % e
    _probe["result"] = reason
    if reason:
        raise Unavailable(reason)


def _pick_prefix(n):
    """A 10.x.y.0/24 not overlapping anything of the machine's own namespace."""
    used = []
    for cmd in (("ip", "-4", "route", "show", "table", "all"), ("ip", "-4", "addr", "show")):
        for tok in re.findall(r"(\d+\.\d+\.\d+\.\d+(?:/\d+)?)", _run(*cmd, check=False)):
            try:
                used.append(ipaddress.ip_network(tok, strict=False))
            except ValueError:
                pass
    base = os.getpid() * 7 + n * 13
    for i in range(4096):
        x, y = 100 + (base + i) % 150, (base // 150 + i) % 250
        net = ipaddress.ip_network("10.%d.%d.0/24" % (x, y))
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return "10.%d.%d" % (x, y)
    raise Unavailable("no free 10.x.y.0/24 for the test namespaces")


class Network:
    """The hub and one namespace per member (created on demand by `place`).

    `place(member)` is the placement hook of harness.ensemble.Ensemble(net=...)."""

    def __init__(self):
        check_available()
        sweep_stale()
        with _lock:
            _counter[0] += 1
            n = _counter[0]
        self.tag = "%s%d-%d" % (PREFIX, os.getpid(), n)
        self.prefix = _pick_prefix(n)
        self.hub = self.tag + "-h"
        self.members = {}   # sid -> namespace name
        self.rules = []     # (namespace, iptables args) currently installed
        self.closed = False
        _run("ip", "netns", "add", self.hub)
        with _lock:
            _open.append(self)
        self._ip(self.hub, "link", "set", "lo", "up")
        self._ip(self.hub, "link", "add", "br0", "type", "bridge")
        self._ip(self.hub, "addr", "add", "%s/24" % self.client_address, "dev", "br0")
        self._ip(self.hub, "link", "set", "br0", "up")

    # -- addresses ------------------------------------------------------------
    @property
    def client_address(self):
        return "%s.254" % self.prefix

    def address(self, sid):
        return "%s.%d" % (self.prefix, sid)

    def _ip(self, ns, *args):
        return _run("ip", "-n", ns, *args)

    # -- members --------------------------------------------------------------
    def add_member(self, sid):
        """The namespace of member `sid` (created with its link to the hub)."""
        if sid in self.members:
            return self.members[sid]
        if not 1 <= sid <= 250:
            raise ValueError("member id %d outside 1..250" % sid)
        ns = "%s-m%d" % (self.tag, sid)
        _run("ip", "netns", "add", ns)
        self.members[sid] = ns
        self._ip(ns, "link", "set", "lo", "up")
        hv = "hv%d" % sid
        self._ip(self.hub, "link", "add", hv, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self._ip(self.hub, "link", "set", hv, "master", "br0")
        self._ip(self.hub, "link", "set", hv, "up")
        self._ip(ns, "addr", "add", "%s/24" % self.address(sid), "dev", "eth0")
        self._ip(ns, "link", "set", "eth0", "up")
        return ns

    def place(self, member):
        """harness.ensemble placement hook: member in its own namespace."""
        member.netns = self.add_member(member.sid)
        member.host = self.address(member.sid)
        member.port, member.peer_port, member.election_port = CLIENT_PORT, PEER_PORT, ELECTION_PORT

    def in_hub(self, fn, *args, **kw):
        """fn(...) on a thread inside the hub namespace (where clients live)."""
        return in_netns(self.hub, fn, *args, **kw)

    # -- partitions -------------------------------------------------------------
    def _rule(self, ns, args):
        _run("ip", "netns", "exec", ns, "iptables", "-w", "-A", *args)
        self.rules.append((ns, tuple(args)))

    def cut(self, a, b):
        """Drop every packet between members a and b (sids), both ways."""
        for x, y in ((a, b), (b, a)):
            ns = self.members[x]
            self._rule(ns, ("INPUT", "-s", self.address(y), "-j", "DROP"))
            self._rule(ns, ("OUTPUT", "-d", self.address(y), "-j", "DROP"))

    def isolate(self, sid, others):
        """Cut member `sid` from every member in `others` (clients still reach it)."""
        for o in others:
            if o != sid:
                self.cut(sid, o)

    def heal(self):
        """Remove every rule this Network installed."""
        for ns in set(ns for ns, _ in self.rules):
            _run("ip", "netns", "exec", ns, "iptables", "-w", "-F", check=False)
        self.rules = []

    def describe_rules(self):
        return ["%s: %s" % (ns, " ".join(r)) for ns, r in self.rules]

    # -- cleanup ------------------------------------------------------------------
    def close(self):
        """Kill whatever still runs inside our namespaces, delete them."""
        if self.closed:
            return
        self.closed = True
        for ns in list(self.members.values()) + [self.hub]:
            for pid in _run("ip", "netns", "pids", ns, check=False).split():
                try:
                    os.kill(int(pid), 18)  # SIGCONT, then SIGKILL: a paused one too
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            _run("ip", "netns", "del", ns, check=False)
        with _lock:
            if self in _open:
                _open.remove(self)


@atexit.register
def _close_all():
    with _lock:
        nets = list(_open)
    for n in nets:
        try:
            n.close()
        except Exception:
            pass
