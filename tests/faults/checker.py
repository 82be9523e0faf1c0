"""Linearizability of a compare-and-set register history, and lost writes.

The history (workload.py) is a list of `Op`s on a few keys.  Each key is a
register whose state is `(version, data)`: a ZooKeeper znode's data version and
its bytes.  Operations:

  read          ok: returned (version, data)
  cas           set(key, new, version=v) with the client's belief (v, d) of
                the state it replaces; ok (new version returned), fail
                (BadVersion) or unknown (connection loss, timeout, expiry)

Model (one step per linearized operation):

  read (v, d)            legal iff state == (v, d)
  cas ok  (v, d) -> n    legal iff state == (v, d)          ; state := (v+1, n)
  cas fail (v, _)        legal iff state.version != v       ; unchanged
  cas unknown (v, d)->n  always legal: state := (v+1, n) if state == (v, d)

A cas compares the whole state although the server compares only the version:
in a correct ensemble a version names exactly one data (the workload's values
are append-only and every token unique), so the stricter model is the same
for correct servers and also catches two replicas with different data under
one version.  An unknown cas has no return time (it may take effect at any
moment after its call, or never: linearized last, after every observation, it
changes nothing anyone saw).

Linearizability is local (Herlihy & Wing), so each key is checked alone.  The
search is Wing & Gong's, with Lowe's memoisation as in Porcupine: walk the
call/return events in time order keeping a list of operations not yet
linearized; try to linearize the earliest pending call whose step is legal;
reaching a return whose operation is not linearized means backtrack.  A
(linearized-set, state) pair seen before is not explored again.  Before the
search, unknown writes whose token nobody ever observed are dropped (they are
indistinguishable from writes that never happened) and unknown writes whose
token is in the final value become writes that must happen (with no return
time): the search then hardly ever branches.

`analyse()` also counts, per key, from the final value read after every fault
healed (the data of the key holds every successful write's token, in order):
acknowledged writes lost (token absent), failed writes present (a write
answered BadVersion that took effect anyway), duplicate tokens, and a version
that is not the number of tokens.
"""
import collections
import time

INF = float("inf")


class Op:
    """One operation of the history.  Times are time.monotonic_ns() values;
    `ret` is None for an operation whose outcome is unknown."""

    __slots__ = ("id", "client", "key", "kind", "call", "ret", "status",
                 "value", "expect", "new", "token", "new_version", "note")

    def __init__(self, client, key, kind, call, **kw):
        self.id = None
        self.client = client
        self.key = key
        self.kind = kind            # "read" | "cas"
        self.call = call
        self.ret = kw.get("ret")
        self.status = kw.get("status", "unknown")   # ok | fail | unknown
        self.value = kw.get("value")        # read: (version, data)
        self.expect = kw.get("expect")      # cas: (version, data) it replaces
        self.new = kw.get("new")            # cas: new data
        self.token = kw.get("token")        # cas: the token it appends
        self.new_version = kw.get("new_version")
        self.note = kw.get("note")

    def to_json(self):
        d = {k: getattr(self, k) for k in self.__slots__}
        for k in ("value", "expect"):
            if d[k] is not None:
                d[k] = [d[k][0], d[k][1]]
        return d

    @classmethod
    def from_json(cls, d):
        op = cls(d["client"], d["key"], d["kind"], d["call"])
        for k in cls.__slots__:
            v = d.get(k)
            if k in ("value", "expect") and v is not None:
                v = (v[0], v[1])
            setattr(op, k, v)
        return op

    def short(self, t0=0):
        def ms(t):
            return "   inf" if t is None else "%6.0f" % ((t - t0) / 1e6)
        if self.kind == "read":
            what = "read -> v%s %s" % (self.value[0], _tail(self.value[1])) if self.value else "read"
        else:
            what = "cas v%s %s -> +%s" % (self.expect[0], _tail(self.expect[1]), self.token)
        return "[%s .. %s ms] %-8s %-7s %s" % (ms(self.call), ms(self.ret), self.client,
                                               self.status, what)


def _tail(data, n=3):
    toks = tokens(data)
    if len(toks) <= n:
        return "[%s]" % ",".join(toks)
    return "[...%d,%s]" % (len(toks) - n, ",".join(toks[-n:]))


def tokens(data):
    return [t for t in data.split(",") if t] if data else []


# ---------------------------------------------------------------------------
# the search


def _step(op, state):
    """(legal, new state) for one linearized op of the register model."""
    if op.kind == "read":
        return state == op.value, state
    v, d = op.expect
    if op.status == "ok" or op.status == "must":
        if state == op.expect:
            return True, (v + 1, op.new)
        return False, state
    if op.status == "fail":
        return state[0] != v, state
    # unknown
    if state == op.expect:
        return True, (v + 1, op.new)
    return True, state


class _Node:
    __slots__ = ("op", "idx", "is_call", "match", "prev", "next")

    def __init__(self, op, idx, is_call):
        self.op, self.idx, self.is_call = op, idx, is_call
        self.match = self.prev = self.next = None


def check_ops(ops, init, max_steps=5_000_000):
    """Wing-Gong search with memoisation over one register's ops.

    Returns a dict: ok (True / False / None when the step budget ran out),
    steps, and on failure `stuck` (the op whose return came before it could be
    linearized, at the deepest point reached) and `prefix` (the longest
    sequence linearized, as ops)."""
    n = len(ops)
    events = []
    for i, op in enumerate(ops):
        ret = INF if op.ret is None else op.ret
        # calls sort before returns at equal times (the lenient reading)
        events.append((op.call, 0, i))
        events.append((ret, 1, i))
    events.sort()
    head = _Node(None, -1, False)
    prev = head
    calls = {}
    for t, kind, i in events:
        node = _Node(ops[i], i, kind == 0)
        if kind == 0:
            calls[i] = node
        else:
            calls[i].match = node
        node.prev = prev
        prev.next = node
        prev = node
    def needed(op):
        return op.ret is not None or op.status == "must"

    needed_left = sum(1 for op in ops if needed(op))

    def lift(call):
        call.prev.next = call.next
        if call.next is not None:
            call.next.prev = call.prev
        ret = call.match
        ret.prev.next = ret.next
        if ret.next is not None:
            ret.next.prev = ret.prev

    def unlift(call):
        ret = call.match
        ret.prev.next = ret
        if ret.next is not None:
            ret.next.prev = ret
        call.prev.next = call
        if call.next is not None:
            call.next.prev = call

    cache = set()
    stack = []   # (call node, state before)
    state = init
    linearized = 0
    entry = head.next
    steps = 0
    best = []
    stuck, stuck_depth = None, -1
    # Done when every op that must be linearized is: the unknown ones left
    # are legal at the end, each (a cas that does not match is a no-op).
    while needed_left > 0:
        steps += 1
        if steps > max_steps:
            return {"ok": None, "steps": steps, "ops": n}
        if entry.is_call:
            ok, new_state = _step(entry.op, state)
            if ok:
                nl = linearized | (1 << entry.idx)
                key = (nl, new_state)
                if key not in cache:
                    cache.add(key)
                    stack.append((entry, state))
                    state = new_state
                    linearized = nl
                    if needed(entry.op):
                        needed_left -= 1
                    lift(entry)
                    if len(stack) > len(best):
                        best = [c.op for c, _ in stack]
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # the return of an op not yet linearized: backtrack
            if len(stack) >= stuck_depth:
                stuck, stuck_depth = entry.op, len(stack)
            if not stack:
                return _fail(steps, n, best, stuck)
            call, state = stack.pop()
            linearized &= ~(1 << call.idx)
            if needed(call.op):
                needed_left += 1
            unlift(call)
            entry = call.next
    return {"ok": True, "steps": steps, "ops": n}


def _fail(steps, n, best, stuck):
    return {"ok": False, "steps": steps, "ops": n, "prefix": best, "stuck": stuck}


# ---------------------------------------------------------------------------
# a whole history


def prepare(ops, final_data):
    """The ops the search needs for one key: unknown cas ops nobody observed
    dropped, unknown ones whose token is in the final data made "must"
    (copies; the history is not changed).  Returns (ops, dropped, promoted)."""
    observed = set()
    for op in ops:
        if op.kind == "read" and op.status == "ok":
            observed.update(tokens(op.value[1]))
        elif op.kind == "cas" and op.status == "ok":
            observed.update(tokens(op.expect[1]))
            observed.add(op.token)
    final = set(tokens(final_data)) if final_data is not None else set()
    observed |= final
    out, dropped, promoted = [], 0, 0
    for op in ops:
        if op.kind == "read" and op.status != "ok":
            continue        # a read that failed or was not confirmed says nothing
        if op.kind == "cas" and op.status == "unknown":
            if op.token not in observed:
                dropped += 1
                continue
            if op.token in final:
                op = Op.from_json(op.to_json())
                op.status = "must"
                promoted += 1
        out.append(op)
    return out, dropped, promoted


def analyse(history, final, init=(0, ""), max_steps=5_000_000):
    """history: list of Op (every key); final: {key: (version, data)} read
    after healing (None where it could not be read).  Returns a report dict:
    per-key results, totals and a list of anomalies (strings)."""
    by_key = collections.defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    report = {"keys": {}, "anomalies": [], "ops": len(history),
              "lost": 0, "phantom": 0, "acked_writes": 0, "unknown_writes": 0,
              "reads_ok": 0, "reads_unconfirmed": 0, "cas_failed": 0,
              "linearizable": True, "undecided": 0, "check_seconds": 0.0}
    t_start = time.monotonic()
    for key in sorted(set(by_key) | set(final)):
        ops = by_key.get(key, [])
        fin = final.get(key)
        k = {"ops": len(ops)}
        acked = [op for op in ops if op.kind == "cas" and op.status == "ok"]
        failed = [op for op in ops if op.kind == "cas" and op.status == "fail"]
        report["acked_writes"] += len(acked)
        report["cas_failed"] += len(failed)
        report["unknown_writes"] += sum(1 for op in ops if op.kind == "cas" and op.status == "unknown")
        report["reads_ok"] += sum(1 for op in ops if op.kind == "read" and op.status == "ok")
        report["reads_unconfirmed"] += sum(1 for op in ops if op.kind == "read" and op.status != "ok")
        # sanity of each acknowledgement
        for op in acked:
            if op.new_version is not None and op.new_version != op.expect[0] + 1:
                report["anomalies"].append("%s: cas from version %d acknowledged with version %d: %s" % (
                    key, op.expect[0], op.new_version, op.short()))
        if fin is None:
            report["anomalies"].append("%s: final value could not be read" % key)
            k["final"] = None
        else:
            toks = tokens(fin[1])
            ts = set(toks)
            lost = [op for op in acked if op.token not in ts]
            phantom = [op for op in failed if op.token in ts]
            dups = [t for t, c in collections.Counter(toks).items() if c > 1]
            k.update(final_version=fin[0], final_tokens=len(toks), lost=len(lost),
                     phantom=len(phantom), duplicates=len(dups))
            report["lost"] += len(lost)
            report["phantom"] += len(phantom)
            for op in lost[:10]:
                report["anomalies"].append("%s: acknowledged write lost: %s" % (key, op.short()))
            for op in phantom[:10]:
                report["anomalies"].append("%s: write answered BadVersion is present: %s" % (key, op.short()))
            if dups:
                report["anomalies"].append("%s: tokens present twice: %s" % (key, dups[:10]))
            if fin[0] != len(toks) + init[0]:
                report["anomalies"].append("%s: final version %d but %d tokens" % (key, fin[0], len(toks)))
        prepared, dropped, promoted = prepare(ops, fin[1] if fin else None)
        k.update(checked=len(prepared), dropped_unknown=dropped, promoted_unknown=promoted)
        t0 = time.monotonic()
        res = check_ops(prepared, init, max_steps=max_steps)
        k.update(linearizable=res["ok"], steps=res["steps"], seconds=round(time.monotonic() - t0, 3))
        if res["ok"] is None:
            report["undecided"] += 1
            report["anomalies"].append("%s: search budget of %d steps ran out (%d ops): undecided" % (
                key, max_steps, len(prepared)))
        elif not res["ok"]:
            report["linearizable"] = False
            report["anomalies"].append("%s: NOT linearizable\n%s" % (key, explain(prepared, res, init)))
        report["keys"][key] = k
    report["check_seconds"] = round(time.monotonic() - t_start, 3)
    return report


def explain(ops, res, init, window=12):
    """Human-readable account of a failed search: the longest linearization
    found and the ops around the one that could not be placed."""
    t0 = min((op.call for op in ops), default=0)
    lines = ["  longest linearizable prefix: %d of %d ops; state after it: %s" % (
        len(res["prefix"]), len(ops), _state_after(res["prefix"], init))]
    stuck = res.get("stuck")
    if stuck is not None:
        lines.append("  could not linearize: %s" % stuck.short(t0))
        ordered = sorted(ops, key=lambda o: o.call)
        i = next((j for j, o in enumerate(ordered) if o is stuck or (
            o.client == stuck.client and o.call == stuck.call)), 0)
        lines.append("  ops around it (times in ms from the first call):")
        for o in ordered[max(0, i - window):i + window]:
            lines.append("    %s%s" % ("=> " if o.call == stuck.call and o.client == stuck.client else "   ",
                                        o.short(t0)))
    return "\n".join(lines)


def _state_after(prefix, init):
    state = init
    for op in prefix:
        _, state = _step(op, state)
    return "v%d %s" % (state[0], _tail(state[1]))
