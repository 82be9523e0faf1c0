//! The data tree: every znode with its data, ACL and persisted stat, plus the indexes
//! the server needs without scanning (ephemerals by session, containers, TTL nodes).
//!
//! The tree only applies transactions prep has already validated; it reports what
//! changed as `Trigger`s so the watch manager can fire events in ZooKeeper's order.

use std::collections::{BTreeSet, HashMap};

use imbl::{HashMap as PersistentMap, OrdSet};
use std::sync::Arc;

use crate::path;
use crate::proto::{Acl, Stat};

/// `ephemeralOwner` of a container node (`EphemeralType.CONTAINER_EPHEMERAL_OWNER`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// TTL nodes: high byte 0xFF, two bytes of extended type 0x0000, then 40 bits of TTL ms.
const TTL_MASK: i64 = 0xFFFF_0000_0000_0000u64 as i64;
const TTL_TAG: i64 = 0xFF00_0000_0000_0000u64 as i64;
pub const MAX_TTL: i64 = (1 << 40) - 1;

pub fn ttl_owner(ttl_ms: i64) -> i64 {
    TTL_TAG | ttl_ms
}

pub fn owner_ttl(owner: i64) -> Option<i64> {
    (owner & TTL_MASK == TTL_TAG && owner != CONTAINER_OWNER).then_some(owner & MAX_TTL)
}

/// Whether an `ephemeralOwner` names a session (as opposed to persistent, container, TTL).
pub fn is_session_owner(owner: i64) -> bool {
    owner != 0 && owner != CONTAINER_OWNER && owner_ttl(owner).is_none()
}

/// `StatPersisted`: what the tree stores; `dataLength` and `numChildren` are derived.
/// `cversion` here is ZooKeeper's internal count of child creations (it names sequential
/// children); `Node::full_stat` converts it to the count of changes clients see.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct NodeStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `None` is ZooKeeper's null data (getData answers a null buffer), not empty.
    pub data: Option<Vec<u8>>,
    pub acl: Arc<Vec<Acl>>,
    pub stat: NodeStat,
    /// Persistent, so cloning a node (for a snapshot) never copies its child list.
    pub children: OrdSet<String>,
}

impl Node {
    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }

    pub fn full_stat(&self) -> Stat {
        let s = &self.stat;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            // ZooKeeper counts only creates in cversion and shows clients the number of
            // child changes: every create has a delete except for children still here.
            cversion: s
                .cversion
                .wrapping_mul(2)
                .wrapping_sub(self.children.len() as i32),
            aversion: s.aversion,
            // Containers and TTL nodes show 0 (`DataNode.getClientEphemeralOwner`).
            ephemeral_owner: if is_session_owner(s.ephemeral_owner) {
                s.ephemeral_owner
            } else {
                0
            },
            data_length: self.data_len() as i32,
            num_children: self.children.len() as i32,
            pzxid: s.pzxid,
        }
    }
}

/// What a change means for watchers, in the order ZooKeeper fires them. Each names the
/// ACL of the node the event is about (for `ChildrenChanged`, the parent's), as it was
/// at the change: an event goes only to watchers that may READ that node, as in
/// ZooKeeper 3.9 (CVE-2024-23944).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Created(String, Arc<Vec<Acl>>),
    Deleted(String, Arc<Vec<Acl>>),
    DataChanged(String, Arc<Vec<Acl>>),
    ChildrenChanged(String, Arc<Vec<Acl>>),
}

/// Where quotas live, and the two nodes each quota has there.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
pub const QUOTA_LIMITS: &str = "zookeeper_limits";
pub const QUOTA_STATS: &str = "zookeeper_stats";

/// A quota statistics text (ZooKeeper's `StatsTrack`): `count=N,bytes=M` first, then
/// whatever other `key=value` pairs it held, in their order. A missing or unreadable
/// count or byte total reads as -1, as ZooKeeper's does; other bad pairs are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaStats {
    pub count: i64,
    pub bytes: i64,
    pub rest: Vec<(String, i64)>,
}

impl QuotaStats {
    pub fn parse(data: &[u8]) -> QuotaStats {
        let mut st = QuotaStats {
            count: -1,
            bytes: -1,
            rest: Vec::new(),
        };
        let text = String::from_utf8_lossy(data);
        // Where each other key sits in `rest`: a client can write this text (1 MB of
        // distinct keys), and a linear search per pair made every later write under
        // the quota's path quadratic in it.
        let mut slots: HashMap<&str, usize> = HashMap::new();
        for pair in text.split([',', ';']).filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let v = if v.is_empty() {
                Ok(-1)
            } else {
                v.parse::<i64>()
            };
            let Ok(v) = v else { continue };
            match k {
                "count" => st.count = v,
                "bytes" => st.bytes = v,
                _ => match slots.get(k) {
                    Some(&i) => st.rest[i].1 = v,
                    None => {
                        slots.insert(k, st.rest.len());
                        st.rest.push((k.to_owned(), v));
                    }
                },
            }
        }
        st
    }

    pub fn to_text(&self) -> String {
        let mut s = format!("count={},bytes={}", self.count, self.bytes);
        for (k, v) in &self.rest {
            s.push_str(&format!(",{k}={v}"));
        }
        s
    }
}

/// The `version=<hex>` line of a membership text, if it has a well-formed one.
fn config_version(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?;
    let hex = text
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("version="))?;
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

/// The node map, shareable in O(1) (see `DataTree::persistent_nodes`).
/// The node holding the ensemble's membership (ZooKeeper's `ZooDefs.CONFIG_NODE`).
pub const CONFIG_NODE: &str = "/zookeeper/config";

pub type PersistentNodes = PersistentMap<String, Node>;

/// How to take back one change of an uncommitted multi. Each records only what the
/// change touched, so neither the change nor its undo copies a parent's children.
#[derive(Debug)]
pub enum UndoOp {
    Created {
        path: String,
        parent: String,
        cversion: i32,
        pzxid: i64,
    },
    Deleted {
        path: String,
        node: Node,
        parent: String,
        pzxid: i64,
    },
    DataSet {
        path: String,
        data: Option<Vec<u8>>,
        stat: NodeStat,
    },
    AclSet {
        path: String,
        acl: Arc<Vec<Acl>>,
        stat: NodeStat,
    },
}

pub type Undo = Vec<UndoOp>;

#[derive(Debug, Clone)]
pub struct DataTree {
    /// Persistent: a snapshot clones this map in O(1) and converts it on another
    /// thread, while writes continue and copy only the nodes they touch.
    nodes: PersistentMap<String, Node>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    /// Approximate bytes of paths and data, for `mntr`.
    data_size: usize,
    /// Every distinct ACL once: nearly all nodes share a handful, so nodes hold an `Arc`
    /// to the shared copy instead of their own (as ZooKeeper's ReferenceCountedACLCache).
    acls: HashMap<Vec<Acl>, Arc<Vec<Acl>>>,
    /// The paths with a quota: those with a `zookeeper_limits` node under
    /// `/zookeeper/quota` (ZooKeeper's `pTrie`). Derived from the nodes, so never
    /// persisted: rebuilt by `setup_quotas` after a snapshot is loaded.
    quotas: BTreeSet<String>,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A fresh tree as ZooKeeper 3.8 has it: `/`, `/zookeeper`, `/zookeeper/quota` and
    /// `/zookeeper/config`, all with zeroed stats.
    pub fn new() -> DataTree {
        let mut t = DataTree {
            nodes: PersistentMap::new(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            data_size: 0,
            acls: HashMap::new(),
            quotas: BTreeSet::new(),
        };
        let open = Arc::new(Acl::world_all());
        let mk = |acl: &Arc<Vec<Acl>>, children: &[&str]| Node {
            data: Some(Vec::new()),
            acl: acl.clone(),
            stat: NodeStat::default(),
            children: children.iter().map(|s| s.to_string()).collect(),
        };
        t.put("/".into(), Some(mk(&open, &["zookeeper"])));
        t.put("/zookeeper".into(), Some(mk(&open, &["config", "quota"])));
        t.put("/zookeeper/quota".into(), Some(mk(&open, &[])));
        let mut config = mk(&Arc::new(Acl::world_read()), &[]);
        // ZooKeeper creates the config node with aversion -1.
        config.stat.aversion = -1;
        t.put(CONFIG_NODE.into(), Some(config));
        t
    }

    /// An empty tree (for loading a snapshot).
    pub fn empty() -> DataTree {
        DataTree {
            nodes: PersistentMap::new(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            data_size: 0,
            acls: HashMap::new(),
            quotas: BTreeSet::new(),
        }
    }

    /// Replaces `/zookeeper/config`'s data with an ensemble's membership, set from the
    /// configuration. As ZooKeeper's `initConfigInZKDatabase` does, the data version
    /// becomes -1 and mzxid the membership's version (its `version=` line, hex).
    pub fn set_config_data(&mut self, data: Vec<u8>) {
        if let Some(mut n) = self.nodes.get(CONFIG_NODE).cloned() {
            self.data_size = self.data_size - n.data_len() + data.len();
            n.stat.version = -1;
            if let Some(v) = config_version(&data) {
                n.stat.mzxid = v;
            }
            n.data = Some(data);
            self.nodes.insert(CONFIG_NODE.into(), n);
        }
    }

    /// `/zookeeper/config`'s text: the membership (lossy UTF-8; empty when unset).
    pub fn config_text(&self) -> String {
        self.get(CONFIG_NODE)
            .and_then(|n| n.data.as_deref())
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .unwrap_or_default()
    }

    /// The shared copy of an ACL (unused entries are kept: the set of distinct ACLs in a
    /// tree is small).
    pub fn intern_acl(&mut self, acl: &[Acl]) -> Arc<Vec<Acl>> {
        if let Some(a) = self.acls.get(acl) {
            return a.clone();
        }
        let a = Arc::new(acl.to_vec());
        self.acls.insert(acl.to_vec(), a.clone());
        a
    }

    /// The whole node map, shared: O(1), and later writes copy only what they touch.
    pub fn persistent_nodes(&self) -> PersistentNodes {
        self.nodes.clone()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn data_size(&self) -> usize {
        self.data_size
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    pub fn ephemerals_of(&self, session: i64) -> impl Iterator<Item = &String> {
        self.ephemerals.get(&session).into_iter().flatten()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    pub fn ephemeral_sessions(&self) -> impl Iterator<Item = (&i64, &BTreeSet<String>)> {
        self.ephemerals.iter()
    }

    pub fn containers(&self) -> &BTreeSet<String> {
        &self.containers
    }

    pub fn ttls(&self) -> &BTreeSet<String> {
        &self.ttls
    }

    /// Number of nodes below `path` (not counting it).
    pub fn descendants(&self, path: &str) -> usize {
        let mut count = 0;
        let mut stack = vec![path.to_owned()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(&p) {
                for c in &n.children {
                    count += 1;
                    stack.push(path::join(&p, c));
                }
            }
        }
        count
    }

    /// Replaces (or removes, with `None`) the node at `path`, keeping the indexes in step.
    /// Returns what was there. Every mutation goes through here.
    pub fn put(&mut self, path: String, node: Option<Node>) -> Option<Node> {
        // Un-index the old value before indexing the new one: both may name the same
        // index entry (a container updated in place).
        let Some(n) = node else {
            let old = self.nodes.remove(&path);
            if let Some(o) = &old {
                self.index(&path, o.data_len(), o.stat.ephemeral_owner, false);
            }
            return old;
        };
        // A create or a replacement: one insert, not a remove then an insert (each walks
        // the persistent map copying what it shares with a snapshot or the leader's
        // speculative tree; a remove of a path that is not there copies as much).
        if let Some((len, owner)) = self
            .nodes
            .get(&path)
            .map(|o| (o.data_len(), o.stat.ephemeral_owner))
        {
            self.index(&path, len, owner, false);
        }
        self.index(&path, n.data_len(), n.stat.ephemeral_owner, true);
        self.nodes.insert(path, n)
    }

    fn index(&mut self, path: &str, data_len: usize, owner: i64, add: bool) {
        let size = path.len() + data_len;
        if add {
            self.data_size += size;
        } else {
            self.data_size = self.data_size.saturating_sub(size);
        }
        let set = if owner == CONTAINER_OWNER {
            &mut self.containers
        } else if owner_ttl(owner).is_some() {
            &mut self.ttls
        } else if owner != 0 {
            self.ephemerals.entry(owner).or_default()
        } else {
            return;
        };
        if add {
            set.insert(path.to_owned());
        } else {
            set.remove(path);
            if is_session_owner(owner) && self.ephemerals.get(&owner).is_some_and(|s| s.is_empty())
            {
                self.ephemerals.remove(&owner);
            }
        }
    }

    /// Takes back the changes of an aborted multi, newest first.
    pub fn rollback(&mut self, undo: Undo) {
        for op in undo.into_iter().rev() {
            match op {
                UndoOp::Created {
                    path: p,
                    parent,
                    cversion,
                    pzxid,
                } => {
                    if let Some(gone) = self.put(p.clone(), None) {
                        self.quota_on_delete(&p, gone.data_len());
                    }
                    if let Some(par) = self.nodes.get_mut(&parent) {
                        par.children.remove(path::name(&p));
                        par.stat.cversion = cversion;
                        par.stat.pzxid = pzxid;
                    }
                }
                UndoOp::Deleted {
                    path: p,
                    node,
                    parent,
                    pzxid,
                } => {
                    if let Some(par) = self.nodes.get_mut(&parent) {
                        par.children.insert(path::name(&p).to_owned());
                        par.stat.pzxid = pzxid;
                    }
                    self.put(p.clone(), Some(node));
                    self.quota_on_create(&p);
                }
                UndoOp::DataSet {
                    path: p,
                    data,
                    stat,
                } => {
                    if let Some((old, _)) = self.replace_data(&p, data, stat) {
                        self.quota_on_set(&p, old.as_ref().map_or(0, |d| d.len()));
                    }
                }
                UndoOp::AclSet { path: p, acl, stat } => {
                    if let Some(n) = self.nodes.get_mut(&p) {
                        n.acl = acl;
                        n.stat = stat;
                    }
                }
            }
        }
    }

    /// Swaps a node's data and stat in place, keeping the size estimate right; returns
    /// the previous data and stat.
    fn replace_data(
        &mut self,
        p: &str,
        data: Option<Vec<u8>>,
        stat: NodeStat,
    ) -> Option<(Option<Vec<u8>>, NodeStat)> {
        let n = self.nodes.get_mut(p)?;
        let old_len = n.data_len();
        let old = std::mem::replace(&mut n.data, data);
        let new_len = n.data_len();
        let old_stat = std::mem::replace(&mut n.stat, stat);
        self.data_size = (self.data_size + new_len).saturating_sub(old_len);
        Some((old, old_stat))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        p: &str,
        data: Option<Vec<u8>>,
        acl: Arc<Vec<Acl>>,
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
        undo: Option<&mut Undo>,
        triggers: &mut Vec<Trigger>,
    ) {
        let Some(parent_path) = path::parent(p) else {
            return;
        };
        let Some(parent) = self.nodes.get_mut(parent_path) else {
            return;
        };
        if let Some(u) = undo {
            u.push(UndoOp::Created {
                path: p.to_owned(),
                parent: parent_path.to_owned(),
                cversion: parent.stat.cversion,
                pzxid: parent.stat.pzxid,
            });
        }
        parent.children.insert(path::name(p).to_owned());
        if parent_cversion > parent.stat.cversion {
            parent.stat.cversion = parent_cversion;
            parent.stat.pzxid = zxid;
        }
        let stat = NodeStat {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            ephemeral_owner: owner,
            ..Default::default()
        };
        let parent_acl = parent.acl.clone();
        self.put(
            p.to_owned(),
            Some(Node {
                data,
                acl: acl.clone(),
                stat,
                children: OrdSet::new(),
            }),
        );
        self.quota_on_create(p);
        triggers.push(Trigger::Created(p.to_owned(), acl));
        triggers.push(Trigger::ChildrenChanged(parent_path.to_owned(), parent_acl));
    }

    pub fn delete(
        &mut self,
        p: &str,
        zxid: i64,
        undo: Option<&mut Undo>,
        triggers: &mut Vec<Trigger>,
    ) {
        let Some(parent_path) = path::parent(p) else {
            return;
        };
        let Some(node) = self.put(p.to_owned(), None) else {
            return;
        };
        self.quota_on_delete(p, node.data_len());
        let mut prev_pzxid = 0;
        let mut parent_acl = Arc::default();
        if let Some(parent) = self.nodes.get_mut(parent_path) {
            prev_pzxid = parent.stat.pzxid;
            parent_acl = parent.acl.clone();
            parent.children.remove(path::name(p));
            if zxid > parent.stat.pzxid {
                parent.stat.pzxid = zxid;
            }
        }
        let acl = node.acl.clone();
        if let Some(u) = undo {
            u.push(UndoOp::Deleted {
                path: p.to_owned(),
                node,
                parent: parent_path.to_owned(),
                pzxid: prev_pzxid,
            });
        }
        triggers.push(Trigger::Deleted(p.to_owned(), acl));
        triggers.push(Trigger::ChildrenChanged(parent_path.to_owned(), parent_acl));
    }

    #[allow(clippy::too_many_arguments)]
    pub fn set_data(
        &mut self,
        p: &str,
        data: Option<Vec<u8>>,
        version: i32,
        zxid: i64,
        time: i64,
        undo: Option<&mut Undo>,
        triggers: &mut Vec<Trigger>,
    ) {
        let Some(n) = self.nodes.get(p) else { return };
        let acl = n.acl.clone();
        let stat = NodeStat {
            version,
            mzxid: zxid,
            mtime: time,
            ..n.stat
        };
        if let Some((old, old_stat)) = self.replace_data(p, data, stat) {
            self.quota_on_set(p, old.as_ref().map_or(0, |d| d.len()));
            if let Some(u) = undo {
                u.push(UndoOp::DataSet {
                    path: p.to_owned(),
                    data: old,
                    stat: old_stat,
                });
            }
        }
        triggers.push(Trigger::DataChanged(p.to_owned(), acl));
    }

    // ------------------------------------------------------------------ quotas
    //
    // ZooKeeper keeps, for every path with a quota, the node count and data bytes of its
    // subtree in `/zookeeper/quota<path>/zookeeper_stats` ("count=N,bytes=M"), updated in
    // place (no zxid, no version, no watch) by every create, delete and setData below
    // the path. Enforcement is not here: only the statistics `listquota` shows.

    /// Whether `p` names a quota node (`/zookeeper/quota<path>/<leaf>`); the quota's path.
    fn quota_target<'a>(p: &'a str, leaf: &str) -> Option<&'a str> {
        let parent = path::parent(p)?;
        let target = parent.strip_prefix(QUOTA_ROOT)?;
        (path::name(p) == leaf && target.starts_with('/')).then_some(target)
    }

    /// The deepest path at or above `p` with a quota (never `/`, as in ZooKeeper).
    fn quota_prefix(&self, p: &str) -> Option<String> {
        if self.quotas.is_empty() {
            return None;
        }
        let mut at = p;
        loop {
            if at != "/" && self.quotas.contains(at) {
                return Some(at.to_owned());
            }
            at = path::parent(at)?;
        }
    }

    /// Adds to the statistics of the quota at `target`.
    fn quota_add(&mut self, target: &str, count: i64, bytes: i64) {
        let stats_path = format!("{QUOTA_ROOT}{target}/{QUOTA_STATS}");
        let Some(n) = self.nodes.get(&stats_path) else {
            return;
        };
        let mut st = QuotaStats::parse(n.data.as_deref().unwrap_or_default());
        st.count = st.count.saturating_add(count);
        st.bytes = st.bytes.saturating_add(bytes);
        self.set_quota_stats(&stats_path, st.to_text());
    }

    /// Counts `target`'s subtree afresh into its statistics node.
    fn quota_recount(&mut self, target: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut stack = vec![target.to_owned()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(&p) {
                count += 1;
                bytes += n.data_len() as i64;
                stack.extend(n.children.iter().map(|c| path::join(&p, c)));
            }
        }
        let st = QuotaStats {
            count,
            bytes,
            rest: Vec::new(),
        };
        self.set_quota_stats(&format!("{QUOTA_ROOT}{target}/{QUOTA_STATS}"), st.to_text());
    }

    /// Rewrites a statistics node's data in place, stat untouched (as ZooKeeper does).
    fn set_quota_stats(&mut self, stats_path: &str, text: String) {
        if let Some(n) = self.nodes.get_mut(stats_path) {
            let old_len = n.data_len();
            n.data = Some(text.into_bytes());
            let new_len = n.data_len();
            self.data_size = (self.data_size + new_len).saturating_sub(old_len);
        }
    }

    fn quota_on_create(&mut self, p: &str) {
        if let Some(t) = Self::quota_target(p, QUOTA_LIMITS) {
            self.quotas.insert(t.to_owned());
        }
        if let Some(t) = Self::quota_target(p, QUOTA_STATS) {
            let t = t.to_owned();
            self.quota_recount(&t);
        }
        if let Some(prefix) = self.quota_prefix(p) {
            let bytes = self.nodes.get(p).map_or(0, |n| n.data_len()) as i64;
            self.quota_add(&prefix, 1, bytes);
        }
    }

    fn quota_on_delete(&mut self, p: &str, data_len: usize) {
        if let Some(t) = Self::quota_target(p, QUOTA_LIMITS) {
            self.quotas.remove(t);
        }
        if let Some(prefix) = self.quota_prefix(p) {
            self.quota_add(&prefix, -1, -(data_len as i64));
        }
    }

    fn quota_on_set(&mut self, p: &str, old_len: usize) {
        if let Some(prefix) = self.quota_prefix(p) {
            let new_len = self.nodes.get(p).map_or(0, |n| n.data_len());
            self.quota_add(&prefix, 0, new_len as i64 - old_len as i64);
        }
    }

    /// Rebuilds the quota index and recounts every quota's statistics, after the nodes
    /// were loaded from a snapshot (ZooKeeper's `setupQuota`).
    pub fn setup_quotas(&mut self) {
        self.quotas.clear();
        let prefix = format!("{QUOTA_ROOT}/");
        let targets: Vec<String> = self
            .nodes
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .filter_map(|p| Self::quota_target(p, QUOTA_LIMITS).map(str::to_owned))
            .collect();
        for t in targets {
            self.quota_recount(&t);
            self.quotas.insert(t);
        }
    }

    /// The paths with a quota.
    pub fn quota_paths(&self) -> impl Iterator<Item = &String> {
        self.quotas.iter()
    }

    pub fn set_acl(&mut self, p: &str, acl: Arc<Vec<Acl>>, aversion: i32, undo: Option<&mut Undo>) {
        let Some(n) = self.nodes.get_mut(p) else {
            return;
        };
        let old_stat = n.stat;
        let old_acl = std::mem::replace(&mut n.acl, acl);
        n.stat.aversion = aversion;
        if let Some(u) = undo {
            u.push(UndoOp::AclSet {
                path: p.to_owned(),
                acl: old_acl,
                stat: old_stat,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_delete_maintains_parent_and_indexes() {
        let mut t = DataTree::new();
        let acl = Arc::new(Acl::world_all());
        let mut trig = Vec::new();
        t.create(
            "/a",
            Some(b"x".to_vec()),
            acl.clone(),
            0,
            1,
            5,
            100,
            None,
            &mut trig,
        );
        t.create("/a/e", None, acl.clone(), 42, 1, 6, 101, None, &mut trig);
        assert_eq!(t.get("/").unwrap().stat.cversion, 1);
        assert_eq!(t.get("/a").unwrap().stat.pzxid, 6);
        assert_eq!(t.ephemerals_of(42).count(), 1);
        t.delete("/a/e", 7, None, &mut trig);
        assert_eq!(t.ephemerals_of(42).count(), 0);
        assert_eq!(
            t.get("/a").unwrap().stat.cversion,
            1,
            "stored cversion counts creates"
        );
        assert_eq!(
            t.get("/a").unwrap().full_stat().cversion,
            2,
            "clients see creates + deletes"
        );
        assert_eq!(t.descendants("/"), 4);
    }

    #[test]
    fn rollback_restores_everything() {
        let mut t = DataTree::new();
        let before = t.clone();
        let acl = Arc::new(Acl::world_all());
        let mut undo = Undo::new();
        let mut trig = Vec::new();
        t.create(
            "/c",
            None,
            acl.clone(),
            CONTAINER_OWNER,
            1,
            5,
            1,
            Some(&mut undo),
            &mut trig,
        );
        t.create(
            "/c/x",
            Some(vec![1]),
            acl,
            0,
            1,
            5,
            1,
            Some(&mut undo),
            &mut trig,
        );
        t.set_data("/c/x", Some(vec![2]), 1, 5, 2, Some(&mut undo), &mut trig);
        t.delete("/c/x", 5, Some(&mut undo), &mut trig);
        t.rollback(undo);
        assert_eq!(t.nodes, before.nodes);
        assert!(t.containers().is_empty());
    }

    #[test]
    fn updating_an_indexed_node_keeps_it_indexed() {
        let mut t = DataTree::new();
        let acl = Arc::new(Acl::world_all());
        let mut trig = Vec::new();
        t.create(
            "/c",
            None,
            acl.clone(),
            CONTAINER_OWNER,
            1,
            5,
            1,
            None,
            &mut trig,
        );
        t.create("/e", None, acl, 9, 2, 6, 1, None, &mut trig);
        t.set_data("/c", Some(vec![1]), 1, 7, 2, None, &mut trig);
        t.set_data("/e", Some(vec![1]), 1, 8, 2, None, &mut trig);
        assert!(t.containers().contains("/c"));
        assert_eq!(t.ephemerals_of(9).count(), 1);
    }

    fn mk(t: &mut DataTree, p: &str, data: &[u8], zxid: i64, undo: Option<&mut Undo>) {
        let acl = Arc::new(Acl::world_all());
        t.create(
            p,
            Some(data.to_vec()),
            acl,
            0,
            zxid as i32,
            zxid,
            1,
            undo,
            &mut Vec::new(),
        );
    }

    fn stats_of(t: &DataTree, target: &str) -> String {
        let p = format!("{QUOTA_ROOT}{target}/{QUOTA_STATS}");
        String::from_utf8(t.get(&p).unwrap().data.clone().unwrap()).unwrap()
    }

    /// What zkCli's `setquota -n 3 /q` does, then three one-byte children: ZooKeeper's
    /// `listquota /q` shows count=4,bytes=3.
    fn quota_tree() -> DataTree {
        let mut t = DataTree::new();
        mk(&mut t, "/q", b"", 1, None);
        mk(&mut t, "/zookeeper/quota/q", b"", 2, None);
        mk(
            &mut t,
            "/zookeeper/quota/q/zookeeper_limits",
            b"count=3,bytes=-1",
            3,
            None,
        );
        mk(
            &mut t,
            "/zookeeper/quota/q/zookeeper_stats",
            b"count=0,bytes=0",
            4,
            None,
        );
        t
    }

    #[test]
    fn quota_statistics_follow_creates_deletes_and_sets() {
        let mut t = quota_tree();
        assert_eq!(stats_of(&t, "/q"), "count=1,bytes=0");
        let stat_before = t.get("/zookeeper/quota/q/zookeeper_stats").unwrap().stat;
        for (i, c) in ["a", "b", "c"].iter().enumerate() {
            mk(&mut t, &format!("/q/{c}"), b"x", 10 + i as i64, None);
        }
        assert_eq!(stats_of(&t, "/q"), "count=4,bytes=3");
        t.set_data(
            "/q/a",
            Some(b"xyz".to_vec()),
            1,
            20,
            2,
            None,
            &mut Vec::new(),
        );
        assert_eq!(stats_of(&t, "/q"), "count=4,bytes=5");
        t.delete("/q/b", 21, None, &mut Vec::new());
        assert_eq!(stats_of(&t, "/q"), "count=3,bytes=4");
        // In place: no zxid, version or mtime of its own.
        assert_eq!(
            t.get("/zookeeper/quota/q/zookeeper_stats").unwrap().stat,
            stat_before
        );
        // Outside the quota: untouched.
        mk(&mut t, "/other", b"zz", 30, None);
        assert_eq!(stats_of(&t, "/q"), "count=3,bytes=4");
        // Removing the limits node ends the accounting.
        t.delete(
            "/zookeeper/quota/q/zookeeper_limits",
            31,
            None,
            &mut Vec::new(),
        );
        mk(&mut t, "/q/d", b"x", 32, None);
        assert_eq!(stats_of(&t, "/q"), "count=3,bytes=4");
    }

    #[test]
    fn quota_statistics_roll_back_with_a_multi() {
        let mut t = quota_tree();
        mk(&mut t, "/q/a", b"x", 10, None);
        let before = t.clone();
        let mut undo = Undo::new();
        mk(&mut t, "/q/b", b"yy", 11, Some(&mut undo));
        t.set_data(
            "/q/a",
            Some(b"xyz".to_vec()),
            1,
            11,
            2,
            Some(&mut undo),
            &mut Vec::new(),
        );
        t.delete("/q/b", 11, Some(&mut undo), &mut Vec::new());
        t.delete("/q/a", 11, Some(&mut undo), &mut Vec::new());
        assert_eq!(stats_of(&t, "/q"), "count=1,bytes=0");
        t.rollback(undo);
        assert_eq!(t.nodes, before.nodes);
        assert_eq!(stats_of(&t, "/q"), "count=2,bytes=1");
    }

    #[test]
    fn quotas_are_rebuilt_after_loading() {
        let mut t = quota_tree();
        mk(&mut t, "/q/a", b"x", 10, None);
        // A snapshot whose statistics are stale: loading recounts them.
        t.set_quota_stats(
            "/zookeeper/quota/q/zookeeper_stats",
            "count=9,bytes=9".into(),
        );
        t.quotas.clear();
        t.setup_quotas();
        assert_eq!(t.quota_paths().collect::<Vec<_>>(), vec!["/q"]);
        assert_eq!(stats_of(&t, "/q"), "count=2,bytes=1");
        mk(&mut t, "/q/b", b"x", 11, None);
        assert_eq!(stats_of(&t, "/q"), "count=3,bytes=2");
    }

    #[test]
    fn quota_stats_text() {
        let st = QuotaStats::parse(b"count=3,bytes=-1;countHardLimit=5,junk,x=y");
        assert_eq!((st.count, st.bytes), (3, -1));
        assert_eq!(st.to_text(), "count=3,bytes=-1,countHardLimit=5");
        assert_eq!(QuotaStats::parse(b"").to_text(), "count=-1,bytes=-1");
        assert_eq!(
            QuotaStats::parse(b"bytes=,count=2").to_text(),
            "count=2,bytes=-1"
        );
    }

    /// A client may write a quota statistics node itself; every later write under the
    /// quota's path parses it. 200,000 distinct keys (about 2 MB) once took minutes
    /// (a linear search per key); now it is linear. Repeated keys keep their first place
    /// and their last value.
    #[test]
    fn quota_stats_with_many_keys_parse_in_linear_time() {
        let mut text = String::from("count=1,a=1,bytes=2,");
        for i in 0..200_000 {
            text.push_str(&format!("k{i}=,"));
        }
        text.push_str("a=7");
        let started = std::time::Instant::now();
        let st = QuotaStats::parse(text.as_bytes());
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
        assert_eq!(st.rest.len(), 200_001);
        assert_eq!(st.rest[0], ("a".to_string(), 7));
        assert_eq!(st.rest[200_000], ("k199999".to_string(), -1));
        assert_eq!((st.count, st.bytes), (1, 2));
    }

    #[test]
    fn config_data_takes_version_minus_one_and_the_membership_version() {
        let mut t = DataTree::new();
        t.set_config_data(b"server.1=a:1:2:participant;a:3\nversion=100000000".to_vec());
        let n = t.get(CONFIG_NODE).unwrap();
        assert_eq!((n.stat.version, n.stat.mzxid), (-1, 0x1_0000_0000));
    }

    #[test]
    fn ttl_owner_encoding() {
        let o = ttl_owner(5000);
        assert_eq!(owner_ttl(o), Some(5000));
        assert!(!is_session_owner(o));
        assert_eq!(owner_ttl(CONTAINER_OWNER), None);
        assert!(is_session_owner(0x0123_4567_89ab));
    }
}
