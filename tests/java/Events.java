import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;

/**
 * A Watcher that keeps every event it is given, in arrival order, and lets a check wait
 * (with a deadline) for the next one matching a condition.  Each awaited event is
 * consumed, so the same event is not matched twice.
 */
final class Events implements Watcher {
    static final long WAIT_MS = 15_000;

    private final String name;
    private final List<WatchedEvent> all = new ArrayList<>();
    private final List<Boolean> consumed = new ArrayList<>();

    Events(String name) {
        this.name = name;
    }

    @Override
    public synchronized void process(WatchedEvent event) {
        all.add(event);
        consumed.add(false);
        notifyAll();
    }

    /** The first unconsumed event matching `match`, waiting up to timeoutMs; null if none came. */
    synchronized WatchedEvent poll(Predicate<WatchedEvent> match, long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        while (true) {
            for (int i = 0; i < all.size(); i++) {
                if (!consumed.get(i) && match.test(all.get(i))) {
                    consumed.set(i, true);
                    return all.get(i);
                }
            }
            long left = (deadline - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                return null;
            }
            wait(left);
        }
    }

    WatchedEvent await(Predicate<WatchedEvent> match, String what) throws InterruptedException {
        WatchedEvent e = poll(match, WAIT_MS);
        if (e == null) {
            throw new AssertionError(name + ": no " + what + " within " + WAIT_MS + " ms; events so far: " + this);
        }
        return e;
    }

    WatchedEvent await(EventType type, String path) throws InterruptedException {
        return await(e -> e.getType() == type && path.equals(e.getPath()), type + " on " + path);
    }

    WatchedEvent awaitState(KeeperState state) throws InterruptedException {
        return await(e -> e.getType() == EventType.None && e.getState() == state, "state " + state);
    }

    /** Node events (not state changes) for `path` received so far, consumed or not. */
    synchronized int count(EventType type, String path) {
        int n = 0;
        for (WatchedEvent e : all) {
            if (e.getType() == type && path.equals(e.getPath())) {
                n++;
            }
        }
        return n;
    }

    synchronized int countState(KeeperState state, int fromIndex) {
        int n = 0;
        for (int i = fromIndex; i < all.size(); i++) {
            WatchedEvent e = all.get(i);
            if (e.getType() == EventType.None && e.getState() == state) {
                n++;
            }
        }
        return n;
    }

    synchronized int size() {
        return all.size();
    }

    @Override
    public synchronized String toString() {
        StringBuilder sb = new StringBuilder("[");
        for (WatchedEvent e : all) {
            if (sb.length() > 1) {
                sb.append(", ");
            }
            sb.append(e.getType() == EventType.None ? e.getState().toString() : e.getType() + " " + e.getPath());
        }
        return sb.append("]").toString();
    }
}
