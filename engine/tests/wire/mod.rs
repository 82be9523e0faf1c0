//! Client-side encoders for the requests the engine decodes: what a ZooKeeper client
//! writes after the `RequestHeader`. The engine itself never encodes a request, so the
//! property tests (`tests/roundtrip.rs`) and the fuzzers (`fuzz/`, which includes this
//! file by path) share these.
#![allow(dead_code)]

use keel_engine::jute::Writer;
use keel_engine::proto::{op, write_acls, ConnectRequest, Request};

/// The opcode a client would send for `req` and its body.
pub fn encode_request(req: &Request) -> (i32, Vec<u8>) {
    let mut w = Writer::new();
    let code = write_request(&mut w, req);
    (code, w.buf)
}

/// Writes `req`'s body; returns its opcode.
pub fn write_request(w: &mut Writer, req: &Request) -> i32 {
    match req {
        Request::Create {
            op: code,
            path,
            data,
            acl,
            flags,
            ttl,
        } => {
            w.string(path).opt_buffer(data.as_deref());
            write_acls(w, acl);
            w.i32(*flags);
            if *code == op::CREATE_TTL {
                w.i64(*ttl);
            }
            *code
        }
        Request::Delete { path, version } => {
            w.string(path).i32(*version);
            op::DELETE
        }
        Request::Exists { path, watch } => {
            w.string(path).bool(*watch);
            op::EXISTS
        }
        Request::GetData { path, watch } => {
            w.string(path).bool(*watch);
            op::GET_DATA
        }
        Request::SetData {
            path,
            data,
            version,
        } => {
            w.string(path).opt_buffer(data.as_deref()).i32(*version);
            op::SET_DATA
        }
        Request::GetAcl { path } => {
            w.string(path);
            op::GET_ACL
        }
        Request::SetAcl { path, acl, version } => {
            w.string(path);
            write_acls(w, acl);
            w.i32(*version);
            op::SET_ACL
        }
        Request::GetChildren {
            path,
            watch,
            with_stat,
        } => {
            w.string(path).bool(*watch);
            if *with_stat {
                op::GET_CHILDREN2
            } else {
                op::GET_CHILDREN
            }
        }
        Request::Sync { path } => {
            w.string(path);
            op::SYNC
        }
        Request::Ping => op::PING,
        Request::Check { path, version } => {
            w.string(path).i32(*version);
            op::CHECK
        }
        Request::Multi(ops) | Request::MultiRead(ops) => {
            // MultiHeader{type, done, err} before each op, then a done header.
            for o in ops {
                let at = w.buf.len();
                w.i32(0).bool(false).i32(-1);
                let code = write_request(w, o);
                w.buf[at..at + 4].copy_from_slice(&code.to_be_bytes());
            }
            w.i32(-1).bool(true).i32(-1);
            if matches!(req, Request::Multi(_)) {
                op::MULTI
            } else {
                op::MULTI_READ
            }
        }
        Request::Reconfig {
            joining,
            leaving,
            new_members,
            cur_config_id,
        } => {
            w.string(joining)
                .string(leaving)
                .string(new_members)
                .i64(*cur_config_id);
            op::RECONFIG
        }
        Request::DeleteContainer => op::DELETE_CONTAINER,
        Request::CheckWatches { path, kind } => {
            w.string(path).i32(*kind);
            op::CHECK_WATCHES
        }
        Request::RemoveWatches { path, kind } => {
            w.string(path).i32(*kind);
            op::REMOVE_WATCHES
        }
        Request::Auth { kind, scheme, auth } => {
            w.i32(*kind).string(scheme).buffer(auth);
            op::AUTH
        }
        Request::SetWatches(s) => {
            w.i64(s.relative_zxid)
                .strings(&s.data)
                .strings(&s.exist)
                .strings(&s.child);
            if s.persistent.is_empty() && s.persistent_recursive.is_empty() {
                op::SET_WATCHES
            } else {
                w.strings(&s.persistent).strings(&s.persistent_recursive);
                op::SET_WATCHES2
            }
        }
        Request::Sasl => op::SASL,
        Request::GetEphemerals { prefix } => {
            w.string(prefix);
            op::GET_EPHEMERALS
        }
        Request::GetAllChildrenNumber { path } => {
            w.string(path);
            op::GET_ALL_CHILDREN_NUMBER
        }
        Request::AddWatch { path, mode } => {
            w.string(path).i32(*mode);
            op::ADD_WATCH
        }
        Request::WhoAmI => op::WHO_AM_I,
        Request::CloseSession => op::CLOSE_SESSION,
    }
}

/// `ConnectRequest` as a client writes it (the readOnly byte only if it sent one).
pub fn encode_connect(c: &ConnectRequest) -> Vec<u8> {
    let mut w = Writer::new();
    w.i32(c.protocol_version)
        .i64(c.last_zxid_seen)
        .i32(c.timeout_ms)
        .i64(c.session_id)
        .buffer(&c.password);
    if c.has_read_only {
        w.bool(c.read_only);
    }
    w.buf
}
