//! The settings the engine needs (the rest of the configuration lives in `net`): its
//! own module, so that prep and the engine both read it without depending on each other.

/// Settings the engine needs (the rest of the configuration lives in `net`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub tick_ms: i32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `super:base64(sha1)` from `zookeeper.DigestAuthenticationProvider.superDigest`.
    pub super_digest: Option<String>,
    /// `zookeeper.skipACL=yes`: no permission is ever checked.
    pub skip_acl: bool,
    /// `zookeeper.extendedTypesEnabled`: TTL nodes.
    pub extended_types: bool,
    /// `znode.container.checkIntervalMs`: how often containers and TTL nodes are reaped.
    pub container_check_ms: i64,
    /// `znode.container.maxNeverUsedIntervalMs`: reap a container that never had children
    /// after this long (0 = never).
    pub container_never_used_ms: i64,
    pub server_id: i64,
    /// Seeds session passwords; persisted with each session, so any value works.
    pub secret: u64,
    /// `localSessionsEnabled` (ensembles): new sessions live only on the server the
    /// client connected to and cost no transaction.
    pub local_sessions: bool,
    /// `localSessionsUpgradingEnabled`: a local session that creates an ephemeral node
    /// becomes global first (otherwise that create fails with EphemeralOnLocalSession).
    pub local_sessions_upgrading: bool,
    /// Largest reply a multiRead may build. One small multiRead of getData on a large
    /// node asks for a reply thousands of times its own size (ZooKeeper builds it and
    /// runs out of memory); past this bound it is refused with MarshallingError.
    pub max_multi_read_bytes: usize,
}

/// Default [`EngineConfig::max_multi_read_bytes`]: 16 MiB, far above what a client's
/// `jute.maxbuffer` (1 MiB by default) lets it read anyway.
pub const DEFAULT_MAX_MULTI_READ_BYTES: usize = 16 << 20;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tick_ms: 2000,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            super_digest: None,
            skip_acl: false,
            extended_types: false,
            container_check_ms: 60_000,
            container_never_used_ms: 0,
            server_id: 0,
            secret: 0x5EED,
            local_sessions: false,
            local_sessions_upgrading: false,
            max_multi_read_bytes: DEFAULT_MAX_MULTI_READ_BYTES,
        }
    }
}
