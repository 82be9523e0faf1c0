"""Differential tests: one pytest test per scenario in diff/scenarios.py.

Depending on KEEL_TEST_SERVERS:
  keel,zookeeper  run the scenario on a fresh ZooKeeper and a fresh Keel and
                  compare the normalised transcripts;
  zookeeper       run it twice on fresh ZooKeepers and require identical
                  normalised transcripts (validates scenario determinism and
                  the normalisation);
  keel            run it twice on fresh Keels (determinism) and, when a golden
                  transcript recorded from ZooKeeper exists in
                  tests/fixtures/diff-golden/<scenario>.json, compare with it.

KEEL_DIFF_RECORD=1 (with zookeeper in KEEL_TEST_SERVERS) (re)writes the golden
files from ZooKeeper's transcripts.  KEEL_DIFF_DUMP=<dir> writes every
normalised transcript there for inspection.
"""
import difflib
import json
import os
import socket
import threading

import pytest

from harness import rawzk
from harness import servers as srv
from diff.scenarios import SCENARIOS
from diff.transcript import Session, normalise, to_lines

KINDS = srv.server_kinds_from_env()
GOLDEN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "fixtures", "diff-golden")


def run_scenario(kind, name, tmp_path_factory, label):
    d = tmp_path_factory.mktemp("diff-%s-%s-%s" % (name[:40], kind, label))
    fn = SCENARIOS[name]
    server = srv.Server(kind, d, cfg=getattr(fn, "server_cfg", None),
                        sysprops=getattr(fn, "server_sysprops", None))
    try:
        server.start()
    except srv.ServerError as e:
        pytest.fail(str(e), pytrace=False)
    session = Session(server)
    try:
        try:
            fn(session)
        except (rawzk.ConnectionClosed, rawzk.ProtocolError, socket.timeout, TimeoutError,
                OSError) as e:
            # an unexpected close/timeout/garbled reply is itself a behaviour
            # to compare: record it so the diff shows where runs diverged
            session.record({"k": "aborted", "error": "%s: %s" % (type(e).__name__, e)})
    finally:
        session.close()
        server.stop()
    norm = normalise(session.transcript)
    dump = os.environ.get("KEEL_DIFF_DUMP")
    if dump:
        os.makedirs(dump, exist_ok=True)
        with open(os.path.join(dump, "%s.%s-%s.jsonl" % (name, kind, label)), "w") as f:
            f.write("\n".join(to_lines(norm)) + "\n")
    return norm


def run_pair(specs, name, tmp_path_factory):
    """Run two scenario runs concurrently (separate servers, sockets and
    transcripts); returns their normalised transcripts in order."""
    results, errors = [None, None], [None, None]
    # pytest creates its base temporary directory lazily and not thread-safely: two
    # threads making the first mktemp of the session at once can each create one and
    # fail pytest's own check ("... is not a normalized and relative path").
    tmp_path_factory.getbasetemp()

    def work(i, kind, label):
        try:
            results[i] = run_scenario(kind, name, tmp_path_factory, label)
        except BaseException as e:  # includes pytest.fail's exception
            errors[i] = e

    threads = [threading.Thread(target=work, args=(i, k, l)) for i, (k, l) in enumerate(specs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        if e is not None:
            raise e
    return results


def compare(name, left_label, left, right_label, right):
    a, b = to_lines(left), to_lines(right)
    if a == b:
        return
    diff = "\n".join(difflib.unified_diff(a, b, left_label, right_label, lineterm="", n=3))
    pytest.fail("scenario %s: transcripts differ (%s vs %s):\n%s" % (
        name, left_label, right_label, diff), pytrace=False)


def golden_path(name):
    return os.path.join(GOLDEN_DIR, name + ".json")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name, tmp_path_factory):
    if "zookeeper" in KINDS:
        other = ("keel", "1") if "keel" in KINDS else ("zookeeper", "2")
        zk, second = run_pair([("zookeeper", "1"), other], name, tmp_path_factory)
        if os.environ.get("KEEL_DIFF_RECORD"):
            os.makedirs(GOLDEN_DIR, exist_ok=True)
            with open(golden_path(name), "w") as f:
                f.write("[\n" + ",\n".join(to_lines(zk)) + "\n]\n")
        if other[0] == "keel":
            compare(name, "zookeeper", zk, "keel", second)
        else:
            compare(name, "zookeeper run 1", zk, "zookeeper run 2", second)
    else:
        k1, k2 = run_pair([("keel", "1"), ("keel", "2")], name, tmp_path_factory)
        compare(name, "keel run 1", k1, "keel run 2", k2)
        gp = golden_path(name)
        if os.path.exists(gp):
            with open(gp) as f:
                golden = json.load(f)
            compare(name, "zookeeper (golden %s)" % os.path.relpath(gp), golden, "keel", k1)
