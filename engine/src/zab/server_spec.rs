//! The server-spec grammar of `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`
//! lines, in `zoo.cfg`, in `/zookeeper/config` and in `reconfig` requests: [`ServerSpec`]
//! and its parts. One grammar, I/O-free, so `net` reads `zoo.cfg` and the engine checks
//! a `reconfig` by the same rules (nothing is accepted that a server could not then
//! connect to).

use std::fmt;
use std::net::IpAddr;

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

pub const SERVER_FORMAT: &str = "expected host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort], \
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

pub fn bracket_v6(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Java's `String.split(char)`: trailing empty pieces are dropped.
pub fn java_split(s: &str, sep: char) -> Vec<&str> {
    let mut pieces: Vec<&str> = s.split(sep).collect();
    while pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    pieces
}

/// `host:port:...`, where host may be a bracketed IPv6 literal: `[::1]:2888:3888`.
pub fn split_host_and_ports(s: &str) -> Result<Vec<String>, String> {
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

pub fn parse_port(s: &str) -> Option<u16> {
    match s.trim().parse::<i64>() {
        Ok(n) if (1..=65535).contains(&n) => u16::try_from(n).ok(),
        _ => None,
    }
}

/// A host name or IP literal Keel can try to resolve or bind: non-empty, no spaces or
/// control characters, and a name made of letters, digits, `.`, `-` and `_`.
pub fn check_host(host: &str) -> Result<(), String> {
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
