//! The membership of an ensemble as it changes by `reconfig`: reading a `server.N`
//! spec for the engine, turning `/zookeeper/config` text into members to connect to,
//! and the file in the data directory that keeps the last committed membership
//! across restarts (ZooKeeper keeps it in `zoo.cfg.dynamic.<version>` beside `zoo.cfg`;
//! Keel does not rewrite the operator's configuration files, so it keeps its own copy
//! in `dataDir/membership`, used at start when newer than `zoo.cfg`'s).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{PeerRole, ServerSpec};

/// One `server.N` line, as the ensemble uses it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: u64,
    pub observer: bool,
    /// `host:quorumPort`: where its peer links are accepted.
    pub peer_addr: String,
}

/// The file holding the last committed membership, in `/zookeeper/config`'s format.
pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join("membership")
}

/// The engine's `SpecCheck`: a `reconfig` request's server spec is held to the same
/// rules as a `server.N` line of `zoo.cfg`, and written back as ZooKeeper writes it.
/// Unlike a `zoo.cfg` line, it must name its client port (`;[host:]port`), as ZooKeeper
/// requires of a dynamic membership: there is no `clientPort` to fall back on.
pub fn check_server(spec: &str) -> Result<(String, bool), String> {
    let s = ServerSpec::parse(0, spec)?;
    if s.client.is_none() {
        return Err(format!(
            "`{spec}` has no client port: a server added by reconfig needs ;[clientHost:]clientPort"
        ));
    }
    Ok((s.to_string(), s.role == PeerRole::Observer))
}

/// The peer-facing part of a `server.N` line: the first address (Keel dials one).
pub fn member_of(s: &ServerSpec) -> Option<Member> {
    let a = s.addresses.first()?;
    let host = if a.host.contains(':') {
        format!("[{}]", a.host)
    } else {
        a.host.clone()
    };
    Some(Member {
        id: s.id,
        observer: s.role == PeerRole::Observer,
        peer_addr: format!("{host}:{}", a.quorum_port),
    })
}

/// A membership read from `/zookeeper/config` text.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub version: i64,
    pub members: Vec<Member>,
}

/// Reads `/zookeeper/config` text. The error names the line and what is wrong.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut version = 0;
    let mut members = Vec::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() {
            continue;
        }
        if let Some(v) = line.strip_prefix("version=") {
            version = i64::from_str_radix(v.trim(), 16)
                .map_err(|_| format!("line {n}: version `{v}` is not hex"))?;
            // As the engine's parser: a version is a zxid, never negative.
            if version < 0 {
                return Err(format!("line {n}: version `{v}` is negative"));
            }
            continue;
        }
        let Some((key, spec)) = line.split_once('=') else {
            return Err(format!("line {n}: expected server.N=... or version=..."));
        };
        let id: u64 = key
            .trim()
            .strip_prefix("server.")
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("line {n}: `{key}` is not server.N"))?;
        let s = ServerSpec::parse(id, spec).map_err(|e| format!("line {n}: server.{id}: {e}"))?;
        members.push(member_of(&s).ok_or_else(|| format!("line {n}: server.{id} has no address"))?);
    }
    Ok(Parsed { version, members })
}

/// Writes the committed membership durably: a temporary file, fsynced, renamed over
/// the old one, and the directory fsynced, so a crash leaves the old or the new.
pub fn save(data_dir: &Path, text: &str) -> std::io::Result<()> {
    let path = file(data_dir);
    let tmp = data_dir.join("membership.tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    fs::File::open(data_dir)?.sync_all()
}

/// The saved membership, if there is one: (text, parsed). The error names the file.
pub fn load(data_dir: &Path) -> Result<Option<(String, Parsed)>, String> {
    let path = file(data_dir);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let parsed = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some((text.trim_end().to_string(), parsed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked_and_written_as_zookeeper_does() {
        assert_eq!(
            check_server("127.0.0.1:2888:3888;2181").unwrap(),
            (
                "127.0.0.1:2888:3888:participant;0.0.0.0:2181".to_string(),
                false
            )
        );
        assert!(check_server("h:1:2:observer;3").unwrap().1);
        assert!(check_server("h:1:2:observer").is_err(), "no client port");
        assert!(check_server("h:1").is_err());
        assert!(check_server("h:1:1").is_err());
    }

    #[test]
    fn saved_membership_round_trips_and_errors_name_the_line() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(d.path()).unwrap().is_none());
        let text = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                    server.4=[::1]:2891:3891:observer\nversion=100000003";
        save(d.path(), text).unwrap();
        let (t, p) = load(d.path()).unwrap().unwrap();
        assert_eq!(t, text);
        assert_eq!(p.version, 0x100000003);
        let m: Vec<_> = p
            .members
            .iter()
            .map(|m| (m.id, m.observer, m.peer_addr.as_str()))
            .collect();
        assert_eq!(
            m,
            vec![(1, false, "127.0.0.1:2888"), (4, true, "[::1]:2891")]
        );
        fs::write(file(d.path()), "server.1=h:1:2\nserver.x=h:1:2\n").unwrap();
        let e = load(d.path()).unwrap_err();
        assert!(e.contains("membership") && e.contains("line 2"), "{e}");
    }
}
