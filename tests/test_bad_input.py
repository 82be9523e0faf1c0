"""Malformed and hostile input on raw sockets.

Behaviour measured on Apache ZooKeeper 3.8.0 (asserted for every server):
  * any first frame that is not a valid ConnectRequest (garbage, length 0,
    negative length, length > jute.maxbuffer = 1048575) is answered by closing
    the connection at once, with no bytes sent back;
  * a frame of exactly jute.maxbuffer bytes is accepted, one byte more closes
    the connection; the session itself survives and can be resumed;
  * a 4-byte word that is not a known four-letter word is read as a frame
    length (e.g. "abcd" = 0x61626364 > maxbuffer) and closes the connection;
  * a known four-letter word outside the allowlist is answered
    "<cmd> is not executed because it is not in the whitelist.\\n", then closed;
  * an unknown opcode after the handshake gets a reply with err
    UNIMPLEMENTED (-6) and zxid -1, then the connection is closed;
  * a request whose body is truncated gets MARSHALLINGERROR (-5) and the
    connection stays usable;
  * a connection that never completes the handshake is closed by the server
    after the sessionless-connection timeout (10 s in ZooKeeper, observed
    10-20 s because expiry is bucketed);
  * maxClientCnxns limits concurrent connections per client IP (handshaken or
    not, four-letter-word connections included): the extra connection is
    accepted and immediately closed without a ConnectResponse.
After each case a normal client on another connection must still work.
"""
import os
import socket
import struct
import time

import pytest

from harness import rawzk
from harness.wait import wait_until

MAXBUF = 0xFFFFF


def healthy(server):
    """A fresh session can write and read, and ruok answers."""
    c = rawzk.connect(server.host, server.port)
    try:
        p = "/healthy-%d" % int(time.monotonic() * 1e6)
        assert c.create(p, b"ok").ok
        assert c.get_data(p)["data"] == b"ok"
        assert c.delete(p).ok
    finally:
        c.close()
    assert server.four_letter("ruok") == "imok"


def send_and_read_all(server, data, timeout=5.0):
    """Send bytes on a new connection; return (bytes received, closed?)."""
    s = socket.create_connection(server.address, timeout=timeout)
    try:
        if data:
            s.sendall(data)
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                return got, False
            except ConnectionResetError:
                return got, True
            if not b:
                return got, True
            got += b
        return got, False
    finally:
        s.close()


GARBAGE = {
    "garbage_8": b"\x00\x00\x00\x08" + b"\xde\xad\xbe\xef\x01\x02\x03\x04",
    "garbage_64": b"\x00\x00\x00\x40" + bytes(range(64)),
    "random_2k": struct.pack(">i", 2048) + os.urandom(2048),
    "zero_length": b"\x00\x00\x00\x00",
    "negative_length": struct.pack(">i", -1),
    "min_int_length": struct.pack(">i", -(2 ** 31)),
    "over_maxbuffer": struct.pack(">i", MAXBUF + 1),
    "max_int_length": struct.pack(">i", 2 ** 31 - 1),
    "http_request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown_4lw": b"abcd",
    "tls_client_hello": bytes.fromhex("16030100a5010000a10303") + os.urandom(32),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_bad_first_frame_is_closed(server, name):
    got, closed = send_and_read_all(server, GARBAGE[name])
    assert closed, "connection left open after %s" % name
    assert got == b"", "server answered %r to %s" % (got[:100], name)
    healthy(server)


def test_truncated_frame_then_client_close(server):
    s = socket.create_connection(server.address, timeout=5)
    s.sendall(struct.pack(">i", 100) + b"x" * 10)
    s.close()
    c = rawzk.connect(server.host, server.port)
    s2 = socket.create_connection(server.address, timeout=5)
    s2.sendall(struct.pack(">i", 45) + b"\x00" * 20)  # half a ConnectRequest
    s2.close()
    assert c.ping().ok
    healthy(server)


def test_truncated_frame_after_handshake_then_close(server):
    c = rawzk.connect(server.host, server.port)
    c.send_raw(struct.pack(">i", 200) + struct.pack(">ii", 1, rawzk.OP["create"]) + b"\x00\x00")
    c.close()
    healthy(server)


@pytest.mark.parametrize("length", [-1, -(2 ** 31), 0, 3, MAXBUF + 1, 2 ** 31 - 1])
def test_bad_length_after_handshake_closes_but_keeps_session(server, length):
    c = rawzk.connect(server.host, server.port)
    p = "/badlen-%d-%d" % (length & 0xFFFFFFFF, int(time.monotonic() * 1e6))
    assert c.create(p, b"", flags=rawzk.EPHEMERAL).ok
    sid, pw = c.session_id, c.passwd
    c.send_raw(struct.pack(">i", length) + (b"\x00" * min(max(length, 0), 16)))
    assert c.wait_closed(5), "connection not closed after frame length %d" % length
    # the session was not closed: it can be resumed and still owns its ephemeral
    d = rawzk.RawZK(server.host, server.port)
    resp = d.connect(session_id=sid, passwd=pw)
    assert resp["sessionId"] == sid
    st = d.exists(p)
    assert st.ok and st["stat"]["ephemeralOwner"] == sid
    d.close_session()
    healthy(server)


def test_jute_maxbuffer_boundary(server):
    c = rawzk.connect(server.host, server.port)
    overhead = 8 + len(rawzk.create_body("/maxbuf-ok", b"", rawzk.OPEN_ACL_UNSAFE, 0))
    r = c.create("/maxbuf-ok", b"y" * (MAXBUF - overhead))      # frame == 1048575
    assert r.ok
    c.delete("/maxbuf-ok")
    with pytest.raises(rawzk.ConnectionClosed):
        c.create("/maxbuf-ok", b"y" * (MAXBUF + 1 - overhead))  # frame == 1048576
    healthy(server)


def test_oversized_data_closes_connection(server):
    c = rawzk.connect(server.host, server.port)
    with pytest.raises(rawzk.ConnectionClosed):
        c.create("/too-big", b"z" * (2 * 1024 * 1024))
    healthy(server)


@pytest.mark.parametrize("opcode", [10, 23, 999, -12, 2 ** 31 - 1])
def test_unknown_opcode(server, opcode):
    c = rawzk.connect(server.host, server.port)
    r = None
    try:
        r = c.raw_request(opcode, rawzk.path_only("/"))
    except rawzk.ConnectionClosed:
        pass
    assert r is not None, "no reply before close"
    assert r.err_name == "UNIMPLEMENTED" and r.zxid == -1
    assert c.wait_closed(5)
    healthy(server)


@pytest.mark.parametrize("op,body", [
    ("getData", b""),
    ("getData", b"\x00\x00\x00\x05/a"),             # string shorter than its length
    ("create", rawzk.W().ustring("/x").bytes()),     # data, acl, flags missing
    ("setData", rawzk.W().ustring("/").bytes()),
    ("multi", b"\x00\x00\x00\x01\x00"),
    ("exists", b"\xff\xff\xff\xf0"),                  # negative string length
])
def test_truncated_request_body_gets_marshalling_error(server, op, body):
    c = rawzk.connect(server.host, server.port)
    r = c.call(rawzk.OP[op], body, opname=op)
    assert r.err_name == "MARSHALLINGERROR"
    assert c.ping().ok  # connection still usable
    healthy(server)


def test_header_too_short_after_handshake(server):
    c = rawzk.connect(server.host, server.port)
    c.send_raw(struct.pack(">i", 4) + struct.pack(">i", 5))  # xid only
    assert c.wait_closed(5)
    healthy(server)


@pytest.mark.slow
def test_connection_that_never_handshakes_is_closed(server):
    t0 = time.monotonic()
    silent = socket.create_connection(server.address, timeout=60)
    partial = socket.create_connection(server.address, timeout=60)
    partial.sendall(struct.pack(">i", 45) + b"\x00" * 10)  # stalls mid-handshake
    # meanwhile the server keeps serving others
    healthy(server)
    for s, what in ((silent, "silent"), (partial, "partial handshake")):
        s.settimeout(max(0.1, 45 - (time.monotonic() - t0)))
        try:
            data = s.recv(16)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            pytest.fail("%s connection still open after %.0fs" % (what, time.monotonic() - t0))
        assert data == b""
        s.close()
    elapsed = time.monotonic() - t0
    # ZooKeeper: sessionless connection timeout 10 s, closed after 10-20 s
    assert 3.0 <= elapsed <= 45.0, "closed after %.1fs" % elapsed
    healthy(server)


@pytest.mark.server_cfg(maxClientCnxns=5)
def test_max_client_cnxns_per_address(fresh_server):
    server = fresh_server

    def try_connect():
        c = rawzk.RawZK(server.host, server.port)
        r = c.connect()
        if r.get("closed"):
            return None
        return c

    # start-up probes (ruok/srvr) are connections too and are retired a
    # moment after they close: retry until each of the 4 sessions gets in
    conns = [wait_until(try_connect, 10, what="connection %d of 5" % (i + 1)) for i in range(4)]
    idle = socket.create_connection(server.address, timeout=5)   # counts too
    # the server registers accepted sockets asynchronously; a four-letter word
    # is a connection too and gets "" (closed unanswered) at the limit
    wait_until(lambda: server.four_letter("ruok") == "", 10,
               what="the limit of 5 connections to be reached")
    sixth = rawzk.RawZK(server.host, server.port)
    resp = sixth.connect()
    assert resp.get("closed"), "6th connection got a session: %r" % (resp,)
    for c in conns:
        assert c.ping().ok
    # free one slot: a new connection works once the server has seen the close
    idle.close()
    new = wait_until(try_connect, 10, what="a free connection slot")
    assert new.create("/after-limit", b"").ok


@pytest.mark.server_sysprops(**{"zookeeper.4lw.commands.whitelist": "srvr"})
def test_four_letter_word_not_in_allowlist(fresh_server):
    server = fresh_server
    for cmd in ("ruok", "dump", "stat", "mntr", "conf", "envi", "wchs", "cons", "isro"):
        got, closed = send_and_read_all(server, cmd.encode())
        assert closed
        assert got.decode() == "%s is not executed because it is not in the whitelist.\n" % cmd
    got, closed = send_and_read_all(server, b"srvr")
    assert closed and got.startswith(b"Zookeeper version: ")
    c = rawzk.connect(server.host, server.port)
    assert c.create("/allowlist-ok", b"").ok


@pytest.mark.server_sysprops(**{"zookeeper.maxCnxns": "5"})
def test_max_cnxns_in_all(fresh_server):
    """zookeeper.maxCnxns caps client connections across all addresses: the extra
    connection is accepted and closed without a ConnectResponse, as maxClientCnxns."""
    server = fresh_server

    def try_connect():
        c = rawzk.RawZK(server.host, server.port)
        r = c.connect()
        return None if r.get("closed") else c

    conns = [wait_until(try_connect, 10, what="connection %d of 5" % (i + 1)) for i in range(5)]
    extra = rawzk.RawZK(server.host, server.port)
    assert extra.connect().get("closed"), "a 6th connection got a session"
    for c in conns:
        assert c.ping().ok
    conns.pop().close()
    new = wait_until(try_connect, 10, what="a free connection slot")
    assert new.create("/after-total-limit", b"").ok


@pytest.mark.server_cfg(globalOutstandingLimit=10)
def test_outstanding_limit_throttles_without_losing_requests(fresh_server):
    """A client that pipelines far more requests than globalOutstandingLimit and does
    not read is throttled, not failed: once it reads, every reply is there, in order,
    and other clients were served meanwhile."""
    server = fresh_server
    c = rawzk.connect(server.host, server.port)
    data = b"v" * 100_000
    assert c.create("/throttled", data).ok
    n = 300
    body = rawzk.path_watch("/throttled", False)
    frames = b"".join(struct.pack(">iii", 8 + len(body), 1000 + i, rawzk.OP["getData"]) + body
                      for i in range(n))
    c.sock.settimeout(0.05)
    sent = 0
    deadline = time.monotonic() + 2.0
    while sent < len(frames) and time.monotonic() < deadline:
        try:
            sent += c.sock.send(frames[sent:])
        except socket.timeout:
            pass
    # Another session is served while this one is throttled.
    healthy(server)
    c.sock.settimeout(None)
    if sent < len(frames):
        c.sock.setblocking(True)
        # finish sending from a thread-free loop: reading frees the server to read on
        import threading
        t = threading.Thread(target=c.sock.sendall, args=(frames[sent:],))
        t.start()
    else:
        t = None
    for i in range(n):
        rep = c.read_reply(1000 + i, rawzk.OP["getData"], timeout=30)
        assert rep.ok and rep["data"] == data
    if t:
        t.join(10)
    assert c.ping().ok
