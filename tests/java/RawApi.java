import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.Watcher.WatcherType;
import org.apache.zookeeper.ZooDefs.Ids;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;
import org.apache.zookeeper.server.auth.DigestAuthenticationProvider;

/**
 * ZooKeeper 3.8's own Java client, the raw API (no Curator), against one server or
 * ensemble.
 *
 * <pre>
 *   java RawApi CONNECT PROXIED MODE
 * </pre>
 * CONNECT reaches the server(s) directly; PROXIED reaches one server through the test's
 * TCP proxy (used by session_expiry, which asks the driver to "cut-hold" and "release"
 * it); MODE is "standalone" or "ensemble" (what /zookeeper/config should look like).
 * Prints the Checks line protocol.
 */
public final class RawApi {
    private static final int SESSION_MS = 15_000;
    private static final List<ACL> OPEN = Ids.OPEN_ACL_UNSAFE;

    private final String connect;
    private final String proxied;
    private final String mode;
    private final String base = "/java-raw-" + UUID.randomUUID().toString().substring(0, 8);
    private ZooKeeper zk;   // the client under test
    private ZooKeeper other; // a second session, for changes made "elsewhere"

    private RawApi(String connect, String proxied, String mode) {
        this.connect = connect;
        this.proxied = proxied;
        this.mode = mode;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: RawApi CONNECT PROXIED standalone|ensemble");
            System.exit(2);
        }
        System.exit(new RawApi(args[0], args[1], args[2]).runAll());
    }

    static ZooKeeper connect(String connectString, Events events) throws Exception {
        ZooKeeper z = new ZooKeeper(connectString, SESSION_MS, events);
        events.awaitState(KeeperState.SyncConnected);
        return z;
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] data) {
        return data == null ? null : new String(data, StandardCharsets.UTF_8);
    }

    private String mk(String name) throws Exception {
        return zk.create(base + "/" + name, new byte[0], OPEN, CreateMode.PERSISTENT);
    }

    private int runAll() throws Exception {
        Checks c = Checks.create();
        zk = connect(connect, new Events("main"));
        other = connect(connect, new Events("other"));
        zk.create(base, new byte[0], OPEN, CreateMode.PERSISTENT);
        Checks.info("session 0x" + Long.toHexString(zk.getSessionId()) + " base " + base);

        c.run("crud", this::crud);
        c.run("create2_stat", this::create2Stat);
        c.run("sequential", this::sequential);
        c.run("data_watch_one_shot", this::dataWatchOneShot);
        c.run("child_watch", this::childWatch);
        c.run("exists_watch", this::existsWatch);
        c.run("delete_fires_data_and_child_watches", this::deleteFiresBoth);
        c.run("multi", this::multi);
        c.run("multi_failure_is_atomic", this::multiFailure);
        c.run("multi_read", this::multiRead);
        c.run("get_ephemerals", this::getEphemerals);
        c.run("who_am_i", this::whoAmI);
        c.run("acl", this::acl);
        c.run("ttl_and_container", this::ttlAndContainer);
        c.run("persistent_watch", this::persistentWatch);
        c.run("persistent_recursive_watch", this::persistentRecursiveWatch);
        c.run("remove_watches", this::removeWatches);
        c.run("children_count_and_sync", this::childrenCountAndSync);
        c.run("config_node", this::configNode);
        c.run("session_expiry", this::sessionExpiry);
        c.run("close_removes_ephemerals", this::closeRemovesEphemerals);

        other.close();
        zk.close();
        return c.finish();
    }

    // -- checks ------------------------------------------------------------

    private void crud() throws Exception {
        String p = base + "/crud";
        Checks.equal(p, zk.create(p, b("one"), OPEN, CreateMode.PERSISTENT), "create's path");
        Stat st = new Stat();
        Checks.equal("one", s(zk.getData(p, false, st)), "data");
        Checks.equal(0, st.getVersion(), "version");
        Checks.equal(3, st.getDataLength(), "dataLength");
        Checks.equal(0, st.getNumChildren(), "numChildren");
        Checks.equal(0L, st.getEphemeralOwner(), "ephemeralOwner");
        Checks.check(st.getCzxid() > 0 && st.getCzxid() == st.getMzxid(), "czxid %d mzxid %d", st.getCzxid(), st.getMzxid());
        Checks.check(st.getCtime() > 0 && st.getCtime() == st.getMtime(), "ctime %d mtime %d", st.getCtime(), st.getMtime());
        Stat st2 = zk.setData(p, b("two"), 0);
        Checks.equal(1, st2.getVersion(), "version after setData");
        Checks.check(st2.getMzxid() > st.getMzxid(), "mzxid did not grow: %d", st2.getMzxid());
        Checks.equal(st.getCzxid(), st2.getCzxid(), "czxid after setData");
        Checks.fails(KeeperException.BadVersionException.class, "setData with a stale version",
            () -> zk.setData(p, b("three"), 0));
        Checks.equal("two", s(other.getData(p, false, null)), "data seen by another session");
        Checks.fails(KeeperException.NodeExistsException.class, "create again",
            () -> zk.create(p, new byte[0], OPEN, CreateMode.PERSISTENT));
        Checks.fails(KeeperException.NoNodeException.class, "create without parent",
            () -> zk.create(base + "/nope/child", new byte[0], OPEN, CreateMode.PERSISTENT));
        zk.create(p + "/kid", new byte[0], OPEN, CreateMode.PERSISTENT);
        Checks.fails(KeeperException.NotEmptyException.class, "delete a parent",
            () -> zk.delete(p, -1));
        zk.delete(p + "/kid", 0);
        Checks.fails(KeeperException.BadVersionException.class, "delete with a stale version",
            () -> zk.delete(p, 0));
        zk.delete(p, 1);
        Checks.equal(null, zk.exists(p, false), "exists after delete");
        Checks.fails(KeeperException.NoNodeException.class, "getData after delete",
            () -> zk.getData(p, false, null));
        Checks.fails(KeeperException.NoNodeException.class, "delete a missing node",
            () -> zk.delete(p, -1));
        Checks.fails(IllegalArgumentException.class, "an invalid path (client-side check)",
            () -> zk.create(base + "/bad/", new byte[0], OPEN, CreateMode.PERSISTENT));
    }

    private void create2Stat() throws Exception {
        Stat st = new Stat();
        String p = zk.create(base + "/c2", b("xy"), OPEN, CreateMode.PERSISTENT, st);
        Checks.equal(base + "/c2", p, "path");
        Stat ex = zk.exists(p, false);
        Checks.equal(ex, st, "create2's stat vs exists");
        Checks.equal(2, st.getDataLength(), "dataLength");
        Stat parent = zk.exists(base, false);
        Checks.check(parent.getPzxid() >= st.getCzxid(), "parent pzxid %d < child czxid %d", parent.getPzxid(), st.getCzxid());
    }

    private void sequential() throws Exception {
        String dir = mk("seq");
        List<String> got = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            got.add(zk.create(dir + "/n-", new byte[0], OPEN, CreateMode.PERSISTENT_SEQUENTIAL));
        }
        got.add(zk.create(dir + "/n-", new byte[0], OPEN, CreateMode.EPHEMERAL_SEQUENTIAL));
        zk.create(dir + "/plain", new byte[0], OPEN, CreateMode.PERSISTENT);
        got.add(zk.create(dir + "/", new byte[0], OPEN, CreateMode.PERSISTENT_SEQUENTIAL));
        List<String> want = Arrays.asList(dir + "/n-0000000000", dir + "/n-0000000001", dir + "/n-0000000002",
            dir + "/n-0000000003", dir + "/0000000005");
        Checks.equal(want, got, "sequential names (the counter is the parent's cversion)");
        Checks.equal(zk.getEphemerals(dir), Collections.singletonList(dir + "/n-0000000003"), "the ephemeral one");
    }

    private void dataWatchOneShot() throws Exception {
        String p = mk("dw");
        String marker = base + "/dw-marker";
        Events w = new Events("dw");
        Events m = new Events("dw-marker");
        zk.getData(p, w, null);
        Checks.check(zk.exists(marker, m) == null, "marker exists");
        other.setData(p, b("1"), -1);
        WatchedEvent e = w.await(EventType.NodeDataChanged, p);
        Checks.equal(KeeperState.SyncConnected, e.getState(), "event state");
        other.setData(p, b("2"), -1);
        other.create(marker, new byte[0], OPEN, CreateMode.PERSISTENT);
        // events reach a client in zxid order: once the marker's is here, a second
        // NodeDataChanged (from the earlier second setData) would have been too
        m.await(EventType.NodeCreated, marker);
        Checks.equal(1, w.count(EventType.NodeDataChanged, p), "NodeDataChanged events from one getData watch");
    }

    private void childWatch() throws Exception {
        String p = mk("cw");
        Events w = new Events("cw");
        Checks.equal(Collections.emptyList(), zk.getChildren(p, w), "children");
        other.create(p + "/a", new byte[0], OPEN, CreateMode.PERSISTENT);
        w.await(EventType.NodeChildrenChanged, p);
        Stat st = new Stat();
        List<String> kids = zk.getChildren(p, w, st);
        Checks.equal(Collections.singletonList("a"), kids, "children after create");
        Checks.equal(1, st.getCversion(), "cversion");
        Checks.equal(1, st.getNumChildren(), "numChildren");
        other.setData(p + "/a", b("x"), -1); // a child's data change is not a child event
        other.delete(p + "/a", -1);
        w.await(EventType.NodeChildrenChanged, p);
        Checks.equal(2, w.count(EventType.NodeChildrenChanged, p), "NodeChildrenChanged events");
        Checks.equal(2, w.size(), "events for the child watches: " + w);
    }

    private void existsWatch() throws Exception {
        String p = base + "/ew";
        Events w = new Events("ew");
        Checks.equal(null, zk.exists(p, w), "exists on a missing node");
        other.create(p, b("v"), OPEN, CreateMode.PERSISTENT);
        w.await(EventType.NodeCreated, p);
        Checks.check(zk.exists(p, w) != null, "exists after create");
        other.setData(p, b("w"), -1);
        w.await(EventType.NodeDataChanged, p);
        Checks.check(zk.exists(p, w) != null, "exists after set");
        other.delete(p, -1);
        w.await(EventType.NodeDeleted, p);
    }

    private void deleteFiresBoth() throws Exception {
        String p = mk("del");
        Events dw = new Events("del-data");
        Events cw = new Events("del-child");
        zk.getData(p, dw, null);
        zk.getChildren(p, cw);
        other.delete(p, -1);
        dw.await(EventType.NodeDeleted, p);
        cw.await(EventType.NodeDeleted, p);
    }

    private void multi() throws Exception {
        String d = mk("multi");
        List<OpResult> res = zk.multi(Arrays.asList(
            Op.create(d + "/a", b("a"), OPEN, CreateMode.PERSISTENT),
            Op.create(d + "/b", new byte[0], OPEN, CreateMode.PERSISTENT_SEQUENTIAL),
            Op.setData(d + "/a", b("aa"), 0),
            Op.check(d + "/a", 1),
            Op.create(d + "/t", new byte[0], OPEN, CreateMode.PERSISTENT_WITH_TTL, 60_000),
            Op.delete(d + "/t", 0)));
        Checks.equal(6, res.size(), "results");
        Checks.equal(d + "/a", ((OpResult.CreateResult) res.get(0)).getPath(), "create's path");
        Checks.equal(d + "/b0000000001", ((OpResult.CreateResult) res.get(1)).getPath(), "sequential create's path");
        Stat st = ((OpResult.SetDataResult) res.get(2)).getStat();
        Checks.equal(1, st.getVersion(), "setData's stat version");
        Checks.check(res.get(3) instanceof OpResult.CheckResult, "check result %s", res.get(3));
        Checks.check(res.get(4) instanceof OpResult.CreateResult, "TTL create result %s", res.get(4));
        Checks.check(res.get(5) instanceof OpResult.DeleteResult, "delete result %s", res.get(5));
        Stat a = zk.exists(d + "/a", false);
        Checks.equal(st, a, "stat from setData in multi vs exists");
        // every op of one multi has the same zxid
        Stat bst = zk.exists(d + "/b0000000001", false);
        Checks.equal(a.getCzxid(), bst.getCzxid(), "czxid of two creates in one multi");
        Checks.equal(a.getCzxid(), a.getMzxid(), "create and setData of one multi share a zxid");
        // the transaction() builder
        List<OpResult> tr = zk.transaction().create(d + "/c", new byte[0], OPEN, CreateMode.PERSISTENT)
            .delete(d + "/c", 0).commit();
        Checks.equal(2, tr.size(), "transaction results");
        Checks.equal(null, zk.exists(d + "/c", false), "created and deleted in one transaction");
    }

    private void multiFailure() throws Exception {
        String d = mk("multi-fail");
        zk.create(d + "/x", b("x"), OPEN, CreateMode.PERSISTENT);
        try {
            zk.multi(Arrays.asList(
                Op.create(d + "/new", new byte[0], OPEN, CreateMode.PERSISTENT),
                Op.setData(d + "/x", b("y"), 7),
                Op.delete(d + "/x", -1)));
            throw new AssertionError("multi with a bad version succeeded");
        } catch (KeeperException.BadVersionException e) {
            List<OpResult> r = e.getResults();
            Checks.check(r != null && r.size() == 3, "results %s", r);
            Checks.equal(0, ((OpResult.ErrorResult) r.get(0)).getErr(), "err of the op before the failure");
            Checks.equal(KeeperException.Code.BADVERSION.intValue(), ((OpResult.ErrorResult) r.get(1)).getErr(), "err of the failing op");
            Checks.equal(KeeperException.Code.RUNTIMEINCONSISTENCY.intValue(), ((OpResult.ErrorResult) r.get(2)).getErr(), "err of the op after");
        }
        Checks.equal(null, zk.exists(d + "/new", false), "create of a failed multi");
        Checks.equal("x", s(zk.getData(d + "/x", false, null)), "data after a failed multi");
        // an empty multi succeeds
        Checks.equal(0, zk.multi(Collections.emptyList()).size(), "empty multi results");
    }

    private void multiRead() throws Exception {
        String d = mk("mread");
        zk.create(d + "/k1", b("v1"), OPEN, CreateMode.PERSISTENT);
        zk.create(d + "/k2", b("v2"), OPEN, CreateMode.PERSISTENT);
        List<OpResult> r = zk.multi(Arrays.asList(Op.getData(d + "/k1"), Op.getChildren(d), Op.getData(d + "/k2")));
        Checks.equal("v1", s(((OpResult.GetDataResult) r.get(0)).getData()), "getData result");
        Checks.equal(1, ((OpResult.GetDataResult) r.get(0)).getStat().getCzxid() > 0 ? 1 : 0, "stat in getData result");
        Checks.equal(new TreeSet<>(Arrays.asList("k1", "k2")),
            new TreeSet<>(((OpResult.GetChildrenResult) r.get(1)).getChildren()), "getChildren result");
        Checks.equal("v2", s(((OpResult.GetDataResult) r.get(2)).getData()), "second getData result");
        // a read of a missing node: the whole multiRead still answers, one ErrorResult
        List<OpResult> r2;
        try {
            r2 = zk.multi(Arrays.asList(Op.getData(d + "/k1"), Op.getData(d + "/missing")));
        } catch (KeeperException e) {
            r2 = e.getResults();
        }
        Checks.check(r2 != null && r2.size() == 2, "results %s", r2);
        Checks.equal("v1", s(((OpResult.GetDataResult) r2.get(0)).getData()), "read before the missing one");
        Checks.equal(KeeperException.Code.NONODE.intValue(), ((OpResult.ErrorResult) r2.get(1)).getErr(), "missing node's err");
        Checks.fails(IllegalArgumentException.class, "a multi mixing reads and writes (client-side check)",
            () -> zk.multi(Arrays.asList(Op.getData(d + "/k1"), Op.delete(d + "/k2", -1))));
    }

    private void getEphemerals() throws Exception {
        String d = mk("ephs");
        zk.create(d + "/e1", new byte[0], OPEN, CreateMode.EPHEMERAL);
        zk.create(d + "/p", new byte[0], OPEN, CreateMode.PERSISTENT);
        zk.create(d + "/p/e2", new byte[0], OPEN, CreateMode.EPHEMERAL);
        other.create(d + "/theirs", new byte[0], OPEN, CreateMode.EPHEMERAL);
        Checks.equal(new TreeSet<>(Arrays.asList(d + "/e1", d + "/p/e2")), new TreeSet<>(zk.getEphemerals(d)),
            "getEphemerals(prefix)");
        Checks.equal(Collections.singletonList(d + "/theirs"), other.getEphemerals(d), "the other session's");
        // the prefix is a string prefix, not a path
        Checks.equal(Collections.singletonList(d + "/e1"), zk.getEphemerals(d + "/e"), "getEphemerals(d/e)");
        Checks.equal(Collections.emptyList(), zk.getEphemerals(d + "/none"), "getEphemerals(d/none)");
        Set<String> mine = new TreeSet<>(zk.getEphemerals());
        Checks.check(mine.contains(d + "/e1") && mine.contains(d + "/p/e2") && !mine.contains(d + "/theirs"),
            "getEphemerals(): %s", mine);
        Stat st = zk.exists(d + "/e1", false);
        Checks.equal(zk.getSessionId(), st.getEphemeralOwner(), "ephemeralOwner");
        Checks.fails(KeeperException.NoChildrenForEphemeralsException.class, "a child of an ephemeral",
            () -> zk.create(d + "/e1/kid", new byte[0], OPEN, CreateMode.PERSISTENT));
    }

    private void whoAmI() throws Exception {
        Events ev = new Events("whoami");
        ZooKeeper z = connect(connect, ev);
        try {
            List<ClientInfo> before = z.whoAmI();
            Checks.equal(1, before.size(), "whoAmI entries: " + before);
            Checks.equal("ip", before.get(0).getAuthScheme(), "scheme");
            Checks.equal("127.0.0.1", before.get(0).getUser(), "user");
            z.addAuthInfo("digest", b("alice:secret"));
            Set<String> after = new TreeSet<>();
            for (ClientInfo ci : z.whoAmI()) {
                after.add(ci.getAuthScheme() + ":" + ci.getUser());
            }
            Checks.equal(new TreeSet<>(Arrays.asList("ip:127.0.0.1", "digest:alice")), after, "whoAmI after addAuth");
        } finally {
            z.close();
        }
    }

    private void acl() throws Exception {
        String p = base + "/acl";
        Events ev = new Events("acl-owner");
        ZooKeeper owner = connect(connect, ev);
        try {
            owner.addAuthInfo("digest", b("alice:secret"));
            owner.create(p, b("secret"), Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
            Stat st = new Stat();
            List<ACL> acl = owner.getACL(p, st);
            String digest = DigestAuthenticationProvider.generateDigest("alice:secret");
            Checks.equal(Collections.singletonList(new ACL(Perms.ALL, new Id("digest", digest))), acl, "ACL");
            Checks.equal(0, st.getAversion(), "aversion");
            Checks.fails(KeeperException.NoAuthException.class, "anonymous getData",
                () -> zk.getData(p, false, null));
            // (exists on the node itself: no ACL check in ZooKeeper 3.8, READ from 3.9 on;
            // not asserted)
            Checks.equal(null, zk.exists(p + "/none", false), "exists of a missing child");
            Checks.fails(KeeperException.NoAuthException.class, "anonymous getACL (needs READ since 3.4.14)",
                () -> zk.getACL(p, new Stat()));
            owner.setACL(p, Arrays.asList(new ACL(Perms.READ, Ids.ANYONE_ID_UNSAFE),
                new ACL(Perms.ALL, new Id("digest", digest))), 0);
            Checks.equal("secret", s(zk.getData(p, false, null)), "anonymous read after setACL");
            Checks.fails(KeeperException.NoAuthException.class, "anonymous setData",
                () -> zk.setData(p, b("x"), -1));
            Checks.fails(KeeperException.BadVersionException.class, "setACL with a stale aversion",
                () -> owner.setACL(p, OPEN, 0));
            Checks.fails(KeeperException.InvalidACLException.class, "create with an auth ACL and no auth",
                () -> zk.create(p + "x", new byte[0], Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT));
            Checks.equal(1, owner.exists(p, false).getAversion(), "aversion after setACL");
            owner.delete(p, -1); // delete is checked on the parent's ACL (open)
        } finally {
            owner.close();
        }
    }

    private void ttlAndContainer() throws Exception {
        String d = mk("ttl");
        Stat st = new Stat();
        zk.create(d + "/t", b("t"), OPEN, CreateMode.PERSISTENT_WITH_TTL, st, 60_000);
        // the stored owner encodes the TTL, but clients are shown 0 (DataNode.copyStat)
        Checks.equal(0L, st.getEphemeralOwner(), "TTL node's ephemeralOwner");
        Checks.equal(st, zk.exists(d + "/t", false), "create2 stat vs exists");
        String seq = zk.create(d + "/s-", new byte[0], OPEN, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL, null, 1000);
        Checks.equal(d + "/s-0000000001", seq, "sequential TTL name");
        zk.create(d + "/c", new byte[0], OPEN, CreateMode.CONTAINER);
        Checks.equal(0L, zk.exists(d + "/c", false).getEphemeralOwner(), "container's ephemeralOwner");
        Checks.fails(IllegalArgumentException.class, "TTL 0 (client-side check)",
            () -> zk.create(d + "/z", new byte[0], OPEN, CreateMode.PERSISTENT_WITH_TTL, null, 0));
        // a TTL node may have children, unlike an ephemeral
        zk.create(d + "/t/kid", new byte[0], OPEN, CreateMode.PERSISTENT);
        Checks.equal(1, zk.exists(d + "/t", false).getNumChildren(), "TTL node's children");
    }

    private void persistentWatch() throws Exception {
        String p = mk("pw");
        String marker = base + "/pw-marker";
        Events w = new Events("pw");
        Events m = new Events("pw-marker");
        zk.addWatch(p, w, AddWatchMode.PERSISTENT);
        other.setData(p, b("1"), -1);
        other.setData(p, b("2"), -1);
        other.create(p + "/kid", new byte[0], OPEN, CreateMode.PERSISTENT);
        other.create(p + "/kid/grandkid", new byte[0], OPEN, CreateMode.PERSISTENT); // not a child: no event
        other.delete(p + "/kid/grandkid", -1);
        other.delete(p + "/kid", -1);
        w.await(EventType.NodeDataChanged, p);
        w.await(EventType.NodeDataChanged, p);
        w.await(EventType.NodeChildrenChanged, p);
        w.await(EventType.NodeChildrenChanged, p);
        zk.removeWatches(p, w, WatcherType.Any, false);
        w.await(EventType.PersistentWatchRemoved, p);
        zk.exists(marker, m);
        other.setData(p, b("3"), -1);
        other.create(marker, new byte[0], OPEN, CreateMode.PERSISTENT);
        m.await(EventType.NodeCreated, marker);
        Checks.equal("[NodeDataChanged " + p + ", NodeDataChanged " + p + ", NodeChildrenChanged " + p
            + ", NodeChildrenChanged " + p + ", PersistentWatchRemoved " + p + "]", w.toString(), "events");
    }

    private void persistentRecursiveWatch() throws Exception {
        String p = mk("prw");
        String marker = base + "/prw-marker";
        Events w = new Events("prw");
        Events m = new Events("prw-marker");
        zk.addWatch(p, w, AddWatchMode.PERSISTENT_RECURSIVE);
        other.create(p + "/a", new byte[0], OPEN, CreateMode.PERSISTENT);
        other.create(p + "/a/b", new byte[0], OPEN, CreateMode.PERSISTENT);
        other.setData(p + "/a/b", b("x"), -1);
        other.delete(p + "/a/b", -1);
        other.setData(p, b("y"), -1);
        zk.exists(marker, m);
        other.create(marker, new byte[0], OPEN, CreateMode.PERSISTENT);
        m.await(EventType.NodeCreated, marker);
        // a recursive watch gets no NodeChildrenChanged, and it is not one-shot
        Checks.equal("[NodeCreated " + p + "/a, NodeCreated " + p + "/a/b, NodeDataChanged " + p + "/a/b, NodeDeleted "
            + p + "/a/b, NodeDataChanged " + p + "]", w.toString(), "events");
        zk.removeAllWatches(p, WatcherType.Any, false);
    }

    private void removeWatches() throws Exception {
        String p = mk("rw");
        Events w = new Events("rw");
        zk.getData(p, w, null);
        zk.getChildren(p, w);
        zk.removeWatches(p, w, WatcherType.Data, false);
        w.await(EventType.DataWatchRemoved, p);
        Checks.fails(KeeperException.NoWatcherException.class, "removing a data watch again",
            () -> zk.removeWatches(p, w, WatcherType.Data, false));
        zk.removeWatches(p, w, WatcherType.Children, false);
        w.await(EventType.ChildWatchRemoved, p);
        Checks.fails(KeeperException.NoWatcherException.class, "removing from a path without watches",
            () -> zk.removeAllWatches(p, WatcherType.Any, false));
    }

    private void childrenCountAndSync() throws Exception {
        String d = mk("count");
        zk.create(d + "/a", new byte[0], OPEN, CreateMode.PERSISTENT);
        zk.create(d + "/a/b", new byte[0], OPEN, CreateMode.PERSISTENT);
        zk.create(d + "/c", new byte[0], OPEN, CreateMode.EPHEMERAL);
        Checks.equal(3, zk.getAllChildrenNumber(d), "getAllChildrenNumber");
        Checks.equal(0, zk.getAllChildrenNumber(d + "/c"), "getAllChildrenNumber of a leaf");
        Checks.fails(KeeperException.NoNodeException.class, "getAllChildrenNumber of a missing node",
            () -> zk.getAllChildrenNumber(d + "/missing"));
        CountDownLatch done = new CountDownLatch(1);
        AtomicInteger rc = new AtomicInteger(-999);
        String[] cbPath = new String[1];
        other.setData(d, b("from-other"), -1);
        zk.sync(d, (code, path, ctx) -> {
            rc.set(code);
            cbPath[0] = path;
            done.countDown();
        }, null);
        Checks.check(done.await(Events.WAIT_MS, TimeUnit.MILLISECONDS), "sync callback");
        Checks.equal(0, rc.get(), "sync rc");
        Checks.equal(d, cbPath[0], "sync path");
        Checks.equal("from-other", s(zk.getData(d, false, null)), "read after sync");
    }

    private void configNode() throws Exception {
        Stat st = new Stat();
        String cfg = s(zk.getConfig(false, st));
        Checks.info("getConfig: version=" + st.getVersion() + " data=" + cfg);
        Checks.equal(st, zk.exists("/zookeeper/config", false), "getConfig's stat vs exists");
        if ("ensemble".equals(mode)) {
            // ZooKeeper's ensemble members write /zookeeper/config without a stat
            // version: it reads -1 (the "version=" line carries the config's zxid)
            Checks.equal(-1, st.getVersion(), "dataVersion of /zookeeper/config in an ensemble");
            Checks.check(cfg.contains("server.1=") && cfg.contains("server.3=") && cfg.contains("\nversion="),
                "config data: %s", cfg);
        } else {
            Checks.equal(0, st.getVersion(), "dataVersion of /zookeeper/config standalone");
            Checks.equal("", cfg, "standalone config data");
        }
        Checks.equal(Collections.singletonList(new ACL(Perms.READ, Ids.ANYONE_ID_UNSAFE)),
            zk.getACL("/zookeeper/config", new Stat()), "ACL of /zookeeper/config");
    }

    /**
     * A session closed while its client is cut off: the client, on reconnecting, is told
     * the session expired.  The victim connects through the proxy; while the proxy holds
     * its reconnection, a second ZooKeeper object attaches to the same session id and
     * password (directly) and closes it.
     */
    private void sessionExpiry() throws Exception {
        Events ve = new Events("victim");
        ZooKeeper victim = connect(proxied, ve);
        String eph = base + "/victim-eph";
        try {
            victim.create(eph, new byte[0], OPEN, CreateMode.EPHEMERAL);
            Events ew = new Events("victim-eph");
            Checks.check(zk.exists(eph, ew) != null, "victim's ephemeral");
            Checks.ask("cut-hold");
            ve.awaitState(KeeperState.Disconnected);
            Events ke = new Events("killer");
            ZooKeeper killer = new ZooKeeper(connect, SESSION_MS, ke, victim.getSessionId(), victim.getSessionPasswd());
            ke.awaitState(KeeperState.SyncConnected);
            Checks.equal(victim.getSessionId(), killer.getSessionId(), "session id of the second connection");
            Checks.check(killer.exists(eph, false) != null, "ephemeral seen by the second connection");
            killer.close();
            ew.await(EventType.NodeDeleted, eph);
            Checks.ask("release");
            ve.awaitState(KeeperState.Expired);
            Checks.equal(ZooKeeper.States.CLOSED, victim.getState(), "victim's state");
            Checks.fails(KeeperException.SessionExpiredException.class, "a call on the expired session",
                () -> victim.exists(eph, false));
        } finally {
            victim.close();
        }
    }

    private void closeRemovesEphemerals() throws Exception {
        Events ev = new Events("closer");
        ZooKeeper z = connect(connect, ev);
        String eph = base + "/closer-eph";
        z.create(eph, new byte[0], OPEN, CreateMode.EPHEMERAL);
        Events w = new Events("closer-watch");
        Checks.check(zk.exists(eph, w) != null, "ephemeral");
        z.close();
        w.await(EventType.NodeDeleted, eph);
        Checks.equal(null, zk.exists(eph, false), "ephemeral after close");
        Checks.fails(KeeperException.SessionExpiredException.class, "a call after close",
            () -> z.exists(eph, false));
    }
}
