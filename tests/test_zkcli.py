"""zkCli.sh, ZooKeeper's own command-line client, against Keel and ZooKeeper: one
command script per server, the two transcripts compared after normalisation.

The script (SECTIONS below) runs in one zkCli.sh process per server (one JVM), fed
on stdin.  Without a terminal zkCli does not echo commands, so a marker command
(`get /zkcli-mark/N`, answered "Node does not exist: /zkcli-mark/N") goes before
every command and the transcript is cut back into "$ command" + output blocks.
Each section is one pytest test.

Normalisation (`normalise`): the banner before the first marker is dropped;
cZxid/mZxid/pZxid (hex) become Z<rank> (rank among the distinct zxids the
transcript shows, so their order survives); non-zero ctime/mtime become T; a
non-zero ephemeralOwner becomes S<n> by first appearance; bracketed lists ([a, b])
are sorted (ZooKeeper answers children and getEphemerals in HashSet order), and so
are whoami's identities.  zkCli's own SLF4J noise and a jline prompt, if jline is
installed, are dropped.

Depending on KEEL_TEST_SERVERS:
  keel,zookeeper  both servers, live, compared with each other;
  zookeeper       ZooKeeper compared with the golden transcript
                  fixtures/zkcli/zookeeper.txt (KEEL_DIFF_RECORD=1 rewrites it);
  keel            Keel compared with that golden transcript.

Not in the script, because zkCli itself makes them nondeterministic: watch events
(printed by the event thread, anywhere between command outputs) and a `deleteall`
that fails (ZKUtil.deleteInBatch releases its semaphore before recording the
failure, so "Failed to delete some node(s)" may or may not be printed).
"""
import difflib
import os
import re
import shutil
import subprocess
import threading

import pytest

from harness import servers as srv
from harness.programs import ZKCLI, SETUP_HINT

KINDS = srv.server_kinds_from_env()
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "zkcli", "zookeeper.txt")
MARK = "/zkcli-mark/"

# bob:secret's digest, for an ACL naming a user nobody authenticated as
BOB_DIGEST = "bob:fyVmFCwVbTJYrznoSu1koqYEYF0="

SECTIONS = [
    ("crud", [
        "create /zc",
        "create /zc/a hello",
        "get /zc/a",
        "get -s /zc/a",
        "set /zc/a world",
        "set -s /zc/a again",
        "set -v 0 /zc/a stale",
        "stat /zc/a",
        "ls /zc",
        "ls -s /zc",
        "create /zc/b",
        "ls -R /zc",
        "create /zc/a dup",
        "create /nope/x",
        "get /nope",
        "stat /nope",
        "delete /zc",
        "delete -v 7 /zc/a",
        "delete /zc/a",
        "ls /zc",
        "getAllChildrenNumber /zc",
        "getAllChildrenNumber /",
        "create /zc/bad/",
    ]),
    ("create_modes", [
        "create -e /ze eph",
        "create /zs",
        "create -s /zs/n- one",
        "create -s /zs/n- two",
        "create -e -s /zs/n- three",
        "ls /zs",
        "create -c /zcont",
        "create -c /zcont/kid",
        "create -t 60000 /zttl",
        "create -s -t 60000 /zs/t-",
        "create -t 0 /zttl0",
        "create -e -t 60000 /zttl-eph",
        "stat /zttl",
        "stat /zcont",
        "stat /ze",
        "create /ze/kid",
        "getEphemerals",
        "getEphemerals /zs",
        "getEphemerals /none",
    ]),
    ("acl_and_auth", [
        "create /za data",
        "getAcl /za",
        "setAcl /za world:anyone:r",
        "getAcl -s /za",
        "set /za x",
        "get /za",
        "setAcl /za world:anyone:cdrwa",
        "whoami",
        "addauth digest alice:secret",
        "whoami",
        "create /zb data auth::cdrwa",
        "getAcl /zb",
        "setAcl -v 5 /zb world:anyone:r",
        "create /zbob data digest:%s:cdrwa" % BOB_DIGEST,
        "get /zbob",
        "getAcl /zbob",
        "create /zip data ip:127.0.0.1:r",
        "get /zip",
        "create /zbad data world:anyone:z",
    ]),
    ("quota", [
        "create /zq",
        "setquota -n 3 /zq",
        "create /zq/a 1",
        "create /zq/b 22",
        "create /zq/c 333",
        "listquota /zq",
        "get /zookeeper/quota/zq/zookeeper_stats",
        "stat /zookeeper/quota/zq/zookeeper_stats",
        "get /zookeeper/quota/zq/zookeeper_limits",
        "ls /zookeeper/quota/zq",
        "delete /zq/c",
        "set /zq/a 4444",
        "listquota /zq",
        "setquota -b 100 /zq",
        "listquota /zq",
        "delquota -n /zq",
        "listquota /zq",
        "delquota /zq",
        "listquota /zq",
        "listquota /zc",
    ]),
    ("system_nodes", [
        "ls /zookeeper",
        "stat /zookeeper",
        "stat /zookeeper/config",
        "get /zookeeper/config",
        "config",
        "getAcl /zookeeper/config",
        "sync /",
        "set /zookeeper/config x",
        "delete /zookeeper",
        "create /zookeeper/mine",
    ]),
    ("deleteall", [
        "create /zdel",
        "create /zdel/a",
        "create /zdel/a/b",
        "create /zdel/c",
        "deleteall /zdel",
        "ls /zdel",
        "deleteall /zdel",
    ]),
]


def script():
    """The stdin fed to zkCli.sh and, per marker number, (section, command)."""
    lines, index = [], {}
    n = 0
    for section, commands in SECTIONS:
        for cmd in commands:
            index[n] = (section, cmd)
            lines.append("get %s%d" % (MARK, n))
            lines.append(cmd)
            n += 1
    lines.append("get %s%d" % (MARK, n))  # the end of the last command's output
    lines.append("quit")
    return "\n".join(lines) + "\n", index


def run_zkcli(server, timeout=90):
    env = dict(os.environ, TZ="UTC", LANG="C", LC_ALL="C",
               JVMFLAGS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m")
    stdin, _ = script()
    p = subprocess.run([ZKCLI, "-waitforconnection", "-server", server.hosts], input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=env, timeout=timeout, cwd=server.workdir)
    with open(os.path.join(server.workdir, "zkcli-transcript.txt"), "w") as f:
        f.write(p.stdout)
    return p.stdout


_PROMPT = re.compile(r"^\[zk: [^\]]*\] \d+> ?")
_ZXID = re.compile(r"^(cZxid|mZxid|pZxid) = (0x[0-9a-f]+)$")
_TIME = re.compile(r"^(ctime|mtime) = (.*)$")
_OWNER = re.compile(r"^ephemeralOwner = (0x[0-9a-f]+)$")
_LIST = re.compile(r"^\[(.*)\]$")
EPOCH = "Thu Jan 01 00:00:00 UTC 1970"


def split_blocks(raw):
    """{section: [(command, [output lines])]} from a raw transcript."""
    _, index = script()
    blocks = {name: [] for name, _ in SECTIONS}
    current = None
    for line in raw.splitlines():
        line = _PROMPT.sub("", line)
        if line.startswith("SLF4J:"):
            continue
        m = re.match(r"^Node does not exist: %s(\d+)$" % re.escape(MARK), line)
        if m:
            n = int(m.group(1))
            current = None
            if n in index:
                section, cmd = index[n]
                current = (cmd, [])
                blocks[section].append(current)
            continue
        if line.startswith("get " + MARK):  # echoed by a jline console
            continue
        if current is not None:
            if current[1] == [] and line == current[0]:  # echoed command
                continue
            current[1].append(line)
    return blocks


def normalise(blocks):
    zxids = set()
    for section in blocks.values():
        for _, out in section:
            for line in out:
                m = _ZXID.match(line)
                if m and int(m.group(2), 16) != 0:
                    zxids.add(int(m.group(2), 16))
    rank = {z: i for i, z in enumerate(sorted(zxids), 1)}
    sessions = {}
    result = {}
    for name, section in blocks.items():
        lines = []
        for cmd, out in section:
            lines.append("$ " + cmd)
            for line in out:
                m = _ZXID.match(line)
                if m and int(m.group(2), 16) != 0:
                    line = "%s = Z%d" % (m.group(1), rank[int(m.group(2), 16)])
                m = _TIME.match(line)
                if m and m.group(2) != EPOCH:
                    line = "%s = T" % m.group(1)
                m = _OWNER.match(line)
                if m and int(m.group(1), 16) != 0:
                    owner = int(m.group(1), 16)
                    sessions.setdefault(owner, "S%d" % (len(sessions) + 1))
                    line = "ephemeralOwner = " + sessions[owner]
                m = _LIST.match(line)
                if m and m.group(1):
                    line = "[%s]" % ", ".join(sorted(m.group(1).split(", ")))
                lines.append("  " + line)
            if cmd == "whoami":
                # "Auth scheme: User" then one line per identity, in HashSet order
                body = lines[len(lines) - len(out) + 1:]
                lines[len(lines) - len(out) + 1:] = sorted(body)
        result[name] = lines
    return result


def read_golden():
    """{section: lines} from the golden file (sections start with '## name')."""
    if not os.path.exists(GOLDEN):
        return None
    out, current = {}, None
    with open(GOLDEN) as f:
        for line in f.read().splitlines():
            if line.startswith("## "):
                current = out.setdefault(line[3:], [])
            elif current is not None:
                current.append(line)
    return out


def write_golden(transcript):
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    with open(GOLDEN, "w") as f:
        f.write("# zkCli.sh transcript from Apache ZooKeeper 3.8, normalised by tests/test_zkcli.py;\n"
                "# rewritten by KEEL_DIFF_RECORD=1 KEEL_TEST_SERVERS=zookeeper pytest tests/test_zkcli.py\n")
        for name, _ in SECTIONS:
            f.write("## %s\n" % name)
            for line in transcript[name]:
                f.write(line + "\n")


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory):
    """{kind: {section: normalised lines}} for every selected server, each from a
    fresh server (run side by side)."""
    if not os.path.exists(ZKCLI) or not shutil.which("java"):
        pytest.skip("%s or java not found; %s" % (ZKCLI, SETUP_HINT))
    tmp_path_factory.getbasetemp()  # created once, before the threads
    results, errors = {}, {}

    def work(kind):
        s = srv.Server(kind, tmp_path_factory.mktemp("zkcli-%s" % kind))
        try:
            s.start()
            results[kind] = normalise(split_blocks(run_zkcli(s)))
        except BaseException as e:
            errors[kind] = e
        finally:
            s.stop()

    threads = [threading.Thread(target=work, args=(k,)) for k in KINDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for kind, e in errors.items():
        pytest.fail("zkCli against %s: %r" % (kind, e), pytrace=False)
    if "zookeeper" in results and os.environ.get("KEEL_DIFF_RECORD"):
        write_golden(results["zookeeper"])
    return results


def _compare(section, left_label, left, right_label, right):
    if left == right:
        return
    diff = "\n".join(difflib.unified_diff(left, right, left_label, right_label, lineterm="", n=4))
    pytest.fail("zkCli section %s: transcripts differ (%s vs %s):\n%s" % (
        section, left_label, right_label, diff), pytrace=False)


@pytest.mark.parametrize("section", [name for name, _ in SECTIONS])
def test_zkcli_transcript(transcripts, section):
    commands = dict(SECTIONS)[section]
    for kind, t in transcripts.items():
        # every command's block is there (zkCli did not stop early)
        got = [line[2:] for line in t[section] if line.startswith("$ ")]
        assert got == commands, "%s: zkCli transcript incomplete: %s" % (kind, got)
    if "zookeeper" in transcripts and "keel" in transcripts:
        _compare(section, "zookeeper", transcripts["zookeeper"][section],
                 "keel", transcripts["keel"][section])
        return
    golden = read_golden()
    if golden is None or section not in golden:
        if "zookeeper" in transcripts:
            return  # nothing to compare a ZooKeeper-only run with until it is recorded
        pytest.skip("no golden transcript %s (record it with KEEL_DIFF_RECORD=1 and "
                    "KEEL_TEST_SERVERS=zookeeper)" % GOLDEN)
    kind = "zookeeper" if "zookeeper" in transcripts else "keel"
    _compare(section, "zookeeper (golden %s)" % os.path.relpath(GOLDEN), golden[section],
             kind, transcripts[kind][section])
