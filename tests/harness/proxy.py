"""A TCP proxy on 127.0.0.1 between a client under test and a server, to cut the
client off and let it reconnect in a controlled way.

    proxy = TcpProxy(server.address)      # listening; proxy.hosts is "127.0.0.1:port"
    ... client connects to proxy.hosts ...
    proxy.cut(hold=True)   # close every connection; park new ones, unforwarded
    ... change things elsewhere while the client cannot reach the server ...
    proxy.release()        # forward the parked connections and any later ones
    proxy.accepted         # connections accepted so far (parked ones included)
    proxy.close()

A parked connection is accepted but not connected upstream: the client's
ConnectRequest waits in the socket until release(), so the client's reconnection
is exactly one accepted connection however long the hold lasts (as long as it is
shorter than the client's connect timeout).
"""
import socket
import threading


class TcpProxy:
    def __init__(self, upstream, name="proxy"):
        self.upstream = tuple(upstream)
        self.name = name
        self._lock = threading.Lock()
        self._pairs = []        # [client_sock, upstream_sock] live pairs
        self._parked = []       # client sockets waiting for release()
        self._holding = False
        self._closed = False
        self.accepted = 0
        self.forwarded = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, name="%s-accept" % name,
                                               daemon=True)
        self._accept_thread.start()

    @property
    def hosts(self):
        return "127.0.0.1:%d" % self.port

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- control -------------------------------------------------------------
    def cut(self, hold=False):
        """Close every forwarded connection (both sides).  With hold, later
        connections are accepted and parked until release()."""
        with self._lock:
            self._holding = hold
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                _close(s)

    def release(self):
        """Stop holding: forward every parked connection (in arrival order)."""
        with self._lock:
            self._holding = False
            parked, self._parked = self._parked, []
        for c in parked:
            self._forward(c)

    def close(self):
        with self._lock:
            self._closed = True
            pairs, self._pairs = self._pairs, []
            parked, self._parked = self._parked, []
        _close(self._listener)
        for pair in pairs:
            for s in pair:
                _close(s)
        for c in parked:
            _close(c)
        self._accept_thread.join(5)

    # -- internals -----------------------------------------------------------
    def _accept_loop(self):
        while True:
            try:
                c, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    _close(c)
                    return
                self.accepted += 1
                if self._holding:
                    self._parked.append(c)
                    continue
            self._forward(c)

    def _forward(self, c):
        try:
            u = socket.create_connection(self.upstream, timeout=10)
            u.settimeout(None)
        except OSError:
            _close(c)
            return
        for s in (c, u):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = [c, u]
        with self._lock:
            if self._closed:
                _close(c)
                _close(u)
                return
            self._pairs.append(pair)
            self.forwarded += 1
        for src, dst in ((c, u), (u, c)):
            threading.Thread(target=self._pump, args=(pair, src, dst),
                             name="%s-pump" % self.name, daemon=True).start()

    def _pump(self, pair, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        for s in pair:
            _close(s)


def _close(s):
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass
