"""Four-letter words: output formats as Apache ZooKeeper 3.8 writes them.

Reference samples captured from ZooKeeper are in tests/fixtures/zk-4lw/
(scripts/capture_zk_4lw.py).  These tests check the shape of each reply
(line structure, key names, number formats) and the values that follow from
a known server state, not volatile numbers (latencies, byte counts)."""
import os
import re

import pytest

from harness import rawzk
from harness.wait import DeadlineExceeded, wait_until

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "zk-4lw")

SRVR_LINES = [
    r"Zookeeper version: \S.*",
    r"Latency min/avg/max: \d+/\d+(\.\d+)?/\d+",
    r"Received: \d+",
    r"Sent: \d+",
    r"Connections: \d+",
    r"Outstanding: \d+",
    r"Zxid: 0x[0-9a-f]+",
    r"Mode: standalone",
    r"Node count: \d+",
]
STAT_CLIENT = r" /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+\)"
CONS_CLIENT = (r" /127\.0\.0\.1:\d+\[\d+\]\(queued=\d+,recved=\d+,sent=\d+"
               r"(,sid=0x[0-9a-f]+,lop=\w+,est=\d+,to=\d+,lcxid=0x[0-9a-f]+,lzxid=0x[0-9a-f]+,"
               r"lresp=\d+,llat=\d+,minlat=\d+,avglat=\d+,maxlat=\d+)?\)")
MNTR_REQUIRED = [
    "zk_version", "zk_server_state", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
    "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections",
    "zk_outstanding_requests", "zk_znode_count", "zk_watch_count", "zk_ephemerals_count",
    "zk_approximate_data_size", "zk_open_file_descriptor_count",
    "zk_max_file_descriptor_count",
]
CONF_REQUIRED = ["clientPort", "dataDir", "dataLogDir", "tickTime", "maxClientCnxns",
                 "minSessionTimeout", "maxSessionTimeout", "serverId"]


def fixture(name):
    with open(os.path.join(FIXTURES, name + ".txt")) as f:
        return f.read()


def match_lines(text, patterns):
    lines = text.split("\n")
    assert lines[-1] == "", "reply must end with a newline: %r" % text[-40:]
    lines = lines[:-1]
    assert len(lines) == len(patterns), "expected %d lines, got:\n%s" % (len(patterns), text)
    for line, pat in zip(lines, patterns):
        assert re.fullmatch(pat, line), "line %r does not match %r" % (line, pat)
    return lines


def test_reference_samples_have_the_documented_shapes():
    """The patterns below are derived from real ZooKeeper output."""
    match_lines(fixture("srvr"), SRVR_LINES)
    assert fixture("ruok") == "imok" and fixture("isro") == "rw"
    assert fixture("not-in-allowlist-dump") == "dump is not executed because it is not in the whitelist.\n"
    for line in fixture("cons").split("\n")[:-2]:
        assert re.fullmatch(CONS_CLIENT, line), line
    keys = [l.split("\t")[0] for l in fixture("mntr").splitlines()]
    assert set(MNTR_REQUIRED) <= set(keys)


@pytest.fixture
def loaded(fresh_server):
    """A fresh server with 2 sessions, 2 ephemerals, 3 watches on 2 paths."""
    s = fresh_server
    a = rawzk.connect(s.host, s.port, timeout_ms=30000)
    b = rawzk.connect(s.host, s.port, timeout_ms=20000)
    a.create("/app", b"12345")
    a.create("/app/lock-", b"", flags=rawzk.EPHEMERAL_SEQUENTIAL)
    b.create("/app/member", b"", flags=rawzk.EPHEMERAL)
    b.get_data("/app", watch=True)
    b.get_children("/app", watch=True)
    b.exists("/app/missing", watch=True)
    zxid = b.exists("/").zxid
    # ZooKeeper retires the start-up probe connections (ruok/srvr) a moment
    # after they close; wait for "srvr + a + b" (ZooKeeper counts the srvr
    # connection itself).  Not fatal here: the tests assert the counts.
    try:
        wait_until(lambda: "Connections: 3\n" in s.four_letter("srvr"), 5,
                   what="only 2 client connections + the srvr connection")
    except DeadlineExceeded:
        pass
    return s, a, b, zxid


def test_ruok_isro(server):
    assert server.four_letter("ruok") == "imok"
    assert server.four_letter("isro") == "rw"


def test_srvr(loaded):
    s, a, b, zxid = loaded
    lines = match_lines(s.four_letter("srvr"), SRVR_LINES)
    vals = dict(l.split(": ", 1) for l in lines)
    assert vals["Connections"] == "3"
    assert vals["Outstanding"] == "0"
    assert vals["Zxid"] == "0x%x" % zxid
    # /, /zookeeper, /zookeeper/quota, /zookeeper/config, /app + 2 children
    # = 7 znodes, but ZooKeeper counts its node map, where the root appears
    # twice (as "" and "/"): a fresh server says "Node count: 5"
    assert vals["Node count"] == "8"


def test_stat(loaded):
    s, a, b, zxid = loaded
    text = s.four_letter("stat")
    head, sep, tail = text.partition("\n\n")
    assert sep, "stat: no blank line after the client list:\n" + text
    hl = head.split("\n")
    assert re.fullmatch(SRVR_LINES[0], hl[0])
    assert hl[1] == "Clients:"
    assert len(hl) - 2 == 3, text
    for line in hl[2:]:
        assert re.fullmatch(STAT_CLIENT, line), line
    match_lines(tail, SRVR_LINES[1:])


def test_cons(loaded):
    s, a, b, zxid = loaded
    text = s.four_letter("cons")
    assert text.endswith("\n\n")
    lines = text.split("\n")[:-2]
    assert len(lines) == 3
    sids = set()
    for line in lines:
        m = re.fullmatch(CONS_CLIENT, line)
        assert m, line
        sid = re.search(r"sid=(0x[0-9a-f]+)", line)
        if sid:
            sids.add(int(sid.group(1), 16))
    assert sids == {a.session_id, b.session_id}


def test_mntr(loaded):
    s, a, b, zxid = loaded
    text = s.four_letter("mntr")
    assert text.endswith("\n")
    kv = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(zk_\w+)\t(.*)", line)
        assert m, "bad mntr line %r" % line
        kv[m.group(1)] = m.group(2)
    missing = [k for k in MNTR_REQUIRED if k not in kv]
    assert not missing, missing
    assert kv["zk_server_state"] == "standalone"
    assert kv["zk_znode_count"] == "8"    # root counted twice, see test_srvr
    assert kv["zk_ephemerals_count"] == "2"
    assert kv["zk_watch_count"] == "3"
    assert kv["zk_outstanding_requests"] == "0"
    assert kv["zk_num_alive_connections"] == "3"
    for k in ("zk_avg_latency",):
        float(kv[k])
    for k in ("zk_max_latency", "zk_min_latency", "zk_packets_received", "zk_packets_sent",
              "zk_approximate_data_size", "zk_open_file_descriptor_count"):
        int(kv[k])


def test_conf(loaded):
    s, a, b, zxid = loaded
    text = s.four_letter("conf")
    assert text.endswith("\n")
    kv = dict(line.split("=", 1) for line in text.splitlines())
    missing = [k for k in CONF_REQUIRED if k not in kv]
    assert not missing, missing
    assert kv["clientPort"] == str(s.port)
    assert kv["tickTime"] == "2000"
    assert kv["minSessionTimeout"] == "4000" and kv["maxSessionTimeout"] == "40000"
    assert kv["maxClientCnxns"] == "60"
    assert kv["dataDir"].startswith(s.data_dir)


def test_envi(server):
    text = server.four_letter("envi")
    lines = text.splitlines()
    assert lines[0] == "Environment:"
    kv = dict(l.split("=", 1) for l in lines[1:])
    for k in ("zookeeper.version", "host.name", "os.name", "user.dir"):
        assert k in kv, k
    # kazoo's server_version() parses this
    assert re.match(r"\d+\.\d+\.\d+", kv["zookeeper.version"])


def test_wchs_wchc_wchp(loaded):
    s, a, b, zxid = loaded
    # wchs/wchc/wchp only cover data watches (getData/exists, incl. the exists
    # watch on a missing node), not child watches; mntr's zk_watch_count has both
    assert s.four_letter("wchs") == "1 connections watching 2 paths\nTotal watches:2\n"
    sid = "0x%x" % b.session_id
    wchc = s.four_letter("wchc")
    assert wchc.startswith(sid + "\n") and wchc.endswith("\n\n")
    assert sorted(wchc.split("\n")[1:-2]) == ["\t/app", "\t/app/missing"]
    wchp = s.four_letter("wchp")
    assert wchp.endswith("\n\n")
    blocks = wchp[:-2].split("\n")
    assert sorted(zip(blocks[0::2], blocks[1::2])) == [("/app", "\t" + sid),
                                                        ("/app/missing", "\t" + sid)]


def test_dump(loaded):
    s, a, b, zxid = loaded
    text = s.four_letter("dump")
    assert text.startswith("SessionTracker dump:\n")
    assert "ephemeral nodes dump:\nSessions with Ephemerals (2):\n" in text
    assert "0x%x:\n\t/app/lock-0000000000\n" % a.session_id in text
    assert "0x%x:\n\t/app/member\n" % b.session_id in text


def test_stats_reset_words(server):
    assert server.four_letter("srst") == "Server stats reset.\n"
    assert server.four_letter("crst") == "Connection stats reset.\n"
    assert re.fullmatch(r"\d+", server.four_letter("gtmk"))
    dirs = server.four_letter("dirs")
    assert re.fullmatch(r"datadir_size: \d+\nlogdir_size: \d+\n", dirs)


def test_unknown_word_closes_silently(server):
    assert server.four_letter("abcd") == ""
