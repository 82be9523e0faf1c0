//! The snapshot schema: what a snapshot of the state holds (every znode with its stat
//! and ACL, every session, the zxid they are consistent at) as rkyv types, the
//! copy-on-write [`SnapshotView`] the engine hands to whoever writes one, and the
//! validation of an archive read back.
//!
//! The bytes of an archive are all this module produces and accepts. Keeping them
//! (files, trailer, checksum, fsync, fallback to an older file) is keel-wal's
//! `SnapshotStore`, which treats them as an opaque blob tagged with [`FORMAT`]; a
//! leader sends a lagging follower the same bytes in a SNAP.
//!
//! The archive uses rkyv's default format (little-endian, 32-bit relative pointers, so
//! an archive is limited to 2 GiB). rkyv's validation catches damaged offsets and
//! lengths, not a flipped byte inside a string, which is why the store checksums the
//! whole body. Changing any type here, or rkyv's format features, changes the format
//! and must bump [`FORMAT`].

use crate::proto::{Acl, Id};
use crate::tree::{self, NodeStat};

/// Version of the archive layout, recorded with every stored snapshot and required
/// when one is read back.
pub const FORMAT: u32 = 1;

/// The tree and sessions, consistent at `last_zxid` (built at a transaction boundary).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotData {
    pub last_zxid: u64,
    /// Sorted by path, so that two snapshots of the same state are the same bytes.
    pub nodes: Vec<SnapNode>,
    /// Sorted by session id.
    pub sessions: Vec<SnapSession>,
}

/// One znode: the tree's own [`NodeStat`] (zxid and time fields are `i64` as in
/// ZooKeeper's `Stat`; `ephemeral_owner` also carries the container and TTL markers).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapNode {
    pub path: String,
    /// `None` for a node whose data is null (distinct from empty, as in ZooKeeper).
    pub data: Option<Vec<u8>>,
    pub acl: Vec<SnapAcl>,
    pub stat: NodeStat,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapAcl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapSession {
    pub id: i64,
    pub timeout_ms: i32,
    pub password: Vec<u8>,
}

/// A snapshot that rkyv could not encode (in practice: one past the format's 2 GiB).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot at zxid {last_zxid:#x} could not be encoded: {reason}")]
pub struct EncodeError {
    pub last_zxid: u64,
    pub reason: String,
}

impl SnapshotData {
    /// The archive's bytes: what a snapshot file stores and a SNAP carries.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        rkyv::to_bytes::<rkyv::rancor::Error>(self)
            .map(|b| b.into_vec())
            .map_err(|e| EncodeError {
                last_zxid: self.last_zxid,
                reason: e.to_string(),
            })
    }

    /// Validates and reads an archive made by [`SnapshotData::to_bytes`]. The bytes are
    /// copied into an aligned buffer first, so any slice will do.
    pub fn from_bytes(bytes: &[u8]) -> Result<SnapshotData, String> {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        rkyv::from_bytes::<SnapshotData, rkyv::rancor::Error>(&aligned)
            .map_err(|e| format!("snapshot archive failed validation: {e}"))
    }
}

/// Validates an archive in place, without copying it: what a restart does with a
/// snapshot file's mapped body. `body` must be 16-byte aligned (a mapping is
/// page-aligned). `named_zxid`: the zxid the archive was stored under, which it must
/// hold.
pub fn access(body: &[u8], named_zxid: Option<u64>) -> Result<&ArchivedSnapshotData, String> {
    let archived = rkyv::access::<ArchivedSnapshotData, rkyv::rancor::Error>(body)
        .map_err(|e| format!("archive failed validation: {e}"))?;
    let got = archived.last_zxid.to_native();
    match named_zxid {
        Some(named) if named != got => Err(format!(
            "file is named for zxid {named:#x} but holds zxid {got:#x}"
        )),
        _ => Ok(archived),
    }
}

/// [`access`] for bytes of any alignment (copied into an aligned buffer first).
pub fn with_archived<R>(
    bytes: &[u8],
    f: impl FnOnce(&ArchivedSnapshotData) -> R,
) -> Result<R, String> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    access(&aligned, None).map(f)
}

/// One node as a snapshot holds it, borrowed from whichever form it was read in.
pub(crate) struct SnapNodeRef<'a> {
    pub path: &'a str,
    pub data: Option<&'a [u8]>,
    pub acl: Vec<Acl>,
    pub stat: NodeStat,
}

impl SnapshotData {
    pub(crate) fn node_refs(&self) -> impl Iterator<Item = SnapNodeRef<'_>> {
        self.nodes.iter().map(|n| SnapNodeRef {
            path: &n.path,
            data: n.data.as_deref(),
            acl: n
                .acl
                .iter()
                .map(|a| Acl {
                    perms: a.perms,
                    id: Id::new(&a.scheme, &a.id),
                })
                .collect(),
            stat: n.stat,
        })
    }
}

impl ArchivedSnapshotData {
    pub(crate) fn node_refs(&self) -> impl Iterator<Item = SnapNodeRef<'_>> {
        self.nodes.iter().map(|n| SnapNodeRef {
            path: n.path.as_str(),
            data: n.data.as_ref().map(|d| d.as_slice()),
            acl: n
                .acl
                .iter()
                .map(|a| Acl {
                    perms: a.perms.to_native(),
                    id: Id::new(a.scheme.as_str(), a.id.as_str()),
                })
                .collect(),
            stat: rkyv::deserialize::<NodeStat, rkyv::rancor::Infallible>(&n.stat)
                .unwrap_or_else(|e| match e {}),
        })
    }
}

/// A consistent, copy-on-write view of the state for a snapshot: taken in O(1) on the
/// engine thread, turned into the archive's form (O(n)) on the snapshot thread (or,
/// for a follower that needs the leader's state, on that follower's link thread).
pub struct SnapshotView {
    pub(crate) last_zxid: i64,
    pub(crate) nodes: tree::PersistentNodes,
    pub(crate) sessions: Vec<SnapSession>,
}

impl std::fmt::Debug for SnapshotView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotView")
            .field("last_zxid", &format_args!("0x{:x}", self.last_zxid))
            .field("nodes", &self.nodes.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl SnapshotView {
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn into_data(self) -> SnapshotData {
        let mut nodes: Vec<SnapNode> = self
            .nodes
            .iter()
            .map(|(p, n)| SnapNode {
                path: p.clone(),
                data: n.data.clone(),
                acl: n
                    .acl
                    .iter()
                    .map(|a| SnapAcl {
                        perms: a.perms,
                        scheme: a.id.scheme.clone(),
                        id: a.id.id.clone(),
                    })
                    .collect(),
                stat: n.stat,
            })
            .collect();
        nodes.sort_by(|a, b| a.path.cmp(&b.path));
        SnapshotData {
            last_zxid: self.last_zxid as u64,
            nodes,
            sessions: self.sessions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SnapshotData {
        SnapshotData {
            last_zxid: 42,
            nodes: vec![SnapNode {
                path: "/a".into(),
                data: Some(vec![1, 2]),
                acl: vec![SnapAcl {
                    perms: 31,
                    scheme: "world".into(),
                    id: "anyone".into(),
                }],
                stat: NodeStat {
                    czxid: 1,
                    mzxid: 2,
                    pzxid: 3,
                    ctime: 4,
                    mtime: 5,
                    version: 6,
                    cversion: 7,
                    aversion: 8,
                    ephemeral_owner: 9,
                },
            }],
            sessions: vec![SnapSession {
                id: 10,
                timeout_ms: 11,
                password: vec![12; 16],
            }],
        }
    }

    #[test]
    fn bytes_round_trip_and_garbage_is_refused() {
        let snap = sample();
        let b = snap.to_bytes().unwrap();
        assert_eq!(SnapshotData::from_bytes(&b).unwrap(), snap);
        assert!(SnapshotData::from_bytes(&b[..b.len() / 2]).is_err());
        assert_eq!(with_archived(&b, |a| a.nodes.len()), Ok(1));
        assert!(with_archived(&b[..b.len() / 2], |_| ()).is_err());
    }

    #[test]
    fn an_archive_must_hold_the_zxid_it_is_stored_under() {
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(&sample().to_bytes().unwrap());
        assert!(access(&aligned, Some(42)).is_ok());
        assert!(access(&aligned, None).is_ok());
        let Err(e) = access(&aligned, Some(43)) else {
            panic!("a misnamed archive was accepted")
        };
        assert!(e.contains("named for zxid 0x2b but holds zxid 0x2a"), "{e}");
    }

    #[test]
    fn archived_nodes_read_as_the_owned_ones() {
        let snap = sample();
        let b = snap.to_bytes().unwrap();
        let from_archive = with_archived(&b, |a| {
            a.node_refs()
                .map(|n| (n.path.to_owned(), n.data.map(<[u8]>::to_vec), n.acl, n.stat))
                .collect::<Vec<_>>()
        })
        .unwrap();
        let owned: Vec<_> = snap
            .node_refs()
            .map(|n| (n.path.to_owned(), n.data.map(<[u8]>::to_vec), n.acl, n.stat))
            .collect();
        assert_eq!(from_archive, owned);
    }

    /// Format 1 was first written with the stat's fields inline in the node. Nesting
    /// [`NodeStat`] must not have changed a byte, or files written before would no
    /// longer load.
    #[test]
    fn the_nested_stat_is_byte_for_byte_format_1() {
        #[derive(rkyv::Archive, rkyv::Serialize)]
        struct FlatData {
            last_zxid: u64,
            nodes: Vec<FlatNode>,
            sessions: Vec<SnapSession>,
        }
        #[derive(rkyv::Archive, rkyv::Serialize)]
        struct FlatNode {
            path: String,
            data: Option<Vec<u8>>,
            acl: Vec<SnapAcl>,
            czxid: i64,
            mzxid: i64,
            pzxid: i64,
            ctime: i64,
            mtime: i64,
            version: i32,
            cversion: i32,
            aversion: i32,
            ephemeral_owner: i64,
        }
        let snap = sample();
        let flat = FlatData {
            last_zxid: snap.last_zxid,
            nodes: snap
                .nodes
                .iter()
                .map(|n| FlatNode {
                    path: n.path.clone(),
                    data: n.data.clone(),
                    acl: n.acl.clone(),
                    czxid: n.stat.czxid,
                    mzxid: n.stat.mzxid,
                    pzxid: n.stat.pzxid,
                    ctime: n.stat.ctime,
                    mtime: n.stat.mtime,
                    version: n.stat.version,
                    cversion: n.stat.cversion,
                    aversion: n.stat.aversion,
                    ephemeral_owner: n.stat.ephemeral_owner,
                })
                .collect(),
            sessions: snap.sessions.clone(),
        };
        let old = rkyv::to_bytes::<rkyv::rancor::Error>(&flat).unwrap();
        assert_eq!(old.as_slice(), snap.to_bytes().unwrap().as_slice());
    }
}
