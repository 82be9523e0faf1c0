//! Which keys and properties Keel knows: the four-letter words, the system property
//! names, the `zoo.cfg` keys ZooKeeper parses itself, the ones accepted but not used,
//! and the JVM noise ignored without a word.

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
pub(super) const CORE_KEYS: [&str; 22] = [
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
pub(super) const ZOOKEEPER_KEYS_NOT_USED: [&str; 24] = [
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

/// The canonical system property a `zoo.cfg` key stands for, when it is not one of the keys
/// ZooKeeper parses itself.
pub(super) fn property_for_file_key(key: &str) -> String {
    if key == props::JUTE_MAX_BUFFER || key == props::READ_ONLY || key.starts_with("zookeeper.") {
        key.to_string()
    } else {
        format!("zookeeper.{key}")
    }
}

pub(super) fn is_core_key(key: &str) -> bool {
    CORE_KEYS.contains(&key)
        || key.starts_with("server.")
        || key.starts_with("group.")
        || key.starts_with("weight.")
}

pub(super) fn is_zookeeper_key_not_used(key: &str) -> bool {
    ZOOKEEPER_KEYS_NOT_USED.contains(&key) || key.starts_with("metricsProvider.")
}

/// `-D` properties that other parts of Keel read straight from the property list
/// (`ServerOptions::from_config`): no warning for them here.
pub(super) const PROPERTIES_READ_ELSEWHERE: [&str; 6] = [
    "keel.leaderSilenceMs",
    "zookeeper.nio.sessionlessCnxnTimeout",
    "keel.maxQueuedReplyBytes",
    "keel.maxPeerFrameBytes",
    "znode.container.checkIntervalMs",
    "znode.container.maxNeverUsedIntervalMs",
];

/// JVM, logging and JMX properties from ZooKeeper's start scripts: ignored without a word.
pub(super) fn is_jvm_noise(name: &str) -> bool {
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

/// A known key that differs from `key` only in letter case.
pub(super) fn near_miss(key: &str) -> Option<String> {
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
