"""pytest fixtures for Keel's Python test suite.

Which servers the tests run against is chosen by env KEEL_TEST_SERVERS, a
comma-separated list of `keel` and `zookeeper` (default: `keel`):

    KEEL_TEST_SERVERS=zookeeper python3 -m pytest tests -q     # oracle only
    KEEL_TEST_SERVERS=keel,zookeeper python3 -m pytest tests   # both

Server-parametrised tests get ids like `test_x[zookeeper]`.  Server logs live
in pytest's tmp dir (<tmp>/<kind>-*/server.log) and the tail of every server a
failing test used is attached to the failure report.
"""
import itertools
import os
import re
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import servers as srv  # noqa: E402

SERVER_KINDS = srv.server_kinds_from_env()


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "server_cfg(**kv): extra zoo.cfg keys for the fresh_server fixture")
    config.addinivalue_line("markers", "server_sysprops(**kv): extra -D properties for the fresh_server fixture")


def pytest_report_header(config):
    return "keel test servers: %s (KEEL_TEST_SERVERS)" % ",".join(SERVER_KINDS)


# ---------------------------------------------------------------------------
# server log tails on failure


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    item._keel_t0 = time.monotonic()
    yield


# A per-test deadline (env KEEL_TEST_TIMEOUT, seconds, default 120; 0 = off):
# kazoo calls wait forever for a reply that a buggy server never sends.
# SIGALRM interrupts the blocked main thread with an exception.
TEST_TIMEOUT = float(os.environ.get("KEEL_TEST_TIMEOUT", "120"))


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded KEEL_TEST_TIMEOUT=%ss" % TEST_TIMEOUT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if TEST_TIMEOUT <= 0 or not hasattr(signal, "setitimer"):
        yield
        return
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    t0 = getattr(item, "_keel_t0", 0)
    for s in list(srv.ALL_SERVERS):
        if s.started_at is None:
            continue
        if s.stopped_at is not None and s.stopped_at < t0:
            continue
        report.sections.append((
            "server log: %s port %s (%s)" % (s.name, s.port, s.log_path),
            s.log_tail(int(os.environ.get("KEEL_TEST_LOG_LINES", "80")))))


def pytest_sessionfinish(session, exitstatus):
    srv.kill_all()


# ---------------------------------------------------------------------------
# servers

_counter = itertools.count()


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]


@pytest.fixture(scope="session", params=SERVER_KINDS)
def server_kind(request):
    return request.param


def _start(kind, tmp_path_factory, label, cfg=None, sysprops=None):
    d = tmp_path_factory.mktemp("%s-%s" % (kind, _safe(label)))
    try:
        return srv.Server(kind, d, cfg=cfg, sysprops=sysprops).start()
    except srv.ServerError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module")
def server(server_kind, tmp_path_factory, request):
    """A server shared by all tests of one module (use unique paths)."""
    s = _start(server_kind, tmp_path_factory, request.module.__name__)
    yield s
    s.stop()


@pytest.fixture
def fresh_server(server_kind, tmp_path_factory, request):
    """A server of its own for one test; zoo.cfg extras via
    @pytest.mark.server_cfg(maxClientCnxns=5), -D extras via
    @pytest.mark.server_sysprops(...)."""
    cfg, props = {}, {}
    for m in request.node.iter_markers("server_cfg"):
        cfg.update(m.kwargs)
    for m in request.node.iter_markers("server_sysprops"):
        props.update(m.kwargs)
    s = _start(server_kind, tmp_path_factory, request.node.name, cfg=cfg, sysprops=props)
    yield s
    s.stop()


@pytest.fixture
def server_factory(server_kind, tmp_path_factory, request):
    """start(kind=None, cfg=None, sysprops=None) -> started Server; all are
    stopped at teardown."""
    started = []

    def start(kind=None, cfg=None, sysprops=None):
        s = _start(kind or server_kind, tmp_path_factory, request.node.name, cfg, sysprops)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def ensemble_factory(server_kind, tmp_path_factory, request):
    """start(participants=3, observers=0, cfg=None, sysprops=None, kind=None)
    -> a started harness.ensemble.Ensemble (serving: one leader, the rest
    followers/observers); every member is killed at teardown."""
    from harness.ensemble import Ensemble, EnsembleError

    started = []

    def start(participants=3, observers=0, cfg=None, sysprops=None, kind=None):
        d = tmp_path_factory.mktemp("%s-ens-%s" % (kind or server_kind, _safe(request.node.name)))
        e = Ensemble(kind or server_kind, d, participants, observers, cfg=cfg, sysprops=sysprops)
        started.append(e)
        try:
            return e.start()
        except EnsembleError as err:
            pytest.fail(str(err), pytrace=False)

    yield start
    for e in started:
        e.kill_all()


# ---------------------------------------------------------------------------
# kazoo clients


@pytest.fixture
def zk_factory(server_kind, request):
    """make(target=None, start=True, **KazooClient kwargs) -> KazooClient on
    `target` (default: the module's shared `server`); all are stopped and
    closed at teardown."""
    from harness.clients import kazoo_clients

    with kazoo_clients() as new_client:
        def make(target=None, start=True, **kw):
            target = target or request.getfixturevalue("server")
            return new_client(target.hosts, start=start, **kw)

        yield make


@pytest.fixture
def zk(zk_factory):
    """A connected KazooClient on the module's shared server."""
    return zk_factory()


@pytest.fixture
def path(request):
    """A unique absolute path for this test (nothing there yet)."""
    return "/%s-%d" % (_safe(request.node.name), next(_counter))


# ---------------------------------------------------------------------------
# client programs in other languages (tests/java, tests/c)


@pytest.fixture(scope="session")
def java_programs():
    """tests/java/*.java compiled once per session against Debian's ZooKeeper and
    Curator jars (harness.programs.JavaPrograms); skips if they are not installed."""
    from harness import programs

    try:
        return programs.JavaPrograms()
    except programs.Missing as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def c_programs():
    """tests/c/*.c compiled once per session against libzookeeper-mt
    (harness.programs.CPrograms); skips if it is not installed."""
    from harness import programs

    try:
        return programs.CPrograms()
    except programs.Missing as e:
        pytest.skip(str(e))
