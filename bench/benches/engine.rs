//! Applying writes to the engine: create, setData and delete, each driven as `net` drives
//! it — `Input::Request`, drain (the log frame to persist), `Input::Durable` for that
//! frame, drain (the reply) — so a measurement covers prep, the log encoding, apply and
//! the reply, but no I/O.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keel_engine::jute::Writer;
use keel_engine::proto::{op, write_acls, Acl, ConnectRequest};
use keel_engine::{Engine, EngineConfig, Input, Output};

const CONN: u64 = 1;
const NOW: i64 = 1_700_000_000_000;

struct Driver {
    e: Engine,
    out: Vec<Output>,
    xid: i32,
    acl: Vec<Acl>,
    value: Vec<u8>,
}

impl Driver {
    fn new() -> Driver {
        let mut e = Engine::new(EngineConfig::default(), NOW);
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 30_000,
            session_id: 0,
            password: vec![0; 16],
            read_only: false,
            has_read_only: true,
        };
        e.step(Input::Connect {
            conn: CONN,
            peer: SocketAddr::from(([127, 0, 0, 1], 50_000)),
            req,
        });
        let mut d = Driver {
            e,
            out: Vec::new(),
            xid: 0,
            acl: Acl::world_all(),
            value: vec![b'v'; 128],
        };
        d.settle();
        d.create("/b");
        d.create("/s");
        d
    }

    /// Drains, reports every persisted frame durable, drains the replies.
    fn settle(&mut self) {
        self.out.clear();
        self.e.drain(&mut self.out);
        let last = self
            .out
            .iter()
            .filter_map(|o| {
                if let Output::Persist { last_zxid, .. } = o {
                    Some(*last_zxid)
                } else {
                    None
                }
            })
            .max();
        if let Some(z) = last {
            self.e.step(Input::Durable { zxid: z });
            self.out.clear();
            self.e.drain(&mut self.out);
        }
        black_box(&self.out);
    }

    fn request(&mut self, opcode: i32, body: Vec<u8>) {
        self.xid += 1;
        self.e.step(Input::Request {
            conn: CONN,
            xid: self.xid,
            op: opcode,
            body,
        });
        self.settle();
    }

    fn create(&mut self, path: &str) {
        let mut w = Writer::new();
        w.string(path).buffer(&self.value);
        write_acls(&mut w, &self.acl);
        w.i32(0);
        self.request(op::CREATE, w.buf);
    }

    fn set(&mut self, path: &str) {
        let mut w = Writer::new();
        w.string(path).buffer(&self.value).i32(-1);
        self.request(op::SET_DATA, w.buf);
    }

    fn delete(&mut self, path: &str) {
        let mut w = Writer::new();
        w.string(path).i32(-1);
        self.request(op::DELETE, w.buf);
    }
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine/apply");
    g.bench_function("create", |b| {
        let mut d = Driver::new();
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            d.create(&format!("/b/n{n}"));
        });
    });
    g.bench_function("setData", |b| {
        let mut d = Driver::new();
        b.iter(|| d.set("/s"));
    });
    g.bench_function("delete", |b| {
        let mut d = Driver::new();
        let mut round = 0u64;
        b.iter_custom(|iters| {
            round += 1;
            for i in 0..iters {
                d.create(&format!("/b/r{round}-{i}"));
            }
            let start = Instant::now();
            for i in 0..iters {
                d.delete(&format!("/b/r{round}-{i}"));
            }
            start.elapsed().max(Duration::from_nanos(1))
        });
    });
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
