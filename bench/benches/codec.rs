//! Jute encode and decode of the requests a ZooKeeper client sends most: create,
//! getData and setData, as the server sees them (`Request::decode` of the body after the
//! header) and as a client builds them (`Writer`, framed, with the `RequestHeader`).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use keel_engine::jute::Writer;
use keel_engine::proto::{op, write_acls, Acl, Request};

const PATH: &str = "/keel-bench/keys/k12345";

fn encode(opcode: i32, xid: i32, value: &[u8], acl: &[Acl]) -> Vec<u8> {
    let mut w = Writer::framed();
    w.i32(xid).i32(opcode);
    match opcode {
        op::CREATE => {
            w.string(PATH).buffer(value);
            write_acls(&mut w, acl);
            w.i32(0);
        }
        op::GET_DATA => {
            w.string(PATH).bool(false);
        }
        op::SET_DATA => {
            w.string(PATH).buffer(value).i32(-1);
        }
        _ => {}
    }
    w.finish_frame()
}

fn codec(c: &mut Criterion) {
    let value = vec![b'v'; 128];
    let acl = Acl::world_all();
    for (name, opcode) in [
        ("create", op::CREATE),
        ("getData", op::GET_DATA),
        ("setData", op::SET_DATA),
    ] {
        let frame = encode(opcode, 7, &value, &acl);
        // the body after the 4-byte length and the 8-byte RequestHeader
        let body = frame[12..].to_vec();
        let mut g = c.benchmark_group(format!("jute/{name}"));
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function("decode", |b| {
            b.iter(|| Request::decode(black_box(opcode), black_box(&body)))
        });
        g.bench_function("encode", |b| {
            b.iter(|| encode(black_box(opcode), black_box(7), black_box(&value), &acl))
        });
        g.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
