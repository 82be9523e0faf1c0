"""Fault scenarios, the round that runs one under a workload and checks it,
and the re-election measurement.

A round: fresh keys; the workload starts (5 clients: one pinned to each member,
two roaming); once it makes progress the scenario injects its fault(s) and
holds them; then every fault is undone (partition healed, SIGCONT, dead members
restarted) and the round requires, within LIVENESS seconds, every member
serving with one leader, membership restored (a bulk reconfig if a scenario
changed it) and acknowledged writes again.  The workload stops, each key is
read with a barrier read, then through every member after sync (the members
must agree), and the history is checked (checker.analyse).

Scenarios (L = leader at the start of the round, F1 / F2 = followers):

  isolate-leader        L cut from F1 and F2 (clients still reach L)
  isolate-follower      F1 cut from L and F2
  cut-leader-follower   only the link L <-> F1 cut (F1 still hears F2)
  pause-follower        SIGSTOP F1
  pause-leader          SIGSTOP L
  kill-follower         kill -9 F1, restarted at the end
  kill-leader           kill -9 L, restarted at the end
  kill-all              kill -9 every member at once, all restarted
  reconfig-paused-quorum     issue 19 case 1: SIGSTOP F1, wait past syncLimit,
                        reconfig leaving=F2 (new voters {L, F1}): must be
                        refused with NewConfigNoQuorum, writes go on
  reconfig-dead-quorum  kill -9 F1, reconfig leaving=F2: NewConfigNoQuorum
  reconfig-remove-isolated   F1 cut off, wait past syncLimit, reconfig
                        leaving=F1 (new voters {L, F2}, both live): accepted
                        by ZooKeeper; F1 re-added after healing
  reconfig-via-deposed-leader   L cut off, at once a reconfig leaving=F2
                        through a client of L: L cannot commit it (no
                        quorum hears it), so it must not be answered ok
  flapping-partitions   3-6 short partitions of random shapes in a row
  flapping-pauses       3-6 SIGSTOP/SIGCONT of random members in a row
  reconfig-remove-paused-leader  SIGSTOP L, F1+F2 elect, reconfig leaving=L
  kill-leader-during-reconfig    reconfig leaving=F2 through F1, kill -9 L
                        while it is in flight
  isolate-leader-then-kill-new-leader   L cut off, F1+F2 elect N, kill -9 N,
                        heal: L and the remaining follower must keep what N
                        committed (the shape of ZooKeeper's data-loss bugs)
  kill-all-while-partitioned     one member cut off, kill -9 all, restart all
                        under the partition, then heal

After every round each member's /zookeeper/config (after sync) must be the
same, as must each key's data.

The hold time of a fault is `hold` seconds (default 3 x syncLimit x tickTime,
at least 1.5 s): long enough for the others to notice and elect.
"""
import os
import random
import statistics
import threading
import time

from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from . import checker, known
from .checker import Op
from .cluster import ClusterError, EnsembleError
from .workload import Workload, now

LIVENESS = 60.0          # s: after healing, serving again within this
PROGRESS_WRITES = 5       # acknowledged writes required after healing
N_KEYS = 3
WRITE_AFTER_REFUSAL = 2.0  # s: a write after a refused reconfig (issue 19: within 1 s)


class Ctx:
    def __init__(self, cl, wl, rng, hold, leader, followers):
        self.cl, self.wl, self.rng = cl, wl, rng
        self.hold_s = hold
        self.leader = leader
        self.f1, self.f2 = followers
        self.detect = cl.sync_limit * cl.tick_time / 1000.0
        self.results = {}
        self.anomalies = []
        self.liveness = LIVENESS

    def hold(self, seconds=None):
        # the fault's duration is the scenario's parameter, not a wait for an event
        time.sleep(self.hold_s if seconds is None else seconds)

    def past_detection(self):
        """Long enough that the leader no longer counts a silent peer (1.5 x
        syncLimit x tickTime + 0.5 s)."""
        time.sleep(1.5 * self.detect + 0.5)

    def superuser(self, members):
        return self.cl.client(members=members, superuser=True)

    def write_gap(self, client, path, timeout=30.0):
        """Seconds until a write through `client` is acknowledged."""
        t0 = time.monotonic()
        while True:
            t1 = time.monotonic()
            try:
                client.set_async(path, b"probe").get(timeout=2)
                return time.monotonic() - t0
            except (KazooException, KazooTimeoutError):
                if time.monotonic() - t0 > timeout:
                    return None
                if time.monotonic() - t1 < 0.005:
                    time.sleep(0.005)  # failed at once (no connection): do not spin


def s_isolate_leader(ctx):
    ctx.cl.isolate(ctx.leader)
    ctx.hold()


def s_isolate_follower(ctx):
    ctx.cl.isolate(ctx.f1)
    ctx.hold()


def s_cut_leader_follower(ctx):
    ctx.cl.cut(ctx.leader, ctx.f1)
    ctx.hold()


def s_pause_follower(ctx):
    ctx.cl.pause(ctx.f1)
    ctx.hold()


def s_pause_leader(ctx):
    ctx.cl.pause(ctx.leader)
    ctx.hold()


def s_kill_follower(ctx):
    ctx.cl.kill9(ctx.f1)
    ctx.hold()


def s_kill_leader(ctx):
    ctx.cl.kill9(ctx.leader)
    ctx.hold()


def s_kill_all(ctx):
    ctx.cl.kill_all()
    ctx.hold(ctx.rng.uniform(0, 1.0))


def _expect_refused(ctx, leaving, why):
    sup = ctx.superuser([ctx.leader, leaving])
    sup.ensure_path("/faults-probe")
    out, detail, dt = ctx.cl.reconfig(sup, leaving=str(leaving.sid))
    ctx.results["reconfig"] = out
    ctx.results["reconfig_seconds"] = round(dt, 3)
    if out != "NewConfigNoQuorumError":
        ctx.anomalies.append("reconfig leaving=%s %s: answered %s (%s), expected NewConfigNoQuorum" % (
            leaving.name, why, out, detail.replace("\n", " ")))
    gap = ctx.write_gap(sup, "/faults-probe", timeout=ctx.liveness)
    ctx.results["write_after_reconfig_s"] = None if gap is None else round(gap, 3)
    if gap is None:
        ctx.anomalies.append("no write acknowledged within %.0fs of the reconfig" % ctx.liveness)
    elif gap > WRITE_AFTER_REFUSAL:
        # issue 19's goal is 1 s (both servers take a few ms); twice that on a busy machine
        ctx.anomalies.append("first write %.2fs after the refused reconfig (goal: within 1 s)" % gap)


def s_reconfig_paused_quorum(ctx):
    p, r = ctx.f1, ctx.f2
    ctx.cl.pause(p)
    ctx.past_detection()
    _expect_refused(ctx, r, "while %s (the other new voter) is paused" % p.name)
    ctx.hold(ctx.rng.uniform(0, ctx.hold_s))


def s_reconfig_dead_quorum(ctx):
    d, r = ctx.f1, ctx.f2
    ctx.cl.kill9(d)
    _expect_refused(ctx, r, "while %s (the other new voter) is dead" % d.name)
    ctx.hold(ctx.rng.uniform(0, ctx.hold_s))


def s_reconfig_remove_isolated(ctx):
    f = ctx.f1
    sup = ctx.superuser([ctx.leader, ctx.f2])
    ctx.cl.isolate(f)
    ctx.past_detection()
    out, _, dt = ctx.cl.reconfig(sup, leaving=str(f.sid))
    ctx.results["reconfig"] = out
    ctx.results["reconfig_seconds"] = round(dt, 3)
    ctx.hold(ctx.rng.uniform(0, ctx.hold_s))


def s_reconfig_via_deposed_leader(ctx):
    lead = ctx.leader
    sup = ctx.superuser([lead])
    ctx.cl.isolate(lead)
    out, detail, dt = ctx.cl.reconfig(sup, leaving=str(ctx.f2.sid), timeout=max(10.0, 4 * ctx.detect))
    ctx.results["reconfig"] = out
    if out == "ok":
        ctx.anomalies.append("a leader cut off from both followers answered reconfig ok: %s" % (
            detail.replace("\n", " ")))
    ctx.hold(ctx.rng.uniform(0, ctx.hold_s))


def s_flapping_partitions(ctx):
    """Several short partitions of random shapes, back to back."""
    cl, rng = ctx.cl, ctx.rng
    for _ in range(rng.randint(3, 6)):
        ms = list(cl.members)
        if rng.random() < 0.5:
            cl.isolate(rng.choice(ms))
        else:
            a, b = rng.sample(ms, 2)
            cl.cut(a, b)
        ctx.hold(rng.uniform(0.2, 2.0) * ctx.detect)
        cl.heal_network()
        ctx.hold(rng.uniform(0, 1.5) * ctx.detect)


def s_flapping_pauses(ctx):
    """SIGSTOP / SIGCONT of random members (the leader among them), short and long."""
    cl, rng = ctx.cl, ctx.rng
    for _ in range(rng.randint(3, 6)):
        m = rng.choice(cl.members)
        cl.pause(m)
        ctx.hold(rng.uniform(0.1, 2.5) * ctx.detect)
        cl.resume(m)
        ctx.hold(rng.uniform(0, 1.0) * ctx.detect)


def s_reconfig_remove_paused_leader(ctx):
    """SIGSTOP the leader, wait for the other two to elect, remove the paused
    leader by reconfig; it is continued (a non-voter now) and re-added."""
    lead = ctx.leader
    ctx.cl.pause(lead)
    new, _ = ctx.cl.wait_serving(members=[ctx.f1, ctx.f2], old_leader=lead, timeout=ctx.liveness)
    ctx.cl.event("new leader %s" % new.name)
    sup = ctx.superuser([ctx.f1, ctx.f2])
    out, _, dt = ctx.cl.reconfig(sup, leaving=str(lead.sid))
    ctx.results["reconfig"] = out
    ctx.hold(ctx.rng.uniform(0, ctx.hold_s))


def s_kill_leader_during_reconfig(ctx):
    """A reconfig (leaving=F2) sent through F1, and kill -9 of the leader
    while it is in flight."""
    sup = ctx.superuser([ctx.f1])
    fut = sup.reconfig_async(None, str(ctx.f2.sid), None, -1)
    time.sleep(ctx.rng.uniform(0, 0.05))   # the fault's timing is the parameter
    ctx.cl.kill9(ctx.leader)
    try:
        fut.get(timeout=max(10.0, 4 * ctx.detect))
        out = "ok"
    except (KazooException, KazooTimeoutError) as e:
        out = type(e).__name__
    ctx.cl.event("reconfig leaving=%s in flight at the kill -> %s" % (ctx.f2.name, out))
    ctx.results["reconfig"] = out
    ctx.hold(ctx.rng.uniform(0, ctx.hold_s))


def s_isolate_leader_then_kill_new_leader(ctx):
    """Cut the leader off; once the other two have elected, kill -9 the new
    leader; heal the partition (old leader + the remaining follower must form
    a quorum without losing what the new leader committed), then restart it."""
    old = ctx.leader
    ctx.cl.isolate(old)
    new, _ = ctx.cl.wait_serving(members=[ctx.f1, ctx.f2], old_leader=old, timeout=ctx.liveness)
    ctx.cl.event("new leader %s" % new.name)
    ctx.hold(ctx.rng.uniform(0.2, 1.0))   # let it commit some writes
    ctx.cl.kill9(new)
    ctx.hold(ctx.rng.uniform(0, 1.0) * ctx.detect)
    ctx.cl.heal_network()
    ctx.hold(ctx.rng.uniform(0.5, 2.0) * ctx.detect)


def s_kill_all_while_partitioned(ctx):
    """One member cut off, every member killed -9 and restarted while the
    partition lasts (the other two must elect and serve), then healed."""
    x = ctx.rng.choice(ctx.cl.members)
    ctx.cl.isolate(x)
    ctx.cl.kill_all()
    for m in ctx.cl.members:
        ctx.cl.restart(m)
    others = [m for m in ctx.cl.members if m is not x]
    new, _ = ctx.cl.wait_serving(members=others, timeout=ctx.liveness)
    ctx.cl.event("serving without %s: leader %s" % (x.name, new.name))
    ctx.hold(ctx.rng.uniform(0.5, 1.0) * ctx.hold_s)


SCENARIOS = {
    "isolate-leader": s_isolate_leader,
    "isolate-follower": s_isolate_follower,
    "cut-leader-follower": s_cut_leader_follower,
    "pause-follower": s_pause_follower,
    "pause-leader": s_pause_leader,
    "kill-follower": s_kill_follower,
    "kill-leader": s_kill_leader,
    "kill-all": s_kill_all,
    "reconfig-paused-quorum": s_reconfig_paused_quorum,
    "reconfig-dead-quorum": s_reconfig_dead_quorum,
    "reconfig-remove-isolated": s_reconfig_remove_isolated,
    "reconfig-via-deposed-leader": s_reconfig_via_deposed_leader,
    "flapping-partitions": s_flapping_partitions,
    "flapping-pauses": s_flapping_pauses,
    "reconfig-remove-paused-leader": s_reconfig_remove_paused_leader,
    "kill-leader-during-reconfig": s_kill_leader_during_reconfig,
    "isolate-leader-then-kill-new-leader": s_isolate_leader_then_kill_new_leader,
    "kill-all-while-partitioned": s_kill_all_while_partitioned,
}


# ---------------------------------------------------------------------------
# a round


class RoundResult(dict):
    @property
    def ok(self):
        return not self["anomalies"]

    @property
    def unexplained(self):
        """Anomalies not explained by a known ZooKeeper defect (known.py)."""
        return self.get("unexplained", self["anomalies"])

    def summary(self):
        r = self.get("report") or {}
        parts = ["%-35s" % self["scenario"]]
        if r:
            parts.append("%4d ops (%d writes acked, %d unknown, %d reads confirmed, %d unconfirmed)" % (
                r["ops"], r["acked_writes"], r["unknown_writes"], r["reads_ok"], r["reads_unconfirmed"]))
            parts.append("linearizable" if r["linearizable"] and not r["undecided"] else
                         "NOT LINEARIZABLE" if not r["linearizable"] else "UNDECIDED")
            parts.append("lost %d" % r["lost"])
        if self.get("write_gap_s") is not None:
            parts.append("write gap %.2fs" % self["write_gap_s"])
        for k in ("reconfig", "write_after_reconfig_s"):
            if k in self.get("results", {}):
                parts.append("%s=%s" % (k, self["results"][k]))
        parts.append("(%.1fs)" % self["seconds"])
        if self.get("known"):
            parts.append("KNOWN ZOOKEEPER DEFECT: %s" % ",".join(self["known"]))
        if self.unexplained:
            parts.append("ANOMALIES: %d" % len(self.unexplained))
        return ", ".join(parts)


_round_counter = [0]


def _create_keys(cl, base, n):
    c = cl.client()
    try:
        keys = ["%s/k%d" % (base, i) for i in range(n)]
        c.retry(c.ensure_path, base)
        for k in keys:
            c.retry(c.create, k, b"")
        return keys
    finally:
        cl.drop_client(c)


def _final_reads(cl, keys, history, anomalies, timeout=LIVENESS):
    """Barrier-read every key (recorded in the history as client "final"),
    then read it through every member after sync: all must agree."""
    final = {}
    try:
        c = cl.client(start_timeout=timeout)
    except (KazooException, KazooTimeoutError) as e:
        anomalies.append("final reads: no member accepted a client: %r" % e)
        return final
    try:
        for key in keys:
            deadline = time.monotonic() + timeout
            while True:
                call = now()
                try:
                    data, stat = c.get_async(key).get(timeout=5)
                    t = c.transaction()
                    t.check(key, stat.version)
                    res = t.commit_async().get(timeout=5)
                except (KazooException, KazooTimeoutError):
                    res = None
                if res == [True]:
                    op = Op("final", key, "read", call, ret=now(), status="ok",
                            value=(stat.version, data.decode()))
                    op.id = len(history)
                    history.append(op)
                    final[key] = op.value
                    break
                if time.monotonic() > deadline:
                    final[key] = None
                    break
    finally:
        cl.drop_client(c)
    configs = {}
    for m in cl.members:
        if m.mode(timeout=2.0) is None:
            anomalies.append("%s does not serve after healing: its copy was not compared" % m.name)
            continue
        c = None
        try:
            c = cl.client(members=[m], start_timeout=15)
            for key in keys:
                if final.get(key) is None:
                    continue
                c.sync_async(key).get(timeout=10)
                data, stat = c.get_async(key).get(timeout=10)
                if (stat.version, data.decode()) != final[key]:
                    anomalies.append("%s: member %s has v%d (%d bytes), the barrier read v%d (%d bytes)" % (
                        key, m.name, stat.version, len(data), final[key][0], len(final[key][1])))
            c.sync_async("/zookeeper/config").get(timeout=10)
            data, _ = c.get_async("/zookeeper/config").get(timeout=10)
            configs[m.name] = tuple(sorted(data.decode().split("\n")))
        except (KazooException, KazooTimeoutError) as e:
            anomalies.append("could not read through %s after healing: %r" % (m.name, e))
        finally:
            if c is not None:
                cl.drop_client(c)
    if len(set(configs.values())) > 1:
        anomalies.append("members disagree on /zookeeper/config after healing: %s" % configs)
    return final


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _read_from(path, offset):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def run_round(cl, scenario, seed=0, hold=None, log=print, pace=0.03, op_timeout=None,
              max_steps=3_000_000, liveness=LIVENESS, barrier=True):
    """Run `scenario` (a name in SCENARIOS) once on the started FaultCluster
    `cl` under the workload; returns a RoundResult (anomalies empty = pass)."""
    _round_counter[0] += 1
    rng = random.Random(seed)
    t_start = time.monotonic()
    detect = cl.sync_limit * cl.tick_time / 1000.0
    hold = max(1.5, 3 * detect) if hold is None else hold
    res = RoundResult(server=cl.kind, scenario=scenario, seed=seed, hold_s=round(hold, 3),
                      tick_time=cl.tick_time, anomalies=[], results={})
    leader, _ = cl.wait_serving(timeout=liveness)
    followers = [m for m in cl.members if m is not leader]
    rng.shuffle(followers)
    log_offsets = {m.name: _size(m.log_path) for m in cl.members}
    base = "/faults/r%d-%d-%s" % (_round_counter[0], seed, scenario)
    keys = _create_keys(cl, base, N_KEYS)
    clients = [("p%d" % m.sid, cl.hosts([m])) for m in cl.members]
    clients += [("r%d" % i, cl.hosts()) for i in range(2)]
    wl = Workload(cl.net.hub, keys, clients, seed=seed, pace=pace,
                  op_timeout=op_timeout or max(4.0, 4 * detect), barrier=barrier)
    wl.start()
    ctx = Ctx(cl, wl, rng, hold, leader, followers)
    ctx.liveness = liveness
    try:
        wl.wait_progress(10, timeout=liveness)
        cl.clear_events()
        cl.event("round %s: leader %s" % (scenario, leader.name))
        SCENARIOS[scenario](ctx)
        t_heal = now()
        cl.heal_all()
        try:
            deadline = time.monotonic() + liveness

            def left():
                return max(1.0, deadline - time.monotonic())

            new_leader, _ = cl.wait_serving(timeout=left())
            cl.event("serving again: leader %s" % new_leader.name)
            if cl.restore_membership(timeout=left()):
                cl.wait_serving(timeout=left())
            wl.wait_progress(PROGRESS_WRITES, after=now(), timeout=left())
            res["recovered_s"] = round((now() - t_heal) / 1e9, 3)
            cl.event("writes acknowledged again")
        except (ClusterError, EnsembleError, AssertionError, TimeoutError) as e:
            res["anomalies"].append("liveness: not serving with writes %.0fs after healing: %s\n%s" % (
                liveness, str(e)[:3000], cl.describe()))
    finally:
        wl.stop()
        cl.heal_all()
    res["results"] = ctx.results
    res["anomalies"] += ctx.anomalies
    res["anomalies"] += ["workload: %s" % e for e in wl.errors]
    # availability: from the fault to the first acknowledged write invoked after it
    t_fault = cl.first_fault
    first = [op.ret for op in wl.history
             if t_fault and op.kind == "cas" and op.status == "ok" and op.call > t_fault]
    res["write_gap_s"] = round((min(first) - t_fault) / 1e9, 3) if first else None
    history = list(wl.history)
    stuck = any(a.startswith("liveness") for a in res["anomalies"])
    final = _final_reads(cl, keys, history, res["anomalies"], timeout=15 if stuck else liveness)
    report = checker.analyse(history, final, max_steps=max_steps)
    res["report"] = {k: v for k, v in report.items() if k != "anomalies"}
    res["anomalies"] += report["anomalies"]
    logs = {m.name: _read_from(m.log_path, log_offsets.get(m.name, 0)) for m in cl.members}
    res["known"], res["unexplained"] = known.classify(cl.kind, scenario, res["anomalies"], logs)
    res["counters"] = dict(wl.counters)
    res["events"] = [e for e in cl.events]
    res["history"] = history
    res["seconds"] = round(time.monotonic() - t_start, 1)
    return res


# ---------------------------------------------------------------------------
# re-election


class _Busy:
    """Threads sending `srvr` to a member as fast as they can, from inside its
    namespace: every request makes the member's engine loop take a turn (and
    run its timers) at once, instead of at its next idle wake-up."""

    def __init__(self, member, threads=3):
        from harness.netns import in_netns
        from harness.servers import four_letter

        self.stop = threading.Event()

        def loop():
            while not self.stop.is_set():
                try:
                    four_letter(member.host, member.port, "srvr", timeout=0.5)
                except OSError:
                    pass

        self.threads = [threading.Thread(target=in_netns, args=(member.netns, loop), daemon=True)
                        for _ in range(threads)]
        for t in self.threads:
            t.start()

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(5)


def measure_reelection(cl, mode="kill", lag=0.0, samples=5, log=print, timeout=60.0, busy=False,
                       deadline=None):
    """Time from a fault on the leader to the first acknowledged write, per
    sample.  mode "kill": kill -9 the leader; "pause": SIGSTOP it.  With lag
    > 0 one survivor is SIGSTOPped just before the fault and continued `lag`
    seconds after it (it is still following the old leader when the first
    vote reaches it: issue 19's lagging survivor).  The prober is a kazoo
    client connected to the survivors only, reconnecting every 10-50 ms, that
    writes in a loop from the moment of the fault.  Also recorded: when the
    survivors' `srvr` first shows a leader and a follower (polled every 10 ms).

    busy: the survivor with the lower id (the one that will follow: the
    survivors' logs are equal, so the higher id wins) is kept busy with
    `srvr` requests from 3 threads.  Its engine then acts on its election
    decision the moment it is due, and its FollowerInfo can reach the winner
    before the winner has decided: Keel drops it there and re-sends it only a
    tickTime later (the stall this mode reproduces, see docs/faults.md)."""
    times, elections = [], []
    for i in range(samples):
        if deadline is not None and time.monotonic() > deadline and times:
            break
        leader, _ = cl.wait_serving(timeout=timeout)
        survivors = [m for m in cl.members if m is not leader]
        prober = cl.client(members=survivors, retry_delay=0.01, max_delay=0.05, timeout=10.0)
        prober.ensure_path("/faults-reelection")
        prober.set("/faults-reelection", b"warm")
        lagger = survivors[i % 2] if lag > 0 else None
        hammer = _Busy(min(survivors, key=lambda m: m.sid)) if busy else None
        if lagger is not None:
            lagger.pause()
        t0 = time.monotonic()
        if mode == "kill":
            leader.kill9()
        else:
            leader.pause()
        if lagger is not None:
            time.sleep(lag)   # the lag is the fault's parameter
            lagger.resume()
        elected = {}
        watcher = threading.Thread(target=_watch_election, args=(survivors, t0, timeout, elected),
                                   daemon=True)
        watcher.start()
        elapsed = None
        while time.monotonic() - t0 < timeout:
            t1 = time.monotonic()
            try:
                prober.set_async("/faults-reelection", b"%d" % i).get(timeout=1.0)
                elapsed = time.monotonic() - t0
                break
            except (KazooException, KazooTimeoutError):
                if time.monotonic() - t1 < 0.005:
                    time.sleep(0.005)  # failed at once (no connection): do not spin
        cl.drop_client(prober)
        watcher.join(timeout)
        if hammer is not None:
            hammer.close()
        times.append(None if elapsed is None else round(elapsed, 3))
        elections.append(elected.get("s"))
        log("    %s %s%s%s: sample %d: first write %s, survivors serving after %s" % (
            cl.kind, mode, " lag %.1fs" % lag if lag else "", " busy follower" if busy else "", i + 1,
            "%.3f s" % elapsed if elapsed is not None else "none in %ds" % timeout,
            "%.3f s" % elected["s"] if elected.get("s") is not None else "-"))
        if mode == "kill":
            leader.spawn()
        else:
            leader.resume()
        cl.wait_serving(timeout=timeout)
    ok = [t for t in times if t is not None]
    return {
        "server": cl.kind, "mode": mode, "lag_s": lag, "busy": busy, "tick_time": cl.tick_time,
        "sync_limit": cl.sync_limit, "samples": times,
        "median_s": round(statistics.median(ok), 3) if ok else None,
        "max_s": max(ok) if ok else None, "failed": len(times) - len(ok),
        # samples of at least a tickTime: an election that waited for a tick timer
        "tick_stalls": sum(1 for t in ok if t >= cl.tick_time / 1000.0) if mode == "kill" else None,
        "serving_samples": elections,
        "serving_median_s": round(statistics.median([e for e in elections if e is not None]), 3)
        if any(e is not None for e in elections) else None,
    }


def _watch_election(survivors, t0, timeout, out):
    """Record when the survivors' srvr first shows one leader and one
    follower (polled every 10 ms), in seconds from t0."""
    from harness.ensemble import parse_mode

    while time.monotonic() - t0 < timeout:
        modes = sorted(str(parse_mode(m.srvr(timeout=0.5))) for m in survivors)
        if modes == ["follower", "leader"]:
            out["s"] = round(time.monotonic() - t0, 3)
            return
        time.sleep(0.01)
