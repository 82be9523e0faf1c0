"""Client programs in other languages (tests/java/*.java, tests/c/*.c): building them
once per pytest session, running them, and reading their results.

Every program speaks one line protocol on stdout (see tests/java/Checks.java):

    ok NAME | FAIL NAME: REASON | info TEXT | ask WHAT | done failed=N

`ask WHAT` asks the driver to act (e.g. cut the TCP proxy); the program blocks
until the driver answers "ok" on its stdin.  `run()` answers through `on_ask`.

Builds go under target/client-tests/ (git-ignored), in a directory named after a
hash of the sources and the tool versions, so an unchanged tree is not rebuilt; a
build is made in a temporary directory and renamed into place.
"""
import hashlib
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

from . import servers as srv

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JAVA_SRC = os.path.join(TESTS_DIR, "java")
C_SRC = os.path.join(TESTS_DIR, "c")
BUILD_ROOT = os.path.join(srv.REPO_ROOT, "target", "client-tests")

JAR_DIR = "/usr/share/java"
# ZooKeeper's client, Curator (framework, recipes, service discovery) and what they
# load; the Debian jars' manifests name the same ones, listed here so the classpath
# does not depend on manifest Class-Path entries.  slf4j-simple: client logs at WARN
# go to stderr, which a failure report shows.
JARS = [
    "zookeeper.jar", "zookeeper-jute.jar",
    "curator-client.jar", "curator-framework.jar", "curator-recipes.jar", "curator-x-discovery.jar",
    "guava.jar", "slf4j-api.jar", "slf4j-simple.jar",
    "jackson-databind.jar", "jackson-core.jar", "jackson-annotations.jar",
]
JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss512k", "-Xmx256m",
             "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
             "-Dorg.slf4j.simpleLogger.showDateTime=true",
             "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS"]

C_HEADER = "/usr/include/zookeeper/zookeeper.h"
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"

SETUP_HINT = "run scripts/setup.sh (Debian packages default-jdk-headless, libzookeeper-java, " \
             "libcurator-*-java, libzookeeper-mt-dev, zookeeper)"


class Missing(Exception):
    """A tool or package the programs need is not installed."""


def _tool_version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Missing("%s: %s" % (argv[0], e))
    return (p.stdout + p.stderr).strip()


def _digest(paths, extra):
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(os.path.basename(p).encode() + b"\0")
        with open(p, "rb") as f:
            h.update(f.read())
    h.update(extra.encode())
    return h.hexdigest()[:16]


def _build_once(kind, digest, build):
    """The directory target/client-tests/<kind>-<digest>, made by build(tmpdir) if
    it does not exist yet."""
    final = os.path.join(BUILD_ROOT, "%s-%s" % (kind, digest))
    if os.path.isdir(final):
        return final
    os.makedirs(BUILD_ROOT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".%s-" % kind, dir=BUILD_ROOT)
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.isdir(final):  # not a concurrent build of the same sources
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------
# Java


def java_classpath():
    missing = [j for j in JARS if not os.path.exists(os.path.join(JAR_DIR, j))]
    if missing:
        raise Missing("missing jars in %s: %s; %s" % (JAR_DIR, ", ".join(missing), SETUP_HINT))
    return ":".join(os.path.join(JAR_DIR, j) for j in JARS)


class JavaPrograms:
    """tests/java/*.java compiled with javac against the Debian jars."""

    def __init__(self):
        if not shutil.which("javac") or not shutil.which("java"):
            raise Missing("javac/java not found; " + SETUP_HINT)
        self.classpath = java_classpath()
        sources = sorted(os.path.join(JAVA_SRC, f) for f in os.listdir(JAVA_SRC)
                         if f.endswith(".java"))
        jars = "".join("%s:%d\n" % (j, os.path.getsize(os.path.join(JAR_DIR, j))) for j in JARS)
        digest = _digest(sources, _tool_version(["javac", "-version"]) + jars)

        def build(out):
            cmd = ["javac", "-nowarn", "-encoding", "UTF-8", "-d", out, "-cp", self.classpath] + sources
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                raise RuntimeError("javac failed (%d):\n%s%s" % (p.returncode, p.stdout, p.stderr))

        self.classes = _build_once("java", digest, build)

    def command(self, main, args):
        return ["java", "-cp", self.classes + ":" + self.classpath] + JVM_FLAGS + [main] + list(args)

    def run(self, main, args, **kw):
        return run(self.command(main, args), label=main, **kw)


# ---------------------------------------------------------------------------
# C


class CPrograms:
    """tests/c/*.c, each built with gcc into a program of the same name, against the
    C client library (libzookeeper-mt)."""

    def __init__(self):
        if not shutil.which("gcc"):
            raise Missing("gcc not found")
        if not os.path.exists(C_HEADER):
            raise Missing("%s not found; %s" % (C_HEADER, SETUP_HINT))
        sources = sorted(os.path.join(C_SRC, f) for f in os.listdir(C_SRC) if f.endswith(".c"))
        digest = _digest(sources, _tool_version(["gcc", "--version"]) + str(os.path.getsize(C_HEADER)))

        def build(out):
            for src in sources:
                exe = os.path.join(out, os.path.basename(src)[:-2])
                cmd = ["gcc", "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                       "-Wno-unused-parameter", "-DTHREADED", "-I/usr/include/zookeeper", "-o", exe, src,
                       "-lzookeeper_mt", "-lpthread"]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                if p.returncode != 0:
                    raise RuntimeError("gcc failed (%d):\n%s%s" % (p.returncode, p.stdout, p.stderr))

        self.dir = _build_once("c", digest, build)

    def run(self, name, args, **kw):
        return run([os.path.join(self.dir, name)] + list(args), label=name, **kw)


# ---------------------------------------------------------------------------
# running


class Result:
    def __init__(self, label, argv):
        self.label = label
        self.argv = argv
        self.lines = []         # every stdout line
        self.checks = {}        # name -> (ok, reason)
        self.order = []         # check names in order
        self.asks = []          # what the program asked for
        self.stderr = ""
        self.returncode = None
        self.timed_out = False
        self.done = False
        self.seconds = 0.0

    def stderr_tail(self, lines=60):
        return "\n".join(self.stderr.splitlines()[-lines:])

    def report(self):
        """Everything a failure message should show."""
        return "%s: exit %s%s after %.1fs\n-- stdout:\n%s\n-- stderr (tail):\n%s" % (
            " ".join(self.argv), self.returncode, " (timed out, killed)" if self.timed_out else "",
            self.seconds, "\n".join(self.lines), self.stderr_tail())

    def failures(self):
        return [(n, r) for n in self.order for ok, r in [self.checks[n]] if not ok]

    def assert_check(self, name):
        """Fails (AssertionError) unless check `name` printed `ok`."""
        if name not in self.checks:
            raise AssertionError("%s did not report check %r\n%s" % (self.label, name, self.report()))
        ok, reason = self.checks[name]
        if not ok:
            raise AssertionError("%s check %s failed: %s\n%s" % (self.label, name, reason, self.report()))

    def assert_complete(self, expected):
        """The program ran to its end and reported exactly the checks `expected`, in
        order, with an exit status that matches (0 unless a check failed).  Whether
        the checks passed is for assert_check."""
        problems = []
        if list(expected) != self.order:
            problems.append("checks reported %s, expected %s" % (self.order, list(expected)))
        if not self.done:
            problems.append("no 'done' line (exit status %s%s)" % (
                self.returncode, ", timed out" if self.timed_out else ""))
        elif self.returncode != (1 if self.failures() else 0):
            problems.append("exit status %s with %d failed checks" % (self.returncode, len(self.failures())))
        if problems:
            raise AssertionError("%s:\n  %s\n%s" % (self.label, "\n  ".join(problems), self.report()))

    def assert_all(self, expected=None):
        """Every check passed, the program ended normally, and (if given) the checks
        reported are exactly `expected`."""
        problems = ["%s: %s" % f for f in self.failures()]
        if expected is not None and list(expected) != self.order:
            problems.append("checks reported %s, expected %s" % (self.order, list(expected)))
        if not self.done or self.returncode != 0:
            problems.append("exit status %s, %s" % (
                self.returncode, "finished" if self.done else "no 'done' line"))
        if problems:
            raise AssertionError("%s:\n  %s\n%s" % (self.label, "\n  ".join(problems), self.report()))


def run(argv, label=None, timeout=120.0, on_ask=None, env=None):
    """Run a program that speaks the line protocol; returns a Result.  `on_ask(what)`
    performs an `ask` (a missing on_ask, or one that raises, makes the program fail
    that check: it is answered "error")."""
    res = Result(label or os.path.basename(argv[0]), argv)
    t0 = time.monotonic()
    errf = tempfile.TemporaryFile()
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf,
                            env=full_env, text=True, bufsize=1, start_new_session=True)
    lines = queue.Queue()

    def reader():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    deadline = t0 + timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                res.timed_out = True
                break
            if line is None:
                break
            res.lines.append(line)
            word, _, rest = line.partition(" ")
            if word == "ok":
                name = rest.split(":", 1)[0]
                res.checks[name] = (True, None)
                res.order.append(name)
            elif word == "FAIL":
                name, _, reason = rest.partition(": ")
                res.checks[name] = (False, reason)
                res.order.append(name)
            elif word == "done":
                res.done = True
            elif word == "ask":
                res.asks.append(rest)
                answer = "error"
                if on_ask is not None:
                    try:
                        on_ask(rest)
                        answer = "ok"
                    except Exception as e:  # reported by the program as a failed check
                        res.lines.append("(driver: ask %r failed: %r)" % (rest, e))
                try:
                    proc.stdin.write(answer + "\n")
                    proc.stdin.flush()
                except OSError:
                    pass
    finally:
        if proc.poll() is None and (res.timed_out or not res.done):
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
        try:
            res.returncode = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            res.returncode = proc.wait()
        errf.seek(0)
        res.stderr = errf.read().decode("utf-8", "replace")
        errf.close()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        res.seconds = time.monotonic() - t0
    return res


def proxy_asks(proxy):
    """on_ask for programs that cut themselves off through a harness.proxy.TcpProxy:
    "cut-hold" closes its connections and parks new ones, "release" forwards them."""
    def on_ask(what):
        if what == "cut-hold":
            proxy.cut(hold=True)
        elif what == "cut":
            proxy.cut(hold=False)
        elif what == "release":
            proxy.release()
        else:
            raise ValueError("unknown ask %r" % what)
    return on_ask


def run_proxied(runner, name, upstream, make_args, timeout=120.0):
    """runner.run(name, make_args(proxy_hosts)) with a fresh harness.proxy.TcpProxy to
    `upstream` (host, port) answering the program's asks.  Returns (Result, number of
    connections the proxy accepted)."""
    from .proxy import TcpProxy

    with TcpProxy(upstream, name="%s-proxy" % name) as proxy:
        res = runner.run(name, make_args(proxy.hosts), on_ask=proxy_asks(proxy), timeout=timeout)
        return res, proxy.accepted
