//! The `keel` command: `keel server [--config zoo.cfg] [-Dname=value ...]`, `keel cluster`,
//! `keel wal`, `keel doctor`.

use std::process::ExitCode;

use keel_net::config::{self, Cli};
use keel_net::server;

const USAGE: &str = "\
keel — a ZooKeeper-compatible coordination service

USAGE:
    keel server [--config FILE | FILE] [-Dname=value ...]
        Start a server. With no config it serves standalone on port 2181 with the
        data dir ./keel-data. FILE is a ZooKeeper zoo.cfg; with several server.N
        lines (and dataDir/myid) the server is a member of that ensemble. -D
        arguments are the system properties ZooKeeper's start scripts pass
        (jute.maxbuffer, zookeeper.4lw.commands.whitelist, ...).
    keel cluster --nodes N [--base-port P] [--data-dir DIR] [--tick-time MS]
        Start a local N-server ensemble on 127.0.0.1 and print its connect string
        (clients on P.., default 2181; peers on P+1000..; data in DIR/nodeI,
        default ./keel-cluster). SIGTERM/SIGINT stop every server.
    keel wal check DIR
        Scan a log directory (dataLogDir/wal) without changing it: frames, last zxid,
        torn tail, or the first damage with its file and byte offset (exit 1).
    keel wal truncate DIR --after ZXID
        Operator repair: drop every frame after ZXID (decimal or 0x hex).
    keel doctor [--data-dir DIR]
        Check the host and the data dir (io_uring, limits, CPUs, O_DIRECT, fdatasync
        latency, filesystem, free space) and say what to change. Exit 1 if a check fails.
    keel version
    keel help

Logging: KEEL_LOG (or RUST_LOG) sets the filter, e.g. KEEL_LOG=debug.
";

fn main() -> ExitCode {
    let filter = std::env::var("KEEL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("wal") {
        return keel_net::walcmd::run(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("doctor") {
        return keel_net::doctor::run(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("cluster") {
        return keel_net::cluster::run(&args[1..]);
    }
    let cli = match config::parse_cli(args.into_iter()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keel: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cli {
        Cli::Help => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Cli::Version => {
            println!(
                "keel {} (ZooKeeper {} compatible)",
                env!("CARGO_PKG_VERSION"),
                keel_net::fourlw::ZK_COMPAT_VERSION
            );
            ExitCode::SUCCESS
        }
        Cli::Server { config, props } => {
            let cfg = match config::Config::load(config.as_deref(), &props) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("keel: {e}");
                    return ExitCode::from(2);
                }
            };
            for w in cfg.warnings() {
                tracing::warn!("{w}");
            }
            let opts = match server::ServerOptions::from_config(&cfg, &props) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("keel: {e}");
                    return ExitCode::from(2);
                }
            };
            let running = match server::start(opts) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("keel: {e}");
                    return ExitCode::from(1);
                }
            };
            wait_for_signal();
            tracing::info!("shutting down");
            running.shutdown();
            ExitCode::SUCCESS
        }
    }
}

fn wait_for_signal() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            let _ = signals.forever().next();
        }
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}; running until killed");
            loop {
                std::thread::park();
            }
        }
    }
}
