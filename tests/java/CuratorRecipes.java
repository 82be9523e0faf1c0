import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedBarrier;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.cache.NodeCache;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.queue.SimpleDistributedQueue;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.SharedCountListener;
import org.apache.curator.framework.recipes.shared.SharedCountReader;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.details.ServiceCacheListener;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.data.Stat;

/**
 * Apache Curator 5.4's recipes (and service discovery) against a server or ensemble,
 * as the many Java projects built on Curator use them.
 *
 * <pre>
 *   java CuratorRecipes CONNECT
 * </pre>
 * Two CuratorFramework clients (two sessions) share every check.  Prints the Checks
 * line protocol.
 */
public final class CuratorRecipes {
    private static final long WAIT_S = 15;

    private final String connect;
    private final String base = "/curator-" + UUID.randomUUID().toString().substring(0, 8);
    private CuratorFramework c1;
    private CuratorFramework c2;
    private final ExecutorService pool = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "check-worker");
        t.setDaemon(true);
        return t;
    });

    private CuratorRecipes(String connect) {
        this.connect = connect;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: CuratorRecipes CONNECT");
            System.exit(2);
        }
        int rc = new CuratorRecipes(args[0]).runAll();
        System.exit(rc);
    }

    private CuratorFramework client() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder().connectString(connect)
            .sessionTimeoutMs(15_000).connectionTimeoutMs(10_000)
            .retryPolicy(new RetryNTimes(20, 100)).build();
        c.start();
        Checks.check(c.blockUntilConnected((int) WAIT_S, TimeUnit.SECONDS), "Curator client did not connect");
        return c;
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] data) {
        return data == null ? null : new String(data, StandardCharsets.UTF_8);
    }

    static void await(CountDownLatch latch, String what) throws InterruptedException {
        Checks.check(latch.await(WAIT_S, TimeUnit.SECONDS), "timed out waiting for %s", what);
    }

    private int runAll() throws Exception {
        Checks c = Checks.create();
        c1 = client();
        c2 = client();
        c1.create().forPath(base);
        Checks.info("base " + base);

        c.run("framework_basics", this::frameworkBasics);
        c.run("inter_process_mutex", this::mutex);
        c.run("semaphore", this::semaphore);
        c.run("leader_latch", this::leaderLatch);
        c.run("leader_selector", this::leaderSelector);
        c.run("distributed_queue", this::queue);
        c.run("barrier", this::barrier);
        c.run("double_barrier", this::doubleBarrier);
        c.run("curator_cache", this::curatorCache);
        c.run("node_cache", this::nodeCache);
        c.run("service_discovery", this::serviceDiscovery);
        c.run("shared_count", this::sharedCount);
        c.run("atomic_long", this::atomicLong);

        c1.close();
        c2.close();
        pool.shutdownNow();
        return c.finish();
    }

    // -- checks ------------------------------------------------------------

    private void frameworkBasics() throws Exception {
        String p = base + "/fw/a/b/c";
        c1.create().creatingParentContainersIfNeeded().forPath(p, b("leaf"));
        Checks.equal("leaf", s(c2.getData().forPath(p)), "data");
        Checks.equal(Collections.singletonList("b"), c2.getChildren().forPath(base + "/fw/a"), "children");
        Stat st = new Stat();
        c1.getData().storingStatIn(st).forPath(p);
        c1.setData().withVersion(st.getVersion()).forPath(p, b("leaf2"));
        CuratorOp op1 = c1.transactionOp().create().forPath(base + "/fw/t1", b("1"));
        CuratorOp op2 = c1.transactionOp().setData().forPath(p, b("leaf3"));
        CuratorOp op3 = c1.transactionOp().check().withVersion(2).forPath(p);
        List<CuratorTransactionResult> res = c1.transaction().forOperations(op1, op2, op3);
        Checks.equal(3, res.size(), "transaction results");
        Checks.equal(base + "/fw/t1", res.get(0).getResultPath(), "created path");
        Checks.equal("leaf3", s(c2.getData().forPath(p)), "data after the transaction");
        String seq = c1.create().withProtection().withMode(CreateMode.EPHEMERAL_SEQUENTIAL).forPath(base + "/fw/p-");
        Checks.check(seq.startsWith(base + "/fw/_c_") && seq.contains("-p-"), "protected name %s", seq);
        c1.delete().deletingChildrenIfNeeded().forPath(base + "/fw/a");
        Checks.equal(null, c2.checkExists().forPath(base + "/fw/a"), "deleted subtree");
    }

    private void mutex() throws Exception {
        String p = base + "/lock";
        InterProcessMutex m1 = new InterProcessMutex(c1, p);
        InterProcessMutex m2 = new InterProcessMutex(c2, p);
        m1.acquire();
        m1.acquire(); // re-entrant
        // an InterProcessMutex belongs to the thread that acquired it: the second
        // client's lock is taken and released by one worker thread
        AtomicBoolean firstHolds = new AtomicBoolean(true);
        AtomicBoolean overlap = new AtomicBoolean(false);
        CountDownLatch got = new CountDownLatch(1);
        CountDownLatch letGo = new CountDownLatch(1);
        Future<?> waiter = pool.submit(() -> {
            m2.acquire();
            if (firstHolds.get()) {
                overlap.set(true);
            }
            got.countDown();
            letGo.await();
            m2.release();
            return null;
        });
        // wait until the second client queues behind the first (two lock nodes)
        long deadline = System.nanoTime() + WAIT_S * 1_000_000_000L;
        while (m1.getParticipantNodes().size() < 2) {
            Checks.check(System.nanoTime() < deadline, "second lock node never appeared");
            Thread.sleep(10);
        }
        Checks.check(got.getCount() == 1, "second client got the lock while the first held it");
        m1.release();
        Checks.check(m1.isAcquiredInThisProcess(), "released once of twice: still held");
        firstHolds.set(false);
        m1.release();
        await(got, "the second client to get the lock");
        Checks.check(!overlap.get(), "both held the lock at once");
        Checks.check(!m1.acquire(0, TimeUnit.MILLISECONDS), "first client got a held lock");
        letGo.countDown();
        waiter.get(WAIT_S, TimeUnit.SECONDS);
        Checks.check(m1.acquire(WAIT_S, TimeUnit.SECONDS), "lock free again");
        m1.release();
        Checks.equal(Collections.emptyList(), c1.getChildren().forPath(p), "lock nodes left");
    }

    private void semaphore() throws Exception {
        String p = base + "/sem";
        InterProcessSemaphoreV2 s1 = new InterProcessSemaphoreV2(c1, p, 2);
        InterProcessSemaphoreV2 s2 = new InterProcessSemaphoreV2(c2, p, 2);
        Collection<Lease> two = s1.acquire(2, WAIT_S, TimeUnit.SECONDS);
        Checks.check(two != null && two.size() == 2, "two leases: %s", two);
        Checks.equal(null, s2.acquire(0, TimeUnit.MILLISECONDS), "a third lease");
        s1.returnAll(two);
        Lease one = s2.acquire(WAIT_S, TimeUnit.SECONDS);
        Checks.check(one != null, "a lease after the others were returned");
        s2.returnLease(one);
    }

    private void leaderLatch() throws Exception {
        String p = base + "/latch";
        LeaderLatch l1 = new LeaderLatch(c1, p, "one");
        LeaderLatch l2 = new LeaderLatch(c2, p, "two");
        l1.start();
        Checks.check(l1.await(WAIT_S, TimeUnit.SECONDS), "first latch never led");
        l2.start();
        long deadline = System.nanoTime() + WAIT_S * 1_000_000_000L;
        while (l2.getParticipants().size() < 2) {
            Checks.check(System.nanoTime() < deadline, "second participant never appeared");
            Thread.sleep(10);
        }
        Checks.check(!l2.hasLeadership(), "two leaders");
        Checks.equal("one", l2.getLeader().getId(), "leader seen by the second");
        l1.close();
        Checks.check(l2.await(WAIT_S, TimeUnit.SECONDS), "second latch never took over");
        Checks.equal("two", l1.getLeader().getId(), "leader after the first closed");
        l2.close();
    }

    private void leaderSelector() throws Exception {
        String p = base + "/selector";
        int terms = 6;
        CountDownLatch done = new CountDownLatch(terms);
        AtomicInteger leading = new AtomicInteger();
        AtomicInteger maxLeading = new AtomicInteger();
        AtomicBoolean alone = new AtomicBoolean(false);
        List<String> order = Collections.synchronizedList(new ArrayList<>());
        List<LeaderSelector> selectors = new ArrayList<>();
        for (CuratorFramework cf : Arrays.asList(c1, c2)) {
            String id = cf == c1 ? "one" : "two";
            LeaderSelector[] self = new LeaderSelector[1];
            self[0] = new LeaderSelector(cf, p, new LeaderSelectorListenerAdapter() {
                @Override
                public void takeLeadership(CuratorFramework client) throws Exception {
                    int now = leading.incrementAndGet();
                    maxLeading.accumulateAndGet(now, Math::max);
                    order.add(id);
                    // hand over only once the other one is queued, so that leadership
                    // alternates (autoRequeue puts this one back at the end)
                    long deadline = System.nanoTime() + WAIT_S * 1_000_000_000L;
                    while (done.getCount() > 1 && self[0].getParticipants().size() < 2) {
                        if (System.nanoTime() > deadline) {
                            alone.set(true);
                            break;
                        }
                        Thread.sleep(10);
                    }
                    leading.decrementAndGet();
                    done.countDown();
                }
            });
            self[0].setId(id);
            self[0].autoRequeue();
            selectors.add(self[0]);
        }
        for (LeaderSelector sel : selectors) {
            sel.start();
        }
        await(done, terms + " terms of leadership");
        for (LeaderSelector sel : selectors) {
            sel.close();
        }
        Checks.check(!alone.get(), "a leader never saw the other participant: %s", order);
        Checks.equal(1, maxLeading.get(), "most leaders at once");
        for (int i = 1; i < order.size(); i++) {
            Checks.check(!order.get(i).equals(order.get(i - 1)), "leadership did not alternate: %s", order);
        }
    }

    private void queue() throws Exception {
        String p = base + "/queue";
        SimpleDistributedQueue producer = new SimpleDistributedQueue(c1, p);
        SimpleDistributedQueue consumer = new SimpleDistributedQueue(c2, p);
        Checks.equal(null, consumer.poll(), "poll on an empty queue");
        for (int i = 0; i < 5; i++) {
            Checks.check(producer.offer(b("item-" + i)), "offer %d", i);
        }
        List<String> got = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            got.add(s(consumer.take()));
        }
        Checks.equal(Arrays.asList("item-0", "item-1", "item-2", "item-3", "item-4"), got, "FIFO order");
        // a take that has to wait for the offer
        Future<byte[]> taker = pool.submit(() -> consumer.take());
        producer.offer(b("late"));
        Checks.equal("late", s(taker.get(WAIT_S, TimeUnit.SECONDS)), "blocking take");
        Checks.equal(null, consumer.poll(), "poll on an emptied queue");
    }

    private void barrier() throws Exception {
        String p = base + "/barrier";
        DistributedBarrier b1 = new DistributedBarrier(c1, p);
        DistributedBarrier b2 = new DistributedBarrier(c2, p);
        b1.setBarrier();
        Checks.check(!b2.waitOnBarrier(100, TimeUnit.MILLISECONDS), "waitOnBarrier passed a set barrier");
        CountDownLatch waiting = new CountDownLatch(1);
        Future<Boolean> waiter = pool.submit(() -> {
            waiting.countDown();
            return b2.waitOnBarrier(WAIT_S, TimeUnit.SECONDS);
        });
        await(waiting, "the waiter to start");
        Checks.check(!waiter.isDone(), "waitOnBarrier returned while the barrier was set");
        b1.removeBarrier();
        Checks.check(waiter.get(WAIT_S, TimeUnit.SECONDS), "waitOnBarrier did not see the barrier go");
        Checks.check(b2.waitOnBarrier(0, TimeUnit.MILLISECONDS), "no barrier: waitOnBarrier is immediate");
    }

    private void doubleBarrier() throws Exception {
        String p = base + "/double";
        int members = 3;
        List<Future<Boolean>> all = new ArrayList<>();
        CountDownLatch entered = new CountDownLatch(members);
        for (int i = 0; i < members; i++) {
            CuratorFramework cf = i % 2 == 0 ? c1 : c2;
            all.add(pool.submit(() -> {
                DistributedDoubleBarrier db = new DistributedDoubleBarrier(cf, p, members);
                boolean in = db.enter(WAIT_S, TimeUnit.SECONDS);
                entered.countDown();
                return in && db.leave(WAIT_S, TimeUnit.SECONDS);
            }));
        }
        await(entered, "all members to enter");
        for (Future<Boolean> f : all) {
            Checks.check(f.get(WAIT_S, TimeUnit.SECONDS), "a member failed to enter or leave");
        }
    }

    private void curatorCache() throws Exception {
        String p = base + "/cache";
        c1.create().forPath(p, b("root"));
        c1.create().forPath(p + "/existing", b("e"));
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        CountDownLatch initialized = new CountDownLatch(1);
        CuratorCache cache = CuratorCache.build(c1, p);
        cache.listenable().addListener(CuratorCacheListener.builder()
            .forCreates(n -> events.add("created " + n.getPath() + " " + s(n.getData())))
            .forChanges((o, n) -> events.add("changed " + n.getPath() + " " + s(o.getData()) + "->" + s(n.getData())))
            .forDeletes(o -> events.add("deleted " + o.getPath()))
            .forInitialized(initialized::countDown)
            .build());
        cache.start();
        try {
            await(initialized, "the cache to initialise");
            Set<String> initial = new TreeSet<>();
            String e;
            while ((e = events.poll()) != null) {
                initial.add(e);
            }
            Checks.equal(new TreeSet<>(Arrays.asList("created " + p + " root", "created " + p + "/existing e")),
                initial, "initial events");
            // one change at a time: the cache reads a node after its event, so a node
            // deleted straight after its creation may never be seen
            List<String> got = new ArrayList<>();
            String[][] steps = {
                {"create", p + "/new", "n1", "created " + p + "/new n1"},
                {"create", p + "/new/deep", "d", "created " + p + "/new/deep d"},
                {"set", p + "/new", "n2", "changed " + p + "/new n1->n2"},
                {"delete", p + "/new/deep", null, "deleted " + p + "/new/deep"},
                {"delete", p + "/existing", null, "deleted " + p + "/existing"},
            };
            for (String[] step : steps) {
                if (step[0].equals("create")) {
                    c2.create().forPath(step[1], b(step[2]));
                } else if (step[0].equals("set")) {
                    c2.setData().forPath(step[1], b(step[2]));
                } else {
                    c2.delete().forPath(step[1]);
                }
                String ev = events.poll(WAIT_S, TimeUnit.SECONDS);
                got.add(ev);
                Checks.equal(step[3], ev, "cache event after " + step[0] + " " + step[1] + " (events so far " + got + ")");
            }
            Checks.equal("n2", s(cache.get(p + "/new").get().getData()), "cached data");
            Checks.check(!cache.get(p + "/existing").isPresent(), "deleted node still cached");
        } finally {
            cache.close();
        }
    }

    @SuppressWarnings("deprecation")
    private void nodeCache() throws Exception {
        String p = base + "/nodecache";
        NodeCache nc = new NodeCache(c1, p);
        BlockingQueue<String> seen = new LinkedBlockingQueue<>();
        nc.getListenable().addListener(() -> {
            seen.add(nc.getCurrentData() == null ? "(none)" : s(nc.getCurrentData().getData()));
        });
        nc.start(true);
        try {
            Checks.equal(null, nc.getCurrentData(), "data of a missing node");
            c2.create().forPath(p, b("v1"));
            Checks.equal("v1", seen.poll(WAIT_S, TimeUnit.SECONDS), "after create");
            c2.setData().forPath(p, b("v2"));
            Checks.equal("v2", seen.poll(WAIT_S, TimeUnit.SECONDS), "after setData");
            c2.delete().forPath(p);
            Checks.equal("(none)", seen.poll(WAIT_S, TimeUnit.SECONDS), "after delete");
        } finally {
            nc.close();
        }
    }

    private void serviceDiscovery() throws Exception {
        String p = base + "/services";
        ServiceDiscovery<Void> sd1 = ServiceDiscoveryBuilder.builder(Void.class).client(c1).basePath(p).build();
        ServiceDiscovery<Void> sd2 = ServiceDiscoveryBuilder.builder(Void.class).client(c2).basePath(p).build();
        sd1.start();
        sd2.start();
        ServiceCache<Void> cache = sd2.serviceCacheBuilder().name("api").build();
        CountDownLatch changed = new CountDownLatch(1);
        try {
            ServiceInstance<Void> a = ServiceInstance.<Void>builder().name("api").address("10.0.0.1").port(8080).build();
            ServiceInstance<Void> b = ServiceInstance.<Void>builder().name("api").address("10.0.0.2").port(8081).build();
            ServiceInstance<Void> w = ServiceInstance.<Void>builder().name("worker").address("10.0.0.3").port(9000).build();
            sd1.registerService(a);
            sd1.registerService(b);
            sd1.registerService(w);
            Checks.equal(new TreeSet<>(Arrays.asList("api", "worker")), new TreeSet<>(sd2.queryForNames()), "names");
            Set<String> addrs = new TreeSet<>();
            for (ServiceInstance<Void> si : sd2.queryForInstances("api")) {
                addrs.add(si.getAddress() + ":" + si.getPort());
            }
            Checks.equal(new TreeSet<>(Arrays.asList("10.0.0.1:8080", "10.0.0.2:8081")), addrs, "api instances");
            ServiceInstance<Void> one = sd2.queryForInstance("api", b.getId());
            Checks.equal("10.0.0.2", one.getAddress(), "one instance by id");
            cache.start();
            Checks.equal(2, cache.getInstances().size(), "cached instances");
            cache.addListener(new ServiceCacheListener() {
                @Override
                public void cacheChanged() {
                    if (cache.getInstances().size() == 1) {
                        changed.countDown();
                    }
                }

                @Override
                public void stateChanged(CuratorFramework client, ConnectionState newState) {
                }
            });
            sd1.unregisterService(a);
            await(changed, "the service cache to drop an instance");
            Checks.equal(b.getId(), cache.getInstances().get(0).getId(), "remaining instance");
            Checks.equal(1, sd2.queryForInstances("api").size(), "instances after unregister");
        } finally {
            cache.close();
            sd2.close();
            sd1.close();
        }
        // registrations are ephemeral: sd1.close() unregisters the rest
        Checks.equal(Collections.emptyList(), c2.getChildren().forPath(p + "/api"), "instances after close");
    }

    private void sharedCount() throws Exception {
        String p = base + "/count";
        SharedCount s1 = new SharedCount(c1, p, 0);
        SharedCount s2 = new SharedCount(c2, p, 0);
        BlockingQueue<Integer> seen = new LinkedBlockingQueue<>();
        s2.addListener(new SharedCountListener() {
            @Override
            public void countHasChanged(SharedCountReader reader, int newCount) {
                seen.add(newCount);
            }

            @Override
            public void stateChanged(CuratorFramework client, ConnectionState newState) {
            }
        });
        s1.start();
        s2.start();
        try {
            VersionedValue<Integer> v = s1.getVersionedValue();
            Checks.equal(0, v.getValue(), "seed");
            Checks.check(s1.trySetCount(v, 5), "trySetCount with the current version");
            Checks.equal(5, seen.poll(WAIT_S, TimeUnit.SECONDS), "count seen by the other client");
            Checks.check(!s1.trySetCount(v, 6), "trySetCount with a stale version succeeded");
            s2.setCount(7);
            long deadline = System.nanoTime() + WAIT_S * 1_000_000_000L;
            while (s1.getCount() != 7) {
                Checks.check(System.nanoTime() < deadline, "first client never saw 7 (has %d)", s1.getCount());
                Thread.sleep(10);
            }
        } finally {
            s1.close();
            s2.close();
        }
    }

    private void atomicLong() throws Exception {
        String p = base + "/atomic";
        int each = 10;
        List<Future<Integer>> workers = new ArrayList<>();
        for (CuratorFramework cf : Arrays.asList(c1, c2)) {
            workers.add(pool.submit(() -> {
                DistributedAtomicLong al = new DistributedAtomicLong(cf, p, new RetryNTimes(1000, 1));
                int ok = 0;
                for (int i = 0; i < each; i++) {
                    AtomicValue<Long> v = al.increment();
                    if (v.succeeded()) {
                        ok++;
                    }
                }
                return ok;
            }));
        }
        int succeeded = 0;
        for (Future<Integer> f : workers) {
            succeeded += f.get(WAIT_S * 2, TimeUnit.SECONDS);
        }
        Checks.equal(2 * each, succeeded, "successful increments");
        Checks.equal(2L * each, new DistributedAtomicLong(c1, p, new RetryNTimes(3, 10)).get().postValue(), "final value");
    }
}
