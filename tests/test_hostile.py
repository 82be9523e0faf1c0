"""Hostile clients, part 1: packets (issue 10).  Parts 2 and 3 are
test_hostile_load.py (slowloris, thousands of sessions, a client that never
reads) and test_hostile_acl.py (ACL leaks, reconfig authorization).

Every test runs against both servers (KEEL_TEST_SERVERS=keel,zookeeper).  After
each attack `assert_served` checks that the server process is alive, that a
well-behaved kazoo client connects and creates, reads and deletes a znode
within 2 s per operation, that `ruok` answers, and that every znode whose
create was acknowledged before the attack (harness.hostile.Ledger, cumulative
over the module) is still there with its data.  A test that kills the shared
server fails; the next test restarts it (same data dir) and goes on.

What Apache ZooKeeper 3.8.0 (Debian 3.8.0-11+deb12u2) does, asserted for both:
  * A multi (14) or multiRead (22) whose op headers name multi or multiRead
    (nested, to any depth, e.g. ~110,000 headers in a ~1 MB frame) is answered
    MARSHALLINGERROR (MultiOperationRecord.deserialize: "Invalid type of op");
    the connection stays usable.  (Keel before the fix: the engine thread
    recursed once per header, overflowed its stack and aborted the process.)
  * Any frame length that is negative or above jute.maxbuffer (0xfffff), before
    or after the handshake, closes the connection; nothing is answered before
    the handshake.  A frame of exactly jute.maxbuffer + 1 bytes, fully sent,
    too.  A truncated frame followed by the client's close is forgotten.
  * Random bytes as a whole connection, then the client's half-close: the
    server closes the connection (within seconds) and keeps serving others.
  * Random and mutated request bodies for every opcode in rawzk.OP after a
    valid handshake: each frame is answered (any error code) or the connection
    is closed; never a hang, never a crash.

Randomness is seeded: KEEL_HOSTILE_SEED (default below) picks the inputs; the
seed is printed (pytest -s) and named in every failure message.  The `slow`
variants use a fresh random seed and many more inputs.
"""
import os
import random
import selectors
import socket
import struct
import subprocess
import time

import pytest

from harness import rawzk
from harness.hostile import Ledger, assert_served, connect_request, ensure_running

MAXBUF = 0xFFFFF  # jute.maxbuffer default, both servers
DEFAULT_SEED = 0x4B45454C  # "KEEL"
OP = rawzk.OP


def seed_for(slow=False):
    env = os.environ.get("KEEL_HOSTILE_SEED")
    if env:
        return int(env, 0)
    if slow:
        return random.SystemRandom().randrange(1 << 32)
    return DEFAULT_SEED


@pytest.fixture
def target(server, request):
    """The module's shared server, restarted if an earlier attack killed it,
    with a few acknowledged znodes written for this test."""
    ensure_running(server)
    Ledger.of(server).add(request.node.name, n=3)
    return server


def mheader(op, done=False, err=-1):
    return rawzk.W().int(op).bool(done).int(err).bytes()


END = mheader(-1, True, -1)


# ---------------------------------------------------------------------------
# 1. nested multi / multiRead


def _nested(outer_inner, n):
    return b"".join(mheader(op) for op in outer_inner) * (n // len(outer_inner))


NESTED = {
    # ~1 MB: 110,000 headers of 9 bytes each
    "multi-in-multi-110k": (OP["multi"], _nested([OP["multi"]], 110000)),
    "multiRead-in-multiRead-110k": (OP["multiRead"], _nested([OP["multiRead"]], 110000)),
    "multiRead-in-multi-110k": (OP["multi"], _nested([OP["multiRead"]], 110000)),
    "multi-in-multiRead-110k": (OP["multiRead"], _nested([OP["multi"]], 110000)),
    "alternating-110k": (OP["multi"], _nested([OP["multiRead"], OP["multi"]], 110000)),
    # shallow and well terminated: still not allowed inside a multi
    "multi-in-multi-depth-3": (OP["multi"], _nested([OP["multi"]], 3) + END * 4),
    "multiRead-in-multi-with-a-create": (
        OP["multi"],
        mheader(OP["multiRead"]) + mheader(OP["create"])
        + rawzk.create_body("/hostile-nested-x", b"") + END + END),
}


@pytest.mark.parametrize("case", sorted(NESTED))
def test_nested_multi(target, case):
    op, body = NESTED[case]
    assert len(body) <= MAXBUF - 8
    c = rawzk.connect(target.host, target.port)
    try:
        try:
            r = c.call(op, body, timeout=15)
        except rawzk.ConnectionClosed:
            r = None
            try:  # an aborting process closes its sockets just before it is reaped
                target.proc.wait(1)
            except subprocess.TimeoutExpired:
                pass
        assert target.alive(), "%s (%d bytes) killed the server; log tail:\n%s" % (
            case, len(body), target.log_tail(6))
        # ZooKeeper: MARSHALLINGERROR, connection kept
        assert r is not None, "connection closed instead of an error reply"
        assert r.err_name == "MARSHALLINGERROR", r
        assert c.ping().ok
        assert c.exists("/hostile-nested-x").err_name == "NONODE"
    finally:
        c.close()
    assert_served(target, what=case)


# ---------------------------------------------------------------------------
# 2. frame lengths


def _read_until_closed(sock, timeout):
    """(bytes received, closed?) reading until EOF or timeout."""
    got = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got, False
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            return got, False
        except (ConnectionResetError, BrokenPipeError):
            return got, True
        if not b:
            return got, True
        got += b


def _send_tolerant(sock, data):
    """sendall that treats the server's close as the end of sending."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


BAD_LENGTHS = {
    "minus-1": -1,
    "minus-2": -2,
    "int-min": -(2 ** 31),
    "maxbuffer+1": MAXBUF + 1,
    "16MiB": 16 << 20,
    "int-max": 2 ** 31 - 1,
    "0x80000001": -(2 ** 31) + 1,
}


@pytest.mark.parametrize("phase", ["before-handshake", "after-handshake"])
@pytest.mark.parametrize("name", sorted(BAD_LENGTHS))
def test_bad_frame_length(target, phase, name):
    length = BAD_LENGTHS[name]
    c = rawzk.RawZK(target.host, target.port, timeout=5)
    s = c.sock
    try:
        if phase == "after-handshake":
            assert c.connect().get("sessionId")
        # the length, then some body bytes (a real attacker keeps sending)
        _send_tolerant(s, struct.pack(">i", length) + b"\x00" * 4096)
        got, closed = _read_until_closed(s, 5)
        assert closed, "connection left open after frame length %d (%s)" % (length, phase)
        assert got == b"", "server answered %r" % got[:64]
    finally:
        s.close()
    assert_served(target, what="frame length %d %s" % (length, phase))


@pytest.mark.parametrize("phase", ["before-handshake", "after-handshake"])
def test_frame_of_maxbuffer_plus_one_fully_sent(target, phase):
    """A complete frame one byte over jute.maxbuffer: closed, server unharmed."""
    c = rawzk.RawZK(target.host, target.port, timeout=5)
    try:
        if phase == "after-handshake":
            assert c.connect().get("sessionId")
            overhead = 8 + len(rawzk.create_body("/hostile-maxbuf", b"", rawzk.OPEN_ACL_UNSAFE, 0))
            payload = struct.pack(">ii", 1, OP["create"]) + rawzk.create_body(
                "/hostile-maxbuf", b"m" * (MAXBUF + 1 - overhead), rawzk.OPEN_ACL_UNSAFE, 0)
        else:
            payload = b"\x00" * (MAXBUF + 1)
        assert len(payload) == MAXBUF + 1
        _send_tolerant(c.sock, struct.pack(">i", len(payload)) + payload)
        got, closed = _read_until_closed(c.sock, 5)
        assert closed and got == b"", (closed, got[:64])
    finally:
        c.close()
    assert_served(target)
    r = rawzk.connect(target.host, target.port)
    try:
        assert r.exists("/hostile-maxbuf").err_name == "NONODE"
    finally:
        r.close()


@pytest.mark.parametrize("phase", ["before-handshake", "after-handshake"])
def test_truncated_large_frame_then_close(target, phase):
    """Half of a 1 MB frame, then the client closes: nothing is applied."""
    c = rawzk.RawZK(target.host, target.port, timeout=5)
    s = c.sock
    try:
        if phase == "after-handshake":
            assert c.connect().get("sessionId")
        body = struct.pack(">ii", 7, OP["create"]) + rawzk.create_body(
            "/hostile-truncated", b"t" * 900000, rawzk.OPEN_ACL_UNSAFE, 0)
        _send_tolerant(s, struct.pack(">i", len(body)) + body[:len(body) // 2])
    finally:
        s.close()
    assert_served(target)
    r = rawzk.connect(target.host, target.port)
    try:
        assert r.exists("/hostile-truncated").err_name == "NONODE"
    finally:
        r.close()


# ---------------------------------------------------------------------------
# 3a. random bytes as a whole connection


def _random_connection_bytes(rng):
    kind = rng.randrange(5)
    if kind == 0:  # pure noise
        return rng.randbytes(rng.randrange(1, 4096))
    if kind == 1:  # a plausible ConnectRequest length, random contents
        n = rng.randrange(0, 80)
        return struct.pack(">i", n) + rng.randbytes(n + rng.randrange(0, 8))
    if kind == 2:  # a real handshake, then noise
        return connect_request() + rng.randbytes(rng.randrange(1, 4096))
    if kind == 3:  # a real handshake, then plausible frames of noise
        out = bytearray(connect_request())
        for _ in range(rng.randrange(1, 20)):
            n = rng.randrange(0, 200)
            out += struct.pack(">i", n) + rng.randbytes(n)
        return bytes(out)
    # a ConnectRequest with each field mangled
    w = rawzk.W().int(rng.choice([0, -1, 2 ** 31 - 1, rng.randrange(-5, 5)]))
    w.long(rng.choice([0, -1, 2 ** 63 - 1, rng.getrandbits(63)]))
    w.int(rng.choice([0, -1, 2 ** 31 - 1, 1, 30000]))
    w.long(rng.choice([0, -1, rng.getrandbits(63)]))
    w.int(rng.choice([16, -1, 2 ** 31 - 1, 100000, 0])).raw(rng.randbytes(rng.randrange(0, 40)))
    body = w.bytes()
    return struct.pack(">i", len(body)) + body


def _run_random_connections(target, seed, count, batch=50, close_deadline=10.0):
    rng = random.Random(seed)
    hung = []
    for start in range(0, count, batch):
        socks = []
        for i in range(start, min(count, start + batch)):
            data = _random_connection_bytes(rng)
            s = socket.create_connection(target.address, timeout=5)
            _send_tolerant(s, data)
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            s.setblocking(False)
            socks.append((i, s, data))
        sel = selectors.DefaultSelector()
        for i, s, data in socks:
            sel.register(s, selectors.EVENT_READ, (i, data))
        deadline = time.monotonic() + close_deadline
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    b = key.fileobj.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    b = b""
                except BlockingIOError:
                    continue
                if not b:
                    sel.unregister(key.fileobj)
        for key in list(sel.get_map().values()):
            i, data = key.data
            hung.append("connection #%d (first bytes %s)" % (i, data[:24].hex()))
        sel.close()
        for _, s, _ in socks:
            s.close()
        assert target.alive(), "random connection bytes (seed %#x, batch from #%d) killed the server" % (
            seed, start)
    return hung


def test_random_bytes_connections(target):
    seed = seed_for()
    print("random connection bytes: KEEL_HOSTILE_SEED=%#x" % seed)
    hung = _run_random_connections(target, seed, 150)
    assert not hung, "seed %#x: still open %.0fs after the client's half-close: %s" % (
        seed, 10.0, hung[:5])
    assert_served(target, what="random bytes (seed %#x)" % seed)


@pytest.mark.slow
def test_random_bytes_connections_long(target):
    seed = seed_for(slow=True)
    print("random connection bytes (long): KEEL_HOSTILE_SEED=%#x" % seed)
    hung = _run_random_connections(target, seed, 3000)
    assert not hung, "seed %#x: still open after the client's half-close: %s" % (seed, hung[:5])
    assert_served(target, what="random bytes (seed %#x)" % seed)


# ---------------------------------------------------------------------------
# 3b. random request bodies for every opcode after a valid handshake

FUZZ_ROOT = "/hostile-fuzz"


def _template(op, rng):
    """A valid request body for `op` (paths under FUZZ_ROOT)."""
    p = "%s/n%d" % (FUZZ_ROOT, rng.randrange(4))
    W = rawzk.W
    if op in (OP["create"], OP["create2"], OP["createContainer"]):
        flags = 4 if op == OP["createContainer"] else rng.choice([0, 1, 2, 3])
        return rawzk.create_body(p, rng.randbytes(rng.randrange(8)), rawzk.OPEN_ACL_UNSAFE, flags)
    if op == OP["createTTL"]:
        return rawzk.create_body(p, b"", rawzk.OPEN_ACL_UNSAFE, 5, 60000)
    if op in (OP["delete"], OP["check"]):
        return rawzk.path_version(p, rng.choice([-1, 0, 1]))
    if op in (OP["exists"], OP["getData"], OP["getChildren"], OP["getChildren2"]):
        return rawzk.path_watch(p, rng.random() < 0.5)
    if op == OP["setData"]:
        return W().ustring(p).buffer(rng.randbytes(rng.randrange(16))).int(-1).bytes()
    if op in (OP["getACL"], OP["sync"], OP["deleteContainer"], OP["getEphemerals"],
              OP["getAllChildrenNumber"]):
        return rawzk.path_only(p)
    if op == OP["setACL"]:
        return W().ustring(p).acls(rawzk.OPEN_ACL_UNSAFE).int(-1).bytes()
    if op in (OP["multi"], OP["multiRead"]):
        if op == OP["multi"]:
            ops = [("create", p + "m", b"x", rawzk.OPEN_ACL_UNSAFE, 0), ("setData", p + "m", b"y"), ("delete", p + "m")]
        else:
            ops = [("getData", FUZZ_ROOT), ("getChildren", FUZZ_ROOT)]
        return rawzk.multi_body(ops[:rng.randrange(1, len(ops) + 1)])
    if op == OP["reconfig"]:
        return W().ustring(rng.choice([None, "server.9=127.0.0.1:1:2;3"])).ustring(
            rng.choice([None, "1"])).ustring(None).long(-1).bytes()
    if op in (OP["checkWatches"], OP["removeWatches"]):
        return W().ustring(p).int(rng.randrange(1, 6)).bytes()
    if op == OP["auth"]:
        return W().int(0).ustring(rng.choice(["digest", "ip", "world", "x"])).buffer(b"u:p").bytes()
    if op == OP["setWatches"]:
        return W().long(0).strings([p]).strings([p]).strings([FUZZ_ROOT]).bytes()
    if op == OP["setWatches2"]:
        return (W().long(0).strings([p]).strings([p]).strings([FUZZ_ROOT])
                .strings([FUZZ_ROOT]).strings([FUZZ_ROOT]).bytes())
    if op == OP["sasl"]:
        return W().buffer(rng.randbytes(rng.randrange(32))).bytes()
    if op == OP["addWatch"]:
        return W().ustring(p).int(rng.randrange(2)).bytes()
    if op == OP["createSession"]:
        return connect_request()[4:]
    return b""  # notification, ping, whoAmI, closeSession, error


_EXTREME_INTS = [0, 1, -1, -2, 0x7FFFFFFF, -(2 ** 31), 0x00100000, 0x0FFFFFFF, 0xFFFF]


def _mutate(body, rng):
    kind = rng.randrange(6)
    if kind == 0 or not body:  # noise
        return rng.randbytes(rng.choice([0, 1, 3, 4, 8, rng.randrange(0, 64), rng.randrange(0, 2048)]))
    b = bytearray(body)
    if kind == 1:  # truncated
        return bytes(b[:rng.randrange(len(b))])
    if kind == 2:  # bit flips
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == 3 and len(b) >= 4:  # an int (a length, a count, a flag) made extreme
        pos = rng.randrange(len(b) - 3)
        b[pos:pos + 4] = struct.pack(">i", struct.unpack(">i", struct.pack(">I", rng.choice(
            _EXTREME_INTS) & 0xFFFFFFFF))[0])
        return bytes(b)
    if kind == 4:  # trailing garbage
        return bytes(b) + rng.randbytes(rng.randrange(1, 64))
    return bytes(b)  # the valid body itself


class _FuzzConn:
    def __init__(self, target):
        self.target = target
        self.c = rawzk.connect(target.host, target.port, timeout=5)
        self.xid = 100

    def close(self):
        self.c.close()


def _fuzz_every_opcode(target, seed, per_op, time_budget):
    """Sends per_op random/mutated bodies for every opcode in rawzk.OP, each
    followed by a barrier (exists "/") on the same connection: the barrier's
    reply (or the connection's close) shows the frame was dealt with.  Returns
    (frames sent, outcomes by error name, hangs)."""
    rng = random.Random(seed)
    setup = rawzk.connect(target.host, target.port)
    r = setup.create(FUZZ_ROOT, b"")
    assert r.err_name in ("OK", "NODEEXISTS"), r
    setup.close()

    opcodes = sorted(set(OP.values()))
    frames = []
    for op in opcodes:
        for _ in range(per_op):
            frames.append((op, _mutate(_template(op, rng), rng)))
    rng.shuffle(frames)

    outcomes, hangs = {}, []
    conn = None
    sent = 0
    t_end = time.monotonic() + time_budget
    for i, (op, body) in enumerate(frames):
        if time.monotonic() > t_end:
            break
        if conn is None or conn.c.closed:
            if conn is not None:
                conn.close()
            conn = _FuzzConn(target)
        c = conn.c
        conn.xid += 2
        fx, bx = conn.xid, conn.xid + 1
        try:
            c.send_frame(struct.pack(">ii", fx, op) + body)
            c.send_frame(struct.pack(">ii", bx, OP["exists"]) + rawzk.path_watch("/", False))
        except rawzk.ConnectionClosed:
            outcomes["closed-on-send"] = outcomes.get("closed-on-send", 0) + 1
            continue
        sent += 1
        result = None
        deadline = time.monotonic() + 5
        try:
            while True:
                frame = c.recv_frame(max(0.0, deadline - time.monotonic()))
                x, = struct.unpack(">i", frame[:4])
                if x == fx:
                    result = rawzk.err_name(struct.unpack(">i", frame[12:16])[0]) if len(frame) >= 16 else "short"
                elif x == bx:
                    result = result or "no-reply"
                    break
        except rawzk.ConnectionClosed:
            result = (result + "+closed") if result else "closed"
        except socket.timeout:
            hangs.append("frame #%d op %d body %s" % (i, op, body[:48].hex()))
            conn.close()
            conn = None
        except rawzk.ProtocolError as e:
            result = "protocol-error: %s" % e
            conn.close()
            conn = None
        if result is not None:
            outcomes[result] = outcomes.get(result, 0) + 1
        if not target.alive():
            raise AssertionError(
                "seed %#x: frame #%d (opcode %d, body %s) killed the server; log tail:\n%s" % (
                    seed, i, op, body[:64].hex(), target.log_tail(8)))
    if conn is not None:
        conn.close()
    return sent, outcomes, hangs


def check_hangs(target, seed, hangs):
    """A frame neither answered nor followed by a close (the barrier after it
    never answered) fails Keel.  ZooKeeper 3.8.0 has one such hang of its own,
    so for it they are only printed: after a setWatches2 (105) whose last
    watch list holds a null string (length -1), an auth (100) whose scheme
    length overruns the frame is neither answered nor closed (found with
    KEEL_HOSTILE_SEED=0xe2b03818 in the long run; on a fresh server with
    /hostile-fuzz, these two frames, each followed by the barrier, reproduce it:
    105 000000000000000000000001000000102f686f7374696c652d66757a7a2f6e32
        00000001000000102f686f7374696c652d66757a7a2f6e32000000010000000d2f686f
        7374696c652d66757a7a000000010000000d2f686f7374696c652d66757a7a00000001
        ffffffff2f686f7374696c652d66757a7a
    100 000000000008000664696765537600000003753a70).  The server itself keeps
    serving (asserted after the run)."""
    if hangs and target.kind == "zookeeper":
        print("  ZooKeeper left %d connection(s) hanging: %s" % (len(hangs), hangs[:5]))
        return
    assert not hangs, "seed %#x: frames neither answered nor closed within 5 s: %s" % (seed, hangs[:5])


def test_random_request_bodies_every_opcode(target):
    seed = seed_for()
    print("random request bodies: KEEL_HOSTILE_SEED=%#x" % seed)
    per_op = 12
    sent, outcomes, hangs = _fuzz_every_opcode(target, seed, per_op, time_budget=60)
    print("  %d frames; outcomes %s" % (sent, sorted(outcomes.items())))
    check_hangs(target, seed, hangs)
    assert sent >= per_op * len(set(OP.values())) * 0.9, "only %d frames sent in the time budget" % sent
    assert_served(target, what="random request bodies (seed %#x)" % seed)


@pytest.mark.slow
def test_random_request_bodies_every_opcode_long(target):
    seed = seed_for(slow=True)
    print("random request bodies (long): KEEL_HOSTILE_SEED=%#x" % seed)
    sent, outcomes, hangs = _fuzz_every_opcode(target, seed, per_op=300, time_budget=240)
    print("  %d frames; outcomes %s" % (sent, sorted(outcomes.items())))
    check_hangs(target, seed, hangs)
    assert_served(target, what="random request bodies (seed %#x)" % seed)
