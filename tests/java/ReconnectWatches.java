import java.nio.charset.StandardCharsets;
import java.util.UUID;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;

/**
 * A Java client holding watches loses its connection and reconnects; the reconnection
 * must settle (one reconnect, then connected for good) and deliver what was missed.
 *
 * <pre>
 *   java ReconnectWatches PROXIED DIRECT VARIANT
 * </pre>
 * The client under test connects through the test's TCP proxy (PROXIED); a second
 * client connects directly (DIRECT).  VARIANT "set-watches" holds one-shot watches only
 * (data, child, exists), so the reconnecting client sends SetWatches (opcode 101);
 * "set-watches2" adds a persistent and a persistent-recursive watch (addWatch, opcode
 * 106), so it sends SetWatches2 (opcode 105).  Both use an ordinary request xid for it
 * (ClientCnxnSocket assigns every queued packet but pings and auth a fresh xid), and
 * the client drops the connection ("Xid out of order") if the reply carries another.
 *
 * <p>Sequence: set the watches; ask the driver to "cut-hold" (close the connection and
 * park reconnections); once Disconnected, change every watched node through the
 * second client; ask "release"; then expect SyncConnected, every missed event, the
 * persistent watches still working, and no further Disconnected for SETTLE_MS while
 * pings flow.  The driver counts the proxy's accepted connections (exactly 2).
 */
public final class ReconnectWatches {
    private static final int SESSION_MS = 6_000;   // pings every 2 s
    private static final long SETTLE_MS = 3_000;

    public static void main(String[] args) throws Exception {
        if (args.length != 3 || !(args[2].equals("set-watches") || args[2].equals("set-watches2"))) {
            System.err.println("usage: ReconnectWatches PROXIED DIRECT set-watches|set-watches2");
            System.exit(2);
        }
        System.exit(run(args[0], args[1], args[2].equals("set-watches2")));
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static int run(String proxied, String direct, boolean persistent) throws Exception {
        Checks c = Checks.create();
        String base = "/java-reconnect-" + UUID.randomUUID().toString().substring(0, 8);
        String data = base + "/data";       // getData watch; changed while away
        String steady = base + "/steady";   // getData watch; untouched, so still registered after
        String kids = base + "/kids";       // getChildren watch; a child added while away
        String born = base + "/born";       // exists watch on a missing node; created while away
        String doomed = base + "/doomed";   // exists watch on a present node; deleted while away
        String tree = base + "/tree";       // PERSISTENT_RECURSIVE watch
        String flat = base + "/flat";       // PERSISTENT watch

        Events ev = new Events("client");       // default watcher: connection states
        Events w = new Events("watches");       // every node watch
        Events ov = new Events("other");
        ZooKeeper other = RawApi.connect(direct, ov);
        ZooKeeper zk = new ZooKeeper(proxied, SESSION_MS, ev);
        try {
            ev.awaitState(KeeperState.SyncConnected);
            long session = zk.getSessionId();
            Checks.info("session 0x" + Long.toHexString(session) + " base " + base);
            for (String p : new String[] {base, data, steady, kids, doomed, tree, flat}) {
                other.create(p, b("v0"), Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            }

            c.run("watches_set", () -> {
                zk.getData(data, w, null);
                zk.getData(steady, w, null);
                zk.getChildren(kids, w);
                Checks.check(zk.exists(born, w) == null, "born exists");
                Checks.check(zk.exists(doomed, w) != null, "doomed missing");
                if (persistent) {
                    zk.addWatch(tree, w, AddWatchMode.PERSISTENT_RECURSIVE);
                    zk.addWatch(flat, w, AddWatchMode.PERSISTENT);
                }
            });

            int mark = ev.size();
            c.run("disconnected", () -> {
                Checks.ask("cut-hold");
                ev.awaitState(KeeperState.Disconnected);
            });

            c.run("changed_while_away", () -> {
                try {
                    other.setData(data, b("v1"), -1);
                    other.create(kids + "/k", new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                    other.create(born, new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                    other.delete(doomed, -1);
                    Checks.check(!zk.getState().isConnected() || ev.countState(KeeperState.SyncConnected, mark) == 0,
                        "client reconnected while the proxy held its connection: %s", ev);
                } finally {
                    Checks.ask("release");
                }
            });

            c.run("reconnected_same_session", () -> {
                ev.awaitState(KeeperState.SyncConnected);
                Checks.equal(session, zk.getSessionId(), "session id");
            });

            c.run("missed_events_delivered", () -> {
                w.await(EventType.NodeDataChanged, data);
                w.await(EventType.NodeChildrenChanged, kids);
                w.await(EventType.NodeCreated, born);
                w.await(EventType.NodeDeleted, doomed);
            });

            c.run("watches_still_registered", () -> {
                // the untouched one-shot watch survived the reconnection...
                other.setData(steady, b("v1"), -1);
                w.await(EventType.NodeDataChanged, steady);
                if (persistent) {
                    // ...and so did the persistent ones (nothing is replayed for them:
                    // only changes after the reconnection are seen)
                    other.create(tree + "/a", new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                    other.create(tree + "/a/b", new byte[0], Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
                    other.setData(flat, b("v1"), -1);
                    w.await(EventType.NodeCreated, tree + "/a");
                    w.await(EventType.NodeCreated, tree + "/a/b");
                    w.await(EventType.NodeDataChanged, flat);
                }
            });

            c.run("settled", () -> {
                // stays connected: no Disconnected within SETTLE_MS (the client pings
                // every SESSION_MS/3), and one SyncConnected since the cut
                Checks.check(ev.poll(e -> e.getType() == EventType.None && e.getState() != KeeperState.SyncConnected,
                    SETTLE_MS) == null, "connection state changed after the reconnection: %s", ev);
                Checks.equal(1, ev.countState(KeeperState.Disconnected, mark), "Disconnected events since the cut (" + ev + ")");
                Checks.equal(1, ev.countState(KeeperState.SyncConnected, mark), "SyncConnected events since the cut (" + ev + ")");
                Checks.equal(ZooKeeper.States.CONNECTED, zk.getState(), "client state");
                Checks.check(zk.exists(data, false) != null, "a request after settling");
            });
            Checks.info("connection events " + ev + "; watch events " + w);
        } finally {
            zk.close();
            other.close();
        }
        return c.finish();
    }
}
