"""Run Python code inside a network namespace made with `ip netns add NAME`.

A network namespace belongs to a thread, not to a process: `in_netns(name, fn)`
runs `fn` on a fresh thread that first joins /run/netns/NAME with setns(2), so
sockets `fn` creates live in that namespace for good (a socket keeps the
namespace it was made in), while every other thread of the process stays where
it was.  Used by `servers.Server` (four-letter words to a member started with
`ip netns exec`) and by tests/faults/ (kazoo clients whose connections are made
inside a namespace).  Needs CAP_SYS_ADMIN (root).
"""
import ctypes
import ctypes.util
import os
import threading

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"

_libc = None


def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "setns(CLONE_NEWNET): %s" % os.strerror(err))


def in_netns(name, fn, *args, **kwargs):
    """fn(*args, **kwargs) on a thread inside network namespace `name`; returns
    its value or raises its exception.  The namespace is joined before fn runs,
    or nothing runs at all (no fallback to the caller's namespace)."""
    out = {}

    def run():
        try:
            fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            out["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, name="netns-%s" % name, daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]
