#!/usr/bin/env python3
"""Capture real four-letter-word replies from Apache ZooKeeper 3.8 into
tests/fixtures/zk-4lw/<cmd>.txt (reference samples for Keel's 4lw output).

It starts a standalone ZooKeeper with the test harness (same flags as the
tests), puts some state in it (three sessions, ephemerals, data/child/exist
watches), then sends each command on its own connection.  Run after
scripts/setup.sh:

    python3 scripts/capture_zk_4lw.py [outdir]
"""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from harness import rawzk  # noqa: E402
from harness.servers import Server  # noqa: E402

COMMANDS = ["ruok", "srvr", "stat", "mntr", "conf", "envi", "isro", "wchs", "wchc", "wchp",
            "cons", "dump", "dirs", "gtmk", "hash", "crst", "srst"]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "zk-4lw")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zk-4lw-") as tmp:
        s = Server("zookeeper", tmp).start()
        try:
            a = rawzk.connect(s.host, s.port, timeout_ms=30000)
            b = rawzk.connect(s.host, s.port, timeout_ms=20000)
            c = rawzk.connect(s.host, s.port, timeout_ms=10000)
            a.create("/app", b"config")
            a.create("/app/lock-", b"", flags=rawzk.EPHEMERAL_SEQUENTIAL)
            b.create("/app/member-b", b"", flags=rawzk.EPHEMERAL)
            b.get_data("/app", watch=True)
            b.get_children("/app", watch=True)
            c.exists("/app/missing", watch=True)
            c.get_data("/app", watch=True)
            c.add_watch("/app", rawzk.AW_PERSISTENT_RECURSIVE)
            for i in range(5):
                a.get_data("/app")
            samples = {cmd: s.four_letter(cmd) for cmd in COMMANDS}
            # after crst/srst, the counters are reset: capture stat again
            samples["stat-after-srst"] = s.four_letter("stat")
        finally:
            s.stop()
        r = Server("zookeeper", os.path.join(tmp, "restricted"),
                   sysprops={"zookeeper.4lw.commands.whitelist": "srvr"}).start()
        try:
            samples["not-in-allowlist-dump"] = r.four_letter("dump")
            samples["not-in-allowlist-ruok"] = r.four_letter("ruok")
        finally:
            r.stop()
    for name, text in samples.items():
        with open(os.path.join(out, name + ".txt"), "w") as f:
            f.write(text)
        print("%-24s %5d bytes" % (name, len(text)))


if __name__ == "__main__":
    main()
