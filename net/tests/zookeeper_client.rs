//! A third-party Rust client (`zookeeper-client`) against a real `keel` process over TCP:
//! the binary cargo just built, started on a free loopback port with its own data dir.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zookeeper_client as zk;

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write zoo.cfg");
        let child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["server", "--config"])
            .arg(&cfg)
            .arg("-Dzookeeper.4lw.commands.whitelist=*")
            .env("KEEL_NET_CORES", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn keel");
        let server = Server {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "keel did not start listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static PERSISTENT: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
static EPHEMERAL: &zk::CreateOptions<'static> =
    &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
static SEQUENTIAL: &zk::CreateOptions<'static> =
    &zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());

async fn client(s: &Server) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&s.connect_string())
        .await
        .expect("connect")
}

#[tokio::test]
async fn crud_versions_and_sequential_names() {
    let s = Server::start();
    let c = client(&s).await;
    let (stat, _) = c.create("/app", b"v0", PERSISTENT).await.unwrap();
    assert_eq!(stat.version, 0);
    assert_eq!(
        c.create("/app", b"", PERSISTENT).await.unwrap_err(),
        zk::Error::NodeExists
    );
    let stat = c.set_data("/app", b"v1", Some(0)).await.unwrap();
    assert_eq!(stat.version, 1);
    assert_eq!(
        c.set_data("/app", b"v2", Some(0)).await.unwrap_err(),
        zk::Error::BadVersion
    );
    assert_eq!(c.get_data("/app").await.unwrap().0, b"v1");
    let (_, seq0) = c.create("/app/job-", b"", SEQUENTIAL).await.unwrap();
    let (_, seq1) = c.create("/app/job-", b"", SEQUENTIAL).await.unwrap();
    assert_eq!(seq1.into_i64(), seq0.into_i64() + 1);
    let mut children = c.list_children("/app").await.unwrap();
    children.sort();
    assert_eq!(children, vec![format!("job-{seq0}"), format!("job-{seq1}")]);
    assert_eq!(
        c.delete("/app", None).await.unwrap_err(),
        zk::Error::NotEmpty
    );
    assert_eq!(c.count_descendants_number("/app").await.unwrap(), 2);
}

#[tokio::test]
async fn watches_fire_for_other_sessions_writes() {
    let s = Server::start();
    let a = client(&s).await;
    let b = client(&s).await;
    let (_, watcher) = b.check_and_watch_stat("/w").await.unwrap();
    a.create("/w", b"", PERSISTENT).await.unwrap();
    let event = watcher.changed().await;
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeCreated, "/w")
    );

    let mut recursive = b
        .watch("/w", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    a.create("/w/x", b"", PERSISTENT).await.unwrap();
    a.set_data("/w/x", b"1", None).await.unwrap();
    let e1 = recursive.changed().await;
    let e2 = recursive.changed().await;
    assert_eq!(
        (e1.event_type, e1.path.as_str()),
        (zk::EventType::NodeCreated, "/w/x")
    );
    assert_eq!(
        (e2.event_type, e2.path.as_str()),
        (zk::EventType::NodeDataChanged, "/w/x")
    );
}

#[tokio::test]
async fn multi_is_atomic() {
    let s = Server::start();
    let c = client(&s).await;
    c.create("/m", b"", PERSISTENT).await.unwrap();
    let mut w = c.new_multi_writer();
    w.add_create("/m/a", b"", PERSISTENT).unwrap();
    w.add_set_data("/m", b"x", Some(7)).unwrap();
    let err = w.commit().await.unwrap_err();
    assert!(
        matches!(
            err,
            zk::MultiWriteError::OperationFailed {
                index: 1,
                source: zk::Error::BadVersion
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        c.check_stat("/m/a").await.unwrap(),
        None,
        "a failed multi changes nothing"
    );

    let mut w = c.new_multi_writer();
    w.add_create("/m/a", b"", PERSISTENT).unwrap();
    w.add_set_data("/m", b"x", Some(0)).unwrap();
    let results = w.commit().await.unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(c.get_data("/m").await.unwrap().0, b"x");
}

#[tokio::test]
async fn ephemerals_belong_to_their_session() {
    let s = Server::start();
    let a = client(&s).await;
    let b = client(&s).await;
    a.create("/e", b"", EPHEMERAL).await.unwrap();
    let stat = b.check_stat("/e").await.unwrap().expect("ephemeral exists");
    assert_eq!(stat.ephemeral_owner, a.session_id().0);
    assert_eq!(
        a.list_ephemerals("/").await.unwrap(),
        vec!["/e".to_string()]
    );
    let (_, watcher) = b.check_and_watch_stat("/e").await.unwrap();
    drop(a); // closes the session
    let event = watcher.changed().await;
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
}
