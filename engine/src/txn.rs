//! Transactions: the idempotent, already-validated form of a write that the log stores
//! and every replica applies. Prep turns a request into one of these; apply never fails
//! on a transaction prep accepted.
//!
//! A log frame's payload is `i32 count` followed by that many records, each
//! `{i64 zxid; i64 time; i64 session; i32 cxid; i32 type; body}` in jute.

use crate::jute::{JuteError, Reader, Result, Writer};
use crate::proto::{read_acls, write_acls, Acl};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout_ms: i32,
        password: Vec<u8>,
    },
    CloseSession,
    /// `op` is the request's opcode (create, create2, createContainer, createTTL): it picks
    /// the reply shape. `owner` is the ephemeralOwner (session, container or TTL marker).
    Create {
        op: i32,
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        owner: i64,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        aversion: i32,
    },
    Check {
        path: String,
    },
    /// A write that failed validation still takes a zxid and is logged, as ZooKeeper does.
    Error {
        code: i32,
    },
    Multi(Vec<Txn>),
    /// A dynamic reconfiguration: `/zookeeper/config` gets `data` (the new membership,
    /// ending with its `version=` line), and every server switches to it on commit.
    Reconfig {
        data: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub zxid: i64,
    pub time: i64,
    pub session: i64,
    pub cxid: i32,
    pub txn: Txn,
}

const T_CREATE_SESSION: i32 = -10;
const T_CLOSE_SESSION: i32 = -11;
const T_CREATE: i32 = 1;
const T_DELETE: i32 = 2;
const T_SET_DATA: i32 = 5;
const T_SET_ACL: i32 = 7;
const T_CHECK: i32 = 13;
const T_MULTI: i32 = 14;
const T_RECONFIG: i32 = 16;
const T_ERROR: i32 = -1;

impl Txn {
    fn encode(&self, w: &mut Writer) {
        match self {
            Txn::CreateSession {
                timeout_ms,
                password,
            } => {
                w.i32(T_CREATE_SESSION).i32(*timeout_ms).buffer(password);
            }
            Txn::CloseSession => {
                w.i32(T_CLOSE_SESSION);
            }
            Txn::Create {
                op,
                path,
                data,
                acl,
                owner,
                parent_cversion,
            } => {
                w.i32(T_CREATE)
                    .i32(*op)
                    .string(path)
                    .opt_buffer(data.as_deref());
                write_acls(w, acl);
                w.i64(*owner).i32(*parent_cversion);
            }
            Txn::Delete { path } => {
                w.i32(T_DELETE).string(path);
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                w.i32(T_SET_DATA)
                    .string(path)
                    .opt_buffer(data.as_deref())
                    .i32(*version);
            }
            Txn::SetAcl {
                path,
                acl,
                aversion,
            } => {
                w.i32(T_SET_ACL).string(path);
                write_acls(w, acl);
                w.i32(*aversion);
            }
            Txn::Check { path } => {
                w.i32(T_CHECK).string(path);
            }
            Txn::Error { code } => {
                w.i32(T_ERROR).i32(*code);
            }
            Txn::Reconfig { data } => {
                w.i32(T_RECONFIG).buffer(data);
            }
            Txn::Multi(txns) => {
                w.i32(T_MULTI).i32(txns.len() as i32);
                for t in txns {
                    t.encode(w);
                }
            }
        }
    }

    fn decode(r: &mut Reader) -> Result<Txn> {
        let t = r.i32()?;
        Ok(match t {
            T_CREATE_SESSION => Txn::CreateSession {
                timeout_ms: r.i32()?,
                password: r.bytes()?,
            },
            T_CLOSE_SESSION => Txn::CloseSession,
            T_CREATE => {
                let op = r.i32()?;
                let path = r.string()?;
                let data = r.opt_bytes()?;
                let acl = read_acls(r)?;
                Txn::Create {
                    op,
                    path,
                    data,
                    acl,
                    owner: r.i64()?,
                    parent_cversion: r.i32()?,
                }
            }
            T_DELETE => Txn::Delete { path: r.string()? },
            T_SET_DATA => Txn::SetData {
                path: r.string()?,
                data: r.opt_bytes()?,
                version: r.i32()?,
            },
            T_SET_ACL => {
                let path = r.string()?;
                let acl = read_acls(r)?;
                Txn::SetAcl {
                    path,
                    acl,
                    aversion: r.i32()?,
                }
            }
            T_CHECK => Txn::Check { path: r.string()? },
            T_ERROR => Txn::Error { code: r.i32()? },
            T_RECONFIG => Txn::Reconfig { data: r.bytes()? },
            T_MULTI => {
                let n = r.vec_len(4)?;
                // The count is only checked against the bytes left (4 per member, the
                // least a member takes): grow as members are read, not up front.
                let mut v = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    // A multi holds single changes only: a nested multi (or a session
                    // or membership change) is refused before its body is read, so a
                    // hostile frame cannot make decoding recurse.
                    let at = r.position();
                    let t = r.peek_i32()?;
                    if matches!(t, T_MULTI | T_CREATE_SESSION | T_CLOSE_SESSION | T_RECONFIG) {
                        return Err(JuteError::Invalid(format!(
                            "transaction type {t} at offset {at} inside a multi"
                        )));
                    }
                    v.push(Txn::decode(r)?);
                }
                Txn::Multi(v)
            }
            other => return Err(JuteError::UnknownOp(other)),
        })
    }
}

impl TxnRecord {
    pub fn encode(&self, w: &mut Writer) {
        w.i64(self.zxid)
            .i64(self.time)
            .i64(self.session)
            .i32(self.cxid);
        self.txn.encode(w);
    }

    pub fn decode(r: &mut Reader) -> Result<TxnRecord> {
        Ok(TxnRecord {
            zxid: r.i64()?,
            time: r.i64()?,
            session: r.i64()?,
            cxid: r.i32()?,
            txn: Txn::decode(r)?,
        })
    }
}

/// Encodes a batch of records as one log-frame payload.
pub fn encode_batch(records: &[TxnRecord]) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(records.len() as i32);
    for r in records {
        r.encode(&mut w);
    }
    w.buf
}

/// Whether a log-frame payload is a single reconfiguration record, read from its
/// header without decoding it. The leader gives every reconfiguration a frame of its
/// own, so a follower learns of one as the frame arrives at no cost to other frames.
pub fn batch_is_reconfig(payload: &[u8]) -> bool {
    // i32 count, then the record: i64 zxid, i64 time, i64 session, i32 cxid, i32 type.
    const TYPE_AT: usize = 4 + 8 + 8 + 8 + 4;
    let word = |at: usize| {
        payload
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    word(0) == Some(1) && word(TYPE_AT) == Some(T_RECONFIG)
}

/// Decodes one log-frame payload.
pub fn decode_batch(payload: &[u8]) -> Result<Vec<TxnRecord>> {
    let mut r = Reader::new(payload);
    let n = r.vec_len(28)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(TxnRecord::decode(&mut r)?);
    }
    r.finish()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log frame or proposal whose multi nests another multi (100,000 deep) is
    /// refused at the first nested header instead of recursing.
    #[test]
    fn nested_multi_txn_is_refused_without_recursion() {
        let mut w = Writer::new();
        w.i32(1).i64(5).i64(0).i64(7).i32(0);
        for _ in 0..100_000 {
            w.i32(T_MULTI).i32(1);
        }
        let err = decode_batch(&w.buf).unwrap_err();
        assert!(format!("{err}").contains("inside a multi"), "{err}");
        for t in [T_CREATE_SESSION, T_CLOSE_SESSION, T_RECONFIG] {
            let mut w = Writer::new();
            w.i32(1)
                .i64(5)
                .i64(0)
                .i64(7)
                .i32(0)
                .i32(T_MULTI)
                .i32(1)
                .i32(t);
            assert!(decode_batch(&w.buf).is_err(), "type {t}");
        }
    }

    #[test]
    fn batch_round_trip() {
        let recs = vec![
            TxnRecord {
                zxid: 1,
                time: 10,
                session: 7,
                cxid: 0,
                txn: Txn::CreateSession {
                    timeout_ms: 4000,
                    password: vec![1; 16],
                },
            },
            TxnRecord {
                zxid: 2,
                time: 11,
                session: 7,
                cxid: 1,
                txn: Txn::Multi(vec![
                    Txn::Create {
                        op: 1,
                        path: "/a".into(),
                        data: Some(b"x".to_vec()),
                        acl: Acl::world_all(),
                        owner: 7,
                        parent_cversion: 1,
                    },
                    Txn::SetData {
                        path: "/a".into(),
                        data: None,
                        version: 1,
                    },
                    Txn::Check { path: "/a".into() },
                ]),
            },
            TxnRecord {
                zxid: 3,
                time: 12,
                session: 7,
                cxid: 2,
                txn: Txn::Error { code: -110 },
            },
        ];
        let bytes = encode_batch(&recs);
        assert_eq!(decode_batch(&bytes).unwrap(), recs);
        assert!(decode_batch(&bytes[..bytes.len() - 1]).is_err());
        assert!(!batch_is_reconfig(&bytes));
    }

    #[test]
    fn a_lone_reconfiguration_is_recognised_from_its_header() {
        let rec = |zxid, txn| TxnRecord {
            zxid,
            time: 5,
            session: 9,
            cxid: 3,
            txn,
        };
        let reconfig = || Txn::Reconfig {
            data: b"server.1=h:1:2:participant\nversion=100000001".to_vec(),
        };
        let one = encode_batch(&[rec(1, reconfig())]);
        assert!(batch_is_reconfig(&one));
        assert_eq!(decode_batch(&one).unwrap()[0].txn, reconfig());
        let two = encode_batch(&[rec(1, Txn::CloseSession), rec(2, reconfig())]);
        assert!(!batch_is_reconfig(&two));
        assert!(!batch_is_reconfig(&encode_batch(&[rec(
            1,
            Txn::CloseSession
        )])));
        assert!(!batch_is_reconfig(&[0, 0, 0, 1]));
    }
}
