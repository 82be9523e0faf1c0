"""A tiny synchronous ZooKeeper wire-protocol client.

It exists so that tests see exactly what a server sends: error codes in reply
headers, reply-header zxids, full Stats, multi per-op results, the presence or
absence of optional fields (the connect response's readOnly byte), and watch
notifications in the order they arrive on the socket.

Framing: 4-byte big-endian length + body.  Requests: RequestHeader{int xid;
int type} + record; replies: ReplyHeader{int xid; long zxid; int err} + record.
Jute: int 4B BE, long 8B BE, boolean 1B, ustring/buffer = int length (-1 =
null) + bytes, vector = int count (-1 = null) + elements.

Nothing here retries or hides anything: an error code is returned, never raised.
"""
import socket
import struct
import time

# ---------------------------------------------------------------------------
# Constants (ZooDefs.OpCode, KeeperException.Code, Watcher.Event)

OP = {
    "notification": 0, "create": 1, "delete": 2, "exists": 3, "getData": 4,
    "setData": 5, "getACL": 6, "setACL": 7, "getChildren": 8, "sync": 9,
    "ping": 11, "getChildren2": 12, "check": 13, "multi": 14, "create2": 15,
    "reconfig": 16, "checkWatches": 17, "removeWatches": 18,
    "createContainer": 19, "deleteContainer": 20, "createTTL": 21,
    "multiRead": 22, "auth": 100, "setWatches": 101, "sasl": 102,
    "getEphemerals": 103, "getAllChildrenNumber": 104, "setWatches2": 105,
    "addWatch": 106, "whoAmI": 107, "createSession": -10, "closeSession": -11,
    "error": -1,
}
OP_NAME = {v: k for k, v in OP.items()}

ERR = {
    0: "OK", -1: "SYSTEMERROR", -2: "RUNTIMEINCONSISTENCY", -3: "DATAINCONSISTENCY",
    -4: "CONNECTIONLOSS", -5: "MARSHALLINGERROR", -6: "UNIMPLEMENTED",
    -7: "OPERATIONTIMEOUT", -8: "BADARGUMENTS", -12: "UNKNOWNSESSION",
    -13: "NEWCONFIGNOQUORUM", -14: "RECONFIGINPROGRESS", -100: "APIERROR",
    -101: "NONODE", -102: "NOAUTH", -103: "BADVERSION",
    -108: "NOCHILDRENFOREPHEMERALS", -110: "NODEEXISTS", -111: "NOTEMPTY",
    -112: "SESSIONEXPIRED", -113: "INVALIDCALLBACK", -114: "INVALIDACL",
    -115: "AUTHFAILED", -118: "SESSIONMOVED", -119: "NOTREADONLY",
    -120: "EPHEMERALONLOCALSESSION", -121: "NOWATCHER", -122: "REQUESTTIMEOUT",
    -123: "RECONFIGDISABLED", -124: "SESSIONCLOSEDREQUIRESASLAUTH",
    -125: "QUOTAEXCEEDED", -127: "THROTTLEDOP",
}
ERR_CODE = {v: k for k, v in ERR.items()}


def err_name(code):
    return ERR.get(code, "ERR(%d)" % code)


EVENT_TYPE = {-1: "None", 1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
              4: "NodeChildrenChanged", 5: "DataWatchRemoved", 6: "ChildWatchRemoved",
              7: "PersistentWatchRemoved"}
KEEPER_STATE = {-1: "Unknown", 0: "Disconnected", 1: "NoSyncConnected", 3: "SyncConnected",
                4: "AuthFailed", 5: "ConnectedReadOnly", 6: "SaslAuthenticated",
                -112: "Expired", 7: "Closed"}

# CreateMode flags
PERSISTENT, EPHEMERAL, PERSISTENT_SEQUENTIAL, EPHEMERAL_SEQUENTIAL = 0, 1, 2, 3
CONTAINER, PERSISTENT_WITH_TTL, PERSISTENT_SEQUENTIAL_WITH_TTL = 4, 5, 6

# WatcherType for checkWatches/removeWatches; AddWatchMode
WT_CHILDREN, WT_DATA, WT_ANY, WT_PERSISTENT, WT_PERSISTENT_RECURSIVE = 1, 2, 3, 4, 5
AW_PERSISTENT, AW_PERSISTENT_RECURSIVE = 0, 1

# Perms
READ, WRITE, CREATE, DELETE, ADMIN, ALL = 1, 2, 4, 8, 16, 31

NOTIFICATION_XID, PING_XID, AUTH_XID, SET_WATCHES_XID = -1, -2, -4, -8

OPEN_ACL_UNSAFE = [(ALL, "world", "anyone")]
READ_ACL_UNSAFE = [(READ, "world", "anyone")]
CREATOR_ALL_ACL = [(ALL, "auth", "")]

STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
               "ephemeralOwner", "dataLength", "numChildren", "pzxid")
_STAT = struct.Struct(">qqqqiiiqiiq")


class ConnectionClosed(Exception):
    """The server closed the connection (EOF or reset)."""


class ProtocolError(Exception):
    pass


# ---------------------------------------------------------------------------
# Jute encoding


class W:
    """Jute writer."""

    def __init__(self):
        self.b = bytearray()

    def int(self, v):
        self.b += struct.pack(">i", v)
        return self

    def long(self, v):
        self.b += struct.pack(">q", v)
        return self

    def bool(self, v):
        self.b += b"\x01" if v else b"\x00"
        return self

    def buffer(self, v):
        if v is None:
            return self.int(-1)
        self.int(len(v))
        self.b += v
        return self

    def ustring(self, v):
        if v is None:
            return self.int(-1)
        return self.buffer(v.encode("utf-8") if isinstance(v, str) else v)

    def strings(self, vs):
        if vs is None:
            return self.int(-1)
        self.int(len(vs))
        for v in vs:
            self.ustring(v)
        return self

    def acls(self, acls):
        if acls is None:
            return self.int(-1)
        self.int(len(acls))
        for perms, scheme, ident in acls:
            self.int(perms).ustring(scheme).ustring(ident)
        return self

    def raw(self, data):
        self.b += data
        return self

    def bytes(self):
        return bytes(self.b)


class R:
    """Jute reader over one frame."""

    def __init__(self, data, pos=0):
        self.d = data
        self.p = pos

    def remaining(self):
        return len(self.d) - self.p

    def _take(self, n):
        if n < 0 or self.p + n > len(self.d):
            raise ProtocolError("short read: need %d at %d of %d" % (n, self.p, len(self.d)))
        v = self.d[self.p:self.p + n]
        self.p += n
        return v

    def int(self):
        return struct.unpack(">i", self._take(4))[0]

    def long(self):
        return struct.unpack(">q", self._take(8))[0]

    def bool(self):
        return self._take(1)[0] != 0

    def buffer(self):
        n = self.int()
        if n < 0:
            return None
        return bytes(self._take(n))

    def ustring(self):
        b = self.buffer()
        return None if b is None else b.decode("utf-8", "replace")

    def strings(self):
        n = self.int()
        if n < 0:
            return None
        return [self.ustring() for _ in range(n)]

    def stat(self):
        return dict(zip(STAT_FIELDS, _STAT.unpack(self._take(_STAT.size))))

    def acls(self):
        n = self.int()
        if n < 0:
            return None
        out = []
        for _ in range(n):
            perms = self.int()
            out.append([perms, self.ustring(), self.ustring()])
        return out

    def rest(self):
        v = bytes(self.d[self.p:])
        self.p = len(self.d)
        return v


# ---------------------------------------------------------------------------
# Request bodies (records only, no header)


def create_body(path, data=b"", acl=OPEN_ACL_UNSAFE, flags=0, ttl=None):
    w = W().ustring(path).buffer(data).acls(acl).int(flags)
    if ttl is not None:
        w.long(ttl)
    return w.bytes()


def path_version(path, version):
    return W().ustring(path).int(version).bytes()


def path_watch(path, watch):
    return W().ustring(path).bool(watch).bytes()


def path_only(path):
    return W().ustring(path).bytes()


# multi ops: tuples ("create", path, data, acl, flags) etc.; see encode_op
def encode_op(op):
    kind = op[0]
    if kind in ("create", "create2", "createContainer"):
        _, path, data, acl, flags = (list(op) + [b"", OPEN_ACL_UNSAFE, 0])[:5]
        return OP[kind], create_body(path, data, acl, flags)
    if kind == "createTTL":
        _, path, data, acl, flags, ttl = op
        return OP[kind], create_body(path, data, acl, flags, ttl)
    if kind == "delete":
        return OP[kind], path_version(op[1], op[2] if len(op) > 2 else -1)
    if kind == "setData":
        return OP[kind], W().ustring(op[1]).buffer(op[2]).int(op[3] if len(op) > 3 else -1).bytes()
    if kind == "check":
        return OP[kind], path_version(op[1], op[2])
    if kind in ("getData", "getChildren"):
        return OP[kind], path_watch(op[1], bool(op[2]) if len(op) > 2 else False)
    if kind == "raw":  # ("raw", opcode, body)
        return op[1], op[2]
    raise ValueError("unsupported multi op %r" % (op,))


def multi_body(ops):
    w = W()
    for op in ops:
        code, body = encode_op(op)
        w.int(code).bool(False).int(-1).raw(body)
    w.int(-1).bool(True).int(-1)
    return w.bytes()


# ---------------------------------------------------------------------------
# Response decoding, keyed by request opcode


def _dec_multi(r):
    results = []
    while True:
        typ = r.int()
        done = r.bool()
        err = r.int()
        if done:
            results.append({"end": [typ, err]})
            break
        entry = {"type": OP_NAME.get(typ, typ), "err": err_name(err)}
        if typ in (OP["create"],):
            entry["path"] = r.ustring()
        elif typ in (OP["create2"], OP["createContainer"], OP["createTTL"]):
            entry["path"] = r.ustring()
            entry["stat"] = r.stat()
        elif typ == OP["setData"]:
            entry["stat"] = r.stat()
        elif typ in (OP["delete"], OP["check"]):
            pass
        elif typ == OP["getData"]:
            entry["data"] = r.buffer()
            entry["stat"] = r.stat()
        elif typ == OP["getChildren"]:
            entry["children"] = r.strings()
        elif typ == OP["error"]:
            entry["errResponse"] = err_name(r.int())
        else:
            raise ProtocolError("unknown multi result type %d" % typ)
        results.append(entry)
    return {"results": results}


DECODERS = {
    OP["create"]: lambda r: {"path": r.ustring()},
    OP["create2"]: lambda r: {"path": r.ustring(), "stat": r.stat()},
    OP["createContainer"]: lambda r: {"path": r.ustring(), "stat": r.stat()},
    OP["createTTL"]: lambda r: {"path": r.ustring(), "stat": r.stat()},
    OP["exists"]: lambda r: {"stat": r.stat()},
    OP["getData"]: lambda r: {"data": r.buffer(), "stat": r.stat()},
    OP["setData"]: lambda r: {"stat": r.stat()},
    OP["getACL"]: lambda r: {"acl": r.acls(), "stat": r.stat()},
    OP["setACL"]: lambda r: {"stat": r.stat()},
    OP["getChildren"]: lambda r: {"children": r.strings()},
    OP["getChildren2"]: lambda r: {"children": r.strings(), "stat": r.stat()},
    OP["sync"]: lambda r: {"path": r.ustring()},
    OP["check"]: lambda r: {"stat": r.stat()},
    OP["multi"]: _dec_multi,
    OP["multiRead"]: _dec_multi,
    OP["reconfig"]: lambda r: {"data": r.buffer(), "stat": r.stat()},
    OP["sasl"]: lambda r: {"token": r.buffer()},
    OP["getEphemerals"]: lambda r: {"paths": r.strings()},
    OP["getAllChildrenNumber"]: lambda r: {"total": r.int()},
    OP["whoAmI"]: lambda r: {"clientInfo": [[r.ustring(), r.ustring()] for _ in range(r.int())]},
}


class Reply:
    __slots__ = ("xid", "zxid", "err", "body", "op", "raw_len")

    def __init__(self, xid, zxid, err, body, op, raw_len):
        self.xid, self.zxid, self.err, self.body, self.op, self.raw_len = xid, zxid, err, body, op, raw_len

    @property
    def ok(self):
        return self.err == 0

    @property
    def err_name(self):
        return err_name(self.err)

    def __getitem__(self, k):
        return self.body[k]

    def get(self, k, default=None):
        return (self.body or {}).get(k, default)

    def as_dict(self):
        d = {"xid": self.xid, "zxid": self.zxid, "err": err_name(self.err)}
        if self.body:
            d.update(self.body)
        return d

    def __repr__(self):
        return "Reply(%r)" % (self.as_dict(),)


def decode_reply(frame, op):
    r = R(frame)
    xid = r.int()
    zxid = r.long()
    err = r.int()
    body = {}
    if r.remaining():
        dec = DECODERS.get(op)
        start = r.p
        if dec is not None:
            try:
                body = dec(r)
            except ProtocolError:
                r.p = start
                body = {}
        if r.remaining():
            body["extraBytes"] = r.rest().hex()
    return Reply(xid, zxid, err, body, op, len(frame))


def decode_event(frame):
    r = R(frame)
    xid, zxid, err = r.int(), r.long(), r.int()
    typ, state, path = r.int(), r.int(), r.ustring()
    return {"type": EVENT_TYPE.get(typ, typ), "state": KEEPER_STATE.get(state, state),
            "path": path, "zxid": zxid, "err": err_name(err)}


# ---------------------------------------------------------------------------


class RawZK:
    """One TCP connection to a server.

    recorder: optional callable(entry: dict) that receives, in order, every
    request sent ("send"), every reply ("reply"), every notification ("event")
    and a connection close ("closed").  The differential harness uses it to
    build transcripts.
    """

    def __init__(self, host, port, timeout=10.0, recorder=None, name="c"):
        self.host, self.port = host, port
        self.name = name
        self.io_timeout = timeout
        self.recorder = recorder
        self._buf = bytearray()
        self.closed = False
        self.xid = 0
        self.events = []        # notifications received and not yet taken
        self.all_events = []    # every notification, in arrival order
        self.session_id = 0
        self.passwd = b"\x00" * 16
        self.timeout_ms = 0
        self.last_zxid = 0
        self.connect_response = None
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (BrokenPipeError, ConnectionResetError):
            # accepted and closed at once (e.g. connection limit): behave
            # like a socket that reads EOF
            self.sock = socket.socket()
            self._mark_closed()

    # -- recording -------------------------------------------------------
    def _rec(self, entry):
        if self.recorder is not None:
            entry = dict(entry)
            entry["c"] = self.name
            self.recorder(entry)

    # -- framing ---------------------------------------------------------
    def send_raw(self, data):
        """Write bytes as they are (no framing)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self._mark_closed()
            raise ConnectionClosed("server closed the connection (on send)")

    def send_frame(self, payload):
        if self.closed:
            raise ConnectionClosed("connection already closed")
        try:
            self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        except (BrokenPipeError, ConnectionResetError):
            self._mark_closed()
            raise ConnectionClosed("server closed the connection (on send)")

    def _fill(self, n, deadline):
        while len(self._buf) < n:
            if self.closed:
                raise ConnectionClosed("connection closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out reading from server")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self._mark_closed()
                raise ConnectionClosed("server closed the connection")
            self._buf += chunk

    def _mark_closed(self):
        if not self.closed:
            self.closed = True
            self._rec({"k": "closed"})

    def recv_frame(self, timeout=None):
        deadline = time.monotonic() + (self.io_timeout if timeout is None else timeout)
        self._fill(4, deadline)
        n = struct.unpack(">i", bytes(self._buf[:4]))[0]
        if n < 0:
            raise ProtocolError("negative frame length %d" % n)
        self._fill(4 + n, deadline)
        frame = bytes(self._buf[4:4 + n])
        del self._buf[:4 + n]
        return frame

    def wait_closed(self, timeout=None):
        """Read until EOF; returns True if the server closed the connection.
        Frames received meanwhile are decoded as events/replies and recorded."""
        deadline = time.monotonic() + (self.io_timeout if timeout is None else timeout)
        try:
            while True:
                frame = self.recv_frame(max(0.0, deadline - time.monotonic()))
                self._dispatch_unsolicited(frame)
        except ConnectionClosed:
            return True
        except socket.timeout:
            return False

    # -- handshake -------------------------------------------------------
    def connect(self, session_id=0, passwd=None, timeout_ms=30000, last_zxid=0,
                read_only=False, send_read_only=True, protocol_version=0):
        """Send ConnectRequest, read ConnectResponse.  Returns a dict with the
        response fields, `length` (body length) and `readOnly` = None when the
        server omitted that byte.  If the server closes instead of answering,
        returns {"closed": True}."""
        w = W().int(protocol_version).long(last_zxid).int(timeout_ms).long(session_id)
        w.buffer(passwd if passwd is not None else b"\x00" * 16)
        if send_read_only:
            w.bool(read_only)
        args = {"protocolVersion": protocol_version, "lastZxidSeen": last_zxid,
                "timeOut": timeout_ms, "sessionId": session_id,
                "passwdLen": len(passwd) if passwd is not None else 16,
                "readOnly": read_only if send_read_only else None}
        self._rec({"k": "send", "op": "connect", "args": args})
        try:
            self.send_frame(w.bytes())
            frame = self.recv_frame()
        except ConnectionClosed:
            return {"closed": True}
        r = R(frame)
        resp = {"length": len(frame), "protocolVersion": r.int(), "timeOut": r.int(),
                "sessionId": r.long()}
        pw = r.buffer()
        resp["passwdLen"] = None if pw is None else len(pw)
        resp["readOnly"] = r.bool() if r.remaining() else None
        if r.remaining():
            resp["extraBytes"] = r.rest().hex()
        self.connect_response = resp
        if resp["sessionId"]:
            self.session_id = resp["sessionId"]
            self.passwd = pw
            self.timeout_ms = resp["timeOut"]
        self._rec({"k": "connected", "resp": resp})
        return resp

    # -- requests --------------------------------------------------------
    def next_xid(self):
        self.xid += 1
        return self.xid

    def submit(self, op, body=b"", xid=None, args=None, opname=None):
        """Send one request; returns its xid."""
        if xid is None:
            xid = self.next_xid()
        self._rec({"k": "send", "op": opname or OP_NAME.get(op, op), "args": args or {}})
        self.send_frame(struct.pack(">ii", xid, op) + body)
        return xid

    def _dispatch_unsolicited(self, frame):
        xid = struct.unpack(">i", frame[:4])[0] if len(frame) >= 4 else None
        if xid == NOTIFICATION_XID:
            ev = decode_event(frame)
            self.events.append(ev)
            self.all_events.append(ev)
            self._rec({"k": "event", "event": ev})
            return None
        rep = decode_reply(frame, None)
        self._rec({"k": "reply", "op": "?", "reply": rep.as_dict()})
        return rep

    def read_reply(self, xid, op, timeout=None, opname=None):
        """Read frames until the reply for `xid`; notifications that arrive
        first are queued in self.events (and recorded) in arrival order."""
        deadline = time.monotonic() + (self.io_timeout if timeout is None else timeout)
        while True:
            frame = self.recv_frame(max(0.0, deadline - time.monotonic()))
            fxid = struct.unpack(">i", frame[:4])[0]
            if fxid == NOTIFICATION_XID and xid != NOTIFICATION_XID:
                ev = decode_event(frame)
                self.events.append(ev)
                self.all_events.append(ev)
                self._rec({"k": "event", "event": ev})
                continue
            rep = decode_reply(frame, op)
            if rep.zxid > 0:
                self.last_zxid = max(self.last_zxid, rep.zxid)
            self._rec({"k": "reply", "op": opname or OP_NAME.get(op, op), "reply": rep.as_dict()})
            if fxid != xid:
                raise ProtocolError("expected reply xid %d, got %d (%r)" % (xid, fxid, rep))
            return rep

    def call(self, op, body=b"", xid=None, args=None, opname=None, timeout=None):
        xid = self.submit(op, body, xid=xid, args=args, opname=opname)
        return self.read_reply(xid, op, timeout=timeout, opname=opname)

    # -- operations ------------------------------------------------------
    def create(self, path, data=b"", acl=OPEN_ACL_UNSAFE, flags=0, op="create", ttl=None):
        args = {"path": path, "data": data, "acl": acl, "flags": flags}
        if ttl is not None:
            args["ttl"] = ttl
        return self.call(OP[op], create_body(path, data, acl, flags, ttl), args=args, opname=op)

    def create2(self, path, data=b"", acl=OPEN_ACL_UNSAFE, flags=0):
        return self.create(path, data, acl, flags, op="create2")

    def create_container(self, path, data=b"", acl=OPEN_ACL_UNSAFE, flags=CONTAINER):
        return self.create(path, data, acl, flags, op="createContainer")

    def create_ttl(self, path, data=b"", acl=OPEN_ACL_UNSAFE, flags=PERSISTENT_WITH_TTL, ttl=60000):
        return self.create(path, data, acl, flags, op="createTTL", ttl=ttl)

    def delete(self, path, version=-1):
        return self.call(OP["delete"], path_version(path, version),
                         args={"path": path, "version": version})

    def exists(self, path, watch=False):
        return self.call(OP["exists"], path_watch(path, watch), args={"path": path, "watch": watch})

    def get_data(self, path, watch=False):
        return self.call(OP["getData"], path_watch(path, watch), args={"path": path, "watch": watch})

    def set_data(self, path, data, version=-1):
        return self.call(OP["setData"], W().ustring(path).buffer(data).int(version).bytes(),
                         args={"path": path, "data": data, "version": version})

    def get_acl(self, path):
        return self.call(OP["getACL"], path_only(path), args={"path": path})

    def set_acl(self, path, acl, version=-1):
        return self.call(OP["setACL"], W().ustring(path).acls(acl).int(version).bytes(),
                         args={"path": path, "acl": acl, "version": version})

    def get_children(self, path, watch=False):
        return self.call(OP["getChildren"], path_watch(path, watch),
                         args={"path": path, "watch": watch})

    def get_children2(self, path, watch=False):
        return self.call(OP["getChildren2"], path_watch(path, watch),
                         args={"path": path, "watch": watch})

    def sync(self, path):
        return self.call(OP["sync"], path_only(path), args={"path": path})

    def ping(self):
        return self.call(OP["ping"], b"", xid=PING_XID)

    def check(self, path, version):
        return self.call(OP["check"], path_version(path, version),
                         args={"path": path, "version": version})

    def multi(self, ops):
        return self.call(OP["multi"], multi_body(ops), args={"ops": [list(o) for o in ops]})

    def multi_read(self, ops):
        return self.call(OP["multiRead"], multi_body(ops), args={"ops": [list(o) for o in ops]})

    def reconfig(self, joining=None, leaving=None, new_members=None, cur_config_id=-1):
        body = W().ustring(joining).ustring(leaving).ustring(new_members).long(cur_config_id).bytes()
        return self.call(OP["reconfig"], body, args={"joining": joining, "leaving": leaving,
                                                     "newMembers": new_members,
                                                     "curConfigId": cur_config_id})

    def check_watches(self, path, wtype):
        return self.call(OP["checkWatches"], W().ustring(path).int(wtype).bytes(),
                         args={"path": path, "type": wtype})

    def remove_watches(self, path, wtype):
        return self.call(OP["removeWatches"], W().ustring(path).int(wtype).bytes(),
                         args={"path": path, "type": wtype})

    def auth(self, scheme, credential, typ=0):
        if isinstance(credential, str):
            credential = credential.encode()
        return self.call(OP["auth"], W().int(typ).ustring(scheme).buffer(credential).bytes(),
                         xid=AUTH_XID, args={"scheme": scheme, "auth": credential})

    def set_watches(self, relative_zxid, data=(), exist=(), child=(), xid=SET_WATCHES_XID):
        """The C client sends xid -8; ZooKeeper's 3.8 Java client an ordinary one."""
        body = W().long(relative_zxid).strings(list(data)).strings(list(exist)).strings(list(child)).bytes()
        return self.call(OP["setWatches"], body, xid=xid,
                         args={"relativeZxid": relative_zxid, "data": list(data),
                               "exist": list(exist), "child": list(child)})

    def set_watches2(self, relative_zxid, data=(), exist=(), child=(), persistent=(), recursive=(),
                     xid=SET_WATCHES_XID):
        body = (W().long(relative_zxid).strings(list(data)).strings(list(exist))
                .strings(list(child)).strings(list(persistent)).strings(list(recursive)).bytes())
        return self.call(OP["setWatches2"], body, xid=xid,
                         args={"relativeZxid": relative_zxid, "data": list(data),
                               "exist": list(exist), "child": list(child),
                               "persistent": list(persistent), "recursive": list(recursive)})

    def sasl(self, token=b""):
        return self.call(OP["sasl"], W().buffer(token).bytes(), args={"token": token})

    def get_ephemerals(self, prefix):
        return self.call(OP["getEphemerals"], path_only(prefix), args={"prefix": prefix})

    def get_all_children_number(self, path):
        return self.call(OP["getAllChildrenNumber"], path_only(path), args={"path": path})

    def add_watch(self, path, mode):
        return self.call(OP["addWatch"], W().ustring(path).int(mode).bytes(),
                         args={"path": path, "mode": mode})

    def who_am_i(self):
        return self.call(OP["whoAmI"], b"")

    def close_session(self):
        return self.call(OP["closeSession"], b"")

    def raw_request(self, opcode, body=b"", xid=None, args=None):
        return self.call(opcode, body, xid=xid, args=args or {"body": body.hex()},
                         opname="op%d" % opcode if opcode not in OP_NAME else None)

    # -- events ----------------------------------------------------------
    def wait_events(self, n, timeout=None):
        """Block until at least n notifications are queued; return and clear them."""
        deadline = time.monotonic() + (self.io_timeout if timeout is None else timeout)
        while len(self.events) < n:
            frame = self.recv_frame(max(0.0, deadline - time.monotonic()))
            self._dispatch_unsolicited(frame)
        evs, self.events = self.events, []
        return evs

    def take_events(self):
        evs, self.events = self.events, []
        return evs

    def drain(self):
        """Make sure every notification the server queued for us before now
        has been read: round-trip a read (exists "/", not recorded)."""
        rec, self.recorder = self.recorder, None
        try:
            xid = self.next_xid()
            self.send_frame(struct.pack(">ii", xid, OP["exists"]) + path_watch("/", False))
            deadline = time.monotonic() + self.io_timeout
            while True:
                frame = self.recv_frame(max(0.0, deadline - time.monotonic()))
                fxid = struct.unpack(">i", frame[:4])[0]
                if fxid == NOTIFICATION_XID:
                    ev = decode_event(frame)
                    self.events.append(ev)
                    self.all_events.append(ev)
                    if rec:
                        self.recorder = rec
                        self._rec({"k": "event", "event": ev})
                        self.recorder = None
                    continue
                if fxid == xid:
                    break
        finally:
            self.recorder = rec
        return self.take_events()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


def connect(host, port, name="c", recorder=None, timeout=10.0, **kw):
    """Open a connection and complete the handshake."""
    c = RawZK(host, port, timeout=timeout, recorder=recorder, name=name)
    resp = c.connect(**kw)
    if resp.get("closed") or not resp.get("sessionId"):
        raise ConnectionClosed("handshake refused: %r" % (resp,))
    return c
