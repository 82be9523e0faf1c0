//! Reading one `zoo.cfg`: each key in turn ([`FileParse`]), then the ensemble it
//! describes (`server.N` lines, `myid`, the dynamic configuration file).

use super::*;

/// State of reading one `zoo.cfg`.
pub(super) struct FileParse<'a> {
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
    pub(super) fn new(path: &'a Path) -> Self {
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

    pub(super) fn run(mut self, entries: Vec<Entry>) -> Result<Config, ConfigError> {
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

pub(super) fn parse_server_id(origin: &Origin, key: &str) -> Result<u64, ConfigError> {
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
