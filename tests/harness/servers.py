"""Start, stop, kill and restart servers under test.

Two kinds share one interface (`Server`):
  * "zookeeper": Apache ZooKeeper 3.8 standalone from the Debian package, run
    with `java ... QuorumPeerMain zoo.cfg` (the behavioural oracle);
  * "keel": `$KEEL_BIN server --config zoo.cfg -D...`.

Both get the same zoo.cfg keys (tickTime, dataDir, clientPort,
clientPortAddress=127.0.0.1, plus extras) and the same -D system properties.
Logs of every start are appended to <workdir>/server.log.
"""
import atexit
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # password "test"
SUPER_PASSWORD = "test"
TICK_TIME = 2000

DEFAULT_SYSPROPS = {
    "zookeeper.4lw.commands.whitelist": "*",
    "zookeeper.extendedTypesEnabled": "true",
    "zookeeper.DigestAuthenticationProvider.superDigest": SUPER_DIGEST,
}

START_TIMEOUT = float(os.environ.get("KEEL_TEST_START_TIMEOUT", "60"))
STOP_TIMEOUT = float(os.environ.get("KEEL_TEST_STOP_TIMEOUT", "5"))

# Every Server ever created in this process, so that pytest hooks can attach
# the logs of the servers a failing test used, and kill leftovers at exit.
ALL_SERVERS = []
_lock = threading.Lock()


class ServerError(RuntimeError):
    pass


def server_kinds_from_env():
    raw = os.environ.get("KEEL_TEST_SERVERS", "keel")
    kinds = [k.strip() for k in raw.split(",") if k.strip()]
    for k in kinds:
        if k not in ("keel", "zookeeper"):
            raise ValueError("KEEL_TEST_SERVERS: unknown server kind %r (use keel, zookeeper)" % k)
    if not kinds:
        raise ValueError("KEEL_TEST_SERVERS is empty")
    return kinds


def free_port():
    """A currently free TCP port on 127.0.0.1."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def four_letter(host, port, cmd, timeout=10.0):
    """Send a four-letter word, return the whole reply (server closes after)."""
    if isinstance(cmd, str):
        cmd = cmd.encode("ascii")
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except (BrokenPipeError, ConnectionResetError):
        return ""  # accepted and closed at once (connection limit)
    try:
        try:
            s.sendall(cmd)
        except (BrokenPipeError, ConnectionResetError):
            return ""  # closed before reading the command (connection limit)
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode("utf-8", "replace")
    finally:
        s.close()


# --------------------------------------------------------------------------
# Locating the programs


def _read_debian_environment():
    """Parse /etc/zookeeper/conf/environment (shell KEY=VALUE lines)."""
    env = {}
    path = "/etc/zookeeper/conf/environment"
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                k, v = line.split("=", 1)
                v = v.strip()
                if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
                    v = v[1:-1]
                env[k.strip()] = v
    except OSError:
        pass
    return env


def zookeeper_command():
    """(java, classpath, main class) for the packaged ZooKeeper.

    Overridable with ZK_JAVA and ZK_CLASSPATH."""
    denv = _read_debian_environment()
    java = os.environ.get("ZK_JAVA") or denv.get("JAVA") or "java"
    cp = os.environ.get("ZK_CLASSPATH")
    if not cp:
        parts = []
        for p in (denv.get("CLASSPATH") or "/usr/share/java/zookeeper.jar").split(":"):
            # the conf dir only carries log4j.properties; we log via slf4j-simple
            if p and not os.path.isdir(p):
                parts.append(p)
        if not any(p.endswith("zookeeper.jar") for p in parts):
            parts.append("/usr/share/java/zookeeper.jar")
        # zookeeper.jar's manifest Class-Path pulls in slf4j-api but no binding;
        # slf4j-simple (libslf4j-java, a dependency) logs to stderr => server.log
        simple = "/usr/share/java/slf4j-simple.jar"
        if os.path.exists(simple):
            parts.append(simple)
        cp = ":".join(parts)
    main = denv.get("ZOOMAIN") or "org.apache.zookeeper.server.quorum.QuorumPeerMain"
    jar = [p for p in cp.split(":") if p.endswith(".jar")]
    if not any(os.path.exists(p) for p in jar):
        raise ServerError("ZooKeeper jars not found (classpath %s); run scripts/setup.sh" % cp)
    return java, cp, main


_keel_snapshot = {}


def _snapshot(binary):
    """A private link (or copy) of `binary`, made once per test process, so
    that a rebuild of target/ during a run does not mix two versions (an
    ensemble member restarted after the rebuild would otherwise run the new
    binary beside members running the old one)."""
    if binary not in _keel_snapshot:
        d = tempfile.mkdtemp(prefix=".keel-test-bin-", dir=os.path.dirname(binary))
        snap = os.path.join(d, "keel")
        try:
            os.link(binary, snap)
        except OSError:
            shutil.copy2(binary, snap)
        atexit.register(shutil.rmtree, d, True)
        _keel_snapshot[binary] = snap
    return _keel_snapshot[binary]


def keel_binary():
    b = os.environ.get("KEEL_BIN")
    if b:
        b = b if os.path.isabs(b) else os.path.join(REPO_ROOT, b)
        if not os.path.exists(b):
            raise ServerError("KEEL_BIN=%s does not exist" % b)
        return _snapshot(b)
    for rel in ("target/release/keel", "target/debug/keel"):
        p = os.path.join(REPO_ROOT, rel)
        if os.path.exists(p):
            return _snapshot(p)
    raise ServerError(
        "Keel binary not found (looked for target/release/keel and target/debug/keel "
        "under %s); build it with `cargo build --release` or set KEEL_BIN, or run "
        "against ZooKeeper only with KEEL_TEST_SERVERS=zookeeper" % REPO_ROOT
    )


# --------------------------------------------------------------------------


class Server:
    """One server process (ZooKeeper or Keel) with its own data dir and port.

    cfg: extra zoo.cfg keys (e.g. {"maxClientCnxns": 5}).
    sysprops: -D system properties, merged over DEFAULT_SYSPROPS (value None
    removes a default).
    """

    def __init__(self, kind, workdir, cfg=None, sysprops=None, name=None):
        if kind not in ("zookeeper", "keel"):
            raise ValueError(kind)
        self.kind = kind
        self.name = name or kind
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.data_dir = os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.cfg_path = os.path.join(self.workdir, "zoo.cfg")
        self.log_path = os.path.join(self.workdir, "server.log")
        self.host = "127.0.0.1"
        self.port = None
        self.extra_cfg = dict(cfg or {})
        self.sysprops = dict(DEFAULT_SYSPROPS)
        for k, v in (sysprops or {}).items():
            if v is None:
                self.sysprops.pop(k, None)
            else:
                self.sysprops[k] = str(v)
        # network namespace (`ip netns add` name) to run in, or None: the
        # process is started with `ip netns exec NAME` and four-letter words
        # are sent from inside it (tests/faults/)
        self.netns = None
        self.paused = False
        self.proc = None
        self.starts = 0
        self.started_at = None
        self.stopped_at = None
        with _lock:
            ALL_SERVERS.append(self)

    # -- properties ---------------------------------------------------------
    @property
    def hosts(self):
        """host:port string for kazoo."""
        return "%s:%d" % (self.host, self.port)

    @property
    def address(self):
        return (self.host, self.port)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def __repr__(self):
        return "<Server %s %s:%s pid=%s>" % (self.kind, self.host, self.port,
                                              self.proc.pid if self.proc else None)

    # -- config / command ---------------------------------------------------
    def _write_cfg(self):
        lines = [
            "tickTime=%d" % TICK_TIME,
            "dataDir=%s" % self.data_dir,
            "clientPort=%d" % self.port,
            "clientPortAddress=%s" % self.host,
        ]
        for k, v in self.extra_cfg.items():
            lines.append("%s=%s" % (k, v))
        with open(self.cfg_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _dprops(self):
        return ["-D%s=%s" % (k, v) for k, v in self.sysprops.items()]

    def command(self):
        if self.kind == "zookeeper":
            java, cp, main = zookeeper_command()
            jvm = shlex.split(os.environ.get(
                "ZK_JVMFLAGS",
                "-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k"))
            props = self._dprops() + [
                # no AdminServer (it would fight over port 8080 between servers)
                "-Dzookeeper.admin.enableServer=false",
                # txn log fsync off: speed only, kill -9 keeps the page cache
                "-Dzookeeper.forceSync=no",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
            ]
            return [java, "-cp", cp] + jvm + props + [main, self.cfg_path]
        return [keel_binary(), "server", "--config", self.cfg_path] + self._dprops()

    # -- lifecycle -----------------------------------------------------------
    def start(self, timeout=START_TIMEOUT):
        if self.alive():
            raise ServerError("%r already running" % self)
        attempts = 3 if self.port is None else 1
        last = None
        for _ in range(attempts):
            if self.port is None or attempts > 1:
                self.port = free_port()
            self._write_cfg()
            try:
                self._spawn_and_wait(timeout)
                return self
            except ServerError as e:
                last = e
                self._kill_proc()
                if "Address already in use" not in self.log_tail(50):
                    break
        raise last

    def _spawn_and_wait(self, timeout):
        self._spawn()
        self.wait_ready(timeout)

    def _spawn(self):
        """Start the process (config already written) without waiting for it."""
        cmd = self.command()
        if self.netns:
            # `ip netns exec` execs the command: proc.pid is the server itself
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(("\n===== start #%d of %s at %s: %s\n" % (
            self.starts, self.kind, time.strftime("%H:%M:%S"), " ".join(cmd))).encode())
        log.flush()
        env = dict(os.environ)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir,
                                     env=env, start_new_session=True)
        log.close()
        self.started_at = time.monotonic()
        self.stopped_at = None
        self.paused = False

    def wait_ready(self, timeout=START_TIMEOUT):
        """Poll until `ruok` answers imok and `srvr` says the server serves."""
        deadline = time.monotonic() + timeout
        last_err = None
        while True:
            if self.proc.poll() is not None:
                raise ServerError("%s exited with code %s during start-up; log tail:\n%s" % (
                    self.kind, self.proc.returncode, self.log_tail(40)))
            try:
                ruok = four_letter(self.host, self.port, "ruok", timeout=1.0)
                last_err = "ruok: %r" % ruok
                # ruok answers "imok" as soon as the port is bound, before the
                # database is loaded; srvr says "not currently serving" until
                # then.  Either may be outside a restricted allowlist.
                if ruok == "imok" or "not in the whitelist" in ruok:
                    srvr = four_letter(self.host, self.port, "srvr", timeout=1.0)
                    if srvr and "not currently serving" not in srvr:
                        return
                    last_err = "srvr: %r" % srvr
            except OSError as e:
                last_err = e
            if time.monotonic() >= deadline:
                raise ServerError("%s not ready after %.0fs (last: %s); log tail:\n%s" % (
                    self.kind, timeout, last_err, self.log_tail(40)))
            time.sleep(0.02)

    def _kill_proc(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then SIGKILL if it has not exited within `timeout` s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_proc()  # also reaps anything left in the process group
        self.stopped_at = time.monotonic()

    def kill9(self):
        """SIGKILL the server (no shutdown hooks); data dir and port are kept."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._kill_proc()
        self.stopped_at = time.monotonic()
        self.paused = False

    def pause(self, timeout=5.0):
        """SIGSTOP the server (sockets stay open) and wait until every one of
        its threads is stopped (/proc/PID/task/*/stat), so that nothing it does
        comes after this returns."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True
        deadline = time.monotonic() + timeout
        while not _all_threads_stopped(self.proc.pid):
            if time.monotonic() > deadline:
                raise ServerError("%r: threads still running %.0fs after SIGSTOP" % (self, timeout))
            time.sleep(0.001)

    def resume(self):
        """SIGCONT a paused server."""
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def restart(self, timeout=START_TIMEOUT, kill=False):
        """Stop (or kill -9 with kill=True) and start again: same data dir and port."""
        if kill:
            self.kill9()
        else:
            self.stop()
        self._write_cfg()
        self._spawn_and_wait(timeout)
        return self

    # -- talking to it ------------------------------------------------------
    def four_letter(self, cmd, timeout=10.0):
        if self.netns:
            from .netns import in_netns
            return in_netns(self.netns, four_letter, self.host, self.port, cmd, timeout=timeout)
        return four_letter(self.host, self.port, cmd, timeout=timeout)

    def log_tail(self, lines=100):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 256 * 1024))
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(data.splitlines()[-lines:])


def _all_threads_stopped(pid):
    """True when every thread of process `pid` is in state T (stopped) or gone."""
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return True
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("T", "t", "Z", "X"):
            return False
    return True


def kill_all():
    with _lock:
        servers = list(ALL_SERVERS)
    for s in servers:
        try:
            s.stop(timeout=2)
        except Exception:
            pass
