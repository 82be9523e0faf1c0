//! Server configuration: a ZooKeeper 3.8 `zoo.cfg`, `-Dname=value` system properties as
//! ZooKeeper's start scripts pass them, the `myid` file, and the `keel` command line.
//!
//! What Keel reads and how it maps onto ZooKeeper:
//!
//! * `zoo.cfg` is read with the syntax of `java.util.Properties`: `key=value`, `key: value`
//!   or `key value`; `#` and `!` start comment lines; leading whitespace is ignored; a line
//!   ending in an odd number of `\` continues on the next; `\t \n \r \f \uXXXX` escapes. Keys
//!   and values are then trimmed, as ZooKeeper does. Later duplicates win.
//! * The settings ZooKeeper's `QuorumPeerConfig` parses itself (`tickTime`, `dataDir`,
//!   `clientPort`, `server.N`, ...) are read from `zoo.cfg` only.
//! * Any other `zoo.cfg` key `K` is, in ZooKeeper, turned into the system property
//!   `zookeeper.K` (so `snapCount=...` in `zoo.cfg` is `-Dzookeeper.snapCount=...`). Keel
//!   does the same. As Keel extensions, `zoo.cfg` may also spell such a key with its
//!   `zookeeper.` prefix, and may set `jute.maxbuffer` and `readonlymode.enabled`, which
//!   ZooKeeper itself only reads as `-D` properties.
//! * Precedence: `-D` arguments given to `keel server` override `zoo.cfg`. (In ZooKeeper the
//!   `zoo.cfg` entry wins for the `zookeeper.*` properties it sets, because it is applied
//!   after the JVM starts; Keel follows the usual command-line-overrides-file rule.)
//! * `zoo.cfg` keys Keel does not use are collected in [`Config::unknown`] and reported by
//!   [`Config::warnings`]; they are not errors. JVM and logging properties (`java.*`,
//!   `log4j.*`, `zookeeper.log.dir`, ...) are ignored silently; other unused `zookeeper.*`
//!   properties produce a warning.
//! * A value Keel cannot use is a [`ConfigError`] naming the file, the 1-based line and the
//!   key, or the `-D` argument.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Data directory of the no-config standalone server ([`Config::default`]).
pub const DEFAULT_DATA_DIR: &str = "./keel-data";
/// Tick of the no-config standalone server: 2000 ms, as in ZooKeeper's sample `zoo.cfg`.
pub const DEFAULT_TICK_TIME_MS: u32 = 2000;
/// Tick used when a `zoo.cfg` has no `tickTime` line: ZooKeeper's `DEFAULT_TICK_TIME`.
pub const ZOOKEEPER_DEFAULT_TICK_TIME_MS: u32 = 3000;
/// ZooKeeper's client port.
pub const DEFAULT_CLIENT_PORT: u16 = 2181;
/// Default `jute.maxbuffer`: 1 MiB - 1, as in ZooKeeper's `BinaryInputArchive`.
pub const DEFAULT_JUTE_MAX_BUFFER: u32 = 0xfffff;
/// `autopurge.snapRetainCount` below this is raised to it (as ZooKeeper does).
pub const MIN_SNAP_RETAIN_COUNT: u32 = 3;
/// Default `zookeeper.snapCount`.
pub const DEFAULT_SNAP_COUNT: u32 = 100_000;
/// Default `zookeeper.globalOutstandingLimit`.
pub const DEFAULT_GLOBAL_OUTSTANDING_LIMIT: u32 = 1000;
/// Default `admin.serverPort` (`zookeeper.admin.serverPort`).
pub const DEFAULT_ADMIN_SERVER_PORT: u16 = 8080;

/// The four-letter words ZooKeeper 3.8 knows; `4lw.commands.whitelist=*` enables all of them.
pub const KNOWN_FOUR_LETTER_WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr", "ruok", "srst",
    "srvr", "stat", "stmk", "wchc", "wchp", "wchs",
];

/// System property names (the canonical names of settings that are both `zoo.cfg` keys and
/// `-D` properties).
pub mod props {
    /// Transactions between snapshots; `snapCount` in `zoo.cfg`.
    pub const SNAP_COUNT: &str = "zookeeper.snapCount";
    /// Most requests in flight before the server throttles; `globalOutstandingLimit`.
    pub const GLOBAL_OUTSTANDING_LIMIT: &str = "zookeeper.globalOutstandingLimit";
    /// Most client connections in all (0 = no limit); `maxCnxns`.
    pub const MAX_CNXNS: &str = "zookeeper.maxCnxns";
    /// Enabled four-letter words; `4lw.commands.whitelist`.
    pub const FOUR_LETTER_WORDS: &str = "zookeeper.4lw.commands.whitelist";
    /// `user:base64(sha1(user:password))` of the super user;
    /// `DigestAuthenticationProvider.superDigest`.
    pub const SUPER_DIGEST: &str = "zookeeper.DigestAuthenticationProvider.superDigest";
    /// `yes` turns every permission check off; `skipACL`.
    pub const SKIP_ACL: &str = "zookeeper.skipACL";
    /// TTL nodes (and other extended types); `extendedTypesEnabled`.
    pub const EXTENDED_TYPES: &str = "zookeeper.extendedTypesEnabled";
    /// Read-only mode for partitioned servers (no `zookeeper.` prefix).
    pub const READ_ONLY: &str = "readonlymode.enabled";
    /// Largest jute record / packet (no `zookeeper.` prefix).
    pub const JUTE_MAX_BUFFER: &str = "jute.maxbuffer";
    /// HTTP admin server on/off; `admin.enableServer`.
    pub const ADMIN_ENABLE_SERVER: &str = "zookeeper.admin.enableServer";
    /// HTTP admin server port; `admin.serverPort`.
    pub const ADMIN_SERVER_PORT: &str = "zookeeper.admin.serverPort";
    /// HTTP admin server address; `admin.serverAddress`.
    pub const ADMIN_SERVER_ADDRESS: &str = "zookeeper.admin.serverAddress";
    /// Create a missing data directory at start (`zkServer.sh` sets it false when
    /// `ZOO_DATADIR_AUTOCREATE_DISABLE` is set); `datadir.autocreate`.
    pub const DATADIR_AUTOCREATE: &str = "zookeeper.datadir.autocreate";

    /// Every property Keel uses.
    pub const ALL: [&str; 13] = [
        SNAP_COUNT,
        GLOBAL_OUTSTANDING_LIMIT,
        MAX_CNXNS,
        FOUR_LETTER_WORDS,
        SUPER_DIGEST,
        SKIP_ACL,
        EXTENDED_TYPES,
        READ_ONLY,
        JUTE_MAX_BUFFER,
        ADMIN_ENABLE_SERVER,
        ADMIN_SERVER_PORT,
        ADMIN_SERVER_ADDRESS,
        DATADIR_AUTOCREATE,
    ];
}

/// `zoo.cfg` keys that ZooKeeper's `QuorumPeerConfig` reads itself and Keel uses.
const CORE_KEYS: [&str; 22] = [
    "tickTime",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "dataDir",
    "dataLogDir",
    "clientPort",
    "clientPortAddress",
    "clientPortListenBacklog",
    "maxClientCnxns",
    "minSessionTimeout",
    "maxSessionTimeout",
    "initLimit",
    "syncLimit",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
    "standaloneEnabled",
    "reconfigEnabled",
    "electionAlg",
    "peerType",
    "dynamicConfigFile",
    "version",
    "server.N",
];

/// `zoo.cfg` keys that ZooKeeper's `QuorumPeerConfig` reads itself and Keel does not use.
const ZOOKEEPER_KEYS_NOT_USED: [&str; 24] = [
    "secureClientPort",
    "secureClientPortAddress",
    "observerMasterPort",
    "connectToLearnerMasterLimit",
    "quorumListenOnAllIPs",
    "syncEnabled",
    "sslQuorum",
    "portUnification",
    "sslQuorumReloadCertFiles",
    "quorum.auth.enableSasl",
    "quorum.auth.serverRequireSasl",
    "quorum.auth.learnerRequireSasl",
    "quorum.auth.learner.saslLoginContext",
    "quorum.auth.server.saslLoginContext",
    "quorum.auth.kerberos.servicePrincipal",
    "quorum.cnxn.threads.size",
    "jvm.pause.info-threshold.ms",
    "jvm.pause.warn-threshold.ms",
    "jvm.pause.sleep.time.ms",
    "jvm.pause.monitor",
    "multiAddress.enabled",
    "multiAddress.reachabilityCheckEnabled",
    "multiAddress.reachabilityCheckTimeoutMs",
    "oraclePath",
];

/// What went wrong while reading the configuration, with where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of a config file has a value Keel cannot use (or bad syntax).
    #[error("{}, line {line}: {key}: {message}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line number (the first line of a continued line).
        line: usize,
        /// The key as written in the file.
        key: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// A file as a whole is wrong: a required setting is missing, settings contradict each
    /// other, or the `myid` file is missing or bad.
    #[error("{}: {message}", path.display())]
    File {
        /// The config file, or the `myid` file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A `-Dname=value` argument has a value Keel cannot use.
    #[error("-D{name}={value}: {message}")]
    Property {
        /// Property name.
        name: String,
        /// Its value as given.
        value: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// The command line itself is wrong.
    #[error("{message} (run `keel help` for usage)")]
    Usage {
        /// What is wrong.
        message: String,
    },
}

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

fn usage(message: impl Into<String>) -> ConfigError {
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

fn set_config(file: String, config: &mut Option<PathBuf>) -> Result<(), ConfigError> {
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

fn parse_server_args(mut args: impl Iterator<Item = String>) -> Result<Cli, ConfigError> {
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

/// Role of an ensemble member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerRole {
    /// Votes in elections and on proposals (the default).
    Participant,
    /// Receives commits without voting.
    Observer,
}

impl PeerRole {
    /// `participant` or `observer`, as in `server.N` lines.
    pub fn name(self) -> &'static str {
        match self {
            PeerRole::Participant => "participant",
            PeerRole::Observer => "observer",
        }
    }
}

/// One `host:quorumPort:electionPort` of a `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerAddress {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port followers connect to the leader on (2888 by convention).
    pub quorum_port: u16,
    /// Port for leader election (3888 by convention).
    pub election_port: u16,
}

/// The `[host:]port` after `;` in a `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientAddress {
    /// Host to listen on; `0.0.0.0` when only a port was given.
    pub host: String,
    /// Client port.
    pub port: u16,
}

/// A `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]` line.
/// Several `host:quorumPort:electionPort` may be joined with `|` (ZooKeeper's multi-address
/// form, each with the same role).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerSpec {
    /// The `N` of `server.N`: the server's id, as in its `myid` file.
    pub id: u64,
    /// One or more peer addresses (more with `|`).
    pub addresses: Vec<PeerAddress>,
    /// Participant (default) or observer.
    pub role: PeerRole,
    /// Client address, when the line has a `;` part.
    pub client: Option<ClientAddress>,
    /// 1-based line in the file it came from (0 when built in code).
    pub line: usize,
}

const SERVER_FORMAT: &str = "expected host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort], \
     e.g. server.1=zk1.example.com:2888:3888;2181 (several host:quorumPort:electionPort may be joined with |)";

impl ServerSpec {
    /// Parses the value of a `server.N` line (everything after `=`).
    /// Errors are messages naming the part that is wrong.
    pub fn parse(id: u64, spec: &str) -> Result<ServerSpec, String> {
        let spec = spec.trim();
        let parts = java_split(spec, ';');
        if parts.is_empty() || parts.len() > 2 {
            return Err(format!("`{spec}`: {SERVER_FORMAT}"));
        }
        let client = match parts.get(1) {
            None => None,
            Some(client_part) => {
                let pieces = split_host_and_ports(client_part)?;
                let (host, port) = match pieces.as_slice() {
                    [port] => ("0.0.0.0".to_string(), port),
                    [host, port] => (host.clone(), port),
                    _ => return Err(format!("client address `{client_part}` in `{spec}`: expected clientPort or clientHost:clientPort")),
                };
                check_host(&host).map_err(|m| format!("client address `{client_part}`: {m}"))?;
                let port = parse_port(port).ok_or_else(|| {
                    format!("client port `{port}` in `{spec}` is not a port number (1-65535)")
                })?;
                Some(ClientAddress { host, port })
            }
        };
        let mut addresses = Vec::new();
        let mut role: Option<PeerRole> = None;
        for address in java_split(parts[0], '|') {
            let pieces = split_host_and_ports(address)?;
            if pieces.len() < 3 || pieces.len() > 4 {
                return Err(format!("`{spec}`: {SERVER_FORMAT}"));
            }
            let host = pieces[0].clone();
            check_host(&host).map_err(|m| format!("`{address}`: {m}"))?;
            let quorum_port = parse_port(&pieces[1]).ok_or_else(|| {
                format!(
                    "quorum port `{}` in `{address}` is not a port number (1-65535)",
                    pieces[1]
                )
            })?;
            let election_port = parse_port(&pieces[2]).ok_or_else(|| {
                format!(
                    "election port `{}` in `{address}` is not a port number (1-65535)",
                    pieces[2]
                )
            })?;
            if quorum_port == election_port {
                return Err(format!(
                    "`{address}`: the quorum port and the election port must be different"
                ));
            }
            if let Some(r) = pieces.get(3) {
                let this = match r.trim().to_ascii_lowercase().as_str() {
                    "participant" => PeerRole::Participant,
                    "observer" => PeerRole::Observer,
                    _ => {
                        return Err(format!(
                            "unknown role `{r}` in `{address}`: use participant or observer"
                        ))
                    }
                };
                match role {
                    Some(prev) if prev != this => {
                        return Err(format!(
                        "`{spec}`: all addresses of one server must have the same role ({} vs {})",
                        prev.name(),
                        this.name()
                    ))
                    }
                    _ => role = Some(this),
                }
            }
            addresses.push(PeerAddress {
                host,
                quorum_port,
                election_port,
            });
        }
        if addresses.is_empty() {
            return Err(format!("`{spec}`: {SERVER_FORMAT}"));
        }
        Ok(ServerSpec {
            id,
            addresses,
            role: role.unwrap_or(PeerRole::Participant),
            client,
            line: 0,
        })
    }
}

impl fmt::Display for ServerSpec {
    /// The line's value as ZooKeeper prints it in `conf` and `/zookeeper/config`:
    /// `host:quorumPort:electionPort:role[;clientHost:clientPort]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut addresses: Vec<&PeerAddress> = self.addresses.iter().collect();
        addresses.sort_by(|a, b| a.host.cmp(&b.host));
        for (i, a) in addresses.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(
                f,
                "{}:{}:{}",
                bracket_v6(&a.host),
                a.quorum_port,
                a.election_port
            )?;
        }
        write!(f, ":{}", self.role.name())?;
        if let Some(c) = &self.client {
            write!(f, ";{}:{}", bracket_v6(&c.host), c.port)?;
        }
        Ok(())
    }
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Java's `String.split(char)`: trailing empty pieces are dropped.
fn java_split(s: &str, sep: char) -> Vec<&str> {
    let mut pieces: Vec<&str> = s.split(sep).collect();
    while pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    pieces
}

/// `host:port:...`, where host may be a bracketed IPv6 literal: `[::1]:2888:3888`.
fn split_host_and_ports(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let Some(end) = rest.find("]:") else {
            return Err(format!("`{s}` starts with '[' but has no matching ']:'"));
        };
        let mut out = vec![rest[..end].to_string()];
        out.extend(
            java_split(&rest[end + 2..], ':')
                .into_iter()
                .map(|p| p.trim().to_string()),
        );
        Ok(out)
    } else {
        Ok(java_split(s, ':')
            .into_iter()
            .map(|p| p.trim().to_string())
            .collect())
    }
}

fn parse_port(s: &str) -> Option<u16> {
    match s.trim().parse::<i64>() {
        Ok(n) if (1..=65535).contains(&n) => u16::try_from(n).ok(),
        _ => None,
    }
}

/// A host name or IP literal Keel can try to resolve or bind: non-empty, no spaces or
/// control characters, and a name made of letters, digits, `.`, `-` and `_`.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host name is empty".to_string());
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(format!("`{host}` is neither a host name nor an IP address"))
    }
}

/// The settings of a ZooKeeper 3.8 server, as Keel uses them.
///
/// Build it with [`Config::default`] (no config at all), [`Config::from_file`] and
/// [`Config::apply_system_properties`], or both at once with [`Config::load`]. All fields are
/// public so that tests and embedding programs can build one with
/// `Config { client_port: 0, ..Config::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `zoo.cfg` this came from, if any (used in warnings).
    pub config_file: Option<PathBuf>,
    /// `tickTime`: the basic time unit, in ms. 2000 with no config; 3000 (ZooKeeper's
    /// default) when a `zoo.cfg` omits it.
    pub tick_time_ms: u32,
    /// `dataDir`: snapshots and `myid`. Required in a `zoo.cfg`; `./keel-data` with no config.
    pub data_dir: PathBuf,
    /// `dataLogDir`: the write-ahead log. Defaults to `data_dir`.
    pub data_log_dir: PathBuf,
    /// `zookeeper.datadir.autocreate` (`datadir.autocreate`): create missing data
    /// directories at start. Default true.
    pub data_dir_autocreate: bool,
    /// `clientPort` (or this server's `;clientPort` in its `server.N` line). Default 2181.
    pub client_port: u16,
    /// `clientPortAddress` (or this server's client host in its `server.N` line): address to
    /// listen on, a host name or an IP literal without brackets. Default `0.0.0.0`.
    pub client_port_address: String,
    /// `clientPortListenBacklog`: listen backlog; `None` (the default, or a value <= 0) leaves
    /// it to the system.
    pub client_port_listen_backlog: Option<u32>,
    /// `maxClientCnxns`: most concurrent connections from one IP address; 0 = unlimited.
    /// Default 60.
    pub max_client_cnxns: u32,
    /// `zookeeper.maxCnxns` (`maxCnxns`): most concurrent client connections in all; 0
    /// (the default) = unlimited.
    pub max_cnxns: u32,
    /// `minSessionTimeout` in ms. Default 2 × tick.
    pub min_session_timeout_ms: u32,
    /// `maxSessionTimeout` in ms. Default 20 × tick.
    pub max_session_timeout_ms: u32,
    /// `autopurge.snapRetainCount`: snapshots (and their logs) kept by purging. Default 3,
    /// and never below 3.
    pub snap_retain_count: u32,
    /// `autopurge.purgeInterval` in hours; 0 (the default) turns purging off.
    pub purge_interval_hours: u32,
    /// Enabled four-letter words: `4lw.commands.whitelist` (comma-separated, `*` = all of
    /// [`KNOWN_FOUR_LETTER_WORDS`]), plus `srvr` always, plus `isro` when read-only mode is on.
    /// Default: only `srvr`. Use [`Config::is_four_letter_word_enabled`] to check one.
    pub four_letter_words: BTreeSet<String>,
    /// `jute.maxbuffer`: largest record or packet, in bytes. Default 0xfffff. Read like
    /// Java's `Integer.decode`: decimal, `0x`/`0X`/`#` hex, or octal with a leading `0`.
    pub jute_max_buffer: u32,
    /// `zookeeper.DigestAuthenticationProvider.superDigest`: `user:base64digest` of the super
    /// user, if any (an empty value means none).
    pub super_digest: Option<String>,
    /// `zookeeper.skipACL`: `yes` (exactly, as ZooKeeper reads it) checks no permission.
    pub skip_acl: bool,
    /// `readonlymode.enabled`: serve reads to read-only clients while partitioned.
    pub read_only_mode: bool,
    /// `zookeeper.extendedTypesEnabled` (`extendedTypesEnabled`): TTL nodes. Needs a server
    /// id of 254 or less.
    pub extended_types: bool,
    /// `zookeeper.snapCount` (`snapCount`): transactions between snapshots. Default
    /// 100000; values below 2 are raised to 2.
    pub snap_count: u32,
    /// `zookeeper.globalOutstandingLimit` (`globalOutstandingLimit`): requests in flight
    /// before throttling. Default 1000.
    pub global_outstanding_limit: u32,
    /// `initLimit` in ticks (0 = not set; required for an ensemble).
    pub init_limit: u32,
    /// `syncLimit` in ticks (0 = not set; required for an ensemble).
    pub sync_limit: u32,
    /// `server.N` lines (or those of `dynamicConfigFile`), sorted by id. Empty: standalone.
    pub servers: Vec<ServerSpec>,
    /// This server's id from `dataDir/myid`; read only when there are `server.N` lines.
    pub server_id: Option<u64>,
    /// `standaloneEnabled`: with a single participant, run standalone. Default true.
    pub standalone_enabled: bool,
    /// `reconfigEnabled`: allow dynamic reconfiguration. Default false.
    pub reconfig_enabled: bool,
    /// `localSessionsEnabled` (ensembles): sessions local to the server they connect to.
    pub local_sessions: bool,
    /// `localSessionsUpgradingEnabled`: a local session creating an ephemeral becomes global.
    pub local_sessions_upgrading: bool,
    /// Version of the ensemble membership: `version` (hex) in `zoo.cfg`, or the hex suffix
    /// of a dynamic config file's name. 0 when unset.
    pub config_version: u64,
    /// `admin.enableServer` (`zookeeper.admin.enableServer`): HTTP admin server. Default true.
    pub admin_enable_server: bool,
    /// `admin.serverAddress` (`zookeeper.admin.serverAddress`). Default `0.0.0.0`.
    pub admin_server_address: String,
    /// `admin.serverPort` (`zookeeper.admin.serverPort`). Default 8080.
    pub admin_server_port: u16,
    /// `zoo.cfg` keys Keel does not use: (1-based line, key). See [`Config::warnings`].
    pub unknown: Vec<(usize, String)>,
    /// Other warnings, already worded for the user (values Keel adjusted, unused `-D`
    /// properties, ...). See [`Config::warnings`].
    pub notes: Vec<String>,
}

impl Default for Config {
    /// The no-config standalone server: tick 2000 ms, data in `./keel-data`, port 2181.
    fn default() -> Self {
        Config {
            config_file: None,
            tick_time_ms: DEFAULT_TICK_TIME_MS,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            data_log_dir: PathBuf::from(DEFAULT_DATA_DIR),
            data_dir_autocreate: true,
            client_port: DEFAULT_CLIENT_PORT,
            client_port_address: "0.0.0.0".to_string(),
            client_port_listen_backlog: None,
            max_client_cnxns: 60,
            max_cnxns: 0,
            min_session_timeout_ms: 2 * DEFAULT_TICK_TIME_MS,
            max_session_timeout_ms: 20 * DEFAULT_TICK_TIME_MS,
            snap_retain_count: MIN_SNAP_RETAIN_COUNT,
            purge_interval_hours: 0,
            four_letter_words: BTreeSet::from(["srvr".to_string()]),
            jute_max_buffer: DEFAULT_JUTE_MAX_BUFFER,
            super_digest: None,
            skip_acl: false,
            read_only_mode: false,
            extended_types: false,
            snap_count: DEFAULT_SNAP_COUNT,
            global_outstanding_limit: DEFAULT_GLOBAL_OUTSTANDING_LIMIT,
            init_limit: 0,
            sync_limit: 0,
            servers: Vec::new(),
            server_id: None,
            standalone_enabled: true,
            reconfig_enabled: false,
            local_sessions: false,
            local_sessions_upgrading: false,
            config_version: 0,
            admin_enable_server: true,
            admin_server_address: "0.0.0.0".to_string(),
            admin_server_port: DEFAULT_ADMIN_SERVER_PORT,
            unknown: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// Where a value came from, for error messages.
enum Origin<'a> {
    Line { path: &'a Path, line: usize },
    Arg { name: &'a str, value: &'a str },
}

impl Origin<'_> {
    fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        match self {
            Origin::Line { path, line } => ConfigError::Invalid {
                path: path.to_path_buf(),
                line: *line,
                key: key.to_string(),
                message: message.into(),
            },
            Origin::Arg { name, value } => ConfigError::Property {
                name: name.to_string(),
                value: value.to_string(),
                message: message.into(),
            },
        }
    }

    /// Prefix for a warning about this value.
    fn describe(&self, key: &str) -> String {
        match self {
            Origin::Line { path, line } => format!("{}, line {line}: {key}", path.display()),
            Origin::Arg { name, value } => format!("-D{name}={value}"),
        }
    }
}

/// Java `Integer.parseInt`-like: optional sign, decimal digits.
fn parse_int(
    origin: &Origin,
    key: &str,
    value: &str,
    min: i64,
    max: i64,
    expected: &str,
) -> Result<i64, ConfigError> {
    let Ok(n) = value.parse::<i64>() else {
        return Err(origin.error(
            key,
            format!("`{value}` is not a whole number; expected {expected}"),
        ));
    };
    if n < min || n > max {
        return Err(origin.error(key, format!("{n} is out of range; expected {expected}")));
    }
    Ok(n)
}

fn to_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

const INT_MAX: i64 = i32::MAX as i64;

fn parse_bool(origin: &Origin, key: &str, value: &str) -> Result<bool, ConfigError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(origin.error(
            key,
            format!("`{value}` is not a boolean; use true or false"),
        ))
    }
}

fn parse_port_value(origin: &Origin, key: &str, value: &str) -> Result<u16, ConfigError> {
    match value.parse::<i64>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(u16::try_from(n).unwrap_or(u16::MAX)),
        Ok(n) => Err(origin.error(
            key,
            format!("port {n} is out of range; use a port from 1 to 65535"),
        )),
        Err(_) => Err(origin.error(
            key,
            format!("`{value}` is not a port number; use a port from 1 to 65535"),
        )),
    }
}

/// Java `Integer.decode`: optional sign, then `0x`/`0X`/`#` hex, `0` octal, or decimal.
fn java_decode(text: &str) -> Option<i64> {
    let (negative, rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) =
        if let Some(h) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
            (16, h)
        } else if let Some(h) = rest.strip_prefix('#') {
            (16, h)
        } else if rest.len() > 1 && rest.starts_with('0') {
            (8, &rest[1..])
        } else {
            (10, rest)
        };
    if digits.is_empty() || digits.starts_with('-') || digits.starts_with('+') {
        return None;
    }
    let n = i64::from_str_radix(digits, radix).ok()?;
    Some(if negative { -n } else { n })
}

/// The canonical system property a `zoo.cfg` key stands for, when it is not one of the keys
/// ZooKeeper parses itself.
fn property_for_file_key(key: &str) -> String {
    if key == props::JUTE_MAX_BUFFER || key == props::READ_ONLY || key.starts_with("zookeeper.") {
        key.to_string()
    } else {
        format!("zookeeper.{key}")
    }
}

fn is_core_key(key: &str) -> bool {
    CORE_KEYS.contains(&key)
        || key.starts_with("server.")
        || key.starts_with("group.")
        || key.starts_with("weight.")
}

fn is_zookeeper_key_not_used(key: &str) -> bool {
    ZOOKEEPER_KEYS_NOT_USED.contains(&key) || key.starts_with("metricsProvider.")
}

/// `-D` properties that other parts of Keel read straight from the property list
/// (`ServerOptions::from_config`): no warning for them here.
const PROPERTIES_READ_ELSEWHERE: [&str; 6] = [
    "keel.leaderSilenceMs",
    "zookeeper.nio.sessionlessCnxnTimeout",
    "keel.maxQueuedReplyBytes",
    "keel.maxPeerFrameBytes",
    "znode.container.checkIntervalMs",
    "znode.container.maxNeverUsedIntervalMs",
];

/// JVM, logging and JMX properties from ZooKeeper's start scripts: ignored without a word.
fn is_jvm_noise(name: &str) -> bool {
    const PREFIXES: [&str; 16] = [
        "java.",
        "javax.",
        "jdk.",
        "sun.",
        "com.sun.",
        "log4j",
        "logback",
        "slf4j",
        "file.",
        "user.",
        "os.",
        "jline",
        "jute.",
        "zookeeper.log.",
        "zookeeper.tracelog.",
        "zookeeper.jmx.",
    ];
    const EXACT: [&str; 6] = [
        "zookeeper.root.logger",
        "zookeeper.console.threshold",
        "line.separator",
        "path.separator",
        "networkaddress.cache.ttl",
        "zookeeper.log.file",
    ];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

impl Config {
    /// Reads a ZooKeeper `zoo.cfg` (and, for an ensemble, `dataDir/myid` and any
    /// `dynamicConfigFile`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let entries = read_properties(path)?;
        FileParse::new(path).run(entries)
    }

    /// Applies `-Dname=value` system properties (see the [module docs](self)). Properties
    /// Keel uses are validated; JVM and logging ones are ignored; other `zookeeper.*` ones
    /// and `zoo.cfg`-only keys given as `-D` are noted in [`Config::notes`].
    pub fn apply_system_properties(
        &mut self,
        props: &[(String, String)],
    ) -> Result<(), ConfigError> {
        let mut whitelist: Option<String> = None;
        let mut extended_origin: Option<(String, String)> = None;
        for (name, value) in props {
            let name = name.trim();
            let value_t = value.trim();
            let origin = Origin::Arg {
                name,
                value: value.as_str(),
            };
            if self.apply_property(name, name, value_t, &origin, &mut whitelist)? {
                if name == props::EXTENDED_TYPES {
                    extended_origin = Some((name.to_string(), value.clone()));
                }
                continue;
            }
            if is_jvm_noise(name) || PROPERTIES_READ_ELSEWHERE.contains(&name) {
                continue;
            }
            let prefixed = format!("zookeeper.{name}");
            if props::ALL.contains(&prefixed.as_str()) {
                self.notes.push(format!(
                    "-D{name}={value}: not a property Keel or ZooKeeper reads; did you mean -D{prefixed}? ignored"
                ));
            } else if is_core_key(name) || is_zookeeper_key_not_used(name) {
                self.notes.push(format!(
                    "-D{name}={value}: {name} is a zoo.cfg setting, not a system property; set it in the config file. ignored"
                ));
            } else if name.starts_with("zookeeper.") {
                self.notes.push(format!(
                    "-D{name}={value}: a property Keel does not use; ignored"
                ));
            }
        }
        self.rebuild_four_letter_words(whitelist.as_deref());
        if let Some((name, value)) = extended_origin {
            self.check_extended_types(
                &Origin::Arg {
                    name: &name,
                    value: &value,
                },
                props::EXTENDED_TYPES,
            )?;
        }
        Ok(())
    }

    /// Reads `config` (or starts from [`Config::default`] when `None`), then applies `props`,
    /// which override the file. This is what `keel server` runs.
    pub fn load(config: Option<&Path>, props: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut cfg = match config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        cfg.apply_system_properties(props)?;
        Ok(cfg)
    }

    /// True when this is a member of an ensemble rather than a standalone server: more than
    /// one participant, or `standaloneEnabled=false` with any.
    pub fn is_distributed(&self) -> bool {
        let voting = self
            .servers
            .iter()
            .filter(|s| s.role == PeerRole::Participant)
            .count();
        voting > 1 || (!self.standalone_enabled && voting >= 1)
    }

    /// This server's `server.N` line, when there are server lines and a `myid`.
    pub fn this_server(&self) -> Option<&ServerSpec> {
        let id = self.server_id?;
        self.servers.iter().find(|s| s.id == id)
    }

    /// The host to listen on for clients ([`Config::client_port_address`]), with an IPv6
    /// literal in brackets: `0.0.0.0`, `[::1]`, `localhost`. The port is
    /// [`Config::client_port`].
    pub fn client_bind_address(&self) -> String {
        bracket_v6(&self.client_port_address)
    }

    /// `host:port` to listen on for clients, with an IPv6 literal in brackets, ready for
    /// `std::net::ToSocketAddrs`: `0.0.0.0:2181`, `[::1]:2181`.
    pub fn client_host_port(&self) -> String {
        format!(
            "{}:{}",
            bracket_v6(&self.client_port_address),
            self.client_port
        )
    }

    /// Whether a four-letter word may be answered: it is in [`Config::four_letter_words`],
    /// or it is `srvr` (always on, as in ZooKeeper), or it is `isro` and read-only mode is on.
    pub fn is_four_letter_word_enabled(&self, word: &str) -> bool {
        word == "srvr"
            || (word == "isro" && self.read_only_mode)
            || self.four_letter_words.contains(word)
    }

    /// Every warning, worded for the user: unused `zoo.cfg` keys (with file and line), then
    /// [`Config::notes`].
    pub fn warnings(&self) -> Vec<String> {
        let file = self
            .config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".to_string());
        let mut out = Vec::new();
        for (line, key) in &self.unknown {
            let shown = if key.is_empty() {
                "(empty key)"
            } else {
                key.as_str()
            };
            let why = if is_zookeeper_key_not_used(key) {
                "a ZooKeeper setting Keel does not use".to_string()
            } else if let Some(known) = near_miss(key) {
                format!("unknown setting; did you mean {known}?")
            } else {
                "unknown setting".to_string()
            };
            out.push(format!("{file}, line {line}: {shown}: {why}; ignored"));
        }
        out.extend(self.notes.iter().cloned());
        out
    }

    /// The text of the `conf` four-letter word, as ZooKeeper's `dumpConf` prints it, with
    /// `dataDirSize`/`dataLogSize` measured now (the bytes under the printed directories).
    pub fn describe_conf(&self) -> String {
        let (data, log) = (
            self.data_dir.join("version-2"),
            self.data_log_dir.join("version-2"),
        );
        self.describe_conf_with_sizes(dir_size(&data), dir_size(&log))
    }

    /// The `conf` text with the directory sizes given. ZooKeeper prints `dataDir` and
    /// `dataLogDir` as absolute paths with `/version-2` appended, `secureClientPort=-1` when
    /// there is no TLS port, `clientPortListenBacklog=-1` when unset and `serverId=0` for a
    /// standalone server; an ensemble member adds its quorum settings and the membership.
    pub fn describe_conf_with_sizes(&self, data_dir_size: u64, data_log_size: u64) -> String {
        use std::fmt::Write as _;
        let abs = |p: &Path| {
            let p = p.join("version-2");
            std::path::absolute(&p).unwrap_or(p).display().to_string()
        };
        let distributed = self.is_distributed();
        let mut s = String::new();
        let _ = writeln!(s, "clientPort={}", self.client_port);
        let _ = writeln!(s, "secureClientPort=-1");
        let _ = writeln!(s, "dataDir={}", abs(&self.data_dir));
        let _ = writeln!(s, "dataDirSize={data_dir_size}");
        let _ = writeln!(s, "dataLogDir={}", abs(&self.data_log_dir));
        let _ = writeln!(s, "dataLogSize={data_log_size}");
        let _ = writeln!(s, "tickTime={}", self.tick_time_ms);
        let _ = writeln!(s, "maxClientCnxns={}", self.max_client_cnxns);
        let _ = writeln!(s, "minSessionTimeout={}", self.min_session_timeout_ms);
        let _ = writeln!(s, "maxSessionTimeout={}", self.max_session_timeout_ms);
        match self.client_port_listen_backlog {
            Some(b) => {
                let _ = writeln!(s, "clientPortListenBacklog={b}");
            }
            None => {
                let _ = writeln!(s, "clientPortListenBacklog=-1");
            }
        }
        let server_id = if distributed {
            self.server_id.unwrap_or(0)
        } else {
            0
        };
        let _ = writeln!(s, "serverId={server_id}");
        if distributed {
            let me = self.this_server();
            let ports = |f: fn(&PeerAddress) -> u16| {
                me.map(|m| {
                    m.addresses
                        .iter()
                        .map(|a| f(a).to_string())
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .unwrap_or_default()
            };
            let _ = writeln!(s, "initLimit={}", self.init_limit);
            let _ = writeln!(s, "syncLimit={}", self.sync_limit);
            let _ = writeln!(s, "electionAlg=3");
            let _ = writeln!(s, "electionPort={}", ports(|a| a.election_port));
            let _ = writeln!(s, "quorumPort={}", ports(|a| a.quorum_port));
            let role = me.map(|m| m.role).unwrap_or(PeerRole::Participant);
            let _ = writeln!(
                s,
                "peerType={}",
                if role == PeerRole::Observer { 1 } else { 0 }
            );
            let _ = writeln!(s, "membership: ");
            s.push_str(&self.membership());
        }
        s
    }

    /// The ensemble membership as ZooKeeper writes it (`conf`, `/zookeeper/config`): one
    /// `server.N=...` line per server, then `version=<hex>`, without a final newline.
    pub fn membership(&self) -> String {
        let mut s = String::new();
        for server in &self.servers {
            s.push_str(&format!("server.{}={}\n", server.id, server));
        }
        s.push_str(&format!("version={:x}", self.config_version));
        s
    }

    /// Applies one system-property-level setting. `shown` is the key as the user wrote it.
    /// Returns false when `canon` is not a property Keel uses.
    fn apply_property(
        &mut self,
        canon: &str,
        shown: &str,
        value: &str,
        origin: &Origin,
        whitelist: &mut Option<String>,
    ) -> Result<bool, ConfigError> {
        match canon {
            props::SNAP_COUNT => {
                let n = parse_int(
                    origin,
                    shown,
                    value,
                    i64::from(i32::MIN),
                    INT_MAX,
                    "a number of transactions, 2 or more (e.g. 100000)",
                )?;
                if n < 2 {
                    self.notes.push(format!(
                        "{}: snapCount must be 2 or more; using 2",
                        origin.describe(shown)
                    ));
                }
                self.snap_count = to_u32(n.max(2));
            }
            props::GLOBAL_OUTSTANDING_LIMIT => {
                let n = parse_int(
                    origin,
                    shown,
                    value,
                    1,
                    INT_MAX,
                    "a number of requests, 1 or more (e.g. 1000)",
                )?;
                self.global_outstanding_limit = to_u32(n);
            }
            props::MAX_CNXNS => {
                let n = parse_int(
                    origin,
                    shown,
                    value,
                    0,
                    INT_MAX,
                    "client connections in all, 0 for unlimited",
                )?;
                self.max_cnxns = to_u32(n);
            }
            props::FOUR_LETTER_WORDS => {
                for word in value
                    .split(',')
                    .map(str::trim)
                    .filter(|w| !w.is_empty() && *w != "*")
                {
                    if !KNOWN_FOUR_LETTER_WORDS.contains(&word) {
                        self.notes.push(format!(
                            "{}: `{word}` is not a four-letter word ZooKeeper knows (known: {})",
                            origin.describe(shown),
                            KNOWN_FOUR_LETTER_WORDS.join(" ")
                        ));
                    }
                }
                *whitelist = Some(value.to_string());
            }
            props::SUPER_DIGEST => {
                if value.is_empty() {
                    self.super_digest = None;
                } else {
                    let valid = value.split_once(':').is_some_and(|(user, digest)| {
                        !user.is_empty()
                            && !digest.is_empty()
                            && digest.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
                            })
                    });
                    if !valid {
                        return Err(origin.error(
                            shown,
                            "expected USER:DIGEST where DIGEST is base64(SHA-1(\"USER:PASSWORD\")), as printed by \
                             `java org.apache.zookeeper.server.auth.DigestAuthenticationProvider USER:PASSWORD`",
                        ));
                    }
                    self.super_digest = Some(value.to_string());
                }
            }
            props::SKIP_ACL => self.skip_acl = value.trim() == "yes",
            props::EXTENDED_TYPES => self.extended_types = parse_bool(origin, shown, value)?,
            props::READ_ONLY => self.read_only_mode = parse_bool(origin, shown, value)?,
            props::JUTE_MAX_BUFFER => {
                let expected =
                    "a size in bytes from 1 to 2147483647, decimal or 0x hex (default 0xfffff)";
                match java_decode(value) {
                    Some(n) if (1..=INT_MAX).contains(&n) => self.jute_max_buffer = to_u32(n),
                    Some(n) => {
                        return Err(origin
                            .error(shown, format!("{n} is out of range; expected {expected}")))
                    }
                    None => {
                        return Err(origin.error(
                            shown,
                            format!("`{value}` is not a number; expected {expected}"),
                        ))
                    }
                }
            }
            props::ADMIN_ENABLE_SERVER => {
                self.admin_enable_server = parse_bool(origin, shown, value)?
            }
            props::ADMIN_SERVER_PORT => {
                self.admin_server_port = parse_port_value(origin, shown, value)?
            }
            props::ADMIN_SERVER_ADDRESS => {
                let host = strip_brackets(value);
                check_host(host).map_err(|m| origin.error(shown, m))?;
                self.admin_server_address = host.to_string();
            }
            props::DATADIR_AUTOCREATE => {
                self.data_dir_autocreate = parse_bool(origin, shown, value)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Recomputes [`Config::four_letter_words`] from a whitelist (when one was given) and
    /// read-only mode.
    fn rebuild_four_letter_words(&mut self, whitelist: Option<&str>) {
        if let Some(list) = whitelist {
            let mut words = BTreeSet::new();
            for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                if word == "*" {
                    words.extend(KNOWN_FOUR_LETTER_WORDS.iter().map(|w| w.to_string()));
                } else {
                    words.insert(word.to_string());
                }
            }
            self.four_letter_words = words;
        }
        self.four_letter_words.insert("srvr".to_string());
        if self.read_only_mode {
            self.four_letter_words.insert("isro".to_string());
        }
    }

    /// TTL nodes put 0xff in the top byte of the owner field, where session ids carry the
    /// server id: with extended types on, server id 255 cannot be used.
    fn check_extended_types(&self, origin: &Origin, shown: &str) -> Result<(), ConfigError> {
        if self.extended_types && self.server_id == Some(255) {
            return Err(origin.error(
                shown,
                "extended types (TTL nodes) need a server id from 0 to 254, and this server's myid is 255; \
                 renumber the server or turn extended types off",
            ));
        }
        Ok(())
    }
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// A known key that differs from `key` only in letter case.
fn near_miss(key: &str) -> Option<String> {
    let key_l = key.to_ascii_lowercase();
    CORE_KEYS
        .iter()
        .filter(|k| **k != "server.N")
        .map(|k| k.to_string())
        .chain(
            props::ALL
                .iter()
                .map(|p| p.strip_prefix("zookeeper.").unwrap_or(p).to_string()),
        )
        .find(|k| {
            k.to_ascii_lowercase() == key_l
                || format!("zookeeper.{}", k.to_ascii_lowercase()) == key_l
        })
}

fn dir_size(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| dir_size(&e.path()))
                    .sum()
            })
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

/// One `key=value` of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    line: usize,
    key: String,
    value: String,
}

fn read_properties(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let mut bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.starts_with(b"\xef\xbb\xbf") {
        bytes.drain(..3);
    }
    // ZooKeeper reads ISO-8859-1; Keel reads UTF-8 when the file is valid UTF-8 and
    // ISO-8859-1 otherwise, so plain ASCII files read the same either way.
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    parse_properties(&text).map_err(|(line, key, message)| ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        key,
        message,
    })
}

fn is_prop_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Java `String.trim`: strips every char up to U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Parses `java.util.Properties` text into entries in file order (duplicates kept), keys and
/// values trimmed as ZooKeeper does. Errors: (line, key, message).
fn parse_properties(text: &str) -> Result<Vec<Entry>, (usize, String, String)> {
    // Natural lines, split on \n, \r\n or \r.
    let mut lines: Vec<(usize, &str)> = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i, mut number) = (0usize, 0usize, 1usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push((number, &text[start..i]));
                i += 1;
                start = i;
                number += 1;
            }
            b'\r' => {
                lines.push((number, &text[start..i]));
                i += 1;
                if bytes.get(i) == Some(&b'\n') {
                    i += 1;
                }
                start = i;
                number += 1;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push((number, &text[start..]));
    }

    let mut entries = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let (line_no, raw) = lines[next];
        next += 1;
        let first = raw.trim_start_matches(is_prop_ws);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes continues the line;
        // the continuation's leading whitespace is dropped; a blank continuation ends it.
        let mut logical = String::new();
        let mut current = first;
        loop {
            let trailing = current.chars().rev().take_while(|&c| c == '\\').count();
            if trailing % 2 == 0 {
                logical.push_str(current);
                break;
            }
            logical.push_str(&current[..current.len() - 1]);
            let Some(&(_, raw_next)) = lines.get(next) else {
                break;
            };
            next += 1;
            current = raw_next.trim_start_matches(is_prop_ws);
            if current.is_empty() {
                break;
            }
        }
        let (key, value) = split_key_value(&logical);
        let key_text = unescape(&key).map_err(|m| {
            (
                line_no,
                java_trim(&key.iter().collect::<String>()).to_string(),
                m,
            )
        })?;
        let key = java_trim(&key_text).to_string();
        let value_text = unescape(&value).map_err(|m| (line_no, key.clone(), m))?;
        entries.push(Entry {
            line: line_no,
            key,
            value: java_trim(&value_text).to_string(),
        });
    }
    Ok(entries)
}

/// Splits a logical line into its raw (still escaped) key and value, as `Properties.load`.
fn split_key_value(line: &str) -> (Vec<char>, Vec<char>) {
    let chars: Vec<char> = line.chars().collect();
    let mut key_len = 0;
    let mut value_start = chars.len();
    let mut has_separator = false;
    let mut escaped = false;
    while key_len < chars.len() {
        let c = chars[key_len];
        if (c == '=' || c == ':') && !escaped {
            value_start = key_len + 1;
            has_separator = true;
            break;
        } else if is_prop_ws(c) && !escaped {
            value_start = key_len + 1;
            break;
        }
        escaped = c == '\\' && !escaped;
        key_len += 1;
    }
    while value_start < chars.len() {
        let c = chars[value_start];
        if !is_prop_ws(c) {
            if !has_separator && (c == '=' || c == ':') {
                has_separator = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    (
        chars[..key_len].to_vec(),
        chars[value_start.min(chars.len())..].to_vec(),
    )
}

/// Resolves `Properties` escapes: `\t \n \r \f`, `\uXXXX` (surrogate pairs joined), and
/// `\x` = `x` for any other char.
fn unescape(chars: &[char]) -> Result<String, String> {
    let mut out = String::with_capacity(chars.len());
    let mut pending_high: Option<u32> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&escape) = chars.get(i) else { break };
        i += 1;
        let decoded = match escape {
            'u' => {
                let hex: String = chars
                    .get(i..i + 4)
                    .map(|h| h.iter().collect())
                    .unwrap_or_default();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| {
                        "malformed \\uXXXX escape (it needs exactly four hex digits)".to_string()
                    })?;
                i += 4;
                if (0xD800..0xDC00).contains(&code) {
                    pending_high = Some(code);
                    continue;
                }
                if (0xDC00..0xE000).contains(&code) {
                    let high = pending_high.take().unwrap_or(0xD800);
                    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
                        .unwrap_or('\u{fffd}')
                } else {
                    char::from_u32(code).unwrap_or('\u{fffd}')
                }
            }
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\x0c',
            other => other,
        };
        if pending_high.take().is_some() {
            out.push('\u{fffd}');
        }
        out.push(decoded);
    }
    if pending_high.is_some() {
        out.push('\u{fffd}');
    }
    Ok(out)
}

/// State of reading one `zoo.cfg`.
struct FileParse<'a> {
    path: &'a Path,
    cfg: Config,
    /// Line of each core key seen.
    seen: HashMap<&'static str, usize>,
    min_session: Option<i64>,
    max_session: Option<i64>,
    dynamic_file: Option<(usize, PathBuf)>,
    /// server.N entries of the main file: id -> (line, key, value).
    server_lines: BTreeMap<u64, (usize, String, String)>,
    whitelist: Option<String>,
    /// `peerType`, with its line.
    peer_type: Option<(usize, PeerRole)>,
}

impl<'a> FileParse<'a> {
    fn new(path: &'a Path) -> Self {
        FileParse {
            path,
            cfg: Config {
                config_file: Some(path.to_path_buf()),
                tick_time_ms: ZOOKEEPER_DEFAULT_TICK_TIME_MS,
                ..Config::default()
            },
            seen: HashMap::new(),
            min_session: None,
            max_session: None,
            dynamic_file: None,
            server_lines: BTreeMap::new(),
            whitelist: None,
            peer_type: None,
        }
    }

    fn at(&self, line: usize) -> Origin<'a> {
        Origin::Line {
            path: self.path,
            line,
        }
    }

    fn file_error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::File {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }

    fn run(mut self, entries: Vec<Entry>) -> Result<Config, ConfigError> {
        // Later duplicates win, as in java.util.Properties; then handle keys in file order.
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            last.insert(e.key.clone(), i);
        }
        for (i, e) in entries.iter().enumerate() {
            if last.get(&e.key) == Some(&i) {
                self.entry(e)?;
            }
        }
        self.finish()
    }

    fn mark(&mut self, key: &'static str, line: usize) {
        self.seen.insert(key, line);
    }

    fn entry(&mut self, e: &Entry) -> Result<(), ConfigError> {
        let (line, key, value) = (e.line, e.key.as_str(), e.value.as_str());
        let o = self.at(line);
        let ms = "milliseconds";
        match key {
            "tickTime" => {
                let n = parse_int(
                    &o,
                    key,
                    value,
                    1,
                    INT_MAX,
                    &format!("a tick length in {ms}, 1 or more (e.g. tickTime=2000)"),
                )?;
                self.cfg.tick_time_ms = to_u32(n);
                self.mark("tickTime", line);
            }
            "dataDir" | "dataLogDir" => {
                if value.is_empty() {
                    return Err(o.error(key, "the directory name is empty"));
                }
                if key == "dataDir" {
                    self.cfg.data_dir = PathBuf::from(value);
                    self.mark("dataDir", line);
                } else {
                    self.cfg.data_log_dir = PathBuf::from(value);
                    self.mark("dataLogDir", line);
                }
            }
            "clientPort" => {
                self.cfg.client_port = parse_port_value(&o, key, value)?;
                self.mark("clientPort", line);
            }
            "clientPortAddress" => {
                let host = strip_brackets(value);
                check_host(host).map_err(|m| o.error(key, m))?;
                self.cfg.client_port_address = host.to_string();
                self.mark("clientPortAddress", line);
            }
            "clientPortListenBacklog" => {
                let n = parse_int(
                    &o,
                    key,
                    value,
                    i64::from(i32::MIN),
                    INT_MAX,
                    "a connection count (-1 for the system default)",
                )?;
                self.cfg.client_port_listen_backlog = (n > 0).then(|| to_u32(n));
            }
            "maxClientCnxns" => {
                let n = parse_int(
                    &o,
                    key,
                    value,
                    0,
                    INT_MAX,
                    "connections per client IP address, 0 for unlimited",
                )?;
                self.cfg.max_client_cnxns = to_u32(n);
            }

            "minSessionTimeout" | "maxSessionTimeout" => {
                let n = parse_int(
                    &o,
                    key,
                    value,
                    -1,
                    INT_MAX,
                    &format!("a timeout in {ms}, or -1 for the default"),
                )?;
                let n = (n >= 0).then_some(n);
                if key == "minSessionTimeout" {
                    self.min_session = n;
                    self.mark("minSessionTimeout", line);
                } else {
                    self.max_session = n;
                    self.mark("maxSessionTimeout", line);
                }
            }
            "initLimit" | "syncLimit" => {
                let n = parse_int(&o, key, value, 0, INT_MAX, "a number of ticks (e.g. 10)")?;
                if key == "initLimit" {
                    self.cfg.init_limit = to_u32(n);
                } else {
                    self.cfg.sync_limit = to_u32(n);
                }
            }
            "autopurge.snapRetainCount" => {
                let n = parse_int(
                    &o,
                    key,
                    value,
                    i64::from(i32::MIN),
                    INT_MAX,
                    "a number of snapshots, 3 or more",
                )?;
                if n < i64::from(MIN_SNAP_RETAIN_COUNT) {
                    self.cfg.notes.push(format!(
                        "{}: {n} is below the minimum of {MIN_SNAP_RETAIN_COUNT}; using {MIN_SNAP_RETAIN_COUNT}",
                        o.describe(key)
                    ));
                }
                self.cfg.snap_retain_count = to_u32(n).max(MIN_SNAP_RETAIN_COUNT);
            }
            "autopurge.purgeInterval" => {
                let n = parse_int(
                    &o,
                    key,
                    value,
                    i64::from(i32::MIN),
                    INT_MAX,
                    "hours between purges, 0 to turn purging off",
                )?;
                self.cfg.purge_interval_hours = to_u32(n);
            }
            "standaloneEnabled" => self.cfg.standalone_enabled = parse_bool(&o, key, value)?,
            "reconfigEnabled" => self.cfg.reconfig_enabled = parse_bool(&o, key, value)?,
            "localSessionsEnabled" => self.cfg.local_sessions = parse_bool(&o, key, value)?,
            "localSessionsUpgradingEnabled" => {
                self.cfg.local_sessions_upgrading = parse_bool(&o, key, value)?
            }
            "electionAlg" => {
                let n = parse_int(&o, key, value, i64::MIN, i64::MAX, "3")?;
                if n != 3 {
                    return Err(o.error(key, "only electionAlg=3 (fast leader election) is supported; remove the line or set it to 3"));
                }
            }
            "peerType" => {
                if !value.eq_ignore_ascii_case("observer")
                    && !value.eq_ignore_ascii_case("participant")
                {
                    return Err(o.error(
                        key,
                        format!("unknown peer type `{value}`; use participant or observer"),
                    ));
                }
                // As in ZooKeeper, the role in this server's server.N line is what
                // counts; a peerType that disagrees with it is a warning (setup_ensemble).
                let role = if value.eq_ignore_ascii_case("observer") {
                    PeerRole::Observer
                } else {
                    PeerRole::Participant
                };
                self.peer_type = Some((line, role));
            }
            "dynamicConfigFile" => {
                if value.is_empty() {
                    return Err(o.error(key, "the file name is empty"));
                }
                self.dynamic_file = Some((line, PathBuf::from(value)));
            }
            "version" => {
                self.cfg.config_version = u64::from_str_radix(value, 16).map_err(|_| {
                    o.error(
                        key,
                        format!("`{value}` is not a hexadecimal configuration version"),
                    )
                })?;
            }
            _ if key.starts_with("server.") => {
                let id = parse_server_id(&o, key)?;
                self.server_lines
                    .insert(id, (line, key.to_string(), value.to_string()));
            }
            _ if key.starts_with("group.") || key.starts_with("weight.") => {
                return Err(o.error(
                    key,
                    "hierarchical quorums (group.N / weight.N) are not supported by Keel; use server.N lines with majority quorums",
                ));
            }
            _ if is_zookeeper_key_not_used(key) => self.cfg.unknown.push((line, key.to_string())),
            _ => {
                let canon = property_for_file_key(key);
                let mut whitelist = self.whitelist.take();
                let used = self
                    .cfg
                    .apply_property(&canon, key, value, &o, &mut whitelist)?;
                self.whitelist = whitelist;
                if used {
                    if canon == props::EXTENDED_TYPES {
                        self.seen.insert("extendedTypes", line);
                    }
                } else {
                    self.cfg.unknown.push((line, key.to_string()));
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Config, ConfigError> {
        if !self.seen.contains_key("dataDir") {
            return Err(
                self.file_error("dataDir is not set; add a line such as dataDir=/var/lib/keel")
            );
        }
        if !self.seen.contains_key("dataLogDir") {
            self.cfg.data_log_dir = self.cfg.data_dir.clone();
        }

        // Session timeouts default to 2 and 20 ticks.
        let tick = self.cfg.tick_time_ms;
        let min = self
            .min_session
            .map(to_u32)
            .unwrap_or(tick.saturating_mul(2));
        let max = self
            .max_session
            .map(to_u32)
            .unwrap_or(tick.saturating_mul(20));
        if min > max {
            let what = |v: Option<i64>, key: &str, default: &str| match v {
                Some(_) => format!("{key}={}", if key.starts_with("min") { min } else { max }),
                None => format!(
                    "{key} {} ({default})",
                    if key.starts_with("min") { min } else { max }
                ),
            };
            let message = format!(
                "{} must not be larger than {}",
                what(
                    self.min_session,
                    "minSessionTimeout",
                    "the default, 2 × tickTime"
                ),
                what(
                    self.max_session,
                    "maxSessionTimeout",
                    "the default, 20 × tickTime"
                )
            );
            let (key, line) = match (self.max_session, self.seen.get("maxSessionTimeout")) {
                (Some(_), Some(&l)) => ("maxSessionTimeout", l),
                _ => (
                    "minSessionTimeout",
                    self.seen.get("minSessionTimeout").copied().unwrap_or(0),
                ),
            };
            return Err(self.at(line).error(key, message));
        }
        self.cfg.min_session_timeout_ms = min;
        self.cfg.max_session_timeout_ms = max;

        self.read_servers()?;
        self.setup_ensemble()?;

        let whitelist = self.whitelist.take();
        self.cfg.rebuild_four_letter_words(whitelist.as_deref());
        if let Some(&line) = self.seen.get("extendedTypes") {
            self.cfg
                .check_extended_types(&self.at(line), "extendedTypesEnabled")?;
        }
        Ok(self.cfg)
    }

    /// Collects server.N lines from this file or from `dynamicConfigFile`.
    fn read_servers(&mut self) -> Result<(), ConfigError> {
        let mut servers = Vec::new();
        if let Some((dyn_line, dyn_path)) = self.dynamic_file.clone() {
            if let Some((_, (line, key, _))) = self.server_lines.iter().next() {
                return Err(self.at(*line).error(
                    key,
                    format!("server.N lines must be in the dynamic config file {} when dynamicConfigFile is set", dyn_path.display()),
                ));
            }
            let entries = read_properties(&dyn_path).map_err(|e| match e {
                ConfigError::Io { source, .. } => self.at(dyn_line).error(
                    "dynamicConfigFile",
                    format!("cannot read {}: {source}", dyn_path.display()),
                ),
                other => other,
            })?;
            let mut lines = BTreeMap::new();
            for e in entries {
                let o = Origin::Line {
                    path: &dyn_path,
                    line: e.line,
                };
                if e.key.starts_with("server.") {
                    let id = parse_server_id(&o, &e.key)?;
                    lines.insert(id, (e.line, e.key, e.value));
                } else if e.key == "version" {
                    return Err(o.error(
                        &e.key,
                        "a dynamic config file must not contain `version`; it is taken from the file name's suffix (e.g. zoo.cfg.dynamic.100000000)",
                    ));
                } else if e.key.starts_with("group.") || e.key.starts_with("weight.") {
                    return Err(o.error(
                        &e.key,
                        "hierarchical quorums (group.N / weight.N) are not supported by Keel",
                    ));
                } else {
                    return Err(o.error(
                        &e.key,
                        "a dynamic config file may contain only server.N lines",
                    ));
                }
            }
            if let Some(v) = dyn_path
                .to_str()
                .and_then(|s| s.rsplit_once('.'))
                .and_then(|(_, suffix)| u64::from_str_radix(suffix, 16).ok())
            {
                self.cfg.config_version = v;
            }
            for (id, (line, key, value)) in lines {
                let o = Origin::Line {
                    path: &dyn_path,
                    line,
                };
                let mut spec = ServerSpec::parse(id, &value).map_err(|m| o.error(&key, m))?;
                spec.line = line;
                servers.push(spec);
            }
        } else {
            for (id, (line, key, value)) in &self.server_lines {
                let mut spec =
                    ServerSpec::parse(*id, value).map_err(|m| self.at(*line).error(key, m))?;
                spec.line = *line;
                servers.push(spec);
            }
        }
        self.cfg.servers = servers;
        Ok(())
    }

    /// Ensemble checks, `myid`, and this server's client address.
    fn setup_ensemble(&mut self) -> Result<(), ConfigError> {
        if self.cfg.servers.is_empty() {
            if !self.cfg.standalone_enabled {
                return Err(self.file_error(
                    "standaloneEnabled=false needs server.N lines with at least one participant",
                ));
            }
            return self.default_client_port();
        }
        let voting = self
            .cfg
            .servers
            .iter()
            .filter(|s| s.role == PeerRole::Participant)
            .count();
        let observers = self.cfg.servers.len() - voting;
        if voting == 0 {
            return Err(self.file_error(
                "the server.N lines name only observers; an ensemble needs participants",
            ));
        }
        if voting == 1 && self.cfg.standalone_enabled {
            if observers > 0 {
                return Err(self.file_error(
                    "observers need a quorum of at least two participants (or standaloneEnabled=false)",
                ));
            }
            self.cfg.notes.push(format!(
                "{}: only one server.N line; running standalone, as ZooKeeper does (set standaloneEnabled=false to run a one-member ensemble)",
                self.path.display()
            ));
        }
        let distributed = self.cfg.is_distributed();

        let myid_path = self.cfg.data_dir.join("myid");
        if myid_path.is_file() {
            let text = std::fs::read_to_string(&myid_path).map_err(|e| ConfigError::File {
                path: myid_path.clone(),
                message: format!("cannot read the myid file: {e}"),
            })?;
            let first = text.lines().next().unwrap_or("").trim();
            let id = first.parse::<u64>().ok().filter(|id| *id <= 255).ok_or_else(|| ConfigError::File {
                path: myid_path.clone(),
                message: format!(
                    "`{first}` is not a server id; the file must hold only this server's number from its server.N line (0 to 255)"
                ),
            })?;
            self.cfg.server_id = Some(id);
        } else if distributed {
            return Err(ConfigError::File {
                path: myid_path.clone(),
                message: format!(
                    "myid file is missing: an ensemble member needs its server id (the N of its server.N line in {}) in this file, e.g. `echo 1 > {}`",
                    self.path.display(),
                    myid_path.display()
                ),
            });
        }

        if distributed {
            if self.cfg.init_limit == 0 {
                return Err(self
                    .file_error("initLimit is not set; an ensemble needs it, e.g. initLimit=10"));
            }
            if self.cfg.sync_limit == 0 {
                return Err(
                    self.file_error("syncLimit is not set; an ensemble needs it, e.g. syncLimit=5")
                );
            }
            if let Some(id) = self.cfg.server_id {
                if !self.cfg.servers.iter().any(|s| s.id == id) {
                    return Err(ConfigError::File {
                        path: myid_path,
                        message: format!(
                            "server id {id} is not among the server.N lines of {}",
                            self.path.display()
                        ),
                    });
                }
            }
        }

        if let (Some((line, role)), Some(me)) = (self.peer_type, self.cfg.this_server()) {
            if me.role != role {
                self.cfg.notes.push(format!(
                    "{}, line {line}: peerType: peerType={} but this server's server.{} line makes it {}; using the server.{} line, as ZooKeeper does",
                    self.path.display(),
                    role.name(),
                    me.id,
                    if me.role == PeerRole::Observer { "an observer" } else { "a participant" },
                    me.id
                ));
            }
        }

        // This server's ;clientPort part, if any, sets the client address (it must agree
        // with clientPort / clientPortAddress when both are given).
        let client = self.cfg.this_server().and_then(|s| s.client.clone());
        if let Some(client) = client {
            if let Some(&line) = self.seen.get("clientPort") {
                let address = &self.cfg.client_port_address;
                let wildcard = !self.seen.contains_key("clientPortAddress")
                    || address
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.is_unspecified());
                let agrees =
                    self.cfg.client_port == client.port && (wildcard || *address == client.host);
                if !agrees {
                    return Err(self.at(line).error(
                        "clientPort",
                        format!(
                            "clientPort/clientPortAddress ({}) differ from this server's client address in its server.{} line ({}:{}); make them agree or remove one",
                            self.cfg.client_host_port(),
                            self.cfg.server_id.unwrap_or(0),
                            client.host,
                            client.port
                        ),
                    ));
                }
            }
            self.cfg.client_port = client.port;
            self.cfg.client_port_address = client.host;
            return Ok(());
        }
        self.default_client_port()
    }

    fn default_client_port(&mut self) -> Result<(), ConfigError> {
        if self.seen.contains_key("clientPort") {
            return Ok(());
        }
        if let Some(&line) = self.seen.get("clientPortAddress") {
            return Err(self.at(line).error(
                "clientPortAddress",
                "clientPortAddress is set but clientPort is not; add clientPort=2181 (or the port to use)",
            ));
        }
        self.cfg.notes.push(format!(
            "{}: clientPort is not set; listening on {DEFAULT_CLIENT_PORT}",
            self.path.display()
        ));
        Ok(())
    }
}

fn parse_server_id(origin: &Origin, key: &str) -> Result<u64, ConfigError> {
    let digits = &key["server.".len()..];
    match digits.parse::<u64>() {
        Ok(id) if id <= 255 => Ok(id),
        Ok(id) => Err(origin.error(
            key,
            format!("server id {id} is out of range; ids go from 0 to 255 (the id fills the top byte of session ids)"),
        )),
        Err(_) => Err(origin.error(key, format!("`{digits}` is not a server id; use server.N with N from 0 to 255"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A scratch directory with a zoo.cfg whose `@DIR@` is replaced by the directory.
    struct Scratch {
        dir: tempfile::TempDir,
    }

    impl Scratch {
        fn new() -> Scratch {
            Scratch {
                dir: tempfile::tempdir().expect("tempdir"),
            }
        }
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.path(name);
            let text = text.replace("@DIR@", &self.dir.path().display().to_string());
            fs::write(&p, text).expect("write");
            p
        }
        fn cfg(&self, text: &str) -> Result<Config, ConfigError> {
            Config::from_file(self.write("zoo.cfg", text))
        }
    }

    fn ok(text: &str) -> Config {
        let s = Scratch::new();
        s.cfg(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> ConfigError {
        let s = Scratch::new();
        s.cfg(text).expect_err("should fail")
    }

    fn invalid(e: &ConfigError) -> (usize, &str, &str) {
        match e {
            ConfigError::Invalid {
                line, key, message, ..
            } => (*line, key.as_str(), message.as_str()),
            other => panic!("expected ConfigError::Invalid, got {other:?}: {other}"),
        }
    }

    fn props(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn args(list: &[&str]) -> Result<Cli, ConfigError> {
        parse_cli(list.iter().map(|s| s.to_string()))
    }

    // ---- defaults ----

    #[test]
    fn no_config_is_a_standalone_server_with_defaults() {
        let c = Config::default();
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.data_dir, PathBuf::from("./keel-data"));
        assert_eq!(c.data_log_dir, c.data_dir);
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.client_port_address, "0.0.0.0");
        assert_eq!(c.client_bind_address(), "0.0.0.0");
        assert_eq!(c.client_host_port(), "0.0.0.0:2181");
        let v6 = Config {
            client_port_address: "::1".into(),
            ..Config::default()
        };
        assert_eq!(
            (
                v6.client_bind_address().as_str(),
                v6.client_host_port().as_str()
            ),
            ("[::1]", "[::1]:2181")
        );
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (4000, 40000)
        );
        assert_eq!(c.snap_retain_count, 3);
        assert_eq!(c.purge_interval_hours, 0);
        assert_eq!(c.four_letter_words, BTreeSet::from(["srvr".to_string()]));
        assert_eq!(c.jute_max_buffer, 0xfffff);
        assert_eq!(c.super_digest, None);
        assert!(!c.read_only_mode && !c.extended_types);
        assert_eq!(c.snap_count, 100_000);
        assert_eq!(c.global_outstanding_limit, 1000);
        assert!(c.servers.is_empty() && c.server_id.is_none() && !c.is_distributed());
        assert!(c.admin_enable_server);
        assert_eq!(c.admin_server_port, 8080);
        assert!(c.warnings().is_empty());
        assert_eq!(Config::load(None, &[]).expect("load"), c);
    }

    #[test]
    fn zoo_cfg_without_tick_time_uses_zookeepers_3000() {
        let c = ok("dataDir=@DIR@/data\nclientPort=2181\n");
        assert_eq!(c.tick_time_ms, 3000);
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (6000, 60000)
        );
    }

    #[test]
    fn sample_zoo_cfg() {
        let c = ok("# The number of milliseconds of each tick\ntickTime=2000\ninitLimit=10\nsyncLimit=5\n\
                    dataDir=@DIR@/zookeeper\nclientPort=2181\n#maxClientCnxns=60\n#autopurge.snapRetainCount=3\n");
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!((c.init_limit, c.sync_limit), (10, 5));
        assert!(c.data_dir.ends_with("zookeeper"));
        assert_eq!(c.data_log_dir, c.data_dir);
        assert_eq!(c.client_port, 2181);
        assert!(c.unknown.is_empty(), "{:?}", c.unknown);
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    // ---- every key ----

    #[test]
    fn every_core_key() {
        let c = ok("tickTime=100\ndataDir=@DIR@/d\ndataLogDir=@DIR@/l\nclientPort=2999\nclientPortAddress=127.0.0.1\n\
                    clientPortListenBacklog=128\nmaxClientCnxns=0\nminSessionTimeout=300\nmaxSessionTimeout=9000\n\
                    initLimit=7\nsyncLimit=3\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=24\n\
                    standaloneEnabled=true\nreconfigEnabled=TRUE\nelectionAlg=3\npeerType=participant\nversion=1f\n");
        assert_eq!(c.tick_time_ms, 100);
        assert!(c.data_dir.ends_with("d") && c.data_log_dir.ends_with("l"));
        assert_eq!(c.client_port, 2999);
        assert_eq!(c.client_port_address, "127.0.0.1");
        assert_eq!(c.client_port_listen_backlog, Some(128));
        assert_eq!(c.max_client_cnxns, 0);
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (300, 9000)
        );
        assert_eq!((c.init_limit, c.sync_limit), (7, 3));
        assert_eq!((c.snap_retain_count, c.purge_interval_hours), (5, 24));
        assert!(c.standalone_enabled && c.reconfig_enabled);
        assert_eq!(c.config_version, 0x1f);
        assert!(c.unknown.is_empty(), "{:?}", c.unknown);
    }

    #[test]
    fn every_property_key_from_zoo_cfg() {
        let c = ok("dataDir=@DIR@\nclientPort=2181\nsnapCount=5000\nglobalOutstandingLimit=77\n\
                    4lw.commands.whitelist=ruok, stat ,,conf\nDigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
                    extendedTypesEnabled=true\nadmin.enableServer=false\nadmin.serverPort=9090\nadmin.serverAddress=127.0.0.1\n\
                    datadir.autocreate=false\njute.maxbuffer=0x400000\nreadonlymode.enabled=true\n");
        assert_eq!(c.snap_count, 5000);
        assert_eq!(c.global_outstanding_limit, 77);
        let words: Vec<&str> = c.four_letter_words.iter().map(String::as_str).collect();
        assert_eq!(words, ["conf", "isro", "ruok", "srvr", "stat"]);
        assert_eq!(
            c.super_digest.as_deref(),
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
        );
        assert!(c.extended_types && c.read_only_mode);
        assert!(!c.admin_enable_server);
        assert_eq!(c.admin_server_port, 9090);
        assert_eq!(c.admin_server_address, "127.0.0.1");
        assert!(!c.data_dir_autocreate);
        assert_eq!(c.jute_max_buffer, 0x400000);
        assert!(c.unknown.is_empty(), "{:?}", c.unknown);
    }

    #[test]
    fn zookeeper_prefixed_keys_work_in_zoo_cfg_too() {
        let c = ok("dataDir=@DIR@\nclientPort=2181\nzookeeper.snapCount=42\nzookeeper.extendedTypesEnabled=true\n");
        assert_eq!(c.snap_count, 42);
        assert!(c.extended_types);
    }

    #[test]
    fn four_letter_word_lists() {
        let all = ok("dataDir=@DIR@\nclientPort=1\n4lw.commands.whitelist=*\n");
        assert_eq!(all.four_letter_words.len(), KNOWN_FOUR_LETTER_WORDS.len());
        assert!(all.is_four_letter_word_enabled("mntr"));
        let none = ok("dataDir=@DIR@\nclientPort=1\n4lw.commands.whitelist=\n");
        assert_eq!(none.four_letter_words, BTreeSet::from(["srvr".to_string()]));
        assert!(none.is_four_letter_word_enabled("srvr"));
        assert!(!none.is_four_letter_word_enabled("ruok"));
        assert!(!none.is_four_letter_word_enabled("isro"));
        let odd = ok("dataDir=@DIR@\nclientPort=1\n4lw.commands.whitelist=ruok,bogus\n");
        assert!(
            odd.four_letter_words.contains("bogus"),
            "kept, as ZooKeeper keeps it"
        );
        assert!(
            odd.warnings()
                .iter()
                .any(|w| w.contains("`bogus` is not a four-letter word")),
            "{:?}",
            odd.warnings()
        );
    }

    #[test]
    fn adjusted_values_are_noted() {
        let c = ok("dataDir=@DIR@\nclientPort=1\nautopurge.snapRetainCount=1\nsnapCount=1\nautopurge.purgeInterval=-5\n\
                    clientPortListenBacklog=-1\nminSessionTimeout=-1\n");
        assert_eq!(c.snap_retain_count, 3);
        assert_eq!(c.snap_count, 2);
        assert_eq!(c.purge_interval_hours, 0);
        assert_eq!(c.client_port_listen_backlog, None);
        assert_eq!(c.min_session_timeout_ms, 6000);
        let w = c.warnings().join("\n");
        assert!(
            w.contains("line 3: autopurge.snapRetainCount: 1 is below the minimum of 3"),
            "{w}"
        );
        assert!(
            w.contains("line 4: snapCount: snapCount must be 2 or more"),
            "{w}"
        );
    }

    #[test]
    fn missing_client_port_defaults_to_2181_with_a_note() {
        let c = ok("dataDir=@DIR@\n");
        assert_eq!(c.client_port, 2181);
        assert!(c
            .warnings()
            .iter()
            .any(|w| w.contains("clientPort is not set")));
    }

    #[test]
    fn jute_maxbuffer_reads_like_integer_decode() {
        for (text, n) in [
            ("1048575", 1048575),
            ("0xfffff", 0xfffff),
            ("0X10", 16),
            ("#20", 32),
            ("010", 8),
            ("+5", 5),
        ] {
            let c = ok(&format!(
                "dataDir=@DIR@\nclientPort=1\njute.maxbuffer={text}\n"
            ));
            assert_eq!(c.jute_max_buffer, n, "{text}");
        }
        for bad in ["0", "-1", "0x", "ten", "4294967296", "09"] {
            let e = err(&format!(
                "dataDir=@DIR@\nclientPort=1\njute.maxbuffer={bad}\n"
            ));
            let (line, key, _) = invalid(&e);
            assert_eq!((line, key), (3, "jute.maxbuffer"), "{bad}: {e}");
        }
    }

    // ---- properties syntax ----

    #[test]
    fn java_properties_syntax() {
        let text = "  # comment\n! also a comment\n\n   tickTime = 2500  \nclientPort:2182\ndataDir    @DIR@/with\\\n    continued\n\
                    4lw.commands.whitelist=ruok,\\\n  stat\r\nadmin.serverAddress\t=\t127.0.0.1\rsnapCount=1\\u0030\nkey\\ with\\=odd=x\n\
                    # comment ending in backslash \\\nglobalOutstandingLimit=5\n";
        let c = ok(text);
        assert_eq!(c.tick_time_ms, 2500);
        assert_eq!(c.client_port, 2182);
        assert!(c.data_dir.ends_with("withcontinued"), "{:?}", c.data_dir);
        assert!(c.four_letter_words.contains("stat") && c.four_letter_words.contains("ruok"));
        assert_eq!(c.admin_server_address, "127.0.0.1");
        assert_eq!(c.snap_count, 10);
        assert_eq!(c.global_outstanding_limit, 5);
        assert_eq!(c.unknown, vec![(12, "key with=odd".to_string())]);
    }

    #[test]
    fn property_parser_details() {
        let e =
            parse_properties("a=1\nb\\\n\nc=3\nd\ne:\n  f  =  g h  \nlast=x\\").expect("parses");
        let got: Vec<(usize, &str, &str)> = e
            .iter()
            .map(|x| (x.line, x.key.as_str(), x.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "a", "1"),
                (2, "b", ""),
                (4, "c", "3"),
                (5, "d", ""),
                (6, "e", ""),
                (7, "f", "g h"),
                (8, "last", "x")
            ]
        );
        // Escaped backslash at the end does not continue; \u escapes, including surrogate pairs.
        let e = parse_properties("p=a\\\\\nq=\\u00e9\\uD83D\\uDE00\\t!").expect("parses");
        assert_eq!(e[0].value, "a\\");
        assert_eq!(e[1].value, "é😀\t!");
        let (line, key, msg) = parse_properties("ok=1\nbad=\\u12G4\n").expect_err("malformed");
        assert_eq!((line, key.as_str()), (2, "bad"));
        assert!(msg.contains("\\uXXXX"), "{msg}");
    }

    #[test]
    fn later_duplicates_win() {
        let c = ok("dataDir=@DIR@\nclientPort=1\nclientPort=2\ntickTime=abc\ntickTime=10\n");
        assert_eq!(c.client_port, 2);
        assert_eq!(c.tick_time_ms, 10);
    }

    #[test]
    fn latin1_and_bom() {
        let s = Scratch::new();
        let mut bytes = b"\xef\xbb\xbfdataDir=".to_vec();
        bytes.extend_from_slice(s.dir.path().to_string_lossy().as_bytes());
        bytes.extend_from_slice(b"\nclientPort=1\nfoo=caf\xe9\n");
        let p = s.path("zoo.cfg");
        fs::write(&p, bytes).expect("write");
        let c = Config::from_file(&p).expect("parses");
        assert_eq!(c.unknown, vec![(3, "foo".to_string())]);
    }

    // ---- errors name file, line and key ----

    #[test]
    fn bad_values_name_line_and_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("tickTime=abc", "tickTime", "not a whole number"),
            ("tickTime=0", "tickTime", "out of range"),
            ("tickTime=-2000", "tickTime", "out of range"),
            ("tickTime=99999999999", "tickTime", "out of range"),
            ("clientPort=70000", "clientPort", "1 to 65535"),
            ("clientPort=0", "clientPort", "1 to 65535"),
            ("clientPort=http", "clientPort", "not a port number"),
            (
                "clientPortAddress=not a host",
                "clientPortAddress",
                "neither a host name nor an IP",
            ),
            ("maxClientCnxns=-1", "maxClientCnxns", "0 for unlimited"),
            (
                "minSessionTimeout=1s",
                "minSessionTimeout",
                "not a whole number",
            ),
            ("maxSessionTimeout=-7", "maxSessionTimeout", "out of range"),
            ("initLimit=ten", "initLimit", "not a whole number"),
            ("syncLimit=-1", "syncLimit", "out of range"),
            (
                "autopurge.snapRetainCount=x",
                "autopurge.snapRetainCount",
                "not a whole number",
            ),
            (
                "autopurge.purgeInterval=1h",
                "autopurge.purgeInterval",
                "not a whole number",
            ),
            (
                "standaloneEnabled=yes",
                "standaloneEnabled",
                "use true or false",
            ),
            ("reconfigEnabled=1", "reconfigEnabled", "use true or false"),
            ("electionAlg=0", "electionAlg", "only electionAlg=3"),
            ("peerType=leader", "peerType", "participant or observer"),
            ("dataLogDir=", "dataLogDir", "empty"),
            ("version=xyz", "version", "hexadecimal"),
            ("snapCount=many", "snapCount", "not a whole number"),
            (
                "globalOutstandingLimit=0",
                "globalOutstandingLimit",
                "out of range",
            ),
            (
                "extendedTypesEnabled=yes",
                "extendedTypesEnabled",
                "use true or false",
            ),
            (
                "readonlymode.enabled=on",
                "readonlymode.enabled",
                "use true or false",
            ),
            (
                "admin.enableServer=no",
                "admin.enableServer",
                "use true or false",
            ),
            ("admin.serverPort=99999", "admin.serverPort", "1 to 65535"),
            (
                "DigestAuthenticationProvider.superDigest=nocolon",
                "DigestAuthenticationProvider.superDigest",
                "USER:DIGEST",
            ),
            (
                "DigestAuthenticationProvider.superDigest=super:not base64!",
                "DigestAuthenticationProvider.superDigest",
                "USER:DIGEST",
            ),
            ("group.1=1:2:3", "group.1", "hierarchical quorums"),
            ("weight.1=1", "weight.1", "hierarchical quorums"),
            ("server.x=h:1:2", "server.x", "not a server id"),
            ("server.256=h:1:2", "server.256", "0 to 255"),
        ];
        for (line_text, key, expect) in cases {
            let e = err(&format!("dataDir=@DIR@\n# comment\n{line_text}\n# end\n"));
            let (line, got_key, message) = invalid(&e);
            assert_eq!((line, got_key), (3, *key), "{line_text}: {e}");
            assert!(message.contains(expect), "{line_text}: {e}");
            let shown = e.to_string();
            assert!(
                shown.contains("zoo.cfg, line 3: ") && shown.contains(key),
                "{shown}"
            );
        }
    }

    #[test]
    fn unreadable_file_is_named() {
        let s = Scratch::new();
        let missing = s.path("nope.cfg");
        let e = Config::from_file(&missing).expect_err("missing");
        assert!(
            matches!(e, ConfigError::Io { ref path, .. } if *path == missing),
            "{e:?}"
        );
        assert!(e.to_string().contains("nope.cfg"), "{e}");
        let e = Config::from_file(s.dir.path()).expect_err("a directory");
        assert!(matches!(e, ConfigError::Io { .. }), "{e:?}");
    }

    #[test]
    fn data_dir_is_required_in_a_zoo_cfg() {
        let e = err("tickTime=2000\nclientPort=2181\n");
        assert!(matches!(e, ConfigError::File { .. }), "{e:?}");
        assert!(e.to_string().contains("dataDir is not set"), "{e}");
    }

    #[test]
    fn min_session_timeout_above_max_is_an_error_naming_the_key() {
        let e =
            err("dataDir=@DIR@\nclientPort=1\nminSessionTimeout=5000\nmaxSessionTimeout=4000\n");
        let (line, key, msg) = invalid(&e);
        assert_eq!((line, key), (4, "maxSessionTimeout"));
        assert!(
            msg.contains("minSessionTimeout=5000 must not be larger than maxSessionTimeout=4000"),
            "{msg}"
        );
        // Against a default: the key that was set is named.
        let e = err("tickTime=1000\ndataDir=@DIR@\nclientPort=1\nminSessionTimeout=30000\n");
        let (line, key, msg) = invalid(&e);
        assert_eq!((line, key), (4, "minSessionTimeout"));
        assert!(
            msg.contains("maxSessionTimeout 20000 (the default, 20 × tickTime)"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_property_escape_names_the_line() {
        let e = err("dataDir=@DIR@\nclientPort=1\nsnapCount=\\u00\n");
        let (line, key, _) = invalid(&e);
        assert_eq!((line, key), (3, "snapCount"));
    }

    // ---- unknown keys are warnings ----

    #[test]
    fn unknown_keys_are_warnings_not_errors() {
        let c = ok("dataDir=@DIR@\nclientPort=2181\nserverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
                    authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
                    metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
                    metricsProvider.httpPort=7000\nsecureClientPort=2281\nsyncEnabled=true\nTickTime=5\n=orphan\n");
        let keys: Vec<(usize, &str)> = c.unknown.iter().map(|(l, k)| (*l, k.as_str())).collect();
        assert_eq!(
            keys,
            [
                (3, "serverCnxnFactory"),
                (4, "authProvider.1"),
                (5, "metricsProvider.className"),
                (6, "metricsProvider.httpPort"),
                (7, "secureClientPort"),
                (8, "syncEnabled"),
                (9, "TickTime"),
                (10, ""),
            ]
        );
        let w = c.warnings();
        assert!(
            w[0].ends_with("zoo.cfg, line 3: serverCnxnFactory: unknown setting; ignored"),
            "{}",
            w[0]
        );
        assert!(
            w[2].contains(
                "line 5: metricsProvider.className: a ZooKeeper setting Keel does not use; ignored"
            ),
            "{}",
            w[2]
        );
        assert!(
            w[6].contains("TickTime: unknown setting; did you mean tickTime?"),
            "{}",
            w[6]
        );
        assert!(w[7].contains("(empty key)"), "{}", w[7]);
        assert_eq!(c.tick_time_ms, 3000);
    }

    // ---- -D properties ----

    #[test]
    fn system_properties_set_every_property() {
        let mut c = Config::default();
        c.apply_system_properties(&props(&[
            ("zookeeper.snapCount", "20"),
            ("zookeeper.globalOutstandingLimit", "9"),
            ("zookeeper.4lw.commands.whitelist", "mntr,conf"),
            (
                "zookeeper.DigestAuthenticationProvider.superDigest",
                "super:abc=",
            ),
            ("zookeeper.extendedTypesEnabled", "true"),
            ("readonlymode.enabled", "true"),
            ("jute.maxbuffer", "4194304"),
            ("zookeeper.admin.enableServer", "false"),
            ("zookeeper.admin.serverPort", "8081"),
            ("zookeeper.admin.serverAddress", "[::1]"),
            ("zookeeper.datadir.autocreate", "false"),
        ]))
        .expect("valid");
        assert_eq!(c.snap_count, 20);
        assert_eq!(c.global_outstanding_limit, 9);
        let words: Vec<&str> = c.four_letter_words.iter().map(String::as_str).collect();
        assert_eq!(words, ["conf", "isro", "mntr", "srvr"]);
        assert_eq!(c.super_digest.as_deref(), Some("super:abc="));
        assert!(c.extended_types && c.read_only_mode);
        assert_eq!(c.jute_max_buffer, 4 << 20);
        assert!(!c.admin_enable_server);
        assert_eq!(c.admin_server_port, 8081);
        assert_eq!(c.admin_server_address, "::1");
        assert!(!c.data_dir_autocreate);
        assert!(c.notes.is_empty(), "{:?}", c.notes);
    }

    #[test]
    fn system_properties_override_the_file() {
        let s = Scratch::new();
        let path = s.write(
            "zoo.cfg",
            "dataDir=@DIR@\nclientPort=1\nsnapCount=10\n4lw.commands.whitelist=ruok\n",
        );
        let c = Config::load(Some(&path), &props(&[("zookeeper.snapCount", "30")])).expect("valid");
        assert_eq!(c.snap_count, 30);
        assert!(c.is_four_letter_word_enabled("ruok"));
        // Turning read-only on from -D adds isro to the file's list.
        let c =
            Config::load(Some(&path), &props(&[("readonlymode.enabled", "true")])).expect("valid");
        assert!(c.four_letter_words.contains("isro") && c.four_letter_words.contains("ruok"));
    }

    #[test]
    fn bad_system_property_names_the_argument() {
        let mut c = Config::default();
        let e = c
            .apply_system_properties(&props(&[("zookeeper.snapCount", "lots")]))
            .expect_err("bad");
        assert!(
            matches!(e, ConfigError::Property { ref name, ref value, .. } if name == "zookeeper.snapCount" && value == "lots")
        );
        assert!(
            e.to_string().starts_with("-Dzookeeper.snapCount=lots: "),
            "{e}"
        );
        for (name, value) in [
            ("jute.maxbuffer", "big"),
            ("readonlymode.enabled", "yes"),
            ("zookeeper.extendedTypesEnabled", "1"),
            ("zookeeper.admin.serverPort", "0"),
            ("zookeeper.globalOutstandingLimit", "-3"),
            ("zookeeper.DigestAuthenticationProvider.superDigest", ":x"),
        ] {
            let e = Config::default()
                .apply_system_properties(&props(&[(name, value)]))
                .expect_err(name);
            assert!(
                e.to_string().starts_with(&format!("-D{name}={value}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn jvm_properties_are_ignored_silently_and_unknown_zookeeper_ones_noted() {
        let mut c = Config::default();
        c.apply_system_properties(&props(&[
            ("zookeeper.log.dir", "/var/log/zookeeper"),
            ("zookeeper.log.file", "zookeeper.log"),
            ("zookeeper.root.logger", "INFO,CONSOLE"),
            (
                "log4j.configuration",
                "file:/etc/zookeeper/conf/log4j.properties",
            ),
            ("com.sun.management.jmxremote", ""),
            ("com.sun.management.jmxremote.local.only", "false"),
            ("java.net.preferIPv4Stack", "true"),
            ("file.encoding", "UTF-8"),
            ("jline.terminal", "none"),
            ("zookeeper.jmx.log4j.disable", "true"),
            ("zookeeper.nio.sessionlessCnxnTimeout", "5000"),
            ("znode.container.checkIntervalMs", "100"),
            ("something.else", "x"),
        ]))
        .expect("valid");
        assert!(c.notes.is_empty(), "{:?}", c.notes);
        assert_eq!(c, Config::default());

        c.apply_system_properties(&props(&[
            (
                "zookeeper.serverCnxnFactory",
                "org.apache.zookeeper.server.NettyServerCnxnFactory",
            ),
            ("snapCount", "5"),
            ("tickTime", "5"),
        ]))
        .expect("valid");
        let w = c.warnings();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("zookeeper.serverCnxnFactory") && w[0].contains("does not use"),
            "{}",
            w[0]
        );
        assert!(
            w[1].contains("did you mean -Dzookeeper.snapCount?"),
            "{}",
            w[1]
        );
        assert!(w[2].contains("zoo.cfg setting"), "{}", w[2]);
        assert_eq!(c.snap_count, DEFAULT_SNAP_COUNT);
        assert_eq!(c.tick_time_ms, DEFAULT_TICK_TIME_MS);
    }

    #[test]
    fn empty_super_digest_means_none() {
        let mut c = Config::default();
        c.apply_system_properties(&props(&[(
            "zookeeper.DigestAuthenticationProvider.superDigest",
            "super:x",
        )]))
        .expect("valid");
        c.apply_system_properties(&props(&[(
            "zookeeper.DigestAuthenticationProvider.superDigest",
            "",
        )]))
        .expect("valid");
        assert_eq!(c.super_digest, None);
    }

    // ---- server lines, myid ----

    #[test]
    fn server_spec_forms() {
        let s = ServerSpec::parse(1, "zk1.example.com:2888:3888").expect("plain");
        assert_eq!(
            s.addresses,
            [PeerAddress {
                host: "zk1.example.com".into(),
                quorum_port: 2888,
                election_port: 3888
            }]
        );
        assert_eq!((s.role, s.client.clone()), (PeerRole::Participant, None));
        assert_eq!(s.to_string(), "zk1.example.com:2888:3888:participant");

        let s = ServerSpec::parse(2, "10.0.0.2:2888:3888:observer;2181").expect("observer + port");
        assert_eq!(s.role, PeerRole::Observer);
        assert_eq!(
            s.client,
            Some(ClientAddress {
                host: "0.0.0.0".into(),
                port: 2181
            })
        );
        assert_eq!(s.to_string(), "10.0.0.2:2888:3888:observer;0.0.0.0:2181");

        let s = ServerSpec::parse(3, "[::1]:2888:3888:Participant;[::1]:2181").expect("ipv6");
        assert_eq!(s.addresses[0].host, "::1");
        assert_eq!(
            s.client,
            Some(ClientAddress {
                host: "::1".into(),
                port: 2181
            })
        );
        assert_eq!(s.to_string(), "[::1]:2888:3888:participant;[::1]:2181");

        let s = ServerSpec::parse(4, "b:1:2|a:3:4;h:5").expect("multi-address");
        assert_eq!(s.addresses.len(), 2);
        assert_eq!(s.to_string(), "a:3:4|b:1:2:participant;h:5");

        // Java's split drops a trailing empty part.
        assert_eq!(
            ServerSpec::parse(5, "h:1:2;").expect("trailing ;").client,
            None
        );

        for bad in [
            "",
            "h:1",
            "h:1:2:3:4",
            "h:1:2;3;4",
            "h:x:2",
            "h:1:70000",
            "h:5:5",
            "h:1:2:leader",
            "[::1:2888:3888",
            "h:1:2;x",
            "h:1:2;a:b:c",
            "a:1:2:observer|b:3:4:participant",
            " :1:2",
            "h h:1:2",
        ] {
            assert!(
                ServerSpec::parse(9, bad).is_err(),
                "`{bad}` should be rejected"
            );
        }
    }

    fn ensemble(myid: Option<&str>, extra: &str) -> (Scratch, Result<Config, ConfigError>) {
        let s = Scratch::new();
        if let Some(id) = myid {
            s.write("myid", id);
        }
        let text = format!(
            "tickTime=2000\ndataDir=@DIR@\ninitLimit=10\nsyncLimit=5\nserver.1=127.0.0.1:2888:3888\n\
             server.2=127.0.0.1:2889:3889;2182\nserver.3=127.0.0.1:2890:3890:participant;127.0.0.1:2183\n\
             server.4=127.0.0.1:2891:3891:observer\n{extra}"
        );
        let r = s.cfg(&text);
        (s, r)
    }

    #[test]
    fn ensemble_with_myid() {
        let (_s, r) = ensemble(Some("3\n"), "");
        let c = r.unwrap_or_else(|e| panic!("{e}"));
        assert!(c.is_distributed());
        assert_eq!(c.server_id, Some(3));
        assert_eq!(
            c.servers.iter().map(|s| s.id).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(c.servers[0].line, 5);
        assert_eq!(c.this_server().map(|s| s.id), Some(3));
        // The server line's client address is this server's.
        assert_eq!(
            (c.client_port_address.as_str(), c.client_port),
            ("127.0.0.1", 2183)
        );

        let (_s, r) = ensemble(Some("1"), "clientPort=2181\n");
        let c = r.expect("valid");
        assert_eq!(
            (c.client_port_address.as_str(), c.client_port),
            ("0.0.0.0", 2181)
        );
    }

    #[test]
    fn ensemble_errors() {
        let (s, r) = ensemble(None, "");
        let e = r.expect_err("no myid");
        assert!(
            matches!(e, ConfigError::File { ref path, .. } if *path == s.path("myid")),
            "{e:?}"
        );
        assert!(e.to_string().contains("myid file is missing"), "{e}");

        let (_s, r) = ensemble(Some("three"), "");
        let e = r.expect_err("bad myid");
        assert!(
            e.to_string().contains("myid") && e.to_string().contains("`three` is not a server id"),
            "{e}"
        );

        let (_s, r) = ensemble(Some("9"), "");
        assert!(r
            .expect_err("unlisted")
            .to_string()
            .contains("server id 9 is not among the server.N lines"));

        let (_s, r) = ensemble(Some("2"), "clientPort=2181\n");
        let (line, key, msg) = invalid(r.as_ref().expect_err("clash"));
        assert_eq!((line, key), (9, "clientPort"));
        assert!(
            msg.contains("differ from this server's client address"),
            "{msg}"
        );

        let s = Scratch::new();
        s.write("myid", "1");
        let e = s
            .cfg("dataDir=@DIR@\nsyncLimit=5\nserver.1=a:1:2\nserver.2=b:1:2\n")
            .expect_err("initLimit");
        assert!(e.to_string().contains("initLimit is not set"), "{e}");
        let e = s
            .cfg("dataDir=@DIR@\ninitLimit=5\nserver.1=a:1:2\nserver.2=b:1:2\n")
            .expect_err("syncLimit");
        assert!(e.to_string().contains("syncLimit is not set"), "{e}");

        let e = s
            .cfg("dataDir=@DIR@\nserver.1=a:1:2:observer\n")
            .expect_err("observers only");
        assert!(e.to_string().contains("only observers"), "{e}");
        let e = s
            .cfg("dataDir=@DIR@\nserver.1=a:1:2\nserver.2=b:1:2:observer\n")
            .expect_err("observer w/o quorum");
        assert!(e.to_string().contains("observers need a quorum"), "{e}");
        let e = s
            .cfg("dataDir=@DIR@\nstandaloneEnabled=false\n")
            .expect_err("no participants");
        assert!(e.to_string().contains("standaloneEnabled=false"), "{e}");

        let e = s
            .cfg("dataDir=@DIR@\nclientPort=1\nserver.1=a:1\n")
            .expect_err("malformed");
        let (line, key, msg) = invalid(&e);
        assert_eq!((line, key), (3, "server.1"));
        assert!(msg.contains("host:quorumPort:electionPort"), "{msg}");

        // TTL nodes cannot use server id 255.
        let s = Scratch::new();
        s.write("myid", "255");
        let text = "dataDir=@DIR@\ninitLimit=5\nsyncLimit=2\nserver.255=a:1:2\nserver.2=b:1:2\nextendedTypesEnabled=true\n";
        let e = s.cfg(text).expect_err("255 + ttl");
        let (line, key, _) = invalid(&e);
        assert_eq!((line, key), (6, "extendedTypesEnabled"));
        let c = s
            .cfg(&text.replace("extendedTypesEnabled=true\n", ""))
            .expect("255 without ttl");
        let mut c2 = c.clone();
        let e = c2
            .apply_system_properties(&props(&[("zookeeper.extendedTypesEnabled", "true")]))
            .expect_err("255 + ttl from -D");
        assert!(
            e.to_string()
                .starts_with("-Dzookeeper.extendedTypesEnabled=true: "),
            "{e}"
        );
    }

    #[test]
    fn peer_type_that_disagrees_with_the_server_line_is_a_warning() {
        let (_s, r) = ensemble(Some("4"), "peerType=observer\n");
        let c = r.expect("valid");
        assert_eq!(c.this_server().map(|s| s.role), Some(PeerRole::Observer));
        assert!(
            c.warnings().iter().all(|w| !w.contains("peerType")),
            "{:?}",
            c.warnings()
        );

        let (_s, r) = ensemble(Some("1"), "peerType=observer\n");
        let c = r.expect("valid");
        // The server.N line wins, as in ZooKeeper.
        assert_eq!(c.this_server().map(|s| s.role), Some(PeerRole::Participant));
        let w = c.warnings();
        assert!(
            w.iter()
                .any(|w| w.contains("line 9: peerType") && w.contains("using the server.1 line")),
            "{w:?}"
        );
        let (_s, r) = ensemble(Some("4"), "peerType=participant\n");
        assert!(r
            .expect("valid")
            .warnings()
            .iter()
            .any(|w| w.contains("peerType=participant")));
    }

    #[test]
    fn empty_or_garbage_myid_is_named() {
        for bad in ["", "\n", "1x", "-1", "256", "0x1"] {
            let (s, r) = ensemble(Some(bad), "");
            let e = r.expect_err(bad);
            assert!(
                matches!(e, ConfigError::File { ref path, .. } if *path == s.path("myid")),
                "{bad:?}: {e:?}"
            );
            assert!(e.to_string().contains("is not a server id"), "{e}");
        }
    }

    #[test]
    fn single_server_line_runs_standalone_like_zookeeper() {
        let c = ok("dataDir=@DIR@\nclientPort=2181\nserver.1=localhost:2888:3888\n");
        assert!(!c.is_distributed());
        assert_eq!(c.server_id, None, "no myid needed");
        assert!(c
            .warnings()
            .iter()
            .any(|w| w.contains("only one server.N line")));
        // With standaloneEnabled=false it is a one-member ensemble and needs the rest.
        let s = Scratch::new();
        s.write("myid", "1");
        let c = s
            .cfg("dataDir=@DIR@\nclientPort=2181\ninitLimit=5\nsyncLimit=2\nstandaloneEnabled=false\nserver.1=localhost:2888:3888\n")
            .expect("valid");
        assert!(c.is_distributed());
        assert_eq!(c.server_id, Some(1));
    }

    #[test]
    fn dynamic_config_file() {
        let s = Scratch::new();
        s.write("myid", "2");
        s.write(
            "zoo.cfg.dynamic.100000000",
            "server.1=a:2888:3888\nserver.2=b:2888:3888;2181\n",
        );
        let c = s
            .cfg("dataDir=@DIR@\ninitLimit=5\nsyncLimit=2\ndynamicConfigFile=@DIR@/zoo.cfg.dynamic.100000000\n")
            .expect("valid");
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.config_version, 0x100000000);
        assert_eq!(c.client_port, 2181);
        assert!(c.membership().ends_with("version=100000000"));

        let e = s
            .cfg("dataDir=@DIR@\ndynamicConfigFile=@DIR@/zoo.cfg.dynamic.100000000\nserver.1=a:2888:3888\n")
            .expect_err("servers in both");
        assert!(
            e.to_string().contains("must be in the dynamic config file"),
            "{e}"
        );

        s.write("bad.dynamic", "server.1=a:2888:3888\nversion=5\n");
        let e = s
            .cfg("dataDir=@DIR@\ndynamicConfigFile=@DIR@/bad.dynamic\n")
            .expect_err("version inside");
        let (line, key, _) = invalid(&e);
        assert_eq!((line, key), (2, "version"));
        assert!(e.to_string().contains("bad.dynamic"), "{e}");

        let e = s
            .cfg("dataDir=@DIR@\ndynamicConfigFile=@DIR@/missing.dynamic\n")
            .expect_err("missing");
        let (line, key, msg) = invalid(&e);
        assert_eq!((line, key), (2, "dynamicConfigFile"));
        assert!(msg.contains("missing.dynamic"), "{msg}");
    }

    // ---- conf ----

    #[test]
    fn describe_conf_standalone_matches_zookeeper_layout() {
        let s = Scratch::new();
        let c = s
            .cfg("tickTime=2000\ndataDir=@DIR@/data\nclientPort=21810\n")
            .expect("valid");
        fs::create_dir_all(s.path("data/version-2")).expect("mkdir");
        fs::write(s.path("data/version-2/log.1"), vec![0u8; 457]).expect("write");
        let d = s.path("data/version-2").display().to_string();
        let expected = format!(
            "clientPort=21810\nsecureClientPort=-1\ndataDir={d}\ndataDirSize=457\ndataLogDir={d}\ndataLogSize=457\n\
             tickTime=2000\nmaxClientCnxns=60\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n\
             clientPortListenBacklog=-1\nserverId=0\n"
        );
        assert_eq!(c.describe_conf(), expected);
    }

    #[test]
    fn describe_conf_ensemble_adds_quorum_settings_and_membership() {
        let (s, r) = ensemble(Some("2"), "");
        let c = r.expect("valid");
        let text = c.describe_conf_with_sizes(1, 2);
        let d = s.dir.path().join("version-2").display().to_string();
        let expected = format!(
            "clientPort=2182\nsecureClientPort=-1\ndataDir={d}\ndataDirSize=1\ndataLogDir={d}\ndataLogSize=2\n\
             tickTime=2000\nmaxClientCnxns=60\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n\
             clientPortListenBacklog=-1\nserverId=2\ninitLimit=10\nsyncLimit=5\nelectionAlg=3\nelectionPort=3889\n\
             quorumPort=2889\npeerType=0\nmembership: \nserver.1=127.0.0.1:2888:3888:participant\n\
             server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n\
             server.3=127.0.0.1:2890:3890:participant;127.0.0.1:2183\nserver.4=127.0.0.1:2891:3891:observer\nversion=0"
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn relative_data_dir_is_printed_absolute() {
        let c = Config::default();
        let text = c.describe_conf_with_sizes(0, 0);
        let line = text.lines().nth(2).expect("dataDir line");
        let path = line.strip_prefix("dataDir=").expect("dataDir=");
        assert!(Path::new(path).is_absolute(), "{line}");
        assert!(path.ends_with("keel-data/version-2"), "{line}");
    }

    // ---- command line ----

    #[test]
    fn cli_forms() {
        assert_eq!(
            args(&["server"]).expect("ok"),
            Cli::Server {
                config: None,
                props: vec![]
            }
        );
        assert_eq!(
            args(&["server", "zoo.cfg"]).expect("ok"),
            Cli::Server {
                config: Some("zoo.cfg".into()),
                props: vec![]
            }
        );
        assert_eq!(
            args(&[
                "server",
                "--config",
                "/etc/zk/zoo.cfg",
                "-Dzookeeper.snapCount=5",
                "-Dreadonlymode.enabled",
                "-Da=b=c"
            ])
            .expect("ok"),
            Cli::Server {
                config: Some("/etc/zk/zoo.cfg".into()),
                props: props(&[
                    ("zookeeper.snapCount", "5"),
                    ("readonlymode.enabled", ""),
                    ("a", "b=c")
                ]),
            }
        );
        assert_eq!(
            args(&["server", "-Djute.maxbuffer=0x100000", "--config=z.cfg"]).expect("ok"),
            Cli::Server {
                config: Some("z.cfg".into()),
                props: props(&[("jute.maxbuffer", "0x100000")])
            }
        );
        assert_eq!(args(&["version"]).expect("ok"), Cli::Version);
        assert_eq!(args(&["--version"]).expect("ok"), Cli::Version);
        assert_eq!(args(&["help"]).expect("ok"), Cli::Help);
        assert_eq!(args(&["-h"]).expect("ok"), Cli::Help);
        assert_eq!(args(&["server", "--help"]).expect("ok"), Cli::Help);
    }

    #[test]
    fn cli_errors_are_usage_errors() {
        for (argv, expect) in [
            (&[][..], "no command"),
            (&["serve"][..], "unknown command `serve`"),
            (
                &["server", "a.cfg", "b.cfg"][..],
                "more than one config file",
            ),
            (&["server", "--config"][..], "needs a file name"),
            (&["server", "-D"][..], "-D must be followed"),
            (&["server", "-D=x"][..], "-D must be followed"),
            (&["server", "-Xmx1g"][..], "Keel is not a JVM"),
            (&["server", "--port", "1"][..], "unknown option `--port`"),
            (&["version", "extra"][..], "takes no arguments"),
        ] {
            let e = args(argv).expect_err(expect);
            assert!(matches!(e, ConfigError::Usage { .. }), "{e:?}");
            assert!(e.to_string().contains(expect), "{argv:?}: {e}");
            assert!(e.to_string().contains("keel help"), "{e}");
        }
    }

    #[test]
    fn load_combines_file_and_properties() {
        let s = Scratch::new();
        let path = s.write("zoo.cfg", "dataDir=@DIR@\nclientPort=3000\nfoo=bar\n");
        let Cli::Server { config, props } = args(&[
            "server",
            path.to_str().expect("utf-8"),
            "-Dzookeeper.extendedTypesEnabled=true",
            "-Dzookeeper.bogus=1",
        ])
        .expect("ok") else {
            panic!("server expected");
        };
        let c = Config::load(config.as_deref(), &props).expect("valid");
        assert_eq!(c.client_port, 3000);
        assert!(c.extended_types);
        let w = c.warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("line 3: foo: unknown setting; ignored"),
            "{}",
            w[0]
        );
        assert!(w[1].contains("-Dzookeeper.bogus=1"), "{}", w[1]);
    }
}
