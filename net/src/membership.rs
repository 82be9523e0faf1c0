//! The membership of an ensemble as it changes by `reconfig`: turning
//! `/zookeeper/config` text (read by the engine's [`Membership::parse`], specs by its
//! [`ServerSpec`] grammar) into members to connect to, and the file in the data directory that keeps the last committed membership
//! across restarts (ZooKeeper keeps it in `zoo.cfg.dynamic.<version>` beside `zoo.cfg`;
//! Keel does not rewrite the operator's configuration files, so it keeps its own copy
//! in `dataDir/membership`, used at start when newer than `zoo.cfg`'s).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use keel_engine::zab::membership::Membership;

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
    pub members: Vec<Member>,
    /// As the engine reads it.
    pub membership: Membership,
}

/// Reads `/zookeeper/config` text with the engine's parser, then each spec by the
/// `server.N` grammar for the address to dial. The error names the server and what is
/// wrong.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let membership = Membership::parse(text).map_err(|e| e.0)?;
    let mut members = Vec::with_capacity(membership.servers.len());
    for (id, server) in &membership.servers {
        let s = ServerSpec::parse(*id, &server.spec).map_err(|e| format!("server.{id}: {e}"))?;
        members.push(member_of(&s).ok_or_else(|| format!("server.{id} has no address"))?);
    }
    Ok(Parsed {
        members,
        membership,
    })
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

/// Where the membership a member starts with came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `zoo.cfg`'s `server.N` lines (and its `version`, if any).
    ZooCfg,
    /// `dataDir/membership`, saved when a reconfiguration committed.
    Saved,
    /// The newest snapshot's `/zookeeper/config`: the saved copy was lost, or restored
    /// from an older backup. The caller saves it again.
    Snapshot,
}

/// The membership a member starts with: (text, parsed, where from).
#[derive(Debug, Clone)]
pub struct AtStart {
    pub text: String,
    pub parsed: Parsed,
    pub source: Source,
}

/// The one start-up choice of membership ([`Membership::newest`]): the newest of
/// `zoo.cfg`'s, the saved one and the newest snapshot's, a tie going to the first of
/// them in that order. A snapshot's text that does not parse or names no server is not
/// a candidate (a snapshot of a standalone tree has none).
pub fn at_start(
    configured: (String, Parsed),
    saved: Option<(String, Parsed)>,
    snapshot_text: Option<String>,
) -> AtStart {
    let in_snapshot = snapshot_text.and_then(|t| parse(&t).ok().map(|p| (t, p)));
    let mut candidates = vec![(Source::ZooCfg, configured)];
    candidates.extend(saved.map(|c| (Source::Saved, c)));
    candidates.extend(in_snapshot.map(|c| (Source::Snapshot, c)));
    let memberships: Vec<Membership> = candidates
        .iter()
        .map(|(_, (_, p))| p.membership.clone())
        .collect();
    let chosen = Membership::newest(&memberships).unwrap_or(0);
    let (source, (text, parsed)) = candidates.swap_remove(chosen);
    AtStart {
        text,
        parsed,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_membership_is_chosen_at_start_and_ties_keep_the_earlier_source() {
        let text = |v: i64, ids: &[u64]| {
            let mut t: String = ids
                .iter()
                .map(|i| {
                    format!(
                        "server.{i}=127.0.0.1:{}:{};{}\n",
                        2888 + i,
                        3888 + i,
                        2180 + i
                    )
                })
                .collect();
            t.push_str(&format!("version={v:x}"));
            t
        };
        let cand = |v: i64, ids: &[u64]| {
            let t = text(v, ids);
            let p = parse(&t).expect("parses");
            (t, p)
        };
        let ids = |a: &AtStart| a.parsed.members.iter().map(|m| m.id).collect::<Vec<_>>();

        let a = at_start(cand(0, &[1, 2, 3]), None, None);
        assert_eq!((a.source, a.parsed.membership.version), (Source::ZooCfg, 0));

        let a = at_start(cand(0, &[1, 2, 3]), Some(cand(0x100000002, &[1, 2])), None);
        assert_eq!((a.source, ids(&a)), (Source::Saved, vec![1, 2]));

        // The snapshot's is newer than the saved copy (restored from a backup).
        let a = at_start(
            cand(0, &[1, 2, 3]),
            Some(cand(0x100000002, &[1, 2])),
            Some(text(0x200000001, &[1, 2, 4])),
        );
        assert_eq!((a.source, ids(&a)), (Source::Snapshot, vec![1, 2, 4]));

        // Ties keep the earlier source; older ones never win.
        let a = at_start(
            cand(0x100000002, &[1, 2, 3]),
            Some(cand(0x100000002, &[1, 2])),
            Some(text(0x100000001, &[1])),
        );
        assert_eq!(a.source, Source::ZooCfg);

        // A snapshot without servers (a standalone tree) or unreadable is no candidate.
        let a = at_start(cand(0, &[1, 2, 3]), None, Some("version=300000001".into()));
        assert_eq!(a.source, Source::ZooCfg);
        let a = at_start(
            cand(0, &[1, 2, 3]),
            None,
            Some("server.x=1\nversion=5".into()),
        );
        assert_eq!(a.source, Source::ZooCfg);
    }

    #[test]
    fn saved_membership_round_trips_and_errors_name_the_server() {
        let d = tempfile::tempdir().unwrap();
        assert!(load(d.path()).unwrap().is_none());
        let text = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                    server.4=[::1]:2891:3891:observer\nversion=100000003";
        save(d.path(), text).unwrap();
        let (t, p) = load(d.path()).unwrap().unwrap();
        assert_eq!(t, text);
        assert_eq!(p.membership.version, 0x100000003);
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
        assert!(e.contains("membership") && e.contains("server.x"), "{e}");
    }
}
