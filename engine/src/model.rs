//! The data model every front-end serves: ZooKeeper's tree, its sessions and its
//! watches, and the one path by which a transaction changes them (`DataModel::apply`).
//! It knows nothing of connections, queues or the log: the standalone front-end applies
//! a write as soon as it is prepped, an ensemble member when it commits, and both
//! reach the model the same way. Loading from and viewing as a snapshot are here too.

use std::collections::HashMap;

use crate::config::EngineConfig;
use crate::path;
use crate::prep::{apply_error, apply_one, Applied};
use crate::session::{Session, Sessions};
use crate::snapshot::{SnapNodeRef, SnapSession, SnapshotView};
use crate::tree::{self, DataTree, Trigger};
use crate::txn::{Txn, TxnRecord};
use crate::watch::Watches;

pub struct DataModel {
    pub(crate) tree: DataTree,
    pub(crate) sessions: Sessions,
    /// Watches set by connections; a front-end fires them with the triggers that
    /// `apply` collects.
    pub(crate) watches: Watches,
    /// The zxid of the last transaction applied to the tree.
    pub(crate) last_zxid: i64,
}

impl DataModel {
    pub fn new(server_id: i64, now_ms: i64) -> DataModel {
        DataModel {
            tree: DataTree::new(),
            sessions: Sessions::new(server_id, now_ms),
            watches: Watches::default(),
            last_zxid: 0,
        }
    }

    /// Replaces the tree and the sessions with a snapshot's (watches stay: they are
    /// connections', re-checked as events fire), whatever form it is read from.
    pub(crate) fn load<'a>(
        &mut self,
        server_id: i64,
        now_ms: i64,
        last_zxid: i64,
        nodes: impl Iterator<Item = SnapNodeRef<'a>>,
        sessions: impl Iterator<Item = (i64, i32, Vec<u8>)>,
    ) {
        let mut tree = DataTree::empty();
        let mut children: HashMap<String, Vec<String>> = HashMap::new();
        let mut loaded = Vec::new();
        for n in nodes {
            if let Some(p) = path::parent(n.path) {
                children
                    .entry(p.to_owned())
                    .or_default()
                    .push(path::name(n.path).to_owned());
            }
            loaded.push(n);
        }
        for n in loaded {
            let node = tree::Node {
                data: n.data.map(|d| d.to_vec()),
                acl: tree.intern_acl(&n.acl),
                stat: n.stat,
                children: children
                    .remove(n.path)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            };
            tree.put(n.path.to_owned(), Some(node));
        }
        tree.setup_quotas();
        self.tree = tree;
        self.sessions = Sessions::new(server_id, now_ms);
        for (id, timeout_ms, password) in sessions {
            self.sessions.insert(Session {
                id,
                timeout_ms,
                password,
                expires_at: now_ms + timeout_ms as i64,
                conn: None,
                closing: false,
            });
        }
        self.last_zxid = last_zxid;
    }

    /// The tree and sessions as of `last_zxid`, consistent (taken between
    /// transactions). O(1) in the tree's size: the node map is persistent, so this
    /// shares it; writes that follow copy only the nodes they touch.
    pub fn snapshot_view(&self) -> SnapshotView {
        let mut sessions: Vec<SnapSession> = self
            .sessions
            .iter()
            .map(|s| SnapSession {
                id: s.id,
                timeout_ms: s.timeout_ms,
                password: s.password.clone(),
            })
            .collect();
        sessions.sort_by_key(|s| s.id);
        SnapshotView {
            last_zxid: self.last_zxid,
            nodes: self.tree.persistent_nodes(),
            sessions,
        }
    }

    /// The containers and TTL nodes due for deletion now (ContainerManager's rules).
    pub fn reap_candidates(&self, cfg: &EngineConfig, now_ms: i64) -> Vec<String> {
        let mut doomed = Vec::new();
        for p in self.tree.containers() {
            if let Some(n) = self.tree.get(p) {
                let never_used = cfg.container_never_used_ms;
                if n.children.is_empty()
                    && (n.stat.cversion > 0
                        || (never_used > 0 && now_ms - n.stat.mtime > never_used))
                {
                    doomed.push(p.clone());
                }
            }
        }
        for p in self.tree.ttls() {
            if let Some(n) = self.tree.get(p) {
                let ttl = tree::owner_ttl(n.stat.ephemeral_owner).unwrap_or(0);
                if n.children.is_empty() && ttl != 0 && now_ms - n.stat.mtime > ttl {
                    doomed.push(p.clone());
                }
            }
        }
        doomed
    }

    /// The one apply path, used live (standalone at prep, a member on commit) and in
    /// replay. The caller advances `last_zxid`. `triggers` collects the watch
    /// events it causes, for the front-end to fire.
    pub(crate) fn apply(
        &mut self,
        rec: &TxnRecord,
        now_ms: i64,
        triggers: &mut Vec<Trigger>,
    ) -> Applied {
        match &rec.txn {
            Txn::CreateSession {
                timeout_ms,
                password,
            } => {
                self.sessions.insert(Session {
                    id: rec.session,
                    timeout_ms: *timeout_ms,
                    password: password.clone(),
                    expires_at: now_ms + *timeout_ms as i64,
                    conn: None,
                    closing: false,
                });
                Applied::Session
            }
            Txn::CloseSession => {
                let paths: Vec<String> = self.tree.ephemerals_of(rec.session).cloned().collect();
                for p in paths {
                    self.tree.delete(&p, rec.zxid, None, triggers);
                }
                self.sessions.remove(rec.session);
                Applied::Session
            }
            Txn::Multi(txns) => {
                let failed = txns.iter().any(|t| matches!(t, Txn::Error { .. }));
                Applied::Multi(
                    txns.iter()
                        .map(|t| {
                            if failed {
                                apply_error(t)
                            } else {
                                apply_one(&mut self.tree, t, rec.zxid, rec.time, None, triggers)
                            }
                        })
                        .collect(),
                )
            }
            t => apply_one(&mut self.tree, t, rec.zxid, rec.time, None, triggers),
        }
    }
}
