//! The `keel` command: `keel server [--config zoo.cfg] [-Dname=value ...]`, `keel cluster`,
//! `keel wal`, `keel doctor`, `keel completions`, `keel version` (see `keel_net::cli`).

use std::process::ExitCode;

use clap::CommandFactory;
use keel_net::cli::{self, Command};
use keel_net::{config, server};

/// mimalloc instead of the system allocator: the engine, the log and the snapshot
/// threads allocate and free many small blocks (a snapshot's hundreds of thousands of
/// nodes, freed on another thread than the one that made them), where glibc's malloc
/// spent a quarter of a 3-member ensemble's CPU under write load with a big tree
/// (docs/benchmarks.md, "Issue 12").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let keel = match cli::parse(std::env::args().collect()) {
        Ok(k) => k,
        // Help and version go to stdout with status 0, mistakes to stderr with 2.
        Err(e) => e.exit(),
    };
    match keel.command {
        Command::Version => {
            println!(
                "keel {} (ZooKeeper {} compatible)",
                env!("CARGO_PKG_VERSION"),
                keel_net::fourlw::ZK_COMPAT_VERSION
            );
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            // Built in memory, then written: a closed pipe (`| head`) is an error
            // status, not a panic inside the generator.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cli::Keel::command(), "keel", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(1),
            }
        }
        Command::Cluster(a) => keel_net::cluster::run(a),
        Command::Wal { command } => keel_net::walcmd::run(command),
        Command::Doctor { data_dir } => keel_net::doctor::run(data_dir),
        Command::Server(args) => {
            let cfg = match config::Config::load(args.config_file(), &args.props) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("keel: {e}");
                    return ExitCode::from(2);
                }
            };
            for w in cfg.warnings() {
                tracing::warn!("{w}");
            }
            let opts = match server::ServerOptions::from_config(&cfg, &args.props) {
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
