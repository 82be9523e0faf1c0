"""Long runs of the fault suite:

    python3 -m tests.faults --budget 600 --servers keel,zookeeper [--seed N] [--out DIR]

The budget (seconds, all servers together) is split evenly between the
servers (what one leaves unspent goes to the next); each spends about
--election-share of its part measuring re-election times (kill -9 of the
leader with and without a lagging survivor, and with the follower-to-be kept
busy, at tickTime 6000; SIGSTOP of the leader at tickTime 500) and the rest on
rounds of randomly ordered scenarios (every scenario once before any repeats)
on an ensemble with tickTime 200, started afresh after a round with
anomalies.  Progress is printed as it goes; the report (report.json, every
failing round's history, server logs under <out>/<server>/) is kept in --out.
Exit status 1 if a round found an anomaly (non-linearizable history, lost or
phantom write, members disagreeing, a reconfiguration answered wrongly, no
recovery after healing) that is not a known ZooKeeper defect (known.py), or a
re-election after kill -9 took a whole tickTime or more.
"""
import argparse
import json
import logging
import os
import random
import signal
import sys
import tempfile
import time

from . import net as netmod
from . import known
from .cluster import FaultCluster
from .scenarios import SCENARIOS, measure_reelection, run_round

ELECTION_PLANS = [
    # (mode, lag seconds, busy follower, tickTime, syncLimit)
    ("kill", 0.3, False, 6000, 5),
    ("kill", 0.0, False, 6000, 5),
    ("kill", 0.0, True, 6000, 5),
    ("pause", 0.0, False, 500, 5),
]


def parse_plan(text):
    """MODE:LAG:TICK[:busy], e.g. kill:0.3:6000 or kill:0:6000:busy"""
    parts = text.split(":")
    if len(parts) not in (3, 4) or parts[0] not in ("kill", "pause") or (
            len(parts) == 4 and parts[3] != "busy"):
        raise argparse.ArgumentTypeError("plan is MODE:LAG:TICK[:busy], MODE kill or pause: %r" % text)
    return (parts[0], float(parts[1]), len(parts) == 4, int(parts[2]), 5)


def log(msg):
    print(msg, flush=True)


def save_round(out, n, res):
    path = os.path.join(out, "round-%03d-%s-%s.json" % (n, res["server"], res["scenario"]))
    d = dict(res)
    d["history"] = [op.to_json() for op in res["history"]]
    with open(path, "w") as f:
        json.dump(d, f, indent=1, default=str)
    return path


def run_server(kind, budget, args, out, report):
    deadline = time.monotonic() + budget
    rng = random.Random("%s-%s" % (args.seed, kind))
    elections_budget = budget * args.election_share if args.election_samples else 0
    if args.elections_only:
        elections_budget = budget
    rounds_deadline = deadline - elections_budget
    log("== %s: %.0fs (%.0fs rounds, %.0fs re-election)" % (
        kind, budget, rounds_deadline - time.monotonic(), elections_budget))
    names = args.scenarios or sorted(SCENARIOS)
    workdir = os.path.join(out, kind)
    if not args.elections_only:
        run_rounds(kind, args, out, report, rng, names, workdir, rounds_deadline)
    if args.election_samples:
        run_elections(kind, args, report, workdir, deadline)


def run_rounds(kind, args, out, report, rng, names, workdir, rounds_deadline):
    order = []
    n = 0
    cl = FaultCluster(kind, os.path.join(workdir, "rounds"), tick_time=args.tick, log=log)
    try:
        cl.start()
        log("   ensemble up (tickTime %d, syncLimit %d): %s" % (cl.tick_time, cl.sync_limit, cl.describe()))
        durations = []
        while True:
            left = rounds_deadline - time.monotonic()
            est = max(durations[-5:]) if durations else 20
            if left < est:
                break
            if not order:
                order = list(names)
                rng.shuffle(order)
            scen = order.pop()
            n += 1
            seed = rng.randrange(1 << 30)
            detect = cl.sync_limit * cl.tick_time / 1000.0
            hold = rng.uniform(1.5 * detect, 4 * detect) + 0.5
            log("-- %s round %d: %s (seed %d, hold %.1fs)" % (kind, n, scen, seed, hold))
            res = run_round(cl, scen, seed=seed, hold=hold, log=log, barrier=not args.no_barrier)
            durations.append(res["seconds"])
            log("   %s" % res.summary())
            if res.get("known"):
                log("   known ZooKeeper defect %s: %s" % (",".join(res["known"]), known.reason(res["known"])))
            for a in res["anomalies"]:
                log("   %s: %s" % ("ANOMALY" if a in res.unexplained else "anomaly (known defect)", a))
            entry = {k: v for k, v in res.items() if k != "history"}
            entry["cluster"] = cl.ens.workdir
            if not res.ok or args.keep_histories:
                entry["history_file"] = save_round(out, len(report["rounds"]) + 1, res)
            report["rounds"].append(entry)
            if not res.ok and not args.keep_going_after_anomaly:
                # the ensemble's state is suspect: start a fresh one for the next round
                # (this one's data directories are kept for a post-mortem)
                cl.close()
                cl = FaultCluster(kind, os.path.join(workdir, "rounds-%d" % n), tick_time=args.tick, log=log)
                cl.start()
    finally:
        cl.close()
        if not any(r["anomalies"] for r in report["rounds"] if r.get("cluster") == cl.ens.workdir):
            cl.drop_data()


def run_elections(kind, args, report, workdir, deadline):
    plans = args.election_plan or ELECTION_PLANS
    for i, (mode, lag, busy, tick, sync) in enumerate(plans):
        left = deadline - time.monotonic()
        plan_deadline = time.monotonic() + left / (len(plans) - i)
        if left < 15:
            log("   (no time left for re-election %s lag %.1f at tickTime %d)" % (mode, lag, tick))
            continue
        log("-- %s re-election: %s the leader%s%s, tickTime %d, syncLimit %d" % (
            kind, "kill -9" if mode == "kill" else "SIGSTOP",
            " with a lagging survivor (%.1fs)" % lag if lag else "",
            " with the follower-to-be kept busy" if busy else "", tick, sync))
        ecl = FaultCluster(kind, os.path.join(workdir, "election-%s-%s-%s-%d" % (mode, lag, busy, tick)),
                           tick_time=tick, sync_limit=sync, log=lambda m: None)
        try:
            ecl.start()
            samples = args.election_samples
            r = measure_reelection(ecl, mode=mode, lag=lag, busy=busy, samples=samples, log=log,
                                   deadline=plan_deadline)
        finally:
            ecl.close()
            ecl.drop_data()
        log("   first write: median %s s, max %s s, samples %s; survivors serving: median %s s" % (
            r["median_s"], r["max_s"], r["samples"], r["serving_median_s"]))
        report["elections"].append(r)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m tests.faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=600, help="seconds in all (default 600)")
    p.add_argument("--servers", default=os.environ.get("KEEL_TEST_SERVERS", "keel,zookeeper"),
                   help="keel, zookeeper or keel,zookeeper")
    p.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    p.add_argument("--out", default=None, help="report directory (default: a new /tmp/keel-faults-*)")
    p.add_argument("--scenarios", default=None, help="comma-separated subset of: %s" % ", ".join(sorted(SCENARIOS)))
    p.add_argument("--tick", type=int, default=200, help="tickTime of the rounds' ensemble (ms, default 200)")
    p.add_argument("--election-samples", type=int, default=5,
                   help="samples per re-election measurement (0: none)")
    p.add_argument("--election-share", type=float, default=0.35,
                   help="fraction of each server's budget kept for re-election measurements")
    p.add_argument("--elections-only", action="store_true", help="no rounds, re-election measurements only")
    p.add_argument("--election-plan", type=parse_plan, action="append",
                   help="MODE:LAG:TICK[:busy] (repeatable; default: kill:0.3:6000, kill:0:6000, "
                        "kill:0:6000:busy, pause:0:500)")
    p.add_argument("--keep-histories", action="store_true", help="save every round's history, not just failing ones")
    p.add_argument("--no-barrier", action="store_true",
                   help="record plain local reads (no check multi): a negative control that shows "
                        "the checker catching stale reads")
    p.add_argument("--keep-going-after-anomaly", action="store_true",
                   help="go on with the same ensemble after a round found anomalies (default: a fresh one)")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    for k in kinds:
        if k not in ("keel", "zookeeper"):
            p.error("unknown server %r" % k)
    if args.scenarios:
        args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
        bad = [s for s in args.scenarios if s not in SCENARIOS]
        if bad:
            p.error("unknown scenarios %s" % bad)
    # kazoo logs every dropped connection at WARNING: hundreds per fault
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    try:
        netmod.check_available()
    except netmod.Unavailable as e:
        log("fault suite unavailable: %s" % e)
        return 2
    out = args.out or tempfile.mkdtemp(prefix="keel-faults-")
    os.makedirs(out, exist_ok=True)
    # a SIGTERM / SIGINT still runs the finally blocks (servers killed, namespaces deleted)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    report = {"seed": args.seed, "budget": args.budget, "servers": kinds, "rounds": [], "elections": []}
    log("fault suite: servers %s, budget %.0fs, seed %d, report in %s" % (",".join(kinds), args.budget, args.seed, out))
    t0 = time.monotonic()
    try:
        for i, kind in enumerate(kinds):
            share = (args.budget - (time.monotonic() - t0)) / (len(kinds) - i)
            run_server(kind, share, args, out, report)
    finally:
        report["seconds"] = round(time.monotonic() - t0, 1)
        with open(os.path.join(out, "report.json"), "w") as f:
            json.dump(report, f, indent=1, default=str)
    bad = summarise(report)
    log("report: %s" % os.path.join(out, "report.json"))
    return 1 if bad else 0


def summarise(report):
    log("\n== summary (%.0fs)" % report["seconds"])
    bad = 0
    for kind in report["servers"]:
        rounds = [r for r in report["rounds"] if r["server"] == kind]
        if rounds:
            bad += summarise_rounds(kind, rounds)
        for e in [e for e in report["elections"] if e["server"] == kind]:
            stalls = ("" if e.get("tick_stalls") is None else
                      ", %d of %d a tickTime or more" % (e["tick_stalls"], len(e["samples"])))
            log("%s re-election %-5s lag %.1fs%s tickTime %4d: first write median %s s, max %s s%s, %s; "
                "survivors serving median %s s" % (
                    kind, e["mode"], e["lag_s"], " busy" if e.get("busy") else "     ", e["tick_time"],
                    e["median_s"], e["max_s"], stalls, e["samples"], e["serving_median_s"]))
            if e.get("tick_stalls"):
                # an election that waited for a tick timer (issue 19: must not grow with tickTime)
                log("   ANOMALY: %d re-election(s) took a tickTime or more (see docs/faults.md)" % e["tick_stalls"])
                bad += e["tick_stalls"]
    return bad


def summarise_rounds(kind, rounds):
    ops = sum(r["report"]["ops"] for r in rounds)
    acked = sum(r["report"]["acked_writes"] for r in rounds)
    lost = sum(r["report"]["lost"] for r in rounds)
    nonlin = sum(1 for r in rounds if not r["report"]["linearizable"])
    unexplained = sum(len(r["unexplained"]) for r in rounds)
    known_rounds = [r for r in rounds if r.get("known")]
    log("%s: %d rounds, %d histories checked (%d keys), %d ops, %d acknowledged writes, "
        "%d lost, %d rounds not linearizable, %d unexplained anomalies, %d rounds with a known defect" % (
            kind, len(rounds), len(rounds), sum(len(r["report"]["keys"]) for r in rounds),
            ops, acked, lost, nonlin, unexplained, len(known_rounds)))
    by = {}
    for r in rounds:
        by.setdefault(r["scenario"], []).append(r)
    for scen, rs in sorted(by.items()):
        gaps = [r["write_gap_s"] for r in rs if r.get("write_gap_s") is not None]
        extra = ""
        recs = [r["results"].get("reconfig") for r in rs if r["results"].get("reconfig")]
        if recs:
            extra = ", reconfig: %s" % ",".join(recs)
        log("   %-35s x%d  write gap %s%s%s" % (
            scen, len(rs), "/".join("%.2f" % g for g in gaps) or "-", extra,
            "  ANOMALIES %d" % sum(len(r["anomalies"]) for r in rs)
            if any(r["anomalies"] for r in rs) else ""))
    for r in known_rounds:
        log("   known defect in round %s (%s): %s" % (r["scenario"], r.get("history_file"), ",".join(r["known"])))
    for r in rounds:
        for a in r["unexplained"]:
            log("   ANOMALY in %s: %s" % (r["scenario"], a.splitlines()[0]))
    return unexplained


if __name__ == "__main__":
    sys.exit(main())
