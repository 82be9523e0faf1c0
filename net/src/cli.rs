//! The `keel` command line, on `clap` (derive): subcommands, generated `--help`, typo
//! suggestions, and shell completions (`keel completions bash`). ZooKeeper's start
//! scripts pass system properties as `-Dname=value` arguments; `keel server` takes them
//! the same way (`-Dname` alone is an empty value, as in Java), and says so when handed
//! the JVM's own arguments (`-Xmx1g`, `-cp ...`).

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// `keel`: a ZooKeeper-compatible coordination service.
#[derive(Debug, Parser)]
#[command(
    name = "keel",
    version,
    about = "Keel: a ZooKeeper-compatible coordination service",
    after_help = "Logging: KEEL_LOG (or RUST_LOG) sets the filter, e.g. KEEL_LOG=debug."
)]
pub struct Keel {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a server: standalone on port 2181 with its data in ./keel-data when no
    /// config is given, or as a ZooKeeper zoo.cfg says (with server.N lines and
    /// dataDir/myid, a member of that ensemble).
    Server(ServerArgs),
    /// Start a local N-server ensemble on 127.0.0.1 and print its connect string.
    Cluster(crate::cluster::ClusterArgs),
    /// Inspect or repair a log directory (dataLogDir/wal).
    Wal {
        #[command(subcommand)]
        command: crate::walcmd::WalCommand,
    },
    /// Check the host and the data dir (io_uring, limits, CPUs, O_DIRECT, fdatasync
    /// latency, filesystem, free space) and say what to change; exit 1 if a check fails.
    Doctor {
        /// The data dir to check (default: ./keel-data if it exists, else .).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print a completion script for a shell (e.g. `keel completions bash`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print Keel's version and the ZooKeeper version it is compatible with.
    Version,
}

/// `keel server [--config FILE | FILE] [-Dname=value]...`
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A ZooKeeper zoo.cfg.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "file")]
    pub config: Option<PathBuf>,
    /// A ZooKeeper zoo.cfg (the same as --config FILE).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A system property as ZooKeeper's start scripts pass them (jute.maxbuffer,
    /// zookeeper.4lw.commands.whitelist, ...); overrides the file. Repeatable.
    #[arg(short = 'D', value_name = "NAME=VALUE", action = ArgAction::Append,
          value_parser = parse_property, allow_hyphen_values = true)]
    pub props: Vec<(String, String)>,
}

impl ServerArgs {
    /// The config file, given either way.
    pub fn config_file(&self) -> Option<&std::path::Path> {
        self.config.as_deref().or(self.file.as_deref())
    }
}

/// `name=value` after `-D` (`name` alone: an empty value, as in Java).
fn parse_property(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg.split_once('=').unwrap_or((arg, ""));
    if name.trim().is_empty() {
        return Err(
            "-D must be followed directly by name=value, as in -Dzookeeper.snapCount=50000".into(),
        );
    }
    Ok((name.trim().to_string(), value.to_string()))
}

/// Parses `keel`'s arguments (with the program name first). Before clap sees them, a
/// JVM argument after `server` gets its own message, since Keel is not a JVM.
pub fn parse(args: Vec<String>) -> Result<Keel, clap::Error> {
    if args.get(1).map(String::as_str) == Some("server") {
        if let Some(jvm) = args[2..]
            .iter()
            .find(|a| a.starts_with("-X") || *a == "-cp" || *a == "-classpath" || *a == "-server")
        {
            let mut cmd = <Keel as clap::CommandFactory>::command();
            return Err(cmd.error(
                clap::error::ErrorKind::UnknownArgument,
                format!(
                    "unexpected argument `{jvm}` for `keel server`: Keel is not a JVM; of ZooKeeper's java arguments only -Dname=value properties apply"
                ),
            ));
        }
    }
    Keel::try_parse_from(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Keel, clap::Error> {
        parse(
            std::iter::once("keel")
                .chain(args.iter().copied())
                .map(String::from)
                .collect(),
        )
    }

    fn server(args: &[&str]) -> ServerArgs {
        match parse_str(args).expect("parses").command {
            Command::Server(s) => s,
            other => panic!("expected server, got {other:?}"),
        }
    }

    fn props(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_definition_is_consistent() {
        <Keel as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn server_forms() {
        let s = server(&["server"]);
        assert_eq!((s.config_file(), s.props.len()), (None, 0));
        let s = server(&["server", "zoo.cfg"]);
        assert_eq!(s.config_file(), Some(std::path::Path::new("zoo.cfg")));
        let s = server(&[
            "server",
            "--config",
            "/etc/zk/zoo.cfg",
            "-Dzookeeper.snapCount=5",
            "-Dreadonlymode.enabled",
            "-Da=b=c",
        ]);
        assert_eq!(
            s.config_file(),
            Some(std::path::Path::new("/etc/zk/zoo.cfg"))
        );
        assert_eq!(
            s.props,
            props(&[
                ("zookeeper.snapCount", "5"),
                ("readonlymode.enabled", ""),
                ("a", "b=c")
            ])
        );
        let s = server(&["server", "-Djute.maxbuffer=0x100000", "--config=z.cfg"]);
        assert_eq!(s.config_file(), Some(std::path::Path::new("z.cfg")));
        assert_eq!(s.props, props(&[("jute.maxbuffer", "0x100000")]));
        // A property given as two arguments, as some scripts do.
        let s = server(&["server", "-D", "a=1"]);
        assert_eq!(s.props, props(&[("a", "1")]));
    }

    #[test]
    fn other_commands() {
        assert!(matches!(
            parse_str(&["version"]).expect("parses").command,
            Command::Version
        ));
        assert!(matches!(
            parse_str(&["doctor", "--data-dir", "/d"])
                .expect("parses")
                .command,
            Command::Doctor { data_dir: Some(_) }
        ));
        assert!(matches!(
            parse_str(&["completions", "bash"]).expect("parses").command,
            Command::Completions { .. }
        ));
        for (args, kind) in [
            (&["--help"][..], clap::error::ErrorKind::DisplayHelp),
            (
                &["server", "--help"][..],
                clap::error::ErrorKind::DisplayHelp,
            ),
            (&["--version"][..], clap::error::ErrorKind::DisplayVersion),
        ] {
            assert_eq!(parse_str(args).expect_err("shows text").kind(), kind);
        }
    }

    #[test]
    fn mistakes_are_usage_errors_that_say_what_is_wrong() {
        for (argv, expect) in [
            (&[][..], "Usage"),
            (&["serve"][..], "similar subcommand exists: 'server'"),
            (
                &["server", "a.cfg", "b.cfg"][..],
                "unexpected argument 'b.cfg'",
            ),
            (
                &["server", "--config", "a.cfg", "b.cfg"][..],
                "cannot be used with",
            ),
            (&["server", "--config"][..], "a value is required"),
            (&["server", "-D"][..], "a value is required"),
            (&["server", "-Xmx1g"][..], "Keel is not a JVM"),
            (
                &["server", "--port", "1"][..],
                "unexpected argument '--port'",
            ),
            (&["version", "extra"][..], "unexpected argument 'extra'"),
        ] {
            let e = parse_str(argv).expect_err(expect);
            assert_eq!(e.exit_code(), 2, "{argv:?}");
            let text = e.to_string();
            assert!(text.contains(expect), "{argv:?}: {text}");
        }
    }
}
