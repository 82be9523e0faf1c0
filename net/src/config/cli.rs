//! The `keel` command line: `keel server [--config FILE | FILE] [-Dname=value]...` and
//! the other subcommands, parsed into a [`Cli`].

use super::*;

/// Usage text for `keel help`.
pub const USAGE: &str = "\
Usage:
  keel server [--config FILE | FILE] [-Dname=value]...
      Run a server. Without a config file: a standalone server on port 2181 with its data in
      ./keel-data. FILE is a ZooKeeper zoo.cfg; -D arguments set ZooKeeper system properties
      (for example -Dzookeeper.snapCount=50000 -Dreadonlymode.enabled=true) and override
      the file.
  keel version
      Print Keel's version.
  keel help
      Print this text.
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cli {
    /// `keel server [--config FILE | FILE] [-Dname=value]...`
    Server {
        /// The `zoo.cfg` to read, if any.
        config: Option<PathBuf>,
        /// `-D` properties in the order given (`-Dname` alone gives an empty value, as in Java).
        props: Vec<(String, String)>,
    },
    /// `keel version` (also `--version`, `-V`).
    Version,
    /// `keel help` (also `--help`, `-h`, and `keel server --help`).
    Help,
}

pub(super) fn usage(message: impl Into<String>) -> ConfigError {
    ConfigError::Usage {
        message: message.into(),
    }
}

/// Parses the command line after the program name: call
/// `parse_cli(std::env::args().skip(1))`.
pub fn parse_cli(args: impl Iterator<Item = String>) -> Result<Cli, ConfigError> {
    let mut args = args;
    let Some(command) = args.next() else {
        return Err(usage(
            "no command given: use `keel server`, `keel version` or `keel help`",
        ));
    };
    match command.as_str() {
        "server" => parse_server_args(args),
        "version" | "--version" | "-V" => match args.next() {
            None => Ok(Cli::Version),
            Some(extra) => Err(usage(format!(
                "`keel version` takes no arguments, got `{extra}`"
            ))),
        },
        "help" | "--help" | "-h" => Ok(Cli::Help),
        other => Err(usage(format!(
            "unknown command `{other}`: use `keel server`, `keel version` or `keel help`"
        ))),
    }
}

pub(super) fn set_config(file: String, config: &mut Option<PathBuf>) -> Result<(), ConfigError> {
    if file.is_empty() {
        return Err(usage("the config file name is empty"));
    }
    if let Some(previous) = config {
        return Err(usage(format!(
            "more than one config file given (`{}` and `{file}`)",
            previous.display()
        )));
    }
    *config = Some(PathBuf::from(file));
    Ok(())
}

pub(super) fn parse_server_args(
    mut args: impl Iterator<Item = String>,
) -> Result<Cli, ConfigError> {
    let mut config: Option<PathBuf> = None;
    let mut props = Vec::new();
    while let Some(arg) = args.next() {
        if let Some(rest) = arg.strip_prefix("-D") {
            let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
            if name.trim().is_empty() {
                return Err(usage(format!(
                    "`{arg}`: -D must be followed directly by name=value, as in -Dzookeeper.snapCount=50000"
                )));
            }
            props.push((name.trim().to_string(), value.to_string()));
        } else if arg == "--config" || arg == "-c" {
            let Some(file) = args.next() else {
                return Err(usage(format!("`{arg}` needs a file name after it")));
            };
            set_config(file, &mut config)?;
        } else if let Some(file) = arg.strip_prefix("--config=") {
            set_config(file.to_string(), &mut config)?;
        } else if arg == "--help" || arg == "-h" {
            return Ok(Cli::Help);
        } else if arg.starts_with('-') && arg.len() > 1 {
            let hint = if arg.starts_with("-X")
                || arg == "-cp"
                || arg == "-classpath"
                || arg == "-server"
            {
                " (Keel is not a JVM: of ZooKeeper's java arguments only -Dname=value properties apply)"
            } else {
                ""
            };
            return Err(usage(format!(
                "unknown option `{arg}` for `keel server`{hint}"
            )));
        } else {
            set_config(arg, &mut config)?;
        }
    }
    Ok(Cli::Server { config, props })
}
