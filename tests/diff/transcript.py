"""Transcripts of scenario runs and their normalisation.

A transcript is the list of everything that crossed the wire, in order:
  {"k": "send",      "c": client, "op": name, "args": {...}}
  {"k": "connected", "c": client, "resp": {...ConnectResponse..., "length": n}}
  {"k": "reply",     "c": client, "op": name, "reply": {xid, zxid, err, ...body}}
  {"k": "event",     "c": client, "event": {type, state, path, zxid, err}}
  {"k": "closed",    "c": client}          server closed the connection
  {"k": "timeout",   "c": client, ...}     no reply within the scenario's deadline
  {"k": "note",      "label": ..., "value": ...}

Normalisation (so that two correct servers give identical transcripts):
  * zxids (zxid, czxid, mzxid, pzxid, lastZxidSeen, relativeZxid): every
    distinct value other than 0 and -1 becomes "Z<rank>", rank = position in
    the sorted list of distinct values seen in the transcript (so order
    relations between zxids survive; absolute values and gaps do not);
  * ctime/mtime: non-zero values become "T";
  * session ids and ephemeralOwner: non-zero values become "S<n>", n = order
    of first appearance;
  * child lists (getChildren, getChildren2, getEphemerals, multiRead) are
    sorted: ZooKeeper returns them in HashSet order, which is not a contract;
  * bytes are shown as Python byte literals.
"""
import hashlib
import json
import socket

from harness import rawzk

ZXID_KEYS = {"zxid", "czxid", "mzxid", "pzxid", "lastZxidSeen", "relativeZxid"}
TIME_KEYS = {"ctime", "mtime"}
SESSION_KEYS = {"sessionId", "ephemeralOwner"}
# lists whose order ZooKeeper takes from a HashSet (children, getEphemerals,
# whoAmI's auth ids, the ACL an "auth" scheme entry expands to) or that come
# from unordered events (events-unordered)
UNORDERED_LIST_KEYS = {"children", "paths", "clientInfo", "acl", "events"}


class Session:
    """One scenario run against one server."""

    def __init__(self, server):
        self.server = server
        self.transcript = []
        self.clients = []

    def record(self, entry):
        self.transcript.append(entry)

    def note(self, label, value):
        self.record({"k": "note", "label": label, "value": value})

    def raw(self, name):
        """An unconnected RawZK (for handshake experiments)."""
        c = rawzk.RawZK(self.server.host, self.server.port, timeout=10.0,
                        recorder=self.record, name=name)
        self.clients.append(c)
        return c

    def client(self, name, **connect_kwargs):
        """A connected RawZK; connect_kwargs go to RawZK.connect."""
        c = self.raw(name)
        connect_kwargs.setdefault("timeout_ms", 30000)
        resp = c.connect(**connect_kwargs)
        if resp.get("closed") or not resp.get("sessionId"):
            raise AssertionError("handshake of %s refused: %r" % (name, resp))
        return c

    def attempt(self, fn, *args, **kwargs):
        """Run a client call that may legitimately end with the server closing
        the connection (recorded as 'closed') or not answering (recorded as
        'timeout')."""
        try:
            return fn(*args, **kwargs)
        except rawzk.ConnectionClosed:
            return None
        except (socket.timeout, TimeoutError):
            self.record({"k": "timeout"})
            return None

    def drain_unordered(self, c):
        """Read the notifications queued for c (like c.drain()) and record
        them as one entry with the events sorted: for events whose relative
        order ZooKeeper takes from a HashSet (ephemerals of a closing session)."""
        rec, c.recorder = c.recorder, None
        try:
            evs = c.drain()
        finally:
            c.recorder = rec
        self.record({"k": "events-unordered", "c": c.name, "events": evs})
        return evs

    def expect_closed(self, c, timeout=5.0):
        closed = c.wait_closed(timeout)
        self.record({"k": "wait_closed", "c": c.name, "closed": closed})
        return closed

    def close(self):
        for c in self.clients:
            c.close()


# ---------------------------------------------------------------------------


def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        if len(v) > 64:
            return "bytes(len=%d, sha1=%s)" % (len(v), hashlib.sha1(bytes(v)).hexdigest()[:16])
        return "b" + repr(bytes(v))[1:]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _walk(v, fn, key=None):
    if isinstance(v, dict):
        return {k: _walk(x, fn, k) for k, x in v.items()}
    if isinstance(v, list):
        return [_walk(x, fn, key) for x in v]
    return fn(key, v)


def normalise(transcript):
    data = _jsonable(transcript)

    zxids = set()

    def collect(key, v):
        if key in ZXID_KEYS and isinstance(v, int) and v not in (0, -1):
            zxids.add(v)
        return v

    _walk(data, collect)
    zrank = {z: "Z%d" % i for i, z in enumerate(sorted(zxids), 1)}
    sessions = {}

    def norm(key, v):
        if key in ZXID_KEYS and isinstance(v, int) and v not in (0, -1):
            return zrank[v]
        if key in TIME_KEYS and isinstance(v, int) and v != 0:
            return "T"
        if key in SESSION_KEYS and isinstance(v, int) and v != 0:
            if v not in sessions:
                sessions[v] = "S%d" % (len(sessions) + 1)
            return sessions[v]
        return v

    out = _walk(data, norm)

    def sort_lists(v):
        if isinstance(v, dict):
            return {k: (sorted(sort_lists(x), key=lambda i: json.dumps(i, sort_keys=True))
                        if k in UNORDERED_LIST_KEYS and isinstance(x, list) else sort_lists(x))
                    for k, x in v.items()}
        if isinstance(v, list):
            return [sort_lists(x) for x in v]
        return v

    return sort_lists(out)


def to_lines(norm):
    """One JSON line per transcript entry (diff-friendly)."""
    return [json.dumps(e, sort_keys=True) for e in norm]
