//! Three real `keel` processes (the binary cargo just built) as an ensemble on loopback,
//! each with its own generated zoo.cfg, myid and data dir, driven by the third-party
//! `zookeeper-client`. Waits poll with deadlines; nothing synchronises by sleeping.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zookeeper_client as zk;

const TICK_MS: u64 = 100;

struct Node {
    id: u64,
    client_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Its `server.N=...` line.
    spec: String,
}

struct Ensemble {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

fn free_ports(n: usize) -> Vec<u16> {
    // Hold them all until every one is chosen, so no two are the same.
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl Ensemble {
    fn start(n: usize) -> Ensemble {
        Ensemble::start_with(n, 0, "")
    }

    /// `n` servers, the last `observers` of them observers, `extra` zoo.cfg lines.
    fn start_with(n: usize, observers: usize, extra: &str) -> Ensemble {
        Ensemble::start_joining(n, observers, 0, extra)
    }

    /// As `start_with`, plus `joiners` more servers (ids after the others) that are
    /// not started and not in the others' zoo.cfg: each lists the ensemble and itself,
    /// as a server about to be added by `reconfig` does.
    fn start_joining(n: usize, observers: usize, joiners: usize, extra: &str) -> Ensemble {
        let dir = tempfile::tempdir().expect("temp dir");
        let total = n + joiners;
        let ports = free_ports(3 * total);
        let line = |i: usize| {
            format!(
                "server.{}=127.0.0.1:{}:{}{};127.0.0.1:{}\n",
                i + 1,
                ports[3 * i + 1],
                ports[3 * i + 2],
                if i < n && i >= n - observers {
                    ":observer"
                } else {
                    ""
                },
                ports[3 * i]
            )
        };
        let mut nodes = Vec::new();
        for i in 0..total {
            let mut servers: String = (0..n).map(line).collect();
            if i >= n {
                servers.push_str(&line(i));
            }
            let nd = dir.path().join(format!("node{}", i + 1));
            std::fs::create_dir_all(&nd).unwrap();
            std::fs::write(nd.join("myid"), format!("{}\n", i + 1)).unwrap();
            std::fs::write(
                nd.join("zoo.cfg"),
                format!(
                    "tickTime={TICK_MS}\ninitLimit=20\nsyncLimit=10\ndataDir={}\n\
                     maxSessionTimeout=30000\n4lw.commands.whitelist=*\n{servers}{extra}",
                    nd.display()
                ),
            )
            .unwrap();
            nodes.push(Node {
                id: i as u64 + 1,
                client_port: ports[3 * i],
                dir: nd,
                child: None,
                spec: line(i).trim().to_string(),
            });
        }
        let mut e = Ensemble { nodes, _dir: dir };
        for i in 0..n {
            e.launch(i);
        }
        e
    }

    fn launch(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(node.child.is_none());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("keel.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["server", "--config"])
            .arg(node.dir.join("zoo.cfg"))
            .env("KEEL_NET_CORES", "1")
            .env("KEEL_PIN_CORES", "false")
            .env("KEEL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn keel");
        node.child = Some(child);
    }

    /// SIGKILL: no flush, no goodbye.
    fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn only(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// The tail of every node's log, for a failure message.
    fn logs(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let text = std::fs::read_to_string(n.dir.join("keel.log")).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            s.push_str(&format!(
                "---- server {} ----\n{}\n",
                n.id,
                lines[from..].join("\n")
            ));
        }
        s
    }

    /// `srvr` of node `i`, or `None` if it does not answer.
    fn srvr(&self, i: usize) -> Option<String> {
        four_letter(self.nodes[i].client_port, "srvr")
    }

    fn mode(&self, i: usize) -> Option<String> {
        let text = self.srvr(i)?;
        text.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_owned)
    }

    /// Waits until exactly one live node says `Mode: leader` and every other live node
    /// is a follower; returns the leader's index.
    async fn settled_leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let modes: Vec<Option<String>> = (0..self.nodes.len())
                .map(|i| {
                    if self.nodes[i].child.is_some() {
                        self.mode(i)
                    } else {
                        Some("down".into())
                    }
                })
                .collect();
            let leaders: Vec<usize> = (0..modes.len())
                .filter(|i| modes[*i].as_deref() == Some("leader"))
                .collect();
            let others_follow = modes.iter().all(|m| {
                matches!(
                    m.as_deref(),
                    Some("leader") | Some("follower") | Some("observer") | Some("down")
                )
            });
            if leaders.len() == 1 && others_follow {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no settled leader within {within:?}: modes {modes:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a write through `connect` succeeds.
    async fn writable(&self, connect: &str, within: Duration) -> zk::Client {
        let deadline = Instant::now() + within;
        let mut n = 0;
        loop {
            n += 1;
            let attempt = async {
                let c = client(connect).await?;
                match c
                    .create(&format!("/probe-{}", rand_suffix(n)), b"", PERSISTENT)
                    .await
                {
                    Ok(_) | Err(zk::Error::NodeExists) => Ok(c),
                    Err(e) => Err(e),
                }
            };
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(c)) => return c,
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "no successful write through {connect} within {within:?} (last: {other:?})\n{}",
                        self.logs()
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        if std::env::var_os("KEEL_TEST_LOGS").is_some() {
            for n in &self.nodes {
                let text = std::fs::read_to_string(n.dir.join("keel.log")).unwrap_or_default();
                eprintln!("==== server {} ====\n{text}", n.id);
            }
        }
    }
}

fn rand_suffix(n: u64) -> String {
    format!("{}-{n}", std::process::id())
}

fn four_letter(port: u16, cmd: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(cmd.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

static PERSISTENT: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

async fn client(connect: &str) -> Result<zk::Client, zk::Error> {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .with_connection_timeout(Duration::from_secs(1))
        .connect(connect)
        .await
}

/// Creates `path` until it is known to exist: `Ok` or `NodeExists` after an earlier
/// attempt whose answer was lost. Returns once acknowledged, or `false` at the deadline.
async fn create_acked(c: &zk::Client, path: &str, deadline: Instant) -> bool {
    let mut retried = false;
    while Instant::now() < deadline {
        match tokio::time::timeout(
            Duration::from_secs(3),
            c.create(path, path.as_bytes(), PERSISTENT),
        )
        .await
        {
            Ok(Ok(_)) => return true,
            Ok(Err(zk::Error::NodeExists)) if retried => return true,
            Ok(Err(zk::Error::NodeExists)) => panic!("{path} existed before it was written"),
            Ok(Err(zk::Error::SessionExpired)) | Ok(Err(zk::Error::ClientClosed)) => return false,
            _ => {
                retried = true;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    false
}

/// Writers that create `/load/w{w}-{n}` for n = 0, 1, ... until told to stop, recording
/// every acknowledged path.
struct Load {
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(clients: &[zk::Client], writers_per_client: usize) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (ci, c) in clients.iter().enumerate() {
            for k in 0..writers_per_client {
                let (c, acked, stop) = (c.clone(), acked.clone(), stop.clone());
                let w = ci * writers_per_client + k;
                tasks.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let path = format!("/load/w{w}-{n}");
                        let deadline = Instant::now() + Duration::from_secs(60);
                        if !create_acked(&c, &path, deadline).await {
                            return;
                        }
                        acked.lock().unwrap().push(path);
                        n += 1;
                    }
                }));
            }
        }
        Load { acked, stop, tasks }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn wait_for(&self, n: usize, within: Duration, what: &str, e: &Ensemble) {
        let deadline = Instant::now() + within;
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: only {} of {n} writes acknowledged within {within:?}\n{}",
                self.count(),
                e.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the writers (in-flight ones finish or give up) and returns every ack.
    async fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
        let v = self.acked.lock().unwrap().clone();
        v
    }

    /// The acks so far, with the writers left running (they are about to lose their
    /// servers).
    fn snapshot(&self) -> Vec<String> {
        self.acked.lock().unwrap().clone()
    }
}

/// Every path in `acked` is on the server(s) `c` reads from, after a `sync`.
async fn assert_all_present(c: &zk::Client, acked: &[String], e: &Ensemble, what: &str) {
    c.sync("/load")
        .await
        .unwrap_or_else(|err| panic!("{what}: sync: {err}\n{}", e.logs()));
    let have: BTreeSet<String> = c
        .list_children("/load")
        .await
        .unwrap_or_else(|err| panic!("{what}: list: {err}\n{}", e.logs()))
        .into_iter()
        .map(|name| format!("/load/{name}"))
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|p| !have.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {} acknowledged writes are missing, e.g. {:?}\n{}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)],
        e.logs()
    );
    // Spot-check data.
    if let Some(p) = acked.last() {
        assert_eq!(c.get_data(p).await.unwrap().0, p.as_bytes());
    }
}

#[tokio::test]
async fn a_write_on_one_member_is_read_on_another_after_sync() {
    let e = Ensemble::start(3);
    let leader = e.settled_leader(Duration::from_secs(30)).await;
    let modes: Vec<String> = (0..3).map(|i| e.mode(i).unwrap_or_default()).collect();
    assert_eq!(
        modes.iter().filter(|m| *m == "follower").count(),
        2,
        "{modes:?}"
    );
    let srvr = e.srvr(leader).unwrap();
    assert!(srvr.contains("Proposal sizes last/min/max: "), "{srvr}");
    let mntr = four_letter(e.nodes[leader].client_port, "mntr").unwrap();
    assert!(mntr.contains("zk_server_state\tleader\n"), "{mntr}");
    // Both followers are in the leader's synced set once every member serves.
    assert!(
        mntr.contains("zk_learners\t2\n") && mntr.contains("zk_synced_followers\t2\n"),
        "{mntr}"
    );
    assert_eq!(
        four_letter(e.nodes[0].client_port, "ruok").as_deref(),
        Some("imok")
    );

    // A writer on one follower, a reader on the other (single-host connect strings).
    let (wi, ri) = ((leader + 1) % 3, (leader + 2) % 3);
    let w = e.writable(&e.only(wi), Duration::from_secs(30)).await;
    let r = e.writable(&e.only(ri), Duration::from_secs(30)).await;
    w.create("/x", b"from a follower", PERSISTENT)
        .await
        .unwrap();
    let stat = w.set_data("/x", b"v1", Some(0)).await.unwrap();
    assert_eq!(stat.version, 1);
    r.sync("/x").await.unwrap();
    let (data, stat) = r.get_data("/x").await.unwrap();
    assert_eq!((data.as_slice(), stat.version), (&b"v1"[..], 1));

    // Sessions are the ensemble's: an ephemeral made through one member is seen on all.
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    w.create("/x/e", b"", &eph).await.unwrap();
    let l = e.writable(&e.only(leader), Duration::from_secs(30)).await;
    l.sync("/x").await.unwrap();
    let (_, st) = l.get_data("/x/e").await.unwrap();
    assert_eq!(st.ephemeral_owner, w.session_id().0);

    // `/zookeeper/config` holds the membership, as ZooKeeper writes it.
    let (config, _) = r.get_data("/zookeeper/config").await.unwrap();
    let config = String::from_utf8(config).unwrap();
    let lines: Vec<&str> = config.lines().collect();
    assert_eq!(lines.len(), 4, "{config}");
    assert!(
        lines[0].starts_with("server.1=127.0.0.1:") && lines[0].contains(":participant;"),
        "{config}"
    );
    assert_eq!(lines[3], "version=0");
}

#[tokio::test]
async fn leader_killed_under_write_load_loses_no_acknowledged_write() {
    let mut e = Ensemble::start(3);
    let old = e.settled_leader(Duration::from_secs(30)).await;
    let setup = e
        .writable(&e.connect_string(), Duration::from_secs(30))
        .await;
    setup.create("/load", b"", PERSISTENT).await.unwrap();
    let clients = [
        e.writable(&e.connect_string(), Duration::from_secs(30))
            .await,
        e.writable(&e.connect_string(), Duration::from_secs(30))
            .await,
    ];
    let load = Load::start(&clients, 4);
    load.wait_for(100, Duration::from_secs(30), "before the kill", &e)
        .await;

    e.kill9(old);
    let killed_at = Instant::now();
    let before = load.count();
    let new = e.settled_leader(Duration::from_secs(30)).await;
    assert_ne!(new, old);
    let elected_in = killed_at.elapsed();
    load.wait_for(before + 100, Duration::from_secs(60), "after the kill", &e)
        .await;
    let acked = load.stop().await;
    eprintln!(
        "new leader: server {} (old: {}), settled {:?} after the kill; {} writes acknowledged",
        e.nodes[new].id,
        e.nodes[old].id,
        elected_in,
        acked.len()
    );

    let survivor = (0..3).find(|i| *i != old && *i != new).unwrap();
    for i in [new, survivor] {
        let c = e.writable(&e.only(i), Duration::from_secs(30)).await;
        assert_all_present(&c, &acked, &e, &format!("server {}", e.nodes[i].id)).await;
    }

    // The old leader comes back as a follower and catches up.
    e.launch(old);
    let leader = e.settled_leader(Duration::from_secs(30)).await;
    assert_eq!(
        leader, new,
        "a restarted server must not depose a working leader"
    );
    let c = e.writable(&e.only(old), Duration::from_secs(30)).await;
    assert_all_present(&c, &acked, &e, "the restarted old leader").await;
}

#[tokio::test]
async fn every_acknowledged_write_survives_kill_9_of_all_members() {
    let mut e = Ensemble::start(3);
    e.settled_leader(Duration::from_secs(30)).await;
    let setup = e
        .writable(&e.connect_string(), Duration::from_secs(30))
        .await;
    setup.create("/load", b"", PERSISTENT).await.unwrap();
    let clients = [
        e.writable(&e.connect_string(), Duration::from_secs(30))
            .await,
        e.writable(&e.connect_string(), Duration::from_secs(30))
            .await,
    ];
    let load = Load::start(&clients, 4);
    load.wait_for(200, Duration::from_secs(30), "before the crash", &e)
        .await;

    // Every member at once, while writes are in flight.
    for i in 0..3 {
        e.kill9(i);
    }
    let acked = load.snapshot();
    drop(clients);
    drop(setup);
    for i in 0..3 {
        e.launch(i);
    }
    e.settled_leader(Duration::from_secs(30)).await;
    for i in 0..3 {
        let c = e.writable(&e.only(i), Duration::from_secs(30)).await;
        assert_all_present(
            &c,
            &acked,
            &e,
            &format!("server {} after the restart", e.nodes[i].id),
        )
        .await;
    }
    eprintln!(
        "{} acknowledged writes all present after kill -9 of every member",
        acked.len()
    );
    // The writers are left to the runtime's end.
    load.stop.store(true, std::sync::atomic::Ordering::SeqCst);
}

#[tokio::test]
async fn an_observer_serves_without_voting() {
    let mut e = Ensemble::start_with(4, 1, "");
    let leader = e.settled_leader(Duration::from_secs(30)).await;
    assert_ne!(leader, 3, "an observer never leads");
    assert_eq!(e.mode(3).as_deref(), Some("observer"));
    let o = e.writable(&e.only(3), Duration::from_secs(30)).await;
    o.create("/via-observer", b"o", PERSISTENT).await.unwrap();
    let f = e
        .writable(&e.only((leader + 1) % 3), Duration::from_secs(30))
        .await;
    f.sync("/").await.unwrap();
    assert_eq!(f.get_data("/via-observer").await.unwrap().0, b"o");
    // Two voters of three keep a quorum: the observer does not count, so losing a
    // second voter would stop writes, but losing the observer changes nothing.
    drop(o);
    e.kill9(3);
    f.create("/after-observer-left", b"", PERSISTENT)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_member_far_behind_gets_the_leaders_snapshot() {
    // Snapshots every 50 transactions, so after a restart a leader's log starts well
    // after what a long-stopped member has.
    let mut e = Ensemble::start_with(3, 0, "snapCount=50\n");
    let first = e.settled_leader(Duration::from_secs(30)).await;
    let behind = (first + 1) % 3;
    let setup = e
        .writable(&e.connect_string(), Duration::from_secs(30))
        .await;
    setup.create("/load", b"", PERSISTENT).await.unwrap();
    setup.sync("/").await.unwrap();
    // Make sure the member to be left behind has /load before it stops.
    let b = e.writable(&e.only(behind), Duration::from_secs(30)).await;
    b.sync("/load").await.unwrap();
    drop(b);
    e.kill9(behind);
    let up: Vec<usize> = (0..3).filter(|i| *i != behind).collect();
    let c = e.writable(&e.only(up[0]), Duration::from_secs(30)).await;
    let load = Load::start(&[c], 4);
    load.wait_for(400, Duration::from_secs(60), "while one member is down", &e)
        .await;
    let acked = load.stop().await;
    // Once both have a snapshot well past what the stopped member has, restart them:
    // their logs (what they can DIFF from) then start after it.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in &up {
        while newest_snapshot(&e.nodes[*i].dir) & 0xffff_ffff < 100 {
            assert!(
                Instant::now() < deadline,
                "no snapshot on server {}\n{}",
                e.nodes[*i].id,
                e.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for i in &up {
        e.kill9(*i);
    }
    for i in &up {
        e.launch(*i);
    }
    e.settled_leader(Duration::from_secs(30)).await;
    e.launch(behind);
    e.settled_leader(Duration::from_secs(30)).await;
    let c = e.writable(&e.only(behind), Duration::from_secs(30)).await;
    assert_all_present(&c, &acked, &e, "the member that was behind").await;
    let log = std::fs::read_to_string(e.nodes[behind].dir.join("keel.log")).unwrap_or_default();
    assert!(
        log.contains("installing the leader's snapshot"),
        "expected a SNAP sync\n{}",
        e.logs()
    );
    // It restarts from what it installed.
    e.kill9(behind);
    e.launch(behind);
    e.settled_leader(Duration::from_secs(30)).await;
    let c = e.writable(&e.only(behind), Duration::from_secs(30)).await;
    assert_all_present(&c, &acked, &e, "the member that was behind, restarted").await;
}

/// The zxid of the newest snapshot file in a member's `dataDir/snap` (0 if none).
fn newest_snapshot(data_dir: &std::path::Path) -> i64 {
    std::fs::read_dir(data_dir.join("snap"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let hex = name.strip_prefix("snapshot.")?;
                    (hex.len() == 16).then(|| i64::from_str_radix(hex, 16).ok())?
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn keel_cluster_starts_a_local_ensemble_and_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    // Three consecutive free ports (clients), and their +1000 / +2000 (peers).
    let base = loop {
        let p = free_ports(1)[0];
        if !(1024..=60000).contains(&p) {
            continue;
        }
        let all_free = (0..3).all(|i| {
            [p + i, p + 1000 + i, p + 2000 + i]
                .iter()
                .all(|q| TcpListener::bind(("127.0.0.1", *q)).is_ok())
        });
        if all_free {
            break p;
        }
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args([
            "cluster",
            "--nodes",
            "3",
            "--tick-time",
            "100",
            "--base-port",
        ])
        .arg(base.to_string())
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keel cluster");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let out = child.stdout.as_mut().unwrap();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
    }
    let connect = line.trim().to_string();
    assert_eq!(
        connect,
        format!(
            "127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}",
            base,
            base + 1,
            base + 2
        )
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let c = loop {
        let attempt = async {
            let c = client(&connect).await?;
            c.create("/hello", b"", PERSISTENT).await.map(|_| c)
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(c)) => break c,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "no write through keel cluster: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    drop(c);
    let modes: Vec<String> = (0..3)
        .filter_map(|i| four_letter(base + i, "srvr"))
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned))
        })
        .collect();
    assert_eq!(
        modes.iter().filter(|m| *m == "leader").count(),
        1,
        "{modes:?}"
    );
    // SIGTERM stops every server, then the cluster command exits 0.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "keel cluster did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    for i in 0..3 {
        assert!(
            four_letter(base + i, "ruok").is_none(),
            "server {i} still answers"
        );
    }
    assert!(dir.path().join("node2/myid").exists());
}

#[tokio::test]
async fn a_reconfiguration_replaces_a_member_and_outlives_kill_9_of_every_member() {
    let mut e =
        Ensemble::start_joining(3, 0, 1, "reconfigEnabled=true\nskipACL=yes\nsnapCount=2\n");
    e.settled_leader(Duration::from_secs(30)).await;
    // Server 4 is in no one's zoo.cfg but its own: it follows as a learner first.
    e.launch(3);
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.mode(3).as_deref() != Some("follower") {
        assert!(
            Instant::now() < deadline,
            "server 4 never followed\n{}",
            e.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = e.writable(&e.only(0), Duration::from_secs(30)).await;
    let (data, stat) = c
        .update_ensemble(
            zk::EnsembleUpdate::Incremental {
                joinings: [e.nodes[3].spec.as_str()].into_iter(),
                leavings: ["3"].into_iter(),
            },
            None,
        )
        .await
        .unwrap();
    let text = String::from_utf8(data).unwrap();
    assert!(
        text.contains("server.4=") && !text.contains("server.3="),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("version={:x}", stat.mzxid)),
        "{text}"
    );
    // Server 3 may have been the leader: removed, it steps down and the others elect
    // again, which costs server 1's clients their connection. Write through a client
    // that server 1 serves again (the create may have gone through before the loss).
    let c = match c.create("/after-reconfig", b"x", PERSISTENT).await {
        Ok(_) => c,
        Err(zk::Error::ConnectionLoss) => {
            let c = e.writable(&e.only(0), Duration::from_secs(30)).await;
            match c.create("/after-reconfig", b"x", PERSISTENT).await {
                Ok(_) | Err(zk::Error::NodeExists) => c,
                Err(err) => panic!("create after the reconfig: {err}\n{}", e.logs()),
            }
        }
        Err(err) => panic!("create after the reconfig: {err}\n{}", e.logs()),
    };
    // Server 1 snapshots past the reconfiguration (every 2 transactions here).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while newest_snapshot(&e.nodes[0].dir) < stat.mzxid {
        assert!(
            Instant::now() < deadline,
            "no snapshot past the reconfiguration"
        );
        n += 1;
        c.create(&format!("/more-{n}"), b"", PERSISTENT)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for i in 0..4 {
        e.kill9(i);
    }
    // Server 1 also loses its saved membership: its snapshot has it.
    std::fs::remove_file(e.nodes[0].dir.join("membership")).unwrap();
    // Servers 1 and 4 are a quorum of the new membership {1, 2, 4} but not of
    // zoo.cfg's {1, 2, 3}: they serve only if the reconfiguration was kept.
    e.launch(0);
    e.launch(3);
    let both = format!("{},{}", e.only(0), e.only(3));
    let c = e.writable(&both, Duration::from_secs(60)).await;
    c.sync("/").await.unwrap();
    assert!(c.check_stat("/after-reconfig").await.unwrap().is_some());
    let (config, _) = c.get_config().await.unwrap();
    assert_eq!(String::from_utf8(config).unwrap(), text);
    let saved = std::fs::read_to_string(e.nodes[0].dir.join("membership")).unwrap();
    assert_eq!(saved.trim_end(), text);
}
