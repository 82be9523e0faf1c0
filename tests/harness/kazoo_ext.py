"""Requests kazoo 2.10/2.11 does not offer, sent through kazoo's own connection.

kazoo (checked 2.10.0 and 2.11.0) has no `add_watch`, no TTL nodes, no
container nodes, no removeWatches/checkWatches.  kazoo's connection writes any
request object that has `type`, `serialize()` and `deserialize(bytes, offset)`,
so we define those records here and queue them with `client._call`.

Watch notifications that kazoo does not route (persistent watches: events
arrive for paths without a one-shot watcher registered, and kazoo drops them)
are tapped by wrapping the connection's `_read_watch_event`.
"""
import struct
from collections import namedtuple

from kazoo.protocol.serialization import (
    int_struct, stat_struct, long_struct, read_string, write_string, write_buffer, Watch)
from kazoo.protocol.states import ZnodeStat, WatchedEvent, EventType, KeeperState
from kazoo.security import OPEN_ACL_UNSAFE

OPCODE_CREATE_CONTAINER = 19
OPCODE_CREATE_TTL = 21
OPCODE_ADD_WATCH = 106
OPCODE_CHECK_WATCHES = 17
OPCODE_REMOVE_WATCHES = 18

ADD_WATCH_PERSISTENT = 0
ADD_WATCH_PERSISTENT_RECURSIVE = 1

CONTAINER = 4
PERSISTENT_WITH_TTL = 5
PERSISTENT_SEQUENTIAL_WITH_TTL = 6

_EVENT_NAMES = {1: EventType.CREATED, 2: EventType.DELETED, 3: EventType.CHANGED,
                4: EventType.CHILD, 5: "DATA_WATCH_REMOVED", 6: "CHILD_WATCH_REMOVED",
                7: "PERSISTENT_WATCH_REMOVED"}


def _acl_bytes(acl):
    b = bytearray(int_struct.pack(len(acl)))
    for a in acl:
        b += int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id)
    return b


class CreateExt(namedtuple("CreateExt", "path data acl flags ttl type")):
    """createContainer (19) / createTTL (21); response Create2Response."""

    def serialize(self):
        b = bytearray()
        b += write_string(self.path)
        b += write_buffer(self.data)
        b += _acl_bytes(self.acl)
        b += int_struct.pack(self.flags)
        if self.type == OPCODE_CREATE_TTL:
            b += long_struct.pack(self.ttl)
        return b

    @classmethod
    def deserialize(cls, bytes, offset):
        path, offset = read_string(bytes, offset)
        stat = ZnodeStat._make(stat_struct.unpack_from(bytes, offset))
        return path, stat


class AddWatch(namedtuple("AddWatch", "path mode")):
    type = OPCODE_ADD_WATCH

    def serialize(self):
        return write_string(self.path) + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, bytes, offset):
        return True


class WatchesReq(namedtuple("WatchesReq", "path wtype type")):
    """checkWatches (17) / removeWatches (18)."""

    def serialize(self):
        return write_string(self.path) + int_struct.pack(self.wtype)

    @classmethod
    def deserialize(cls, bytes, offset):
        return True


def _call(client, request):
    result = client.handler.async_result()
    client._call(request, result)
    return result.get()


def create_container(client, path, value=b"", acl=None):
    """Create a container node (opcode 19). Returns (path, ZnodeStat)."""
    acl = acl or client.default_acl or OPEN_ACL_UNSAFE
    req = CreateExt(client.chroot + path if client.chroot else path, value, acl,
                    CONTAINER, None, OPCODE_CREATE_CONTAINER)
    return _call(client, req)


def create_ttl(client, path, value=b"", ttl=60000, sequence=False, acl=None):
    """Create a TTL node (opcode 21). Returns (path, ZnodeStat)."""
    acl = acl or client.default_acl or OPEN_ACL_UNSAFE
    flags = PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else PERSISTENT_WITH_TTL
    req = CreateExt(client.chroot + path if client.chroot else path, value, acl,
                    flags, ttl, OPCODE_CREATE_TTL)
    return _call(client, req)


def check_watches(client, path, wtype):
    return _call(client, WatchesReq(path, wtype, OPCODE_CHECK_WATCHES))


def remove_watches(client, path, wtype):
    return _call(client, WatchesReq(path, wtype, OPCODE_REMOVE_WATCHES))


class PersistentWatches:
    """addWatch for kazoo: persistent and persistent-recursive watches.

    callback(WatchedEvent-like) is called from kazoo's reader thread for every
    notification whose path matches a watch added here.  Call `install()` once
    per client (after start); it survives reconnects of the same KazooClient
    object only as long as kazoo keeps the same ConnectionHandler (it does)."""

    def __init__(self, client):
        self.client = client
        self.watches = []   # (path, mode, callback)
        conn = client._connection
        original = conn._read_watch_event

        def tapped(buffer, offset, _orig=original):
            watch, _ = Watch.deserialize(buffer, offset)
            self._dispatch(watch)
            return _orig(buffer, offset)

        conn._read_watch_event = tapped

    def add(self, path, callback, mode=ADD_WATCH_PERSISTENT):
        _call(self.client, AddWatch(path, mode))
        self.watches.append((path, mode, callback))

    def remove(self, path, wtype=3):
        remove_watches(self.client, path, wtype)
        self.watches = [w for w in self.watches if w[0] != path]

    def _matches(self, wpath, mode, evpath):
        if evpath == wpath:
            return True
        if mode == ADD_WATCH_PERSISTENT_RECURSIVE:
            prefix = wpath if wpath.endswith("/") else wpath + "/"
            return evpath.startswith(prefix)
        return False

    def _dispatch(self, watch):
        ev = WatchedEvent(_EVENT_NAMES.get(watch.type, watch.type), KeeperState.CONNECTED,
                          watch.path)
        for wpath, mode, cb in list(self.watches):
            if self._matches(wpath, mode, watch.path):
                cb(ev)


# kazoo (2.10) has no exception for -120 (EphemeralOnLocalSession): its reader
# thread would die on the unknown code and the call would never return.
# Register one the way kazoo registers its own.
from kazoo import exceptions as _kex  # noqa: E402

if -120 in _kex.EXCEPTIONS:  # a newer kazoo has one
    EphemeralOnLocalSessionError = _kex.EXCEPTIONS[-120]
else:
    @_kex._zookeeper_exception(-120)
    class EphemeralOnLocalSessionError(_kex.ZookeeperError):
        """An ephemeral create on a local session (localSessionsEnabled without
        localSessionsUpgradingEnabled): ZooKeeper's EphemeralOnLocalSessionException."""
