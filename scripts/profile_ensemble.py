#!/usr/bin/env python3
"""Profiles the leader and a follower of a 3-member Keel ensemble under load:
`perf record` on both while keel-bench drives one cell, then a flame graph
(scripts/flamegraph.py) and perf's flat top list of each.

    python3 scripts/profile_ensemble.py --workload set --sessions 4 --inflight 64 \\
        --seconds 4 --out docs/benchmarks/profiles/after [--keel-bin target/release/keel]

Writes, under --out: leader.svg, follower.svg (flame graphs), leader.txt,
follower.txt (the 40 hottest functions, self time), and summary.txt (the
keel-bench result line, the command, perf's settings). Needs `perf` (installed by
scripts/setup.sh where the distribution has it) and a release build with debug
info (the workspace's release profile has it). Sessions are spread over all three
members, as keel-bench compare spreads them.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from harness.ensemble import Ensemble  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="set")
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=4.0, help="profiled seconds")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--frequency", type=int, default=499, help="perf samples per second")
    ap.add_argument("--preload", type=float, default=0.0,
                    help="seconds of `create` 12x8 first, to profile against a big tree (as keel-bench compare's later cells run)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--keel-bin", default=os.environ.get("KEEL_BIN", os.path.join(ROOT, "target/release/keel")))
    ap.add_argument("--bench-bin", default=os.path.join(ROOT, "target/release/keel-bench"))
    a = ap.parse_args()
    os.environ["KEEL_BIN"] = os.path.abspath(a.keel_bin)
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="keel-profile-")
    ens = Ensemble("keel", work, participants=3)
    try:
        ens.start()
        leader = ens.leader()
        follower = [m for m in ens.members if m is not leader][0]
        connect = ",".join("%s:%d" % m.address for m in ens.members)
        if a.preload > 0:
            subprocess.run([a.bench_bin, "run", "--connect", connect, "--workload", "create", "--root", "/kb",
                            "--sessions", "12", "--inflight", "8", "--warmup", "0s",
                            "--duration", "%dms" % int(a.preload * 1000), "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        bench = subprocess.Popen(
            [a.bench_bin, "run", "--connect", connect, "--workload", a.workload, "--root", "/kb",
             "--sessions", str(a.sessions), "--inflight", str(a.inflight),
             "--warmup", "%dms" % int(a.warmup * 1000),
             "--duration", "%dms" % int((a.seconds + 1.0) * 1000), "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(a.warmup)  # profile the measured part of the run only
        perfs = {}
        for role, m in (("leader", leader), ("follower", follower)):
            data = os.path.join(work, role + ".data")
            perfs[role] = (data, subprocess.Popen(
                ["perf", "record", "-q", "-F", str(a.frequency), "--call-graph", "dwarf,16384",
                 "-p", str(m.proc.pid), "-o", data, "--", "sleep", str(a.seconds)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _, p in perfs.values():
            p.wait()
        out, _ = bench.communicate(timeout=120)
        result = [line for line in out.splitlines() if line.startswith("{")]
        for role, (data, _) in perfs.items():
            script = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,time,event,ip,sym,dso"],
                                    capture_output=True, text=True).stdout
            with open(os.path.join(a.out, role + ".svg"), "w") as f:
                subprocess.run([sys.executable, os.path.join(HERE, "flamegraph.py"), "--title",
                                "keel %s: %s %dx%d" % (role, a.workload, a.sessions, a.inflight)],
                               input=script, stdout=f, text=True, check=True)
            top = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                  "--sort", "comm,symbol", "-g", "none", "--percent-limit", "0.5"],
                                 capture_output=True, text=True).stdout
            lines = [line for line in top.splitlines() if line and not line.startswith("#")][:40]
            with open(os.path.join(a.out, role + ".txt"), "w") as f:
                f.write("\n".join(lines) + "\n")
        with open(os.path.join(a.out, "summary.txt"), "w") as f:
            f.write("command: %s\n" % " ".join(sys.argv))
            f.write("perf: -F %d --call-graph dwarf, %.1f s of the measured window, leader = member %d, follower = member %d; preload: %.0f s of create 12x8\n"
                    % (a.frequency, a.seconds, leader.sid, follower.sid, a.preload))
            f.write("keel-bench: %s\n" % (result[-1] if result else out[-2000:]))
        print(open(os.path.join(a.out, "summary.txt")).read())
    finally:
        ens.kill_all()


if __name__ == "__main__":
    main()
