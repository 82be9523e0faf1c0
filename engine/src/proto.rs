//! The ZooKeeper client protocol's vocabulary: opcodes, error codes, event types and
//! states, the common records (`Stat`, `ACL`, `Id`) and every request body, decoded from
//! jute. Numbers follow Apache ZooKeeper's `ZooDefs.OpCode`, `KeeperException.Code` and
//! `Watcher.Event` exactly, because clients compare them.

use crate::jute::{JuteError, Reader, Result, Writer};

/// Opcodes (`ZooDefs.OpCode`).
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Special xids (`ClientCnxn`).
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// Error codes (`KeeperException.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    Ok = 0,
    SystemError = -1,
    RuntimeInconsistency = -2,
    DataInconsistency = -3,
    ConnectionLoss = -4,
    MarshallingError = -5,
    Unimplemented = -6,
    OperationTimeout = -7,
    BadArguments = -8,
    UnknownSession = -12,
    NewConfigNoQuorum = -13,
    ReconfigInProgress = -14,
    ApiError = -100,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidCallback = -113,
    InvalidAcl = -114,
    AuthFailed = -115,
    SessionMoved = -118,
    NotReadOnly = -119,
    EphemeralOnLocalSession = -120,
    NoWatcher = -121,
    RequestTimeout = -122,
    ReconfigDisabled = -123,
    SessionClosedRequireSaslAuth = -124,
    QuotaExceeded = -125,
    ThrottledOp = -127,
}

impl Code {
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// Perms (`ZooDefs.Perms`).
pub mod perm {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;
}

/// `Watcher.Event.EventType`.
pub mod event {
    pub const NONE: i32 = -1;
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    pub const DATA_WATCH_REMOVED: i32 = 5;
    pub const CHILD_WATCH_REMOVED: i32 = 6;
    pub const PERSISTENT_WATCH_REMOVED: i32 = 7;
}

/// `Watcher.Event.KeeperState`.
pub mod state {
    pub const DISCONNECTED: i32 = 0;
    pub const SYNC_CONNECTED: i32 = 3;
    pub const AUTH_FAILED: i32 = 4;
    pub const CONNECTED_READ_ONLY: i32 = 5;
    pub const EXPIRED: i32 = -112;
    pub const CLOSED: i32 = 7;
}

/// `Id{scheme, id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_owned(),
            id: id.to_owned(),
        }
    }
}

/// `ACL{perms, id}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    pub fn world_all() -> Vec<Acl> {
        vec![Acl {
            perms: perm::ALL,
            id: Id::new("world", "anyone"),
        }]
    }
    pub fn world_read() -> Vec<Acl> {
        vec![Acl {
            perms: perm::READ,
            id: Id::new("world", "anyone"),
        }]
    }
}

pub fn read_acls(r: &mut Reader) -> Result<Vec<Acl>> {
    let n = r.vec_len(12)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let perms = r.i32()?;
        let scheme = r.string()?;
        let id = r.string()?;
        v.push(Acl {
            perms,
            id: Id { scheme, id },
        });
    }
    Ok(v)
}

pub fn write_acls(w: &mut Writer, acls: &[Acl]) {
    w.i32(acls.len() as i32);
    for a in acls {
        w.i32(a.perms).string(&a.id.scheme).string(&a.id.id);
    }
}

/// The full `Stat` a client sees (68 bytes on the wire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Stat {
    pub fn write(&self, w: &mut Writer) {
        w.i64(self.czxid)
            .i64(self.mzxid)
            .i64(self.ctime)
            .i64(self.mtime);
        w.i32(self.version).i32(self.cversion).i32(self.aversion);
        w.i64(self.ephemeral_owner)
            .i32(self.data_length)
            .i32(self.num_children)
            .i64(self.pzxid);
    }
}

/// `ConnectRequest`; the trailing readOnly byte is optional (older clients omit it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    pub read_only: bool,
    /// Whether the client sent the readOnly byte: the reply mirrors it.
    pub has_read_only: bool,
}

impl ConnectRequest {
    pub fn decode(body: &[u8]) -> Result<ConnectRequest> {
        let mut r = Reader::new(body);
        let protocol_version = r.i32()?;
        let last_zxid_seen = r.i64()?;
        let timeout_ms = r.i32()?;
        let session_id = r.i64()?;
        let password = r.bytes()?;
        let (read_only, has_read_only) = if r.is_empty() {
            (false, false)
        } else {
            (r.bool()?, true)
        };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            password,
            read_only,
            has_read_only,
        })
    }
}

/// Create modes (`CreateMode`), from the request's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    Container,
    PersistentWithTtl,
    PersistentSequentialWithTtl,
}

impl CreateMode {
    pub fn from_flags(flags: i32) -> Option<CreateMode> {
        Some(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return None,
        })
    }
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }
    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

/// One decoded client request (the body after `RequestHeader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create, create2, createContainer and createTTL; `op` says which reply shape is owed.
    Create {
        op: i32,
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        flags: i32,
        ttl: i64,
    },
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<Request>),
    MultiRead(Vec<Request>),
    /// ZooKeeper's `ReconfigRequest`: the incremental form (`joining` servers as
    /// comma-separated `server.N=spec`, `leaving` ids comma-separated) or the bulk form
    /// (`new_members`, the whole new list). Null and empty strings read alike (absent).
    /// `cur_config_id` is the version the change applies to, or -1 for any.
    Reconfig {
        joining: String,
        leaving: String,
        new_members: String,
        cur_config_id: i64,
    },
    /// Server-internal (the container reaper); a client sending it gets BadArguments.
    DeleteContainer,
    CheckWatches {
        path: String,
        kind: i32,
    },
    RemoveWatches {
        path: String,
        kind: i32,
    },
    Auth {
        kind: i32,
        scheme: String,
        auth: Vec<u8>,
    },
    SetWatches(SetWatches),
    Sasl,
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
}

/// `SetWatches` / `SetWatches2`: the watches a reconnecting client re-arms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// The operation types a multi or multiRead may hold (ZooKeeper's
/// `MultiOperationRecord.deserialize`); which of them each kind accepts is checked
/// after decoding, with ZooKeeper's error.
fn is_multi_member_op(t: i32) -> bool {
    use self::op as o;
    matches!(
        t,
        o::CREATE
            | o::CREATE2
            | o::CREATE_TTL
            | o::CREATE_CONTAINER
            | o::DELETE
            | o::SET_DATA
            | o::CHECK
            | o::GET_CHILDREN
            | o::GET_DATA
    )
}

impl Request {
    /// Whether this request changes the tree (goes through the log).
    /// Whether this creates an ephemeral node, directly or inside a multi: it needs a
    /// global session in an ensemble.
    pub fn creates_ephemeral(&self) -> bool {
        let eph = |r: &Request| match r {
            Request::Create { flags, .. } => {
                CreateMode::from_flags(*flags).is_some_and(|m| m.is_ephemeral())
            }
            _ => false,
        };
        match self {
            Request::Multi(ops) => ops.iter().any(eph),
            r => eph(r),
        }
    }

    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create { .. }
                | Request::Delete { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::DeleteContainer
                | Request::CloseSession
        )
    }

    /// Decodes the body of a request of type `op`.
    pub fn decode(op: i32, body: &[u8]) -> Result<Request> {
        let mut r = Reader::new(body);
        let req = Self::decode_from(op, &mut r)?;
        Ok(req)
    }

    fn decode_from(op: i32, r: &mut Reader) -> Result<Request> {
        use self::op as o;
        Ok(match op {
            o::CREATE | o::CREATE2 | o::CREATE_CONTAINER | o::CREATE_TTL => {
                let path = r.string()?;
                let data = r.opt_bytes()?;
                let acl = read_acls(r)?;
                let flags = r.i32()?;
                let ttl = if op == o::CREATE_TTL { r.i64()? } else { -1 };
                Request::Create {
                    op,
                    path,
                    data,
                    acl,
                    flags,
                    ttl,
                }
            }
            o::DELETE => Request::Delete {
                path: r.string()?,
                version: r.i32()?,
            },
            o::DELETE_CONTAINER => Request::DeleteContainer,
            o::EXISTS => Request::Exists {
                path: r.string()?,
                watch: r.bool()?,
            },
            o::GET_DATA => Request::GetData {
                path: r.string()?,
                watch: r.bool()?,
            },
            o::SET_DATA => Request::SetData {
                path: r.string()?,
                data: r.opt_bytes()?,
                version: r.i32()?,
            },
            o::GET_ACL => Request::GetAcl { path: r.string()? },
            o::SET_ACL => {
                let path = r.string()?;
                let acl = read_acls(r)?;
                Request::SetAcl {
                    path,
                    acl,
                    version: r.i32()?,
                }
            }
            o::GET_CHILDREN => Request::GetChildren {
                path: r.string()?,
                watch: r.bool()?,
                with_stat: false,
            },
            o::GET_CHILDREN2 => Request::GetChildren {
                path: r.string()?,
                watch: r.bool()?,
                with_stat: true,
            },
            o::SYNC => Request::Sync { path: r.string()? },
            o::PING => Request::Ping,
            o::CHECK => Request::Check {
                path: r.string()?,
                version: r.i32()?,
            },
            o::MULTI | o::MULTI_READ => {
                let mut ops = Vec::new();
                loop {
                    let t = r.i32()?;
                    let done = r.bool()?;
                    let _err = r.i32()?;
                    if done {
                        break;
                    }
                    // Only single operations, as ZooKeeper's MultiOperationRecord
                    // reads them: a multi inside a multi is refused here, before its
                    // body, so no input can make decoding recurse.
                    if !is_multi_member_op(t) {
                        return Err(JuteError::Invalid(format!(
                            "operation type {t} is not allowed inside a multi"
                        )));
                    }
                    ops.push(Self::decode_from(t, r)?);
                }
                if op == o::MULTI {
                    Request::Multi(ops)
                } else {
                    Request::MultiRead(ops)
                }
            }
            o::RECONFIG => Request::Reconfig {
                joining: r.string()?,
                leaving: r.string()?,
                new_members: r.string()?,
                cur_config_id: r.i64()?,
            },
            o::CHECK_WATCHES => Request::CheckWatches {
                path: r.string()?,
                kind: r.i32()?,
            },
            o::REMOVE_WATCHES => Request::RemoveWatches {
                path: r.string()?,
                kind: r.i32()?,
            },
            o::AUTH => Request::Auth {
                kind: r.i32()?,
                scheme: r.string()?,
                auth: r.bytes()?,
            },
            o::SET_WATCHES => Request::SetWatches(SetWatches {
                relative_zxid: r.i64()?,
                data: r.strings()?,
                exist: r.strings()?,
                child: r.strings()?,
                ..Default::default()
            }),
            o::SET_WATCHES2 => Request::SetWatches(SetWatches {
                relative_zxid: r.i64()?,
                data: r.strings()?,
                exist: r.strings()?,
                child: r.strings()?,
                persistent: r.strings()?,
                persistent_recursive: r.strings()?,
            }),
            o::SASL => Request::Sasl,
            o::GET_EPHEMERALS => Request::GetEphemerals {
                prefix: r.string()?,
            },
            o::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber { path: r.string()? },
            o::ADD_WATCH => Request::AddWatch {
                path: r.string()?,
                mode: r.i32()?,
            },
            o::WHO_AM_I => Request::WhoAmI,
            o::CLOSE_SESSION => Request::CloseSession,
            other => return Err(JuteError::UnknownOp(other)),
        })
    }
}

/// Whether a client may send this opcode (anything else is answered Unimplemented and
/// the connection closed).
pub fn is_client_op(code: i32) -> bool {
    matches!(code, 1..=9 | 11..=22 | 100..=107 | -11)
}

/// Writes the `ReplyHeader{xid, zxid, err}`.
pub fn reply_header(w: &mut Writer, xid: i32, zxid: i64, err: i32) {
    w.i32(xid).i64(zxid).i32(err);
}

/// A whole framed reply with no body.
pub fn empty_reply(xid: i32, zxid: i64, err: Code) -> Vec<u8> {
    let mut w = Writer::framed();
    reply_header(&mut w, xid, zxid, err.as_i32());
    w.finish_frame()
}

/// A framed watch notification.
pub fn notification(kind: i32, state: i32, path: &str) -> Vec<u8> {
    let mut w = Writer::framed();
    reply_header(&mut w, xid::NOTIFICATION, -1, 0);
    w.i32(kind).i32(state).string(path);
    w.finish_frame()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_with_and_without_read_only() {
        let mut w = Writer::new();
        w.i32(0).i64(5).i32(30000).i64(0).buffer(&[0; 16]);
        let old = ConnectRequest::decode(&w.buf).unwrap();
        assert!(!old.has_read_only);
        w.bool(true);
        let new = ConnectRequest::decode(&w.buf).unwrap();
        assert!(new.has_read_only && new.read_only);
        assert_eq!(new.timeout_ms, 30000);
    }

    /// 110,000 nested multi headers in one 1 MB frame once overflowed the engine
    /// thread's stack: now the first nested header is refused without recursing.
    #[test]
    fn nested_multi_is_refused_without_recursion() {
        for (outer, inner) in [
            (op::MULTI, op::MULTI),
            (op::MULTI_READ, op::MULTI_READ),
            (op::MULTI, op::MULTI_READ),
        ] {
            let mut w = Writer::new();
            for _ in 0..110_000 {
                w.i32(inner).bool(false).i32(-1);
            }
            match Request::decode(outer, &w.buf) {
                Err(JuteError::Invalid(why)) => assert!(why.contains("inside a multi"), "{why}"),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        // Other non-member types are refused the same way (ZooKeeper: "Invalid type of op").
        let mut w = Writer::new();
        w.i32(op::SET_ACL).bool(false).i32(-1);
        assert!(matches!(
            Request::decode(op::MULTI, &w.buf),
            Err(JuteError::Invalid(_))
        ));
    }

    #[test]
    fn decodes_multi() {
        let mut w = Writer::new();
        w.i32(op::CREATE).bool(false).i32(-1);
        w.string("/a").buffer(b"x");
        write_acls(&mut w, &Acl::world_all());
        w.i32(0);
        w.i32(op::CHECK).bool(false).i32(-1).string("/a").i32(3);
        w.i32(-1).bool(true).i32(-1);
        let req = Request::decode(op::MULTI, &w.buf).unwrap();
        match req {
            Request::Multi(ops) => {
                assert_eq!(ops.len(), 2);
                assert!(matches!(&ops[1], Request::Check { version: 3, .. }));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_opcode_is_an_error() {
        assert_eq!(Request::decode(999, &[]), Err(JuteError::UnknownOp(999)));
    }

    #[test]
    fn stat_is_68_bytes() {
        let mut w = Writer::new();
        Stat::default().write(&mut w);
        assert_eq!(w.buf.len(), 68);
    }
}
