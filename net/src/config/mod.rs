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
}

mod keys;
mod properties;
#[cfg(test)]
mod tests;
mod zoo_cfg;

pub use keel_engine::zab::server_spec::*;
pub use keys::*;
use properties::*;
use zoo_cfg::*;

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
    /// `server.N=...` line per server in id order, then `version=<hex>`, without a final
    /// newline; written by the engine's one printer of membership text.
    pub fn membership(&self) -> String {
        keel_engine::zab::Membership {
            version: self.config_version as i64,
            servers: self
                .servers
                .iter()
                .map(|s| {
                    let server = keel_engine::zab::membership::Server {
                        spec: s.to_string(),
                        observer: s.role == PeerRole::Observer,
                    };
                    (s.id, server)
                })
                .collect(),
        }
        .to_text()
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
