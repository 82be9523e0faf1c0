//! The safety checks. Two halves:
//!
//! **The replicated log** (fed after every step of every replica):
//! - every zxid is applied with one digest and one content everywhere (a global map
//!   zxid → digest, and zxid → transaction as read from the applying server's log);
//! - a server applies zxids in increasing order without skipping one that any server
//!   applied (committed prefixes are identical): between two consecutive applies on one
//!   server (or a snapshot and the next apply) no other committed zxid may exist;
//! - a transaction is durable on a quorum of voters when it is applied anywhere, the
//!   voters being those of the membership in force at its zxid (the newest committed
//!   reconfiguration below it, learned from the applied `Txn::Reconfig`s, or the
//!   initial one); a reconfiguration also on a quorum of its own new voters;
//! - at most one leader per epoch; epochs never go backwards and `current <= accepted`.
//!
//! **The client history** (fed as replies arrive):
//! - per session, replies come in request order (FIFO) and the zxid a session sees
//!   never goes backwards (across reconnections too);
//! - a read returns the value written by the transaction at its `mzxid`, is not older
//!   than anything the session saw before on that key, and (against the committed log)
//!   no committed write to the key lies between its `mzxid` and the reply's zxid;
//! - an acknowledged write's zxid holds exactly that write in the committed log
//!   (at the end: no acknowledged write is lost);
//! - writes are linearizable: per key, a Wing–Gong/Lowe search over the writes'
//!   (version, zxid) results with unknown outcomes allowed ([`crate::lin`]), and
//!   globally, zxid order respects real-time order;
//! - nothing committed comes from nowhere or from a write that was told it failed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use keel_engine::txn::{Txn, TxnRecord};
use keel_engine::zab::{Epochs, Membership, Sid};

use crate::lin::{self, Op, Verdict, VersionedRegister, WriteResult};

/// Simulated wall clock at the start of every run (ms since the Unix epoch); the
/// checker reports times relative to it.
pub const START_MS: i64 = 1_700_000_000_000;

pub type OpId = usize;
pub type SessionTag = usize;

/// One broken invariant.
#[derive(Debug, Clone)]
pub struct Violation {
    pub at_ms: i64,
    pub kind: &'static str,
    pub detail: String,
}

impl fmt::Display for OpRec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |x: i64| x - START_MS;
        let v = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        write!(f, "client {} (session #{}) ", self.client, self.session)?;
        match &self.kind {
            OpKind::Write { key, value } => write!(f, "setData /k{key} = {:?}", v(value))?,
            OpKind::Create { key, value } => write!(f, "create /k{key} = {:?}", v(value))?,
            OpKind::Read { key } => write!(f, "getData /k{key}")?,
            OpKind::Sync => write!(f, "sync")?,
            OpKind::Reconfig { cxid, what } => write!(f, "reconfig (xid {cxid}) {what}")?,
        }
        match self.ret {
            Some(r) => write!(f, " [{}..{}ms]", t(self.call), t(r))?,
            None => write!(f, " [{}ms..?]", t(self.call))?,
        }
        match &self.outcome {
            Outcome::Pending => write!(f, " -> unknown"),
            Outcome::WriteOk { zxid, version } => write!(f, " -> zxid {zxid:#x} version {version}"),
            Outcome::ReadOk {
                value, mzxid, zxid, ..
            } => {
                write!(f, " -> {:?} (mzxid {mzxid:#x}) at {zxid:#x}", v(value))
            }
            Outcome::SyncOk { zxid } => write!(f, " -> at {zxid:#x}"),
            Outcome::ReconfigOk { zxid, .. } => write!(f, " -> membership {zxid:#x}"),
            Outcome::Failed { err } => write!(f, " -> error {err}"),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[t={}ms] {}: {}",
            self.at_ms - START_MS,
            self.kind,
            self.detail
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// `setData(key, value, -1)`.
    Write {
        key: usize,
        value: Vec<u8>,
    },
    /// `getData(key)`.
    Read {
        key: usize,
    },
    Sync,
    /// `create(key, value)` of the set-up script.
    Create {
        key: usize,
        value: Vec<u8>,
    },
    /// `reconfig` (its request xid, the txn's cxid if it commits; what it asks, for
    /// traces).
    Reconfig {
        cxid: i32,
        what: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No reply (yet): if it stays so, the outcome is unknown.
    Pending,
    WriteOk {
        zxid: i64,
        version: i32,
    },
    ReadOk {
        value: Vec<u8>,
        mzxid: i64,
        version: i32,
        zxid: i64,
    },
    SyncOk {
        zxid: i64,
    },
    /// A `reconfig` answered with the new membership's text.
    ReconfigOk {
        zxid: i64,
        data: Vec<u8>,
    },
    /// An error reply: the operation did not take effect.
    Failed {
        err: i32,
    },
}

#[derive(Debug, Clone)]
pub struct OpRec {
    pub session: SessionTag,
    pub client: usize,
    pub kind: OpKind,
    pub call: i64,
    pub ret: Option<i64>,
    pub outcome: Outcome,
}

/// An ensemble membership as the checks count it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Members {
    /// The zxid of the reconfiguration that made it; 0 for the initial one.
    pub version: i64,
    pub voters: Vec<Sid>,
    pub observers: Vec<Sid>,
}

impl Members {
    pub fn new(version: i64, voters: Vec<Sid>, observers: Vec<Sid>) -> Members {
        Members {
            version,
            voters,
            observers,
        }
    }

    pub fn from_membership(m: &Membership) -> Members {
        Members::new(m.version, m.voters(), m.observers())
    }

    /// The membership a `Txn::Reconfig`'s data describes.
    pub fn parse(data: &[u8]) -> Result<Members, String> {
        let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
        let m = Membership::parse(text).map_err(|e| e.0)?;
        Ok(Members::from_membership(&m))
    }

    pub fn is_voter(&self, s: Sid) -> bool {
        self.voters.contains(&s)
    }

    pub fn is_member(&self, s: Sid) -> bool {
        self.voters.contains(&s) || self.observers.contains(&s)
    }

    /// How many of `holders` are voters, and whether that is a majority of the voters.
    pub fn quorum_of(&self, holders: &[Sid]) -> (usize, bool) {
        let n = holders.iter().filter(|s| self.is_voter(**s)).count();
        (n, n > self.voters.len() / 2)
    }
}

impl fmt::Display for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}: voters {:?}", self.version, self.voters)?;
        if !self.observers.is_empty() {
            write!(f, " observers {:?}", self.observers)?;
        }
        Ok(())
    }
}

#[derive(Debug, Default, Clone)]
struct SessionRec {
    zk_id: i64,
    /// Highest zxid seen in a reply of this session.
    max_zxid: i64,
    /// Highest zxid of this session's own acknowledged writes.
    max_write: i64,
    /// Per key: newest zxid of the key's state this session has seen (its writes, the
    /// mzxid of its reads).
    per_key: HashMap<usize, i64>,
}

pub struct Checker {
    keys: Vec<String>,
    violations: Vec<Violation>,
    waive: Vec<String>,
    /// Waived kinds: how many, and the first one.
    waived: BTreeMap<&'static str, (u64, String)>,
    digests: BTreeMap<i64, u64>,
    content: HashMap<i64, TxnRecord>,
    /// The epoch in which each transaction was first applied, i.e. committed: the
    /// committing leader applies it before anyone else can. Every voter whose ack
    /// counted for that commit had accepted that epoch.
    commit_epochs: HashMap<i64, i64>,
    /// Committed writes per key: zxid → data.
    key_writes: Vec<BTreeMap<i64, Vec<u8>>>,
    leaders: BTreeMap<i64, Sid>,
    epochs: HashMap<Sid, Epochs>,
    /// Committed memberships by version (the zxid of their reconfiguration): the
    /// initial one at 0, then every `Txn::Reconfig` some server applied.
    memberships: BTreeMap<i64, Members>,
    /// Committed reconfigurations by (session, cxid): their zxid.
    reconfig_by_request: HashMap<(i64, i32), i64>,
    ops: Vec<OpRec>,
    sessions: Vec<SessionRec>,
    write_by_value: HashMap<Vec<u8>, OpId>,
    /// Applies whose content could not be found in the applying server's log.
    pub unknown_content: u64,
    pub applied_events: u64,
}

/// The value every key is created with.
pub const INIT_VALUE: &[u8] = b"init";

impl Checker {
    /// `initial`: the membership every server starts with (version 0).
    pub fn new(keys: Vec<String>, waive: Vec<String>, initial: Members) -> Checker {
        let n = keys.len();
        let mut memberships = BTreeMap::new();
        memberships.insert(
            0,
            Members {
                version: 0,
                ..initial
            },
        );
        Checker {
            memberships,
            reconfig_by_request: HashMap::new(),
            keys,
            violations: Vec::new(),
            waive,
            waived: BTreeMap::new(),
            digests: BTreeMap::new(),
            content: HashMap::new(),
            commit_epochs: HashMap::new(),
            key_writes: vec![BTreeMap::new(); n],
            leaders: BTreeMap::new(),
            epochs: HashMap::new(),
            ops: Vec::new(),
            sessions: Vec::new(),
            write_by_value: HashMap::new(),
            unknown_content: 0,
            applied_events: 0,
        }
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }

    pub fn violate(&mut self, at_ms: i64, kind: &'static str, detail: String) {
        let v = Violation {
            at_ms,
            kind,
            detail,
        };
        // A waived kind ending in '/' waives every kind it prefixes (the diagnosed
        // kinds of a violation, as `election bound/...`).
        if self
            .waive
            .iter()
            .any(|w| w == kind || (w.ends_with('/') && kind.starts_with(w.as_str())))
        {
            let e = self
                .waived
                .entry(kind)
                .or_insert_with(|| (0, v.to_string()));
            e.0 += 1;
            return;
        }
        self.violations.push(v);
    }

    /// Violations of waived kinds: kind → (count, first).
    pub fn waived(&self) -> &BTreeMap<&'static str, (u64, String)> {
        &self.waived
    }

    pub fn ops(&self) -> &[OpRec] {
        &self.ops
    }

    pub fn key_index(&self, path: &str) -> Option<usize> {
        self.keys.iter().position(|k| k == path)
    }

    pub fn key(&self, k: usize) -> &str {
        &self.keys[k]
    }

    /// The committed transaction at `zxid`, if known.
    pub fn committed(&self, zxid: i64) -> Option<&TxnRecord> {
        self.content.get(&zxid)
    }

    /// Committed transactions with `after < zxid <= through` whose content is known,
    /// in zxid order.
    pub fn committed_after(&self, after: i64, through: i64) -> Vec<&TxnRecord> {
        if through <= after {
            return Vec::new();
        }
        self.digests
            .range(after + 1..=through)
            .filter_map(|(z, _)| self.content.get(z))
            .collect()
    }

    /// The epoch in which `zxid` was committed (first applied), if it was.
    pub fn commit_epoch(&self, zxid: i64) -> Option<i64> {
        self.commit_epochs.get(&zxid).copied()
    }

    pub fn is_committed(&self, zxid: i64) -> bool {
        self.digests.contains_key(&zxid)
    }

    pub fn last_committed(&self) -> i64 {
        self.digests.keys().next_back().copied().unwrap_or(0)
    }

    // ------------------------------------------------------------ membership

    /// The membership in force at `zxid`: the newest committed reconfiguration below
    /// it, or the initial one. (A transaction committed while a reconfiguration was
    /// pending needed a quorum of both, so counting the older one is sound.)
    pub fn membership_at(&self, zxid: i64) -> &Members {
        self.memberships
            .range(..zxid)
            .next_back()
            .map(|(_, m)| m)
            .unwrap_or_else(|| &self.memberships[&0])
    }

    /// The newest committed membership the checker knows of.
    pub fn newest_membership(&self) -> &Members {
        self.memberships.values().next_back().unwrap()
    }

    /// The committed membership of version `v`, if known.
    pub fn membership(&self, v: i64) -> Option<&Members> {
        self.memberships.get(&v)
    }

    /// Every committed membership, oldest first.
    pub fn memberships(&self) -> impl Iterator<Item = &Members> {
        self.memberships.values()
    }

    /// Committed reconfigurations seen (not counting the initial membership).
    pub fn reconfigs_committed(&self) -> u64 {
        self.memberships.len() as u64 - 1
    }

    /// A committed reconfiguration, first seen applied at `zxid`.
    fn learn_reconfig(&mut self, now: i64, node: Sid, r: &TxnRecord) {
        let Txn::Reconfig { data } = &r.txn else {
            return;
        };
        self.reconfig_by_request.insert((r.session, r.cxid), r.zxid);
        match Members::parse(data) {
            Ok(m) => {
                if m.version != r.zxid {
                    let detail = format!(
                        "server {node} applied reconfiguration {:#x} whose membership says version={:#x}",
                        r.zxid, m.version
                    );
                    self.violate(now, "membership", detail);
                }
                if m.voters.is_empty() {
                    self.violate(
                        now,
                        "membership",
                        format!(
                            "reconfiguration {:#x} committed a membership without voters",
                            r.zxid
                        ),
                    );
                }
                self.memberships.insert(
                    r.zxid,
                    Members {
                        version: r.zxid,
                        ..m
                    },
                );
            }
            Err(e) => self.violate(
                now,
                "membership",
                format!(
                    "server {node} applied reconfiguration {:#x} that does not parse: {e}",
                    r.zxid
                ),
            ),
        }
    }

    // ------------------------------------------------------------ replicated log

    /// Server `node` applied (`zxid`, `digest`) right after `prev` (its previous apply,
    /// or the snapshot it loaded). `rec` is the transaction as its own log holds it;
    /// `durable_on` the servers that hold it durably (the voters among them are
    /// counted against the membership in force at `zxid`). `epoch`: the applying
    /// server's current epoch.
    #[allow(clippy::too_many_arguments)]
    pub fn applied(
        &mut self,
        now: i64,
        node: Sid,
        prev: i64,
        zxid: i64,
        digest: u64,
        rec: Option<&TxnRecord>,
        durable_on: Option<&[Sid]>,
        epoch: i64,
    ) {
        self.commit_epochs.entry(zxid).or_insert(epoch);
        self.applied_events += 1;
        if zxid <= prev {
            self.violate(
                now,
                "apply order",
                format!("server {node} applied {zxid:#x} after {prev:#x} with no crash in between"),
            );
        }
        if let Some((skipped, _)) = self.digests.range(prev + 1..zxid).next() {
            self.violate(
                now,
                "committed prefix",
                format!(
                    "server {node} applied {zxid:#x} right after {prev:#x}, skipping {skipped:#x} that another server applied"
                ),
            );
        }
        match self.digests.insert(zxid, digest) {
            Some(d) if d != digest => self.violate(
                now,
                "committed prefix",
                format!("server {node} applied {zxid:#x} with digest {digest:#x}; another server applied it with {d:#x}"),
            ),
            _ => {}
        }
        match rec {
            Some(r) => {
                if let Some(c) = self.content.get(&zxid) {
                    if c != r {
                        let detail = format!(
                            "server {node} applied {zxid:#x} = {r:?}; another server applied {c:?}"
                        );
                        self.violate(now, "committed prefix", detail);
                    }
                }
                if let Some(h) = durable_on {
                    self.check_commit_quorum(now, node, r, h);
                }
                if let std::collections::hash_map::Entry::Vacant(e) = self.content.entry(zxid) {
                    e.insert(r.clone());
                    self.note_committed_write(r);
                    self.learn_reconfig(now, node, r);
                }
            }
            None => self.unknown_content += 1,
        }
    }

    /// `r` was applied while `holders` hold it durably: a quorum of the voters in force
    /// at its zxid (and, for a reconfiguration, of its own new voters) must be among
    /// them. Once a newer membership is committed, a quorum of that one suffices: the
    /// older membership's voters no longer count (one that was removed may since have
    /// been cut back by a doomed candidate, as an observer may).
    fn check_commit_quorum(&mut self, now: i64, node: Sid, r: &TxnRecord, holders: &[Sid]) {
        let zxid = r.zxid;
        let m = self.membership_at(zxid);
        let (n, mut ok) = m.quorum_of(holders);
        let mut short = if ok { None } else { Some((n, m.clone())) };
        if let Txn::Reconfig { data } = &r.txn {
            if let Ok(nm) = Members::parse(data) {
                let (n2, ok2) = nm.quorum_of(holders);
                if !ok2 {
                    ok = false;
                    short.get_or_insert((
                        n2,
                        Members {
                            version: zxid,
                            ..nm
                        },
                    ));
                }
            }
        }
        if ok {
            return;
        }
        let newest = self.newest_membership();
        if newest.version > m.version && newest.quorum_of(holders).1 {
            return;
        }
        let (n, m) = short.unwrap();
        let detail = format!(
            "server {node} applied {zxid:#x} but only {n} voters of membership {m} hold it durably ({holders:?})"
        );
        self.violate(now, "commit quorum", detail);
    }

    fn note_committed_write(&mut self, r: &TxnRecord) {
        let mut writes = Vec::new();
        collect_writes(&r.txn, &mut writes);
        for (path, data) in writes {
            if let Some(k) = self.key_index(&path) {
                self.key_writes[k].insert(r.zxid, data);
            }
        }
    }

    /// A server loaded a snapshot at `zxid` (a SNAP from the leader): it must be a
    /// committed zxid, and not behind what the server already applied.
    pub fn snapshot_installed(&mut self, now: i64, node: Sid, zxid: i64, applied_before: i64) {
        if zxid != 0 && !self.digests.contains_key(&zxid) {
            self.violate(
                now,
                "snapshot",
                format!("server {node} installed a snapshot at {zxid:#x}, which no server applied as a transaction"),
            );
        }
        if zxid < applied_before {
            self.violate(
                now,
                "apply order",
                format!("server {node} installed a snapshot at {zxid:#x}, behind the {applied_before:#x} it had applied"),
            );
        }
    }

    pub fn leading(&mut self, now: i64, node: Sid, epoch: i64) {
        match self.leaders.get(&epoch) {
            Some(&l) if l != node => self.violate(
                now,
                "leadership",
                format!("servers {l} and {node} both led epoch {epoch}"),
            ),
            _ => {
                self.leaders.insert(epoch, node);
            }
        }
    }

    /// `node` persisted `e` (its durable epochs before: `old`).
    pub fn epochs_saved(&mut self, now: i64, node: Sid, old: Epochs, e: Epochs) {
        if e.accepted < old.accepted || e.current < old.current {
            self.violate(
                now,
                "epochs",
                format!("server {node} persisted epochs {e:?} after {old:?}"),
            );
        }
        if e.current > e.accepted {
            self.violate(
                now,
                "epochs",
                format!("server {node} persisted current epoch above accepted: {e:?}"),
            );
        }
        self.epochs.insert(node, e);
    }

    // ------------------------------------------------------------ client history

    pub fn new_session(&mut self, zk_id: i64) -> SessionTag {
        self.sessions.push(SessionRec {
            zk_id,
            ..Default::default()
        });
        self.sessions.len() - 1
    }

    pub fn session_id(&self, s: SessionTag) -> i64 {
        self.sessions[s].zk_id
    }

    pub fn invoke(&mut self, session: SessionTag, client: usize, kind: OpKind, now: i64) -> OpId {
        let id = self.ops.len();
        if let OpKind::Write { value, .. } | OpKind::Create { value, .. } = &kind {
            if value != INIT_VALUE {
                self.write_by_value.insert(value.clone(), id);
            }
        }
        self.ops.push(OpRec {
            session,
            client,
            kind,
            call: now,
            ret: None,
            outcome: Outcome::Pending,
        });
        id
    }

    pub fn op(&self, id: OpId) -> &OpRec {
        &self.ops[id]
    }

    /// A reply arrived out of request order on a session.
    pub fn fifo_violation(
        &mut self,
        now: i64,
        session: SessionTag,
        expected_xid: i32,
        got_xid: i32,
    ) {
        let sid = self.sessions[session].zk_id;
        self.violate(
            now,
            "session FIFO",
            format!("session {sid:#x}: reply to xid {got_xid} while xid {expected_xid} was first in line"),
        );
    }

    fn session_zxid(&mut self, now: i64, op: OpId, zxid: i64, what: &str) {
        let s = self.ops[op].session;
        let sess = &self.sessions[s];
        if zxid < sess.max_zxid {
            let detail = format!(
                "session {:#x}: {what} reply carries zxid {zxid:#x}, below the {:#x} the session already saw",
                sess.zk_id, sess.max_zxid
            );
            self.violate(now, "session order", detail);
        }
        let sess = &mut self.sessions[s];
        sess.max_zxid = sess.max_zxid.max(zxid);
    }

    pub fn write_ok(&mut self, now: i64, op: OpId, zxid: i64, mzxid: i64, version: i32) {
        self.ops[op].ret = Some(now);
        self.ops[op].outcome = Outcome::WriteOk { zxid, version };
        let s = self.ops[op].session;
        let (key, value) = match &self.ops[op].kind {
            OpKind::Write { key, value } => (*key, value.clone()),
            other => panic!("write_ok for {other:?}"),
        };
        if mzxid != zxid {
            self.violate(
                now,
                "write reply",
                format!(
                    "setData {} reply: header zxid {zxid:#x} but stat mzxid {mzxid:#x}",
                    self.keys[key]
                ),
            );
        }
        if zxid <= self.sessions[s].max_write {
            let detail = format!(
                "session {:#x}: write acknowledged at {zxid:#x}, not after its earlier write at {:#x}",
                self.sessions[s].zk_id, self.sessions[s].max_write
            );
            self.violate(now, "session order", detail);
        }
        self.session_zxid(now, op, zxid, "write");
        let sess = &mut self.sessions[s];
        sess.max_write = sess.max_write.max(zxid);
        let e = sess.per_key.entry(key).or_default();
        *e = (*e).max(zxid);
        self.check_write_committed(now, op, false);
        let _ = value;
    }

    /// An acknowledged write's zxid must hold exactly it. `final_check`: the log is
    /// complete, so an unknown zxid means the write was lost.
    fn check_write_committed(&mut self, now: i64, op: OpId, final_check: bool) {
        let (key, value) = match &self.ops[op].kind {
            OpKind::Write { key, value } => (*key, value.clone()),
            _ => return,
        };
        let Outcome::WriteOk { zxid, .. } = self.ops[op].outcome else {
            return;
        };
        match self.content.get(&zxid) {
            Some(rec) => {
                let mut w = Vec::new();
                collect_writes(&rec.txn, &mut w);
                if !w.iter().any(|(p, d)| *p == self.keys[key] && *d == value) {
                    let detail = format!(
                        "setData {} = {:?} acknowledged at {zxid:#x}, but the committed transaction there is {:?}",
                        self.keys[key],
                        String::from_utf8_lossy(&value),
                        rec.txn
                    );
                    self.violate(now, "acknowledged write", detail);
                }
            }
            None if final_check => {
                let detail = format!(
                    "setData {} = {:?} acknowledged at {zxid:#x}, which is not in the committed log (lost)",
                    self.keys[key],
                    String::from_utf8_lossy(&value)
                );
                self.violate(now, "acknowledged write lost", detail);
            }
            None => {}
        }
    }

    pub fn read_ok(
        &mut self,
        now: i64,
        op: OpId,
        zxid: i64,
        value: Vec<u8>,
        mzxid: i64,
        version: i32,
    ) {
        self.ops[op].ret = Some(now);
        self.ops[op].outcome = Outcome::ReadOk {
            value: value.clone(),
            mzxid,
            version,
            zxid,
        };
        let s = self.ops[op].session;
        let key = match self.ops[op].kind {
            OpKind::Read { key } => key,
            ref other => panic!("read_ok for {other:?}"),
        };
        let path = self.keys[key].clone();
        let shown = String::from_utf8_lossy(&value).into_owned();
        self.session_zxid(now, op, zxid, "read");
        if zxid > 0 && mzxid > zxid {
            self.violate(
                now,
                "read",
                format!("getData {path} = {shown:?}: mzxid {mzxid:#x} is after the reply's zxid {zxid:#x}"),
            );
        }
        let seen = self.sessions[s].per_key.get(&key).copied().unwrap_or(0);
        if mzxid < seen {
            let detail = format!(
                "session {:#x}: getData {path} = {shown:?} at mzxid {mzxid:#x}, older than {seen:#x} which the session already saw for that key",
                self.sessions[s].zk_id
            );
            self.violate(now, "session order", detail);
        }
        let e = self.sessions[s].per_key.entry(key).or_default();
        *e = (*e).max(mzxid);
        // The value is the one written at mzxid.
        match self.content.get(&mzxid) {
            Some(rec) => {
                let mut w = Vec::new();
                collect_writes(&rec.txn, &mut w);
                if !w.iter().any(|(p, d)| *p == path && *d == value) {
                    let detail = format!(
                        "getData {path} = {shown:?} with mzxid {mzxid:#x}, but the committed transaction there is {:?}",
                        rec.txn
                    );
                    self.violate(now, "read", detail);
                }
            }
            None => {
                if let Some(&w) = self.write_by_value.get(&value) {
                    match &self.ops[w].outcome {
                        Outcome::Failed { err } => {
                            let detail = format!(
                                "getData {path} = {shown:?}, written by a setData that was answered with error {err}"
                            );
                            self.violate(now, "read", detail);
                        }
                        Outcome::WriteOk { zxid: wz, .. } if *wz != mzxid => {
                            let detail = format!(
                                "getData {path} = {shown:?} with mzxid {mzxid:#x}, but that write was acknowledged at {wz:#x}"
                            );
                            self.violate(now, "read", detail);
                        }
                        _ => {}
                    }
                } else if value != INIT_VALUE {
                    self.violate(
                        now,
                        "read",
                        format!("getData {path} = {shown:?}: no client ever wrote that value"),
                    );
                }
            }
        }
        // Against the committed log: nothing was written to the key between the value
        // returned and the state the reply claims.
        if zxid > mzxid {
            if let Some((z, d)) = self.key_writes[key].range(mzxid + 1..=zxid).next() {
                let detail = format!(
                    "getData {path} = {shown:?} (mzxid {mzxid:#x}) in a reply at zxid {zxid:#x}, but {:?} was committed to it at {z:#x}",
                    String::from_utf8_lossy(d)
                );
                self.violate(now, "stale read", detail);
            }
        }
    }

    pub fn sync_ok(&mut self, now: i64, op: OpId, zxid: i64) {
        self.ops[op].ret = Some(now);
        self.ops[op].outcome = Outcome::SyncOk { zxid };
        self.session_zxid(now, op, zxid, "sync");
    }

    /// A `reconfig` answered with the new membership `data` at `zxid`.
    pub fn reconfig_ok(&mut self, now: i64, op: OpId, zxid: i64, data: Vec<u8>) {
        self.ops[op].ret = Some(now);
        self.ops[op].outcome = Outcome::ReconfigOk {
            zxid,
            data: data.clone(),
        };
        self.session_zxid(now, op, zxid, "reconfig");
        match Members::parse(&data) {
            Ok(m) if m.version == zxid => {}
            Ok(m) => {
                let detail = format!(
                    "reconfig answered at {zxid:#x} with a membership of version {:#x}",
                    m.version
                );
                self.violate(now, "reconfig", detail);
            }
            Err(e) => self.violate(
                now,
                "reconfig",
                format!("reconfig answered at {zxid:#x} with text that does not parse: {e}"),
            ),
        }
        self.check_reconfig_committed(now, op, false);
    }

    /// An acknowledged `reconfig` is the committed reconfiguration at its zxid, with
    /// the text it was answered with; one answered with an error never commits.
    fn check_reconfig_committed(&mut self, now: i64, op: OpId, final_check: bool) {
        let o = &self.ops[op];
        let OpKind::Reconfig { cxid, .. } = o.kind else {
            return;
        };
        let session = self.sessions[o.session].zk_id;
        match &o.outcome {
            Outcome::ReconfigOk { zxid, data } => {
                let zxid = *zxid;
                match self.content.get(&zxid).map(|r| (&r.txn, r.session, r.cxid)) {
                    Some((Txn::Reconfig { data: d }, s, c))
                        if d == data && s == session && c == cxid => {}
                    Some(other) => {
                        let detail = format!(
                            "{} acknowledged at {zxid:#x}, but the committed transaction there is {other:?}",
                            self.ops[op]
                        );
                        self.violate(now, "reconfig", detail);
                    }
                    None if final_check => {
                        let detail = format!(
                            "{} acknowledged at {zxid:#x}, which is not in the committed log (lost)",
                            self.ops[op]
                        );
                        self.violate(now, "reconfig", detail);
                    }
                    None => {}
                }
            }
            Outcome::Failed { err } if final_check => {
                if let Some(z) = self.reconfig_by_request.get(&(session, cxid)) {
                    let detail = format!(
                        "{} was answered with error {err}, but it committed at {z:#x}",
                        self.ops[op]
                    );
                    self.violate(now, "reconfig", detail);
                }
            }
            _ => {}
        }
    }

    /// Replies without a checked result (create of the set-up script).
    pub fn done(&mut self, now: i64, op: OpId) {
        self.ops[op].ret = Some(now);
    }

    pub fn failed_op(&mut self, now: i64, op: OpId, err: i32) {
        self.ops[op].ret = Some(now);
        self.ops[op].outcome = Outcome::Failed { err };
    }

    // ------------------------------------------------------------ at the end

    /// What a server holds for a key at the end (read through a client).
    pub fn final_read(&mut self, now: i64, node: Sid, key: usize, value: &[u8], mzxid: i64) {
        let path = self.keys[key].clone();
        let shown = String::from_utf8_lossy(value).into_owned();
        let last_acked = self
            .ops
            .iter()
            .filter_map(|o| match (&o.kind, &o.outcome) {
                (OpKind::Write { key: k, .. }, Outcome::WriteOk { zxid, .. }) if *k == key => {
                    Some(*zxid)
                }
                _ => None,
            })
            .max()
            .unwrap_or(0);
        if mzxid < last_acked {
            self.violate(
                now,
                "acknowledged write lost",
                format!("server {node}: {path} = {shown:?} (mzxid {mzxid:#x}) at the end, older than the write acknowledged at {last_acked:#x}"),
            );
        }
        if let Some((z, d)) = self.key_writes[key].iter().next_back() {
            if *z != mzxid || d != value {
                let detail = format!(
                    "server {node}: {path} = {shown:?} (mzxid {mzxid:#x}) at the end, but the last committed write to it is {:?} at {z:#x}",
                    String::from_utf8_lossy(d)
                );
                self.violate(now, "final state", detail);
            }
        }
    }

    /// The checks that need the whole history (run once the cluster has settled and
    /// every server applied the same log).
    pub fn finish(&mut self, now: i64, budget: u64) -> Vec<String> {
        let mut notes = Vec::new();
        // No acknowledged write lost; nothing committed from nowhere.
        for op in 0..self.ops.len() {
            self.check_write_committed(now, op, true);
            self.check_reconfig_committed(now, op, true);
        }
        for key in 0..self.keys.len() {
            let writes: Vec<(i64, Vec<u8>)> = self.key_writes[key]
                .iter()
                .map(|(z, d)| (*z, d.clone()))
                .collect();
            for (z, d) in writes {
                if d == INIT_VALUE {
                    continue;
                }
                match self.write_by_value.get(&d).map(|&w| &self.ops[w]) {
                    None => {
                        let detail = format!(
                            "{} = {:?} committed at {z:#x}, but no client wrote that value",
                            self.keys[key],
                            String::from_utf8_lossy(&d)
                        );
                        self.violate(now, "committed write", detail);
                    }
                    Some(o) => match &o.outcome {
                        Outcome::Failed { err } => {
                            let detail = format!(
                                "{} = {:?} committed at {z:#x}, but its setData was answered with error {err}",
                                self.keys[key],
                                String::from_utf8_lossy(&d)
                            );
                            self.violate(now, "committed write", detail);
                        }
                        Outcome::WriteOk { zxid, .. } if *zxid != z => {
                            let detail = format!(
                                "{} = {:?} committed at {z:#x}, but acknowledged at {zxid:#x}",
                                self.keys[key],
                                String::from_utf8_lossy(&d)
                            );
                            self.violate(now, "committed write", detail);
                        }
                        _ => {
                            if o.call > now {
                                self.violate(
                                    now,
                                    "committed write",
                                    "write from the future".into(),
                                );
                            }
                        }
                    },
                }
            }
        }
        // Linearizability of writes, per key.
        for key in 0..self.keys.len() {
            let mut hist: Vec<Op<Vec<u8>, WriteResult>> = Vec::new();
            let mut idx = Vec::new();
            for (i, o) in self.ops.iter().enumerate() {
                let OpKind::Write { key: k, value } = &o.kind else {
                    continue;
                };
                if *k != key {
                    continue;
                }
                match &o.outcome {
                    Outcome::Failed { .. } => continue,
                    Outcome::WriteOk { zxid, version } => hist.push(Op {
                        call: o.call,
                        ret: o.ret,
                        input: value.clone(),
                        output: Some(WriteResult {
                            version: *version,
                            zxid: *zxid,
                        }),
                    }),
                    _ => hist.push(Op {
                        call: o.call,
                        ret: None,
                        input: value.clone(),
                        output: None,
                    }),
                }
                idx.push(i);
            }
            let model = VersionedRegister {
                init_version: 0,
                init_zxid: 0,
            };
            match lin::check(&model, &hist, budget) {
                Verdict::Linearizable => {}
                Verdict::Inconclusive => notes.push(format!(
                    "linearizability of {} inconclusive ({} writes)",
                    self.keys[key],
                    hist.len()
                )),
                Verdict::NotLinearizable { stuck_at, depth } => {
                    let culprit = idx
                        .get(stuck_at)
                        .map(|&i| self.ops[i].to_string())
                        .unwrap_or_default();
                    let detail = format!(
                        "writes to {} are not linearizable ({} writes; search stuck after {depth} at {culprit})",
                        self.keys[key],
                        hist.len()
                    );
                    self.violate(now, "linearizability", detail);
                }
            }
        }
        // Real-time order of acknowledged writes across keys: if A returned before B
        // was called, zxid(A) < zxid(B).
        let mut acked: Vec<(i64, i64, i64, OpId)> = self
            .ops
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o.outcome {
                Outcome::WriteOk { zxid, .. } => Some((o.call, o.ret.unwrap_or(o.call), zxid, i)),
                _ => None,
            })
            .collect();
        let mut by_ret = acked.clone();
        by_ret.sort_by_key(|a| a.1);
        acked.sort_by_key(|a| a.0);
        let mut j = 0;
        let mut max_done: Option<(i64, OpId)> = None;
        for &(call, _, zxid, i) in &acked {
            while j < by_ret.len() && by_ret[j].1 < call {
                if max_done.is_none_or(|m| by_ret[j].2 > m.0) {
                    max_done = Some((by_ret[j].2, by_ret[j].3));
                }
                j += 1;
            }
            if let Some((mz, a)) = max_done {
                if mz >= zxid {
                    let detail = format!(
                        "write {} got zxid {zxid:#x}, but write {}, which returned before it was called, got {mz:#x}",
                        self.ops[i], self.ops[a]
                    );
                    self.violate(now, "linearizability", detail);
                    break;
                }
            }
        }
        notes
    }
}

/// The (path, data) pairs a transaction writes.
fn collect_writes(t: &Txn, out: &mut Vec<(String, Vec<u8>)>) {
    match t {
        Txn::SetData { path, data, .. } | Txn::Create { path, data, .. } => {
            out.push((path.clone(), data.clone().unwrap_or_default()));
        }
        Txn::Multi(ts) if !ts.iter().any(|t| matches!(t, Txn::Error { .. })) => {
            for t in ts {
                collect_writes(t, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(zxid: i64, path: &str, v: &str) -> TxnRecord {
        TxnRecord {
            zxid,
            time: 0,
            session: 1,
            cxid: 0,
            txn: Txn::SetData {
                path: path.into(),
                data: Some(v.as_bytes().to_vec()),
                version: 1,
            },
        }
    }

    fn checker() -> Checker {
        Checker::new(
            vec!["/k0".into(), "/k1".into()],
            Vec::new(),
            Members::new(0, vec![1, 2, 3], vec![]),
        )
    }

    #[test]
    fn divergent_commit_is_caught() {
        let mut c = checker();
        c.applied(0, 1, 0, 1, 11, Some(&set(1, "/k0", "a")), Some(&[1, 2]), 1);
        c.applied(0, 2, 0, 1, 11, Some(&set(1, "/k0", "a")), Some(&[1, 2]), 1);
        assert!(!c.failed());
        c.applied(0, 3, 0, 1, 12, Some(&set(1, "/k0", "b")), Some(&[1, 2]), 1);
        assert!(c.failed());
    }

    #[test]
    fn skipping_a_committed_zxid_is_caught() {
        let mut c = checker();
        c.applied(0, 1, 0, 1, 1, None, None, 1);
        c.applied(0, 1, 1, 2, 2, None, None, 1);
        c.applied(0, 2, 0, 2, 2, None, None, 1);
        assert_eq!(c.violations()[0].kind, "committed prefix");
    }

    #[test]
    fn reapplying_and_missing_quorum_are_caught() {
        let mut c = checker();
        c.applied(0, 1, 5, 5, 1, None, None, 1);
        assert_eq!(c.violations()[0].kind, "apply order");
        let mut c = checker();
        c.applied(0, 1, 0, 1, 1, Some(&set(1, "/k0", "a")), Some(&[1]), 1);
        assert_eq!(c.violations()[0].kind, "commit quorum");
    }

    #[test]
    fn two_leaders_in_one_epoch() {
        let mut c = checker();
        c.leading(0, 1, 3);
        c.leading(5, 1, 3);
        assert!(!c.failed());
        c.leading(9, 2, 3);
        assert!(c.failed());
    }

    fn write(c: &mut Checker, s: SessionTag, key: usize, v: &str, t: i64) -> OpId {
        c.invoke(
            s,
            0,
            OpKind::Write {
                key,
                value: v.as_bytes().to_vec(),
            },
            t,
        )
    }

    #[test]
    fn good_history_passes() {
        let mut c = checker();
        let s = c.new_session(0x10);
        c.applied(
            0,
            1,
            0,
            1,
            1,
            Some(&set(1, "/k0", "init")),
            Some(&[1, 2]),
            1,
        );
        let w = write(&mut c, s, 0, "a", 10);
        c.applied(15, 1, 1, 2, 2, Some(&set(2, "/k0", "a")), Some(&[1, 2]), 1);
        c.write_ok(20, w, 2, 2, 1);
        let r = c.invoke(s, 0, OpKind::Read { key: 0 }, 30);
        c.read_ok(40, r, 2, b"a".to_vec(), 2, 1);
        let unknown = write(&mut c, s, 0, "b", 50);
        let _ = unknown;
        c.final_read(100, 1, 0, b"a", 2);
        let notes = c.finish(100, 1_000_000);
        assert!(!c.failed(), "{:?}", c.violations());
        assert!(notes.is_empty());
    }

    #[test]
    fn stale_and_backwards_reads_are_caught() {
        let mut c = checker();
        let s = c.new_session(0x10);
        c.applied(
            0,
            1,
            0,
            1,
            1,
            Some(&set(1, "/k0", "init")),
            Some(&[1, 2]),
            1,
        );
        let w = write(&mut c, s, 0, "a", 10);
        c.applied(15, 1, 1, 2, 2, Some(&set(2, "/k0", "a")), Some(&[1, 2]), 1);
        c.write_ok(20, w, 2, 2, 1);
        // The session reads its key back at the old value: not monotonic.
        let r = c.invoke(s, 0, OpKind::Read { key: 0 }, 30);
        c.read_ok(40, r, 1, b"init".to_vec(), 1, 0);
        assert!(c.violations().iter().any(|v| v.kind == "session order"));

        // Another session reads the old value in a reply claiming state 2: stale.
        let mut c2 = checker();
        let s2 = c2.new_session(0x11);
        c2.applied(
            0,
            1,
            0,
            1,
            1,
            Some(&set(1, "/k0", "init")),
            Some(&[1, 2]),
            1,
        );
        c2.applied(15, 1, 1, 2, 2, Some(&set(2, "/k0", "a")), Some(&[1, 2]), 1);
        let r = c2.invoke(s2, 0, OpKind::Read { key: 0 }, 30);
        c2.read_ok(40, r, 2, b"init".to_vec(), 1, 0);
        assert_eq!(c2.violations()[0].kind, "stale read");
    }

    #[test]
    fn lost_and_misplaced_writes_are_caught() {
        let mut c = checker();
        let s = c.new_session(0x10);
        let w = write(&mut c, s, 0, "a", 10);
        c.write_ok(20, w, 7, 7, 1);
        c.finish(100, 1_000_000);
        assert!(c
            .violations()
            .iter()
            .any(|v| v.kind == "acknowledged write lost"));

        let mut c = checker();
        let s = c.new_session(0x10);
        c.applied(0, 1, 0, 7, 1, Some(&set(7, "/k0", "zzz")), Some(&[1, 2]), 1);
        let w = write(&mut c, s, 0, "a", 10);
        c.write_ok(20, w, 7, 7, 1);
        assert_eq!(c.violations()[0].kind, "acknowledged write");
    }

    #[test]
    fn a_failed_write_that_took_effect_is_caught() {
        let mut c = checker();
        let s = c.new_session(0x10);
        let w = write(&mut c, s, 0, "a", 10);
        c.failed_op(20, w, -118);
        c.applied(30, 1, 0, 3, 1, Some(&set(3, "/k0", "a")), Some(&[1, 2]), 1);
        c.finish(100, 1_000_000);
        assert!(c.violations().iter().any(|v| v.kind == "committed write"));
    }

    #[test]
    fn real_time_order_across_keys() {
        let mut c = checker();
        let s = c.new_session(0x10);
        let t = c.new_session(0x11);
        c.applied(0, 1, 0, 5, 1, Some(&set(5, "/k1", "b")), Some(&[1, 2]), 1);
        c.applied(0, 1, 5, 6, 1, Some(&set(6, "/k0", "a")), Some(&[1, 2]), 1);
        let a = write(&mut c, s, 0, "a", 0);
        c.write_ok(10, a, 6, 6, 1);
        let b = write(&mut c, t, 1, "b", 20);
        c.write_ok(30, b, 5, 5, 1);
        c.finish(100, 1_000_000);
        assert!(c.violations().iter().any(|v| v.kind == "linearizability"));
    }

    #[test]
    fn fifo_and_session_zxid() {
        let mut c = checker();
        let s = c.new_session(0x10);
        c.fifo_violation(5, s, 3, 4);
        assert_eq!(c.violations()[0].kind, "session FIFO");
        let mut c = checker();
        let s = c.new_session(0x10);
        let a = c.invoke(s, 0, OpKind::Sync, 0);
        c.sync_ok(1, a, 9);
        let b = c.invoke(s, 0, OpKind::Sync, 2);
        c.sync_ok(3, b, 8);
        assert_eq!(c.violations()[0].kind, "session order");
    }

    fn reconfig_rec(zxid: i64, voters: &[u64], session: i64, cxid: i32) -> TxnRecord {
        let mut text = String::new();
        for v in voters {
            text.push_str(&format!(
                "server.{v}=127.0.0.1:{}:{}:participant\n",
                2888 + v,
                3888 + v
            ));
        }
        text.push_str(&format!("version={zxid:x}"));
        TxnRecord {
            zxid,
            time: 0,
            session,
            cxid,
            txn: Txn::Reconfig {
                data: text.into_bytes(),
            },
        }
    }

    #[test]
    fn quorums_follow_the_membership_in_force() {
        let mut c = checker();
        // A reconfiguration needs a quorum of the old voters and of its own.
        c.applied(
            0,
            1,
            0,
            5,
            5,
            Some(&reconfig_rec(5, &[3, 4, 5], 9, 1)),
            Some(&[1, 2]),
            1,
        );
        assert_eq!(c.violations()[0].kind, "commit quorum");
        let mut c = checker();
        c.applied(
            0,
            1,
            0,
            5,
            5,
            Some(&reconfig_rec(5, &[3, 4, 5], 9, 1)),
            Some(&[1, 3, 4]),
            1,
        );
        assert!(!c.failed(), "{:?}", c.violations());
        assert_eq!(c.membership_at(5).voters, vec![1, 2, 3]);
        assert_eq!(c.membership_at(6).voters, vec![3, 4, 5]);
        assert_eq!(c.newest_membership().version, 5);
        // After it, the new voters count...
        c.applied(0, 1, 5, 6, 6, Some(&set(6, "/k0", "a")), Some(&[4, 5]), 1);
        assert!(!c.failed(), "{:?}", c.violations());
        // ...and the old ones no longer do.
        c.applied(
            0,
            1,
            6,
            7,
            7,
            Some(&set(7, "/k0", "b")),
            Some(&[1, 2, 3]),
            1,
        );
        assert_eq!(c.violations()[0].kind, "commit quorum");
    }

    #[test]
    fn a_late_apply_may_count_the_newest_membership() {
        let mut c = checker();
        c.applied(0, 1, 0, 4, 4, Some(&set(4, "/k0", "a")), Some(&[1, 2]), 1);
        c.applied(
            0,
            1,
            4,
            5,
            5,
            Some(&reconfig_rec(5, &[3, 4, 5], 9, 1)),
            Some(&[1, 3, 4]),
            1,
        );
        // A server applies 4 after the voters that held it were removed: a quorum of the
        // newest membership holding it is enough.
        c.applied(
            0,
            5,
            0,
            4,
            4,
            Some(&set(4, "/k0", "a")),
            Some(&[3, 4, 5]),
            1,
        );
        assert!(!c.failed(), "{:?}", c.violations());
        c.applied(0, 4, 0, 4, 4, Some(&set(4, "/k0", "a")), Some(&[1, 5]), 1);
        assert_eq!(c.violations()[0].kind, "commit quorum");
    }

    #[test]
    fn reconfig_replies_are_checked_against_the_log() {
        let mut c = checker();
        let s = c.new_session(0x10);
        let data = |z: i64| match reconfig_rec(z, &[1, 2], 0x10, 7).txn {
            Txn::Reconfig { data } => data,
            _ => unreachable!(),
        };
        let kind = |cxid| OpKind::Reconfig {
            cxid,
            what: String::new(),
        };
        // Acknowledged, committed with the same text by the same request: fine.
        let ok = c.invoke(s, 5, kind(7), 0);
        c.applied(
            1,
            1,
            0,
            3,
            3,
            Some(&reconfig_rec(3, &[1, 2], 0x10, 7)),
            Some(&[1, 2]),
            1,
        );
        c.reconfig_ok(2, ok, 3, data(3));
        assert!(!c.failed(), "{:?}", c.violations());
        // Acknowledged with a version that is not its zxid.
        let bad = c.invoke(s, 5, kind(8), 3);
        c.reconfig_ok(4, bad, 9, data(3));
        assert_eq!(c.violations()[0].kind, "reconfig");

        // Answered with an error, but it committed.
        let mut c = checker();
        let s = c.new_session(0x10);
        let failed = c.invoke(s, 5, kind(7), 0);
        c.failed_op(1, failed, -14);
        c.applied(
            2,
            1,
            0,
            3,
            3,
            Some(&reconfig_rec(3, &[1, 2], 0x10, 7)),
            Some(&[1, 2]),
            1,
        );
        c.finish(10, 1_000_000);
        assert!(c.violations().iter().any(|v| v.kind == "reconfig"));

        // Acknowledged, but never committed.
        let mut c = checker();
        let s = c.new_session(0x10);
        let lost = c.invoke(s, 5, kind(7), 0);
        c.reconfig_ok(1, lost, 3, data(3));
        c.finish(10, 1_000_000);
        assert!(c.violations().iter().any(|v| v.kind == "reconfig"));
    }
}
