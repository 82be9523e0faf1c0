//! Prep and apply: turning a write request into a transaction (validated against a
//! tree, in ZooKeeper's order of checks), applying a transaction to a tree, and the
//! reply a client gets for it. Free functions over a `DataTree`, so the standalone
//! engine (one tree) and an ensemble leader (a speculative tree for prep, the committed
//! tree for apply) share one implementation.

use crate::acl;
use crate::config::EngineConfig;
use crate::jute::Writer;
use crate::path;
use crate::proto::{self, op, perm, Code, CreateMode, Id, Request, Stat};
use crate::tree::{self, DataTree, Trigger, Undo};
use crate::txn::Txn;

/// What applying one transaction produced, for building the reply.
#[derive(Debug)]
pub(crate) enum Applied {
    Created {
        op: i32,
        path: String,
        stat: Stat,
    },
    Deleted,
    Set {
        stat: Stat,
    },
    /// A reconfiguration: `/zookeeper/config`'s new data and stat (a getData answer).
    Config {
        data: Vec<u8>,
        stat: Stat,
    },
    Checked,
    Error(Code),
    Multi(Vec<Applied>),
    Session,
}

/// Validates a write against `tree` and applies it there at once (a multi all or
/// nothing), giving the transaction to log and what applying it produced. A request
/// that fails validation becomes an error transaction, which still takes a zxid.
#[allow(clippy::too_many_arguments)]
pub(crate) fn prep_and_apply(
    tree: &mut DataTree,
    cfg: &EngineConfig,
    ids: &[Id],
    session: i64,
    zxid: i64,
    time: i64,
    req: Request,
    triggers: &mut Vec<Trigger>,
) -> (Txn, Applied) {
    match req {
        Request::Multi(ops) => {
            let mut undo = Undo::new();
            let mut txns = Vec::with_capacity(ops.len());
            let mut results = Vec::with_capacity(ops.len());
            let mut failed = None;
            for (i, o) in ops.iter().enumerate() {
                match prep(tree, cfg, ids, session, o) {
                    Ok(t) => {
                        results.push(apply_one(tree, &t, zxid, time, Some(&mut undo), triggers));
                        txns.push(t);
                    }
                    Err(code) => {
                        failed = Some((i, code));
                        break;
                    }
                }
            }
            match failed {
                None => (Txn::Multi(txns), Applied::Multi(results)),
                Some((at, code)) => {
                    tree.rollback(undo);
                    triggers.clear();
                    let errs: Vec<Txn> = (0..ops.len())
                        .map(|i| Txn::Error {
                            code: match i.cmp(&at) {
                                std::cmp::Ordering::Less => Code::Ok.as_i32(),
                                std::cmp::Ordering::Equal => code.as_i32(),
                                std::cmp::Ordering::Greater => Code::RuntimeInconsistency.as_i32(),
                            },
                        })
                        .collect();
                    let applied = Applied::Multi(errs.iter().map(apply_error).collect());
                    (Txn::Multi(errs), applied)
                }
            }
        }
        other => match prep(tree, cfg, ids, session, &other) {
            Ok(t) => {
                let a = apply_one(tree, &t, zxid, time, None, triggers);
                (t, a)
            }
            Err(code) => (
                Txn::Error {
                    code: code.as_i32(),
                },
                Applied::Error(code),
            ),
        },
    }
}

pub(crate) fn prep(
    tree: &DataTree,
    cfg: &EngineConfig,
    ids: &[Id],
    session: i64,
    req: &Request,
) -> Result<Txn, Code> {
    // `zookeeper.skipACL=yes` skips every permission check, as in ZooKeeper.
    let permit = |acl: &[crate::proto::Acl], want: i32| {
        if cfg.skip_acl {
            Ok(())
        } else {
            acl::check(acl, want, ids)
        }
    };
    match req {
        Request::Create {
            op: opc,
            path: p,
            data,
            acl: acls,
            flags,
            ttl,
        } => {
            let mode = CreateMode::from_flags(*flags).ok_or(Code::BadArguments)?;
            if mode.is_ttl() && !cfg.extended_types {
                return Err(Code::Unimplemented);
            }
            if mode.is_ttl() {
                if *ttl <= 0 || *ttl > tree::MAX_TTL {
                    return Err(Code::BadArguments);
                }
            } else if *ttl >= 0 {
                return Err(Code::BadArguments);
            }
            let parent_path = match p.rfind('/') {
                Some(0) => "/",
                Some(i) => &p[..i],
                None => return Err(Code::BadArguments),
            };
            if p.contains('\0') {
                return Err(Code::BadArguments);
            }
            let acl = acl::fixup(acls, ids)?;
            let parent = tree.get(parent_path).ok_or(Code::NoNode)?;
            permit(&parent.acl, perm::CREATE)?;
            let mut full = if p == "/" && mode.is_sequential() {
                String::from("/")
            } else {
                p.clone()
            };
            if mode.is_sequential() {
                full.push_str(&format!("{:010}", parent.stat.cversion));
            }
            path::validate(&full).map_err(|_| Code::BadArguments)?;
            if tree.get(&full).is_some() {
                return Err(Code::NodeExists);
            }
            if tree::is_session_owner(parent.stat.ephemeral_owner) {
                return Err(Code::NoChildrenForEphemerals);
            }
            let owner = if *opc == op::CREATE_CONTAINER {
                tree::CONTAINER_OWNER
            } else if *opc == op::CREATE_TTL {
                tree::ttl_owner(*ttl)
            } else if mode.is_ephemeral() {
                session
            } else {
                0
            };
            Ok(Txn::Create {
                op: *opc,
                path: full,
                data: data.clone(),
                acl,
                owner,
                parent_cversion: parent.stat.cversion + 1,
            })
        }
        Request::Delete { path: p, version } => {
            if !p.contains('/') || p.contains('\0') || path::is_special(p) {
                return Err(Code::BadArguments);
            }
            let parent_path = path::parent(p).ok_or(Code::BadArguments)?;
            let parent = tree.get(parent_path).ok_or(Code::NoNode)?;
            permit(&parent.acl, perm::DELETE)?;
            let n = tree.get(p).ok_or(Code::NoNode)?;
            if *version != -1 && *version != n.stat.version {
                return Err(Code::BadVersion);
            }
            if !n.children.is_empty() {
                return Err(Code::NotEmpty);
            }
            Ok(Txn::Delete { path: p.clone() })
        }
        Request::SetData {
            path: p,
            data,
            version,
        } => {
            path::validate(p).map_err(|_| Code::BadArguments)?;
            let n = tree.get(p).ok_or(Code::NoNode)?;
            permit(&n.acl, perm::WRITE)?;
            if *version != -1 && *version != n.stat.version {
                return Err(Code::BadVersion);
            }
            Ok(Txn::SetData {
                path: p.clone(),
                data: data.clone(),
                version: n.stat.version.wrapping_add(1),
            })
        }
        Request::SetAcl {
            path: p,
            acl: acls,
            version,
        } => {
            path::validate(p).map_err(|_| Code::BadArguments)?;
            let acl = acl::fixup(acls, ids)?;
            let n = tree.get(p).ok_or(Code::NoNode)?;
            permit(&n.acl, perm::ADMIN)?;
            if *version != -1 && *version != n.stat.aversion {
                return Err(Code::BadVersion);
            }
            Ok(Txn::SetAcl {
                path: p.clone(),
                acl,
                aversion: n.stat.aversion.wrapping_add(1),
            })
        }
        Request::Check { path: p, version } => {
            path::validate(p).map_err(|_| Code::BadArguments)?;
            let n = tree.get(p).ok_or(Code::NoNode)?;
            permit(&n.acl, perm::READ)?;
            if *version != -1 && *version != n.stat.version {
                return Err(Code::BadVersion);
            }
            Ok(Txn::Check { path: p.clone() })
        }
        _ => Err(Code::BadArguments),
    }
}

pub(crate) fn apply_one(
    tree: &mut DataTree,
    t: &Txn,
    zxid: i64,
    time: i64,
    undo: Option<&mut Undo>,
    triggers: &mut Vec<Trigger>,
) -> Applied {
    match t {
        Txn::Create {
            op,
            path: p,
            data,
            acl,
            owner,
            parent_cversion,
        } => {
            let acl = tree.intern_acl(acl);
            tree.create(
                p,
                data.clone(),
                acl,
                *owner,
                *parent_cversion,
                zxid,
                time,
                undo,
                triggers,
            );
            let stat = tree.get(p).map(|n| n.full_stat()).unwrap_or_default();
            Applied::Created {
                op: *op,
                path: p.clone(),
                stat,
            }
        }
        Txn::Delete { path: p } => {
            tree.delete(p, zxid, undo, triggers);
            Applied::Deleted
        }
        Txn::SetData {
            path: p,
            data,
            version,
        } => {
            tree.set_data(p, data.clone(), *version, zxid, time, undo, triggers);
            Applied::Set {
                stat: stat_of(tree, p),
            }
        }
        Txn::SetAcl {
            path: p,
            acl,
            aversion,
        } => {
            let acl = tree.intern_acl(acl);
            tree.set_acl(p, acl, *aversion, undo);
            Applied::Set {
                stat: stat_of(tree, p),
            }
        }
        Txn::Reconfig { data } => {
            // Like a setData of /zookeeper/config, which clients cannot write; as in
            // ZooKeeper its data version reads -1 from then on.
            use crate::tree::CONFIG_NODE as CONFIG;
            tree.set_data(CONFIG, Some(data.clone()), -1, zxid, time, undo, triggers);
            Applied::Config {
                data: data.clone(),
                stat: stat_of(tree, CONFIG),
            }
        }
        Txn::Check { .. } => Applied::Checked,
        Txn::Error { code } => Applied::Error(code_from(*code)),
        Txn::CreateSession { .. } | Txn::CloseSession | Txn::Multi(_) => {
            Applied::Error(Code::MarshallingError)
        }
    }
}

pub(crate) fn apply_error(t: &Txn) -> Applied {
    match t {
        Txn::Error { code } => Applied::Error(code_from(*code)),
        _ => Applied::Error(Code::Ok),
    }
}

fn stat_of(tree: &DataTree, p: &str) -> Stat {
    tree.get(p).map(|n| n.full_stat()).unwrap_or_default()
}

pub(crate) fn code_from(v: i32) -> Code {
    use Code::*;
    const ALL: &[Code] = &[
        Ok,
        SystemError,
        RuntimeInconsistency,
        DataInconsistency,
        ConnectionLoss,
        MarshallingError,
        Unimplemented,
        OperationTimeout,
        BadArguments,
        UnknownSession,
        NewConfigNoQuorum,
        ReconfigInProgress,
        ApiError,
        NoNode,
        NoAuth,
        BadVersion,
        NoChildrenForEphemerals,
        NodeExists,
        NotEmpty,
        SessionExpired,
        InvalidCallback,
        InvalidAcl,
        AuthFailed,
        SessionMoved,
        NotReadOnly,
        EphemeralOnLocalSession,
        NoWatcher,
        RequestTimeout,
        ReconfigDisabled,
        SessionClosedRequireSaslAuth,
        QuotaExceeded,
        ThrottledOp,
    ];
    ALL.iter()
        .copied()
        .find(|c| c.as_i32() == v)
        .unwrap_or(SystemError)
}

pub(crate) fn write_reply(xid: i32, zxid: i64, opcode: i32, applied: &Applied) -> Vec<u8> {
    let mut w = Writer::framed();
    match applied {
        Applied::Error(code) => {
            proto::reply_header(&mut w, xid, zxid, code.as_i32());
            return w.finish_frame();
        }
        Applied::Multi(results) => {
            proto::reply_header(&mut w, xid, zxid, 0);
            for r in results {
                match r {
                    Applied::Created {
                        op: o,
                        path: p,
                        stat,
                    } => {
                        if *o == op::CREATE || *o == op::CREATE2 {
                            w.i32(op::CREATE).bool(false).i32(0).string(p);
                        } else {
                            w.i32(op::CREATE2).bool(false).i32(0).string(p);
                            stat.write(&mut w);
                        }
                    }
                    Applied::Deleted => {
                        w.i32(op::DELETE).bool(false).i32(0);
                    }
                    Applied::Checked => {
                        w.i32(op::CHECK).bool(false).i32(0);
                    }
                    Applied::Set { stat } => {
                        w.i32(op::SET_DATA).bool(false).i32(0);
                        stat.write(&mut w);
                    }
                    Applied::Error(code) => {
                        w.i32(op::ERROR)
                            .bool(false)
                            .i32(code.as_i32())
                            .i32(code.as_i32());
                    }
                    Applied::Multi(_) | Applied::Session | Applied::Config { .. } => {}
                }
            }
            w.i32(-1).bool(true).i32(-1);
            return w.finish_frame();
        }
        _ => {}
    }
    proto::reply_header(&mut w, xid, zxid, 0);
    match (opcode, applied) {
        (op::CREATE, Applied::Created { path: p, .. }) => {
            w.string(p);
        }
        (_, Applied::Created { path: p, stat, .. }) => {
            w.string(p);
            stat.write(&mut w);
        }
        (_, Applied::Set { stat }) => stat.write(&mut w),
        (_, Applied::Config { data, stat }) => {
            w.buffer(data);
            stat.write(&mut w);
        }
        _ => {}
    }
    w.finish_frame()
}
