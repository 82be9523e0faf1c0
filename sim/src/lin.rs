//! A linearizability checker in the style of Wing & Gong with Lowe's improvements
//! (the search walks a linked list of call/return entries, lifting an operation out
//! when it is linearized, and caches (linearized set, model state) pairs so no
//! configuration is explored twice), as in Porcupine or Knossos' WGL checker.
//!
//! Operations whose outcome is unknown (the client lost its connection before the
//! reply) have no return: they may take effect at any point after their call, or never.
//! They never force a backtrack, and the search succeeds once every operation *with*
//! a return is linearized. When the model says unknown operations are interchangeable
//! (their effect does not depend on their input), only the earliest pending one is
//! tried at any point: trying another would explore a mirror image of the same
//! configurations.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;

/// A sequential specification.
pub trait Model {
    type State: Clone + Eq + Hash + Debug;
    type Input: Debug;
    type Output: Debug;

    fn init(&self) -> Self::State;

    /// The state after `input` returns `output` in `state`, or `None` if it could not.
    /// `output` is `None` for an operation of unknown outcome that takes effect.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Whether every two unknown-outcome operations have the same effect.
    fn unknown_ops_interchangeable(&self) -> bool {
        false
    }
}

/// One operation of a history; times are any totally ordered clock (sim ms). `ret` is
/// `None` (and `output` too) when the outcome is unknown.
#[derive(Debug, Clone)]
pub struct Op<I, O> {
    pub call: i64,
    pub ret: Option<i64>,
    pub input: I,
    pub output: Option<O>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No linearization: the op (index into the history) whose return could not be
    /// passed at the deepest point the search reached, and how many ops were
    /// linearized there.
    NotLinearizable {
        stuck_at: usize,
        depth: usize,
    },
    /// The search gave up after `budget` steps.
    Inconclusive,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Call,
    Ret,
}

struct Entry {
    kind: Kind,
    op: usize,
    prev: usize,
    next: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// Checks one history against `model`; `budget` bounds the number of search steps.
pub fn check<M: Model>(model: &M, ops: &[Op<M::Input, M::Output>], budget: u64) -> Verdict {
    let n = ops.len();
    // Entries sorted by time; at equal times calls come first (the ops overlap).
    let mut order: Vec<(i64, u8, usize, Kind)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.call, 0, i, Kind::Call));
        if let Some(r) = op.ret {
            order.push((r.max(op.call), 1, i, Kind::Ret));
        }
    }
    order.sort_by_key(|e| (e.0, e.1, e.2));
    // Linked list with a head sentinel at index 0 and an end sentinel at len + 1.
    let len = order.len();
    let mut entries: Vec<Entry> = Vec::with_capacity(len + 2);
    entries.push(Entry {
        kind: Kind::Call,
        op: usize::MAX,
        prev: usize::MAX,
        next: 1,
    });
    let mut call_entry = vec![0usize; n];
    let mut ret_entry = vec![usize::MAX; n];
    for (k, e) in order.iter().enumerate() {
        let idx = k + 1;
        entries.push(Entry {
            kind: e.3,
            op: e.2,
            prev: idx - 1,
            next: idx + 1,
        });
        match e.3 {
            Kind::Call => call_entry[e.2] = idx,
            Kind::Ret => ret_entry[e.2] = idx,
        }
    }
    entries.push(Entry {
        kind: Kind::Ret,
        op: usize::MAX,
        prev: len,
        next: usize::MAX,
    });

    let finite = ops.iter().filter(|o| o.ret.is_some()).count();
    let interchangeable = model.unknown_ops_interchangeable();
    let mut done_finite = 0;
    let mut state = model.init();
    let mut bits = Bits::new(n);
    let mut cache: HashSet<(Bits, M::State)> = HashSet::new();
    // (op, its call entry, state before it, `seen_unknown` when it was linearized)
    let mut stack: Vec<(usize, usize, M::State, bool)> = Vec::new();
    let mut cur = entries[0].next;
    // Whether this walk has passed an unknown op it did not (or could not) linearize.
    let mut seen_unknown = false;
    let mut steps = 0u64;
    let mut deepest = (0usize, usize::MAX);

    let unlink = |entries: &mut Vec<Entry>, i: usize| {
        let (p, nx) = (entries[i].prev, entries[i].next);
        entries[p].next = nx;
        entries[nx].prev = p;
    };
    let relink = |entries: &mut Vec<Entry>, i: usize| {
        let (p, nx) = (entries[i].prev, entries[i].next);
        entries[p].next = i;
        entries[nx].prev = i;
    };

    loop {
        if done_finite == finite {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return Verdict::Inconclusive;
        }
        let e = &entries[cur];
        match e.kind {
            Kind::Call => {
                let op = e.op;
                let unknown = ops[op].ret.is_none();
                if unknown && interchangeable && seen_unknown {
                    cur = entries[cur].next;
                    continue;
                }
                let mut lifted = false;
                if let Some(next_state) =
                    model.step(&state, &ops[op].input, ops[op].output.as_ref())
                {
                    bits.set(op);
                    if cache.insert((bits.clone(), next_state.clone())) {
                        let old = std::mem::replace(&mut state, next_state);
                        stack.push((op, cur, old, seen_unknown));
                        unlink(&mut entries, cur);
                        if let Some(r) = ops[op].ret.map(|_| ret_entry[op]) {
                            unlink(&mut entries, r);
                            done_finite += 1;
                        }
                        cur = entries[0].next;
                        seen_unknown = false;
                        lifted = true;
                    } else {
                        bits.clear(op);
                    }
                }
                if !lifted {
                    if unknown {
                        seen_unknown = true;
                    }
                    cur = entries[cur].next;
                }
            }
            Kind::Ret => {
                if stack.len() >= deepest.0 || deepest.1 == usize::MAX {
                    deepest = (stack.len(), e.op);
                }
                let Some((op, centry, old, seen)) = stack.pop() else {
                    return Verdict::NotLinearizable {
                        stuck_at: deepest.1,
                        depth: deepest.0,
                    };
                };
                state = old;
                bits.clear(op);
                if ops[op].ret.is_some() {
                    relink(&mut entries, ret_entry[op]);
                    done_finite -= 1;
                }
                relink(&mut entries, centry);
                seen_unknown = seen || ops[op].ret.is_none();
                cur = entries[centry].next;
            }
        }
    }
}

/// One znode used as a register, written blindly (`setData` with version -1). Reads
/// are not in this history (ZooKeeper serves them locally; they are checked per
/// session instead). The state is the znode's version and a lower bound of its mzxid:
/// an acknowledged write must return version + 1 and a zxid above the last one seen;
/// a write of unknown outcome bumps the version.
#[derive(Debug, Clone)]
pub struct VersionedRegister {
    pub init_version: i32,
    pub init_zxid: i64,
}

/// What an acknowledged write returned: the `Stat`'s version and mzxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteResult {
    pub version: i32,
    pub zxid: i64,
}

impl Model for VersionedRegister {
    type State = (i32, i64);
    type Input = Vec<u8>;
    type Output = WriteResult;

    fn init(&self) -> (i32, i64) {
        (self.init_version, self.init_zxid)
    }

    fn step(
        &self,
        s: &(i32, i64),
        _value: &Vec<u8>,
        out: Option<&WriteResult>,
    ) -> Option<(i32, i64)> {
        match out {
            None => Some((s.0 + 1, s.1)),
            Some(r) if r.version == s.0 + 1 && r.zxid > s.1 => Some((r.version, r.zxid)),
            Some(_) => None,
        }
    }

    fn unknown_ops_interchangeable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(call: i64, ret: Option<i64>, version: i32, zxid: i64) -> Op<Vec<u8>, WriteResult> {
        Op {
            call,
            ret,
            input: format!("v{call}").into_bytes(),
            output: ret.map(|_| WriteResult { version, zxid }),
        }
    }

    const REG: VersionedRegister = VersionedRegister {
        init_version: 0,
        init_zxid: 0,
    };

    #[test]
    fn sequential_writes_are_linearizable() {
        let h = vec![
            w(0, Some(10), 1, 5),
            w(20, Some(30), 2, 7),
            w(40, Some(50), 3, 9),
        ];
        assert_eq!(check(&REG, &h, 1_000_000), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_writes_in_either_order_are_linearizable() {
        // B was invoked before A returned, so B may precede A.
        let h = vec![w(0, Some(10), 2, 8), w(5, Some(15), 1, 6)];
        assert_eq!(check(&REG, &h, 1_000_000), Verdict::Linearizable);
    }

    #[test]
    fn real_time_order_violation_is_rejected() {
        // A returned before B was called, but B got the earlier version.
        let h = vec![w(0, Some(10), 2, 8), w(20, Some(30), 1, 6)];
        assert!(matches!(
            check(&REG, &h, 1_000_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn zxid_going_backwards_is_rejected() {
        let h = vec![w(0, Some(10), 1, 8), w(20, Some(30), 2, 6)];
        assert!(matches!(
            check(&REG, &h, 1_000_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn a_version_gap_needs_an_unknown_write() {
        let gap = vec![w(0, Some(10), 1, 5), w(20, Some(30), 3, 9)];
        assert!(matches!(
            check(&REG, &gap, 1_000_000),
            Verdict::NotLinearizable { .. }
        ));
        // An unknown-outcome write invoked before the second write's return fills it.
        let filled = vec![
            w(0, Some(10), 1, 5),
            w(20, Some(30), 3, 9),
            w(25, None, 0, 0),
        ];
        assert_eq!(check(&REG, &filled, 1_000_000), Verdict::Linearizable);
        // ...but not one invoked after it returned.
        let late = vec![
            w(0, Some(10), 1, 5),
            w(20, Some(30), 3, 9),
            w(35, None, 0, 0),
        ];
        assert!(matches!(
            check(&REG, &late, 1_000_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    #[test]
    fn unknown_writes_may_never_happen() {
        let h = vec![
            w(0, None, 0, 0),
            w(1, None, 0, 0),
            w(2, Some(10), 1, 5),
            w(20, Some(30), 2, 9),
        ];
        assert_eq!(check(&REG, &h, 1_000_000), Verdict::Linearizable);
    }

    #[test]
    fn many_unknown_writes_stay_fast() {
        // 40 unknown writes, then acked writes needing exactly 20 of them.
        let mut h: Vec<_> = (0..40).map(|i| w(i, None, 0, 0)).collect();
        h.push(w(100, Some(110), 21, 50));
        h.push(w(120, Some(130), 22, 60));
        assert_eq!(check(&REG, &h, 100_000), Verdict::Linearizable);
        let mut bad: Vec<_> = (0..40).map(|i| w(i, None, 0, 0)).collect();
        bad.push(w(100, Some(110), 42, 50));
        assert!(matches!(
            check(&REG, &bad, 100_000),
            Verdict::NotLinearizable { .. }
        ));
    }

    /// A plain read/write register, to exercise the search on a textbook case.
    struct Register;
    #[derive(Debug)]
    enum RegOp {
        Write(u32),
        Read,
    }
    impl Model for Register {
        type State = u32;
        type Input = RegOp;
        type Output = u32;
        fn init(&self) -> u32 {
            0
        }
        fn step(&self, s: &u32, i: &RegOp, o: Option<&u32>) -> Option<u32> {
            match i {
                RegOp::Write(v) => Some(*v),
                RegOp::Read => match o {
                    Some(x) if x == s => Some(*s),
                    None => Some(*s),
                    _ => None,
                },
            }
        }
    }

    #[test]
    fn textbook_register_histories() {
        let op = |call, ret, input, output| Op {
            call,
            ret: Some(ret),
            input,
            output: Some(output),
        };
        // write(1) || read->1, read->0 after: stale read after a newer one: not linearizable.
        let bad = vec![
            op(0, 100, RegOp::Write(1), 0),
            op(10, 20, RegOp::Read, 1),
            op(30, 40, RegOp::Read, 0),
        ];
        assert!(matches!(
            check(&Register, &bad, 1_000_000),
            Verdict::NotLinearizable { .. }
        ));
        let good = vec![
            op(0, 100, RegOp::Write(1), 0),
            op(10, 20, RegOp::Read, 0),
            op(30, 40, RegOp::Read, 1),
        ];
        assert_eq!(check(&Register, &good, 1_000_000), Verdict::Linearizable);
    }
}
