//! Drives the engine as the network layer would, with time and durability as inputs,
//! and checks replies byte for byte where it matters.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use keel_engine::jute::{Reader, Writer};
use keel_engine::proto::{op, perm, write_acls, Acl, Code, ConnectRequest, Id};
use keel_engine::{Engine, EngineConfig, Input, Output};

const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);

struct Harness {
    e: Engine,
    now: i64,
    /// Log frames not yet reported durable.
    pending: Vec<(i64, Vec<u8>)>,
    log: Vec<Vec<u8>>,
    auto_durable: bool,
}

#[derive(Debug)]
struct Reply {
    xid: i32,
    zxid: i64,
    err: i32,
    body: Vec<u8>,
}

impl Harness {
    fn new() -> Harness {
        let cfg = EngineConfig {
            extended_types: true,
            container_check_ms: 1000,
            ..Default::default()
        };
        Harness {
            e: Engine::new(cfg, 1_000_000),
            now: 1_000_000,
            pending: vec![],
            log: vec![],
            auto_durable: true,
        }
    }

    fn run(&mut self, input: Input) -> Vec<Output> {
        self.e.step(input);
        let mut outs = Vec::new();
        self.e.drain(&mut outs);
        let mut rest = Vec::new();
        for o in outs {
            match o {
                Output::Persist {
                    last_zxid, payload, ..
                } => {
                    self.log.push(payload.clone());
                    self.pending.push((last_zxid, payload));
                }
                other => rest.push(other),
            }
        }
        if self.auto_durable {
            rest.extend(self.flush());
        }
        rest
    }

    fn flush(&mut self) -> Vec<Output> {
        let Some(&(z, _)) = self.pending.last() else {
            return vec![];
        };
        self.pending.clear();
        self.e.step(Input::Durable { zxid: z });
        let mut outs = Vec::new();
        self.e.drain(&mut outs);
        outs
    }

    fn tick(&mut self, ms: i64) -> Vec<Output> {
        self.now += ms;
        self.run(Input::Tick { now_ms: self.now })
    }

    fn connect(&mut self, conn: u64) -> i64 {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 6000,
            session_id: 0,
            password: vec![0; 16],
            read_only: false,
            has_read_only: true,
        };
        let outs = self.run(Input::Connect {
            conn,
            peer: LOCAL,
            req,
        });
        let frame = frames_for(&outs, conn).pop().expect("connect response");
        let mut r = Reader::new(&frame[4..]);
        assert_eq!(r.i32().unwrap(), 0);
        assert_eq!(r.i32().unwrap(), 6000);
        r.i64().unwrap()
    }

    /// addAuth digest alice:secret on `conn`.
    fn auth_alice(&mut self, conn: u64) {
        let mut w = Writer::new();
        w.i32(0).string("digest").buffer(b"alice:secret");
        self.run(Input::Request {
            conn,
            xid: -4,
            op: op::AUTH,
            body: w.buf,
        });
    }

    fn call(&mut self, conn: u64, xid: i32, opcode: i32, body: Writer) -> (Reply, Vec<Output>) {
        let outs = self.run(Input::Request {
            conn,
            xid,
            op: opcode,
            body: body.buf,
        });
        let reply = frames_for(&outs, conn)
            .into_iter()
            .map(parse)
            .find(|r| r.xid == xid)
            .expect("a reply");
        (reply, outs)
    }
}

fn frames_for(outs: &[Output], conn: u64) -> Vec<Vec<u8>> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, frame } if *c == conn => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn parse(frame: Vec<u8>) -> Reply {
    let mut r = Reader::new(&frame[4..]);
    let xid = r.i32().unwrap();
    let zxid = r.i64().unwrap();
    let err = r.i32().unwrap();
    Reply {
        xid,
        zxid,
        err,
        body: frame[20..].to_vec(),
    }
}

fn events(outs: &[Output], conn: u64) -> Vec<(i32, String)> {
    frames_for(outs, conn)
        .into_iter()
        .map(parse)
        .filter(|r| r.xid == -1)
        .map(|r| {
            let mut rd = Reader::new(&r.body);
            let t = rd.i32().unwrap();
            let _state = rd.i32().unwrap();
            (t, rd.string().unwrap())
        })
        .collect()
}

fn create(path: &str, data: &[u8], flags: i32) -> Writer {
    let mut w = Writer::new();
    w.string(path).buffer(data);
    write_acls(&mut w, &Acl::world_all());
    w.i32(flags);
    w
}

/// A create whose ACL gives everything to the creator alone (`auth` scheme).
fn create_private(path: &str, data: &[u8]) -> Writer {
    let mut w = Writer::new();
    w.string(path).buffer(data);
    write_acls(
        &mut w,
        &[Acl {
            perms: perm::ALL,
            id: Id::new("auth", ""),
        }],
    );
    w.i32(0);
    w
}

fn path_arg(path: &str, watch: Option<bool>) -> Writer {
    let mut w = Writer::new();
    w.string(path);
    if let Some(b) = watch {
        w.bool(b);
    }
    w
}

#[test]
fn replies_wait_for_durability() {
    let mut h = Harness::new();
    let c = 1;
    h.connect(c);
    h.auto_durable = false;
    let outs = h.run(Input::Request {
        conn: c,
        xid: 1,
        op: op::CREATE,
        body: create("/a", b"x", 0).buf,
    });
    assert!(
        frames_for(&outs, c).is_empty(),
        "a write must not be answered before it is durable"
    );
    // A read behind it waits too, so nobody observes the undurable write.
    let outs = h.run(Input::Request {
        conn: 2,
        xid: 1,
        op: op::GET_DATA,
        body: path_arg("/a", Some(false)).buf,
    });
    assert!(outs.is_empty());
    let outs = h.flush();
    let r = parse(frames_for(&outs, c).remove(0));
    assert_eq!((r.xid, r.err), (1, 0));
}

#[test]
fn crud_versions_and_errors() {
    let mut h = Harness::new();
    let c = 1;
    h.connect(c);
    let (r, _) = h.call(c, 1, op::CREATE, create("/a", b"hello", 0));
    assert_eq!(r.err, 0);
    assert_eq!(Reader::new(&r.body).string().unwrap(), "/a");
    let (r, _) = h.call(c, 2, op::CREATE, create("/a", b"", 0));
    assert_eq!(r.err, Code::NodeExists as i32);
    let (r, _) = h.call(c, 3, op::CREATE, create("/x/y", b"", 0));
    assert_eq!(r.err, Code::NoNode as i32);
    let mut w = Writer::new();
    w.string("/a").buffer(b"v2").i32(7);
    let (r, _) = h.call(c, 4, op::SET_DATA, w);
    assert_eq!(r.err, Code::BadVersion as i32);
    let mut w = Writer::new();
    w.string("/a").buffer(b"v2").i32(0);
    let (r, _) = h.call(c, 5, op::SET_DATA, w);
    assert_eq!(r.err, 0);
    let (r, _) = h.call(c, 6, op::GET_DATA, path_arg("/a", Some(false)));
    let mut rd = Reader::new(&r.body);
    assert_eq!(rd.bytes().unwrap(), b"v2");
    let (_czxid, _mzxid) = (rd.i64().unwrap(), rd.i64().unwrap());
    let (_c, _m) = (rd.i64().unwrap(), rd.i64().unwrap());
    assert_eq!(rd.i32().unwrap(), 1, "version");
    h.call(c, 7, op::CREATE, create("/a/b", b"", 0));
    let mut w = Writer::new();
    w.string("/a").i32(-1);
    let (r, _) = h.call(c, 8, op::DELETE, w);
    assert_eq!(r.err, Code::NotEmpty as i32);
    // Failed writes still take a zxid, as in ZooKeeper.
    assert!(r.zxid > 0);
}

#[test]
fn sequential_names_follow_parent_cversion() {
    let mut h = Harness::new();
    let c = 1;
    h.connect(c);
    h.call(c, 1, op::CREATE, create("/q", b"", 0));
    let (r, _) = h.call(c, 2, op::CREATE, create("/q/n-", b"", 2));
    assert_eq!(Reader::new(&r.body).string().unwrap(), "/q/n-0000000000");
    let mut w = Writer::new();
    w.string("/q/n-0000000000").i32(-1);
    h.call(c, 3, op::DELETE, w);
    let (r, _) = h.call(c, 4, op::CREATE, create("/q/n-", b"", 2));
    assert_eq!(
        Reader::new(&r.body).string().unwrap(),
        "/q/n-0000000001",
        "the suffix counts creates only"
    );
}

#[test]
fn failed_multi_reports_each_op_and_changes_nothing() {
    let mut h = Harness::new();
    let c = 1;
    h.connect(c);
    let mut w = Writer::new();
    w.i32(op::CREATE).bool(false).i32(-1);
    w.buf.extend_from_slice(&create("/m", b"", 0).buf);
    w.i32(op::CREATE).bool(false).i32(-1);
    w.buf.extend_from_slice(&create("/m/child", b"", 0).buf);
    w.i32(op::DELETE)
        .bool(false)
        .i32(-1)
        .string("/missing")
        .i32(-1);
    w.i32(op::CHECK).bool(false).i32(-1).string("/m").i32(0);
    w.i32(-1).bool(true).i32(-1);
    let (r, _) = h.call(c, 1, op::MULTI, w);
    assert_eq!(
        r.err, 0,
        "a failed multi is reported per op, not in the header"
    );
    let mut rd = Reader::new(&r.body);
    let mut codes = vec![];
    loop {
        let t = rd.i32().unwrap();
        let done = rd.bool().unwrap();
        let err = rd.i32().unwrap();
        if done {
            break;
        }
        assert_eq!(t, -1);
        assert_eq!(rd.i32().unwrap(), err);
        codes.push(err);
    }
    assert_eq!(
        codes,
        vec![0, 0, Code::NoNode as i32, Code::RuntimeInconsistency as i32]
    );
    let (r, _) = h.call(c, 2, op::EXISTS, path_arg("/m", Some(false)));
    assert_eq!(r.err, Code::NoNode as i32);
}

#[test]
fn watches_fire_once_in_order() {
    let mut h = Harness::new();
    let (a, b) = (1, 2);
    h.connect(a);
    h.connect(b);
    let (r, _) = h.call(b, 1, op::EXISTS, path_arg("/w", Some(true)));
    assert_eq!(
        r.err,
        Code::NoNode as i32,
        "exists on a missing node still arms the watch"
    );
    h.call(b, 2, op::GET_CHILDREN, path_arg("/", Some(true)));
    let (_, outs) = h.call(a, 1, op::CREATE, create("/w", b"", 0));
    assert_eq!(
        events(&outs, b),
        vec![(1, "/w".to_string()), (4, "/".to_string())]
    );
    let (_, outs) = h.call(a, 2, op::CREATE, create("/w2", b"", 0));
    assert!(events(&outs, b).is_empty(), "one-shot watches fire once");
    // Persistent recursive watch sees descendants with their own paths.
    let mut w = Writer::new();
    w.string("/w").i32(1);
    h.call(b, 3, op::ADD_WATCH, w);
    let (_, outs) = h.call(a, 3, op::CREATE, create("/w/x", b"", 0));
    assert_eq!(events(&outs, b), vec![(1, "/w/x".to_string())]);
    let (_, outs) = h.call(a, 4, op::CREATE, create("/w/y", b"", 0));
    assert_eq!(events(&outs, b), vec![(1, "/w/y".to_string())]);
}

#[test]
fn session_expiry_deletes_ephemerals_and_notifies() {
    let mut h = Harness::new();
    let (a, b) = (1, 2);
    h.connect(a);
    h.connect(b);
    h.call(a, 1, op::CREATE, create("/e", b"", 1));
    h.call(b, 1, op::EXISTS, path_arg("/e", Some(true)));
    // a goes silent; b keeps pinging.
    let mut all = Vec::new();
    for _ in 0..10 {
        all.extend(h.tick(1000));
        all.extend(h.run(Input::Request {
            conn: b,
            xid: -2,
            op: op::PING,
            body: vec![],
        }));
    }
    assert!(
        all.contains(&Output::Close { conn: a }),
        "the expired session's connection is closed"
    );
    assert_eq!(events(&all, b), vec![(2, "/e".to_string())]);
}

#[test]
fn acl_denies_and_digest_allows() {
    let mut h = Harness::new();
    let (a, b) = (1, 2);
    h.connect(a);
    h.connect(b);
    h.auth_alice(a);
    let (r, _) = h.call(a, 1, op::CREATE, create_private("/private", b"s"));
    assert_eq!(r.err, 0);
    let (r, _) = h.call(b, 1, op::GET_DATA, path_arg("/private", Some(false)));
    assert_eq!(r.err, Code::NoAuth as i32);
    let (r, _) = h.call(a, 2, op::GET_DATA, path_arg("/private", Some(false)));
    assert_eq!(r.err, 0);
    let (r, _) = h.call(b, 2, op::GET_ACL, path_arg("/private", None));
    assert_eq!(r.err, Code::NoAuth as i32);
}

/// ZooKeeper 3.9 (CVE-2024-23944 and the exists check): a client that may not READ a
/// node neither sees it through exists nor hears of its changes through any watch.
#[test]
fn watch_events_and_exists_respect_read() {
    let mut h = Harness::new();
    let (owner, spy) = (1, 2);
    h.connect(owner);
    h.connect(spy);
    h.auth_alice(owner);
    let (r, _) = h.call(owner, 1, op::CREATE, create("/open", b"", 0));
    assert_eq!(r.err, 0);
    // The spy watches the whole tree below /open, and /open/secret before it exists.
    let mut w = Writer::new();
    w.string("/open").i32(1); // PERSISTENT_RECURSIVE
    let (r, _) = h.call(spy, 1, op::ADD_WATCH, w);
    assert_eq!(r.err, 0);
    let (r, _) = h.call(spy, 2, op::EXISTS, path_arg("/open/secret", Some(true)));
    assert_eq!(r.err, Code::NoNode as i32);
    let (r, outs) = h.call(owner, 2, op::CREATE, create_private("/open/secret", b"s"));
    assert_eq!(r.err, 0);
    assert_eq!(
        events(&outs, spy),
        vec![],
        "no NodeCreated for an unreadable node"
    );
    let mut w = Writer::new();
    w.string("/open/secret").buffer(b"t").i32(-1);
    let (_, outs) = h.call(owner, 3, op::SET_DATA, w);
    assert_eq!(events(&outs, spy), vec![]);
    // exists: NoAuth on an existing unreadable node, and no watch armed by it.
    let (r, _) = h.call(spy, 3, op::EXISTS, path_arg("/open/secret", Some(true)));
    assert_eq!(r.err, Code::NoAuth as i32);
    // Readable siblings are still reported.
    let (_, outs) = h.call(owner, 4, op::CREATE, create("/open/public", b"", 0));
    assert_eq!(events(&outs, spy), vec![(1, "/open/public".to_string())]);
    let mut w = Writer::new();
    w.string("/open/secret").i32(-1);
    let (r, outs) = h.call(owner, 5, op::DELETE, w);
    assert_eq!(r.err, 0);
    assert_eq!(
        events(&outs, spy),
        vec![],
        "no NodeDeleted for an unreadable node"
    );
    // setWatches: an unreadable node that changed since is not reported either.
    let (_, _) = h.call(owner, 6, op::CREATE, create_private("/open/secret2", b"s"));
    let mut w = Writer::new();
    w.i64(0)
        .i32(1)
        .string("/open/secret2")
        .i32(1)
        .string("/open/secret2")
        .i32(1)
        .string("/open/public");
    let (r, outs) = h.call(spy, 4, op::SET_WATCHES, w);
    assert_eq!((r.xid, r.err), (4, 0), "answered with the request's xid");
    assert_eq!(
        events(&outs, spy),
        vec![(4, "/open/public".to_string())],
        "only the readable node's change is reported"
    );
}

#[test]
fn replaying_the_log_rebuilds_the_same_tree() {
    let mut h = Harness::new();
    let c = 1;
    h.connect(c);
    h.call(c, 1, op::CREATE, create("/r", b"1", 0));
    h.call(c, 2, op::CREATE, create("/r/s-", b"", 2));
    h.call(c, 3, op::CREATE, create("/r/e", b"", 1));
    let mut w = Writer::new();
    w.string("/r").buffer(b"2").i32(-1);
    h.call(c, 4, op::SET_DATA, w);
    let mut fresh = Engine::new(EngineConfig::default(), 2_000_000);
    for frame in &h.log {
        fresh.replay(frame).unwrap();
    }
    assert_eq!(fresh.last_zxid(), h.e.last_zxid());
    let mut a: Vec<_> =
        h.e.tree()
            .nodes()
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
    let mut b: Vec<_> = fresh
        .tree()
        .nodes()
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a, b);
    assert_eq!(fresh.sessions().len(), 1);
    // And a snapshot round trip gives the same tree too.
    let snap = h.e.snapshot();
    let mut from_snap = Engine::new(EngineConfig::default(), 3_000_000);
    from_snap.load_snapshot(&snap);
    let mut c2: Vec<_> = from_snap
        .tree()
        .nodes()
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect();
    c2.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a, c2);
}

#[test]
fn containers_are_reaped_after_their_last_child_goes() {
    let mut h = Harness::new();
    let c = 1;
    h.connect(c);
    let (r, _) = h.call(c, 1, op::CREATE_CONTAINER, create("/c", b"", 4));
    assert_eq!(r.err, 0);
    h.call(c, 2, op::CREATE, create("/c/x", b"", 0));
    let mut w = Writer::new();
    w.string("/c/x").i32(-1);
    h.call(c, 3, op::DELETE, w);
    for _ in 0..3 {
        h.run(Input::Request {
            conn: c,
            xid: -2,
            op: op::PING,
            body: vec![],
        });
        h.tick(600);
    }
    let (r, _) = h.call(c, 4, op::EXISTS, path_arg("/c", Some(false)));
    assert_eq!(r.err, Code::NoNode as i32);
}

#[test]
fn malformed_body_is_answered_and_unknown_opcode_closes() {
    let mut h = Harness::new();
    h.connect(1);
    h.connect(2);
    // A body that does not decode: MarshallingError, and the connection stays (as ZooKeeper).
    let outs = h.run(Input::Request {
        conn: 1,
        xid: 1,
        op: op::CREATE,
        body: vec![0, 0, 0, 9, 1],
    });
    let r = parse(frames_for(&outs, 1).remove(0));
    assert_eq!((r.xid, r.err), (1, Code::MarshallingError as i32));
    assert!(!outs.iter().any(|o| matches!(o, Output::Close { .. })));
    // An opcode no client may send: Unimplemented, then closed.
    let outs = h.run(Input::Request {
        conn: 1,
        xid: 2,
        op: 999,
        body: vec![],
    });
    assert_eq!(
        parse(frames_for(&outs, 1).remove(0)).err,
        Code::Unimplemented as i32
    );
    assert!(outs.contains(&Output::Close { conn: 1 }));
    let (r, _) = h.call(2, 1, op::EXISTS, path_arg("/", Some(false)));
    assert_eq!(r.err, 0);
}
