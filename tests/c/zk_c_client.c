/*
 * ZooKeeper's C client (libzookeeper_mt, Debian libzookeeper-mt-dev) against a server.
 *
 *   zk_c_client DIRECT PROXIED
 *
 * DIRECT reaches the server; PROXIED reaches it through the test's TCP proxy, which the
 * reconnect check asks the driver to "cut-hold" and "release".  Prints the line
 * protocol of tests/java/Checks.java: "ok NAME", "FAIL NAME: REASON", "info TEXT",
 * "ask WHAT" (then reads "ok" from stdin), "done failed=N"; exits 1 if a check failed.
 *
 * Unlike the Java client, the C client sends SetWatches on reconnection with the
 * reserved xid -8 (SET_WATCHES_XID) and expects -8 back.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zookeeper.h>

#define WAIT_MS 15000
#define SETTLE_MS 2000
#define MAX_EVENTS 512

/* ---- events ---------------------------------------------------------------- */

struct event {
    int type;
    int state;
    char path[256];
    int consumed;
};

struct events {
    const char *name;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    struct event ev[MAX_EVENTS];
};

static void events_init(struct events *e, const char *name)
{
    memset(e, 0, sizeof *e);
    e->name = name;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct events *e = ctx;
    pthread_mutex_lock(&e->mu);
    if (e->n < MAX_EVENTS) {
        struct event *x = &e->ev[e->n++];
        x->type = type;
        x->state = state;
        snprintf(x->path, sizeof x->path, "%s", path ? path : "");
        x->consumed = 0;
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static const char *type_name(int t)
{
    if (t == ZOO_CREATED_EVENT) return "created";
    if (t == ZOO_DELETED_EVENT) return "deleted";
    if (t == ZOO_CHANGED_EVENT) return "changed";
    if (t == ZOO_CHILD_EVENT) return "child";
    if (t == ZOO_SESSION_EVENT) return "session";
    if (t == ZOO_NOTWATCHING_EVENT) return "notwatching";
    return "?";
}

static const char *state_name(int s)
{
    if (s == ZOO_CONNECTED_STATE) return "connected";
    if (s == ZOO_CONNECTING_STATE) return "connecting";
    if (s == ZOO_ASSOCIATING_STATE) return "associating";
    if (s == ZOO_EXPIRED_SESSION_STATE) return "expired";
    if (s == ZOO_AUTH_FAILED_STATE) return "auth-failed";
    if (s == 0) return "closed";
    return "?";
}

/* "type state path, ..." of every event so far (into a static buffer) */
static const char *events_str(struct events *e)
{
    static char buf[8192];
    size_t off = 0;
    buf[0] = 0;
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->n && off < sizeof buf - 300; i++) {
        off += snprintf(buf + off, sizeof buf - off, "%s%s/%s %s", i ? ", " : "",
                        type_name(e->ev[i].type), state_name(e->ev[i].state), e->ev[i].path);
    }
    pthread_mutex_unlock(&e->mu);
    return buf;
}

static void deadline_after(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits up to ms for an unconsumed event of `type` (and `state` unless -1, `path`
 * unless NULL); consumes it.  Returns 1 if found. */
static int events_wait(struct events *e, int type, int state, const char *path, long ms)
{
    struct timespec ts;
    deadline_after(&ts, ms);
    pthread_mutex_lock(&e->mu);
    for (;;) {
        for (int i = 0; i < e->n; i++) {
            struct event *x = &e->ev[i];
            if (!x->consumed && x->type == type && (state == -1 || x->state == state) &&
                (path == NULL || strcmp(x->path, path) == 0)) {
                x->consumed = 1;
                pthread_mutex_unlock(&e->mu);
                return 1;
            }
        }
        if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&e->mu);
            return 0;
        }
    }
}

static int events_count(struct events *e, int type, int state, int from)
{
    int n = 0;
    pthread_mutex_lock(&e->mu);
    for (int i = from; i < e->n; i++) {
        if (e->ev[i].type == type && (state == -1 || e->ev[i].state == state)) n++;
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

static int events_size(struct events *e)
{
    pthread_mutex_lock(&e->mu);
    int n = e->n;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* ---- checks ---------------------------------------------------------------- */

static int failed;
static char fail_reason[1024];

/* Inside a check: record why it failed and leave it. */
#define REQUIRE(cond, ...) do { \
        if (!(cond)) { snprintf(fail_reason, sizeof fail_reason, __VA_ARGS__); return -1; } \
    } while (0)
#define REQUIRE_RC(rc, want, what) \
    REQUIRE((rc) == (want), "%s: rc %d (%s), expected %d (%s)", what, rc, zerror(rc), want, zerror(want))

static void run_check(const char *name, int (*fn)(void))
{
    fail_reason[0] = 0;
    if (fn() == 0) {
        printf("ok %s\n", name);
    } else {
        failed++;
        printf("FAIL %s: %s\n", name, fail_reason);
    }
    fflush(stdout);
}

static int ask(const char *what)
{
    char line[64];
    printf("ask %s\n", what);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin) || strcmp(line, "ok\n") != 0) return -1;
    return 0;
}

/* ---- the client ----------------------------------------------------------- */

static const char *direct, *proxied;
static char base[128];
static zhandle_t *zh, *other;
static struct events main_ev, other_ev;

static zhandle_t *connect_to(const char *hosts, struct events *ev, int timeout_ms)
{
    zhandle_t *h = zookeeper_init(hosts, watcher, timeout_ms, NULL, ev, 0);
    if (!h) return NULL;
    if (!events_wait(ev, ZOO_SESSION_EVENT, ZOO_CONNECTED_STATE, NULL, WAIT_MS)) {
        zookeeper_close(h);
        return NULL;
    }
    return h;
}

static char *p(const char *suffix)
{
    static char bufs[8][256];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 256, "%s%s", base, suffix);
    return b;
}

static int check_connect(void)
{
    REQUIRE(zoo_state(zh) == ZOO_CONNECTED_STATE, "state %d", zoo_state(zh));
    const clientid_t *id = zoo_client_id(zh);
    REQUIRE(id->client_id != 0, "session id 0");
    REQUIRE(zoo_recv_timeout(zh) == 10000, "negotiated timeout %d", zoo_recv_timeout(zh));
    printf("info session 0x%llx base %s\n", (unsigned long long)id->client_id, base);
    return 0;
}

static int check_create_get_set(void)
{
    char path[256];
    struct Stat st;
    int rc = zoo_create(zh, p("/node"), "hello", 5, &ZOO_OPEN_ACL_UNSAFE, 0, path, sizeof path);
    REQUIRE_RC(rc, ZOK, "create");
    REQUIRE(strcmp(path, p("/node")) == 0, "created path %s", path);
    rc = zoo_create(zh, p("/node"), "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    REQUIRE_RC(rc, ZNODEEXISTS, "create again");
    rc = zoo_create(zh, p("/none/child"), "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    REQUIRE_RC(rc, ZNONODE, "create without a parent");

    char buf[64];
    int len = sizeof buf;
    rc = zoo_get(zh, p("/node"), 0, buf, &len, &st);
    REQUIRE_RC(rc, ZOK, "get");
    REQUIRE(len == 5 && memcmp(buf, "hello", 5) == 0, "data %.*s", len, buf);
    REQUIRE(st.version == 0 && st.dataLength == 5 && st.czxid == st.mzxid, "stat v%d len%d", st.version, st.dataLength);

    struct Stat st2;
    rc = zoo_set2(zh, p("/node"), "world", 5, 0, &st2);
    REQUIRE_RC(rc, ZOK, "set");
    REQUIRE(st2.version == 1 && st2.mzxid > st.mzxid, "stat after set: version %d", st2.version);
    rc = zoo_set(zh, p("/node"), "stale", 5, 0);
    REQUIRE_RC(rc, ZBADVERSION, "set with a stale version");

    /* a NULL buffer with length -1 stores a null data; get returns length -1 */
    rc = zoo_create(zh, p("/null"), NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    REQUIRE_RC(rc, ZOK, "create with null data");
    len = sizeof buf;
    rc = zoo_get(zh, p("/null"), 0, buf, &len, &st);
    REQUIRE_RC(rc, ZOK, "get null data");
    REQUIRE(len == -1, "null data read back with length %d", len);

    char seq[256];
    rc = zoo_create(zh, p("/node/s-"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_SEQUENCE | ZOO_EPHEMERAL, seq, sizeof seq);
    REQUIRE_RC(rc, ZOK, "create ephemeral sequential");
    REQUIRE(strcmp(seq, p("/node/s-0000000000")) == 0, "sequential name %s", seq);
    rc = zoo_exists(zh, seq, 0, &st);
    REQUIRE_RC(rc, ZOK, "exists");
    REQUIRE(st.ephemeralOwner == zoo_client_id(zh)->client_id, "ephemeralOwner %llx", (unsigned long long)st.ephemeralOwner);
    return 0;
}

static int check_watches(void)
{
    struct events w;
    events_init(&w, "watches");
    char buf[64];
    int len = sizeof buf;
    struct Stat st;
    int rc = zoo_create(zh, p("/w"), "v0", 2, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    REQUIRE_RC(rc, ZOK, "create");
    rc = zoo_wget(zh, p("/w"), watcher, &w, buf, &len, &st);
    REQUIRE_RC(rc, ZOK, "wget");
    rc = zoo_wexists(zh, p("/w-born"), watcher, &w, &st);
    REQUIRE_RC(rc, ZNONODE, "wexists on a missing node");
    struct String_vector kids;
    rc = zoo_wget_children(zh, p("/w"), watcher, &w, &kids);
    REQUIRE_RC(rc, ZOK, "wget_children");
    REQUIRE(kids.count == 0, "children %d", kids.count);
    deallocate_String_vector(&kids);

    rc = zoo_set(other, p("/w"), "v1", 2, -1);
    REQUIRE_RC(rc, ZOK, "set by another session");
    REQUIRE(events_wait(&w, ZOO_CHANGED_EVENT, ZOO_CONNECTED_STATE, p("/w"), WAIT_MS), "no changed event: %s", events_str(&w));
    rc = zoo_create(other, p("/w-born"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    REQUIRE_RC(rc, ZOK, "create by another session");
    REQUIRE(events_wait(&w, ZOO_CREATED_EVENT, -1, p("/w-born"), WAIT_MS), "no created event: %s", events_str(&w));
    rc = zoo_create(other, p("/w/kid"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    REQUIRE_RC(rc, ZOK, "create a child");
    REQUIRE(events_wait(&w, ZOO_CHILD_EVENT, -1, p("/w"), WAIT_MS), "no child event: %s", events_str(&w));
    /* one-shot: a second set is not reported; the marker's event comes after it */
    rc = zoo_set(other, p("/w"), "v2", 2, -1);
    REQUIRE_RC(rc, ZOK, "second set");
    rc = zoo_wexists(zh, p("/w-marker"), watcher, &w, &st);
    REQUIRE_RC(rc, ZNONODE, "wexists marker");
    rc = zoo_create(other, p("/w-marker"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    REQUIRE_RC(rc, ZOK, "create marker");
    REQUIRE(events_wait(&w, ZOO_CREATED_EVENT, -1, p("/w-marker"), WAIT_MS), "no marker event: %s", events_str(&w));
    REQUIRE(events_count(&w, ZOO_CHANGED_EVENT, -1, 0) == 1, "changed events: %s", events_str(&w));
    return 0;
}

static int check_multi(void)
{
    char created[256], seqpath[256];
    struct Stat setstat;
    zoo_op_t ops[5];
    zoo_op_result_t res[5];
    zoo_create_op_init(&ops[0], p("/m"), "m", 1, &ZOO_OPEN_ACL_UNSAFE, 0, created, sizeof created);
    zoo_create_op_init(&ops[1], p("/m/s-"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_SEQUENCE, seqpath, sizeof seqpath);
    zoo_set_op_init(&ops[2], p("/m"), "mm", 2, 0, &setstat);
    zoo_check_op_init(&ops[3], p("/m"), 1);
    zoo_delete_op_init(&ops[4], p("/m/s-0000000000"), 0);
    int rc = zoo_multi(zh, 5, ops, res);
    REQUIRE_RC(rc, ZOK, "multi");
    for (int i = 0; i < 5; i++) REQUIRE(res[i].err == ZOK, "op %d err %d", i, res[i].err);
    REQUIRE(strcmp(created, p("/m")) == 0, "created %s", created);
    REQUIRE(strcmp(seqpath, p("/m/s-0000000000")) == 0, "sequential %s", seqpath);
    REQUIRE(setstat.version == 1, "set's version %d", setstat.version);

    /* a failing multi changes nothing; the failing op has its error, the rest
     * ZOK before it and ZRUNTIMEINCONSISTENCY after */
    zoo_create_op_init(&ops[0], p("/m/new"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    zoo_check_op_init(&ops[1], p("/m"), 7);
    zoo_delete_op_init(&ops[2], p("/m"), -1);
    rc = zoo_multi(zh, 3, ops, res);
    REQUIRE_RC(rc, ZBADVERSION, "failing multi");
    REQUIRE(res[0].err == ZOK && res[1].err == ZBADVERSION && res[2].err == ZRUNTIMEINCONSISTENCY,
            "results %d %d %d", res[0].err, res[1].err, res[2].err);
    struct Stat st;
    rc = zoo_exists(zh, p("/m/new"), 0, &st);
    REQUIRE_RC(rc, ZNONODE, "node of the failed multi");
    return 0;
}

static int check_acl(void)
{
    struct ACL_vector acl;
    struct Stat st;
    int rc = zoo_create(zh, p("/ro"), "r", 1, &ZOO_READ_ACL_UNSAFE, 0, NULL, 0);
    REQUIRE_RC(rc, ZOK, "create read-only");
    rc = zoo_get_acl(zh, p("/ro"), &acl, &st);
    REQUIRE_RC(rc, ZOK, "get_acl");
    REQUIRE(acl.count == 1 && acl.data[0].perms == ZOO_PERM_READ && strcmp(acl.data[0].id.scheme, "world") == 0 &&
            strcmp(acl.data[0].id.id, "anyone") == 0, "acl count %d", acl.count);
    deallocate_ACL_vector(&acl);
    rc = zoo_set(zh, p("/ro"), "w", 1, -1);
    REQUIRE_RC(rc, ZNOAUTH, "set on a read-only node");
    return 0;
}

static int check_delete(void)
{
    int rc = zoo_delete(zh, p("/node"), -1);
    REQUIRE_RC(rc, ZNOTEMPTY, "delete a node with a child");
    rc = zoo_delete(zh, p("/w"), 5);
    REQUIRE_RC(rc, ZBADVERSION, "delete /w with a wrong version (checked before emptiness)");
    rc = zoo_delete(zh, p("/null"), 3);
    REQUIRE_RC(rc, ZBADVERSION, "delete with a wrong version");
    rc = zoo_delete(zh, p("/null"), 0);
    REQUIRE_RC(rc, ZOK, "delete");
    rc = zoo_delete(zh, p("/null"), -1);
    REQUIRE_RC(rc, ZNONODE, "delete again");
    return 0;
}

/* Through the proxy: a data watch and an exists watch, the connection cut, both
 * nodes changed elsewhere, the connection back: the client resends its watches
 * (SetWatches, xid -8) and gets the missed events; it stays connected. */
static int check_reconnect(void)
{
    struct events ev, w;
    events_init(&ev, "proxied");
    events_init(&w, "proxied-watches");
    zhandle_t *pz = connect_to(proxied, &ev, 6000);
    REQUIRE(pz != NULL, "no connection through the proxy: %s", events_str(&ev));
    int result = -1;
    char buf[64];
    int len = sizeof buf;
    struct Stat st;
    int rc = zoo_create(other, p("/r"), "v0", 2, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (rc != ZOK) { snprintf(fail_reason, sizeof fail_reason, "create: %s", zerror(rc)); goto out; }
    rc = zoo_wget(pz, p("/r"), watcher, &w, buf, &len, &st);
    if (rc != ZOK) { snprintf(fail_reason, sizeof fail_reason, "wget: %s", zerror(rc)); goto out; }
    rc = zoo_wexists(pz, p("/r-born"), watcher, &w, &st);
    if (rc != ZNONODE) { snprintf(fail_reason, sizeof fail_reason, "wexists: %s", zerror(rc)); goto out; }
    int mark = events_size(&ev);
    if (ask("cut-hold") != 0) { snprintf(fail_reason, sizeof fail_reason, "ask cut-hold"); goto out; }
    if (!events_wait(&ev, ZOO_SESSION_EVENT, ZOO_CONNECTING_STATE, NULL, WAIT_MS)) {
        snprintf(fail_reason, sizeof fail_reason, "never disconnected: %s", events_str(&ev));
        ask("release");
        goto out;
    }
    int rc1 = zoo_set(other, p("/r"), "v1", 2, -1);
    int rc2 = zoo_create(other, p("/r-born"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (ask("release") != 0) { snprintf(fail_reason, sizeof fail_reason, "ask release"); goto out; }
    if (rc1 != ZOK || rc2 != ZOK) { snprintf(fail_reason, sizeof fail_reason, "changes: %d %d", rc1, rc2); goto out; }
    if (!events_wait(&ev, ZOO_SESSION_EVENT, ZOO_CONNECTED_STATE, NULL, WAIT_MS)) {
        snprintf(fail_reason, sizeof fail_reason, "never reconnected: %s", events_str(&ev));
        goto out;
    }
    if (!events_wait(&w, ZOO_CHANGED_EVENT, -1, p("/r"), WAIT_MS) ||
        !events_wait(&w, ZOO_CREATED_EVENT, -1, p("/r-born"), WAIT_MS)) {
        snprintf(fail_reason, sizeof fail_reason, "missed events not delivered: %s", events_str(&w));
        goto out;
    }
    /* settled: no further state change (the client pings every 2 s) */
    if (events_wait(&ev, ZOO_SESSION_EVENT, ZOO_CONNECTING_STATE, NULL, SETTLE_MS) ||
        events_count(&ev, ZOO_SESSION_EVENT, ZOO_CONNECTED_STATE, mark) != 1) {
        snprintf(fail_reason, sizeof fail_reason, "connection not settled: %s", events_str(&ev));
        goto out;
    }
    rc = zoo_exists(pz, p("/r"), 0, &st);
    if (rc != ZOK) { snprintf(fail_reason, sizeof fail_reason, "exists after reconnecting: %s", zerror(rc)); goto out; }
    printf("info proxied client events: %s\n", events_str(&ev));
    result = 0;
out:
    zookeeper_close(pz);
    return result;
}

static int check_close_removes_ephemeral(void)
{
    struct events ev, w;
    events_init(&ev, "closer");
    events_init(&w, "closer-watch");
    zhandle_t *h = connect_to(direct, &ev, 10000);
    REQUIRE(h != NULL, "no connection: %s", events_str(&ev));
    int rc = zoo_create(h, p("/eph"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, NULL, 0);
    if (rc != ZOK) {
        zookeeper_close(h);
        REQUIRE_RC(rc, ZOK, "create ephemeral");
    }
    struct Stat st;
    rc = zoo_wexists(zh, p("/eph"), watcher, &w, &st);
    REQUIRE_RC(rc, ZOK, "wexists");
    rc = zookeeper_close(h);
    REQUIRE_RC(rc, ZOK, "close");
    REQUIRE(events_wait(&w, ZOO_DELETED_EVENT, -1, p("/eph"), WAIT_MS), "no deleted event: %s", events_str(&w));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIRECT PROXIED\n", argv[0]);
        return 2;
    }
    direct = argv[1];
    proxied = argv[2];
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    zoo_set_log_stream(stderr);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(base, sizeof base, "/c-client-%08x", (unsigned)rand());

    events_init(&main_ev, "main");
    events_init(&other_ev, "other");
    zh = connect_to(direct, &main_ev, 10000);
    other = connect_to(direct, &other_ev, 10000);
    if (!zh || !other) {
        printf("FAIL connect: no session within %d ms: %s\n", WAIT_MS, events_str(&main_ev));
        printf("done failed=1\n");
        return 1;
    }
    int rc = zoo_create(zh, base, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (rc != ZOK) {
        printf("FAIL connect: create %s: %s\n", base, zerror(rc));
        printf("done failed=1\n");
        return 1;
    }
    run_check("connect", check_connect);
    run_check("create_get_set", check_create_get_set);
    run_check("watches", check_watches);
    run_check("multi", check_multi);
    run_check("acl", check_acl);
    run_check("delete", check_delete);
    run_check("reconnect_with_watches", check_reconnect);
    run_check("close_removes_ephemeral", check_close_removes_ephemeral);
    zookeeper_close(other);
    zookeeper_close(zh);
    printf("done failed=%d\n", failed);
    fflush(stdout);
    return failed ? 1 : 0;
}
