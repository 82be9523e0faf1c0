//! Watches: who is told about which change. Two tables as in ZooKeeper: the data table
//! (getData / exists watches, persistent and persistent-recursive watches) and the child
//! table (getChildren watches, persistent watches). Standard watches fire once;
//! persistent ones stay until removed or their connection closes. Watches belong to a
//! connection, not a session: a reconnecting client re-arms them with setWatches.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::path;
use crate::proto::event;

pub type ConnId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standard,
    Persistent,
    PersistentRecursive,
}

#[derive(Debug, Default)]
pub struct Table {
    by_path: HashMap<String, BTreeMap<ConnId, Mode>>,
    by_conn: HashMap<ConnId, HashSet<String>>,
    recursive: usize,
}

impl Table {
    pub fn add(&mut self, path: &str, conn: ConnId, mode: Mode) {
        let entry = self.by_path.entry(path.to_owned()).or_default();
        match entry.get(&conn) {
            // A one-shot watch never downgrades a persistent one on the same path.
            Some(Mode::Persistent | Mode::PersistentRecursive) if mode == Mode::Standard => return,
            Some(Mode::PersistentRecursive) => self.recursive -= 1,
            _ => {}
        }
        if mode == Mode::PersistentRecursive {
            self.recursive += 1;
        }
        entry.insert(conn, mode);
        self.by_conn
            .entry(conn)
            .or_default()
            .insert(path.to_owned());
    }

    /// Removes the watch of `conn` on `path` if its mode is one of `modes`.
    pub fn remove(&mut self, path: &str, conn: ConnId, modes: &[Mode]) -> bool {
        let Some(entry) = self.by_path.get_mut(path) else {
            return false;
        };
        match entry.get(&conn) {
            Some(m) if modes.contains(m) => {
                if *m == Mode::PersistentRecursive {
                    self.recursive -= 1;
                }
                entry.remove(&conn);
                if entry.is_empty() {
                    self.by_path.remove(path);
                }
                if let Some(s) = self.by_conn.get_mut(&conn) {
                    s.remove(path);
                }
                true
            }
            _ => false,
        }
    }

    pub fn contains(&self, path: &str, conn: ConnId, modes: &[Mode]) -> bool {
        self.by_path
            .get(path)
            .and_then(|e| e.get(&conn))
            .is_some_and(|m| modes.contains(m))
    }

    pub fn remove_conn(&mut self, conn: ConnId) {
        if let Some(paths) = self.by_conn.remove(&conn) {
            for p in paths {
                if let Some(e) = self.by_path.get_mut(&p) {
                    if e.remove(&conn) == Some(Mode::PersistentRecursive) {
                        self.recursive -= 1;
                    }
                    if e.is_empty() {
                        self.by_path.remove(&p);
                    }
                }
            }
        }
    }

    /// The connections to tell about an event of `kind` on `path`; one-shot watches fire
    /// and are removed. Recursive watches on the path or any ancestor see every event but
    /// child-list changes.
    pub fn trigger(
        &mut self,
        p: &str,
        kind: i32,
        suppress: &HashSet<ConnId>,
        out: &mut Vec<ConnId>,
    ) {
        let mut fired = Vec::new();
        if let Some(entry) = self.by_path.get_mut(p) {
            entry.retain(|conn, mode| match mode {
                Mode::PersistentRecursive => {
                    if kind != event::NODE_CHILDREN_CHANGED {
                        fired.push(*conn);
                    }
                    true
                }
                Mode::Persistent => {
                    fired.push(*conn);
                    true
                }
                Mode::Standard => {
                    fired.push(*conn);
                    false
                }
            });
            if entry.is_empty() {
                self.by_path.remove(p);
            }
        }
        for conn in &fired {
            if !self.by_path.get(p).is_some_and(|e| e.contains_key(conn)) {
                if let Some(s) = self.by_conn.get_mut(conn) {
                    s.remove(p);
                }
            }
        }
        if self.recursive > 0 && kind != event::NODE_CHILDREN_CHANGED {
            let mut cur = path::parent(p);
            while let Some(anc) = cur {
                if let Some(entry) = self.by_path.get(anc) {
                    fired.extend(
                        entry
                            .iter()
                            .filter(|(_, m)| **m == Mode::PersistentRecursive)
                            .map(|(c, _)| *c),
                    );
                }
                cur = path::parent(anc);
            }
        }
        let mut seen = HashSet::new();
        for c in fired {
            if !suppress.contains(&c) && seen.insert(c) {
                out.push(c);
            }
        }
    }

    /// Whether any connection watches `path` in this table.
    pub fn watches_path(&self, path: &str) -> bool {
        self.by_path.get(path).is_some_and(|e| !e.is_empty())
    }

    pub fn watch_count(&self) -> usize {
        self.by_path.values().map(|e| e.len()).sum()
    }

    pub fn path_count(&self) -> usize {
        self.by_path.len()
    }

    pub fn paths_of(&self, conn: ConnId) -> impl Iterator<Item = &String> {
        self.by_conn.get(&conn).into_iter().flatten()
    }

    pub fn conns(&self) -> impl Iterator<Item = (&ConnId, &HashSet<String>)> {
        self.by_conn.iter().filter(|(_, s)| !s.is_empty())
    }

    pub fn by_path(&self) -> impl Iterator<Item = (&String, &BTreeMap<ConnId, Mode>)> {
        self.by_path.iter()
    }
}

/// Both tables, and the ZooKeeper event each tree change fires.
#[derive(Debug, Default)]
pub struct Watches {
    pub data: Table,
    pub child: Table,
}

impl Watches {
    pub fn remove_conn(&mut self, conn: ConnId) {
        self.data.remove_conn(conn);
        self.child.remove_conn(conn);
    }

    pub fn count(&self) -> usize {
        self.data.watch_count() + self.child.watch_count()
    }

    /// Events (connection, event type, path) for one tree change, in ZooKeeper's order.
    pub fn fire(&mut self, trig: &crate::tree::Trigger, out: &mut Vec<(ConnId, i32, String)>) {
        use crate::tree::Trigger::*;
        let none = HashSet::new();
        let mut conns = Vec::new();
        match trig {
            Created(p, _) => {
                self.data.trigger(p, event::NODE_CREATED, &none, &mut conns);
                out.extend(conns.drain(..).map(|c| (c, event::NODE_CREATED, p.clone())));
            }
            DataChanged(p, _) => {
                self.data
                    .trigger(p, event::NODE_DATA_CHANGED, &none, &mut conns);
                out.extend(
                    conns
                        .drain(..)
                        .map(|c| (c, event::NODE_DATA_CHANGED, p.clone())),
                );
            }
            Deleted(p, _) => {
                self.data.trigger(p, event::NODE_DELETED, &none, &mut conns);
                let told: HashSet<ConnId> = conns.iter().copied().collect();
                out.extend(conns.drain(..).map(|c| (c, event::NODE_DELETED, p.clone())));
                self.child
                    .trigger(p, event::NODE_DELETED, &told, &mut conns);
                out.extend(conns.drain(..).map(|c| (c, event::NODE_DELETED, p.clone())));
            }
            ChildrenChanged(p, _) => {
                self.child
                    .trigger(p, event::NODE_CHILDREN_CHANGED, &none, &mut conns);
                out.extend(
                    conns
                        .drain(..)
                        .map(|c| (c, event::NODE_CHILDREN_CHANGED, p.clone())),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Trigger;

    #[test]
    fn standard_fires_once_persistent_stays() {
        let mut w = Watches::default();
        w.data.add("/a", 1, Mode::Standard);
        w.data.add("/a", 2, Mode::Persistent);
        w.child.add("/a", 2, Mode::Persistent);
        let mut out = Vec::new();
        w.fire(
            &Trigger::DataChanged("/a".into(), Default::default()),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        out.clear();
        w.fire(
            &Trigger::DataChanged("/a".into(), Default::default()),
            &mut out,
        );
        assert_eq!(out, vec![(2, event::NODE_DATA_CHANGED, "/a".to_string())]);
        out.clear();
        w.fire(&Trigger::Deleted("/a".into(), Default::default()), &mut out);
        assert_eq!(
            out.len(),
            1,
            "persistent watcher told once about a delete: {out:?}"
        );
    }

    #[test]
    fn recursive_sees_descendants_but_not_child_events() {
        let mut w = Watches::default();
        w.data.add("/a", 7, Mode::PersistentRecursive);
        let mut out = Vec::new();
        w.fire(
            &Trigger::Created("/a/b/c".into(), Default::default()),
            &mut out,
        );
        w.fire(
            &Trigger::ChildrenChanged("/a/b".into(), Default::default()),
            &mut out,
        );
        assert_eq!(out, vec![(7, event::NODE_CREATED, "/a/b/c".to_string())]);
        w.remove_conn(7);
        assert_eq!(w.data.recursive, 0);
        assert_eq!(w.count(), 0);
    }
}
