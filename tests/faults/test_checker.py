"""The linearizability checker on hand-made histories (no servers needed)."""
import random

from .checker import Op, analyse, check_ops

INIT = (0, "")


def read(client, call, ret, version, data, status="ok"):
    return Op(client, "k", "read", call, ret=ret, status=status, value=(version, data))


def cas(client, call, ret, version, data, token, status="ok"):
    new = data + "," + token if data else token
    return Op(client, "k", "cas", call, ret=ret, status=status, expect=(version, data), new=new,
              token=token, new_version=version + 1 if status == "ok" else None)


def test_sequential_history_is_linearizable():
    h = [cas("a", 0, 1, 0, "", "a1"), read("b", 2, 3, 1, "a1"), cas("b", 4, 5, 1, "a1", "b1"),
         cas("a", 6, 7, 1, "a1", "a2", status="fail"), read("a", 8, 9, 2, "a1,b1")]
    assert check_ops(h, INIT)["ok"] is True


def test_stale_read_after_acknowledged_write_is_not():
    # the write returned before the read was called: the read must see it
    h = [cas("a", 0, 10, 0, "", "a1"), read("b", 11, 15, 0, "")]
    r = check_ops(h, INIT)
    assert r["ok"] is False and r["stuck"] is h[1]


def test_concurrent_read_may_see_either_state():
    for seen in ((0, ""), (1, "a1")):
        h = [cas("a", 0, 10, 0, "", "a1"), read("b", 5, 15, *seen)]
        assert check_ops(h, INIT)["ok"] is True


def test_reads_may_not_go_back_in_time():
    h = [cas("a", 0, 100, 0, "", "a1"), read("b", 10, 20, 1, "a1"), read("c", 30, 40, 0, "")]
    assert check_ops(h, INIT)["ok"] is False


def test_failed_cas_needs_another_version():
    # BadVersion for version 0 while nothing ever changed the key: impossible
    h = [cas("a", 0, 10, 0, "", "a1", status="fail"), read("b", 20, 30, 0, "")]
    assert check_ops(h, INIT)["ok"] is False
    # ... possible if a concurrent write got there first
    h = [cas("c", 0, 10, 0, "", "c1"), cas("a", 0, 10, 0, "", "a1", status="fail"), read("b", 20, 30, 1, "c1")]
    assert check_ops(h, INIT)["ok"] is True


def test_two_writes_from_one_version_cannot_both_succeed():
    h = [cas("a", 0, 10, 0, "", "a1"), cas("b", 0, 10, 0, "", "b1")]
    assert check_ops(h, INIT)["ok"] is False


def test_unknown_write_may_take_effect_late_or_never():
    u = cas("a", 0, None, 0, "", "a1", status="unknown")
    assert check_ops([u, read("b", 50, 60, 0, ""), read("b", 70, 80, 1, "a1")], INIT)["ok"] is True
    assert check_ops([u, read("b", 50, 60, 0, "")], INIT)["ok"] is True
    # but once seen it cannot be unseen
    u = cas("a", 0, None, 0, "", "a1", status="unknown")
    assert check_ops([u, read("b", 50, 60, 1, "a1"), read("b", 70, 80, 0, "")], INIT)["ok"] is False


def test_same_version_different_data_is_caught():
    # two replicas with version 1 holding different data
    h = [cas("a", 0, 10, 0, "", "a1"), read("b", 20, 30, 1, "x9")]
    assert check_ops(h, INIT)["ok"] is False


def test_analyse_counts_lost_and_phantom_writes():
    h = [cas("a", 0, 10, 0, "", "a1"), cas("b", 20, 30, 1, "a1", "b1"),
         cas("c", 40, 50, 2, "a1,b1", "c1", status="fail")]
    final_read = read("final", 100, 110, 1, "a1")
    r = analyse(h + [final_read], {"k": (1, "a1")})
    assert r["lost"] == 1 and not r["linearizable"]
    final_read = read("final", 100, 110, 3, "a1,b1,c1")
    r = analyse(h + [final_read], {"k": (3, "a1,b1,c1")})
    assert r["phantom"] == 1


def test_analyse_clean_history():
    h = [cas("a", 0, 10, 0, "", "a1"), cas("b", 5, None, 1, "a1", "b1", status="unknown"),
         cas("c", 6, None, 1, "a1", "c1", status="unknown"), read("final", 100, 110, 2, "a1,c1")]
    r = analyse(h, {"k": (2, "a1,c1")})
    assert r["linearizable"] and not r["anomalies"], r
    assert r["keys"]["k"]["dropped_unknown"] == 1 and r["keys"]["k"]["promoted_unknown"] == 1


def _random_history(rng, n_clients=5, n_ops=400):
    """A concurrent history from a simulated atomic register: each op takes
    effect at a random instant inside its interval; some answers get lost."""
    state = (0, "")
    events = []
    t = 0
    for i in range(n_ops):
        t += rng.randint(1, 5)
        call = t
        point = call + rng.randint(0, 20)
        ret = point + rng.randint(0, 20)
        events.append((point, i, call, ret))
    events.sort()
    ops = []
    for point, i, call, ret in events:
        c = "c%d" % (i % n_clients)
        if rng.random() < 0.5:
            ops.append(read(c, call, ret, *state))
        else:
            # an expectation that is sometimes stale
            exp = state if rng.random() < 0.8 else (max(0, state[0] - 1), state[1])
            tok = "t%d" % i
            if exp == state:
                status = "unknown" if rng.random() < 0.1 else "ok"
                op = cas(c, call, None if status == "unknown" else ret, exp[0], exp[1], tok, status)
                state = (state[0] + 1, op.new)
            else:
                op = cas(c, call, ret, exp[0], exp[1], tok, "fail")
            ops.append(op)
    return ops, state


def test_random_linearizable_histories_pass_and_corrupted_ones_fail():
    rng = random.Random(7)
    for _ in range(20):
        ops, final = _random_history(rng)
        fin = read("final", 10 ** 6, 10 ** 6 + 1, *final)
        r = analyse(ops + [fin], {"k": final})
        assert r["linearizable"] and r["lost"] == 0, r["anomalies"][:2]
        # corrupt: a later confirmed read reports an older state
        reads = [o for o in ops if o.kind == "read" and o.value[0] > 0]
        bad = read("z", 10 ** 6 + 5, 10 ** 6 + 6, *reads[len(reads) // 2].value)
        if bad.value != final:
            r = analyse(ops + [fin, bad], {"k": final})
            assert not r["linearizable"]
