//! The ensemble's membership and how a `reconfig` request changes it.
//!
//! The membership lives where ZooKeeper keeps it: as the text of `/zookeeper/config`,
//! one `server.N=spec` line per member and a last `version=<hex>` line, the version
//! being the zxid of the reconfiguration that made it (0 for the one from `zoo.cfg`).
//! A reconfiguration is one transaction (`Txn::Reconfig`) that replaces that text, so
//! the membership travels with the log and the snapshots like any other state.
//!
//! A spec in a `reconfig` request is held to [`server_spec`](super::server_spec)'s
//! grammar, the one `zoo.cfg` is read with, so nothing is accepted here that a server
//! could not then connect to. A spec already in a membership (logged, committed, from a
//! peer) is read as it is: see [`Membership::parse`].

use std::collections::BTreeMap;

use super::server_spec::{PeerRole, ServerSpec};
use super::Sid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// The canonical spec: what follows `server.N=` in `/zookeeper/config`.
    pub spec: String,
    pub observer: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    /// The zxid of the reconfiguration that made this membership; 0 for `zoo.cfg`'s
    /// (or the `version` written there).
    pub version: i64,
    pub servers: BTreeMap<Sid, Server>,
}

/// Why a membership text or a reconfiguration request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMembership(pub String);

/// Why a `reconfig` request is refused, by the code ZooKeeper answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// BadArguments: a malformed server, both forms at once.
    BadArguments(String),
    /// MarshallingError: what ZooKeeper fails to parse at all (a leaving id that is not
    /// a number, a bulk list without a participant).
    Malformed(String),
}

impl Membership {
    /// Reads `/zookeeper/config`'s text. Lines other than `server.N=` and `version=`
    /// are ignored, as ZooKeeper's dynamic file allows none. Each spec is taken as it
    /// is written (only its role is read): those were checked when they were written,
    /// and holding them to today's rules again could make a stricter server (a newer
    /// version, say) refuse a committed membership the others run with.
    pub fn parse(text: &str) -> Result<Membership, BadMembership> {
        let mut m = Membership::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(v) = line.strip_prefix("version=") {
                m.version = i64::from_str_radix(v.trim(), 16)
                    .map_err(|_| BadMembership(format!("`{line}`: the version is not hex")))?;
                // A version is a zxid (or 0): `to_text` writes a negative one as 16 hex
                // digits that no longer parse, so a member that took it could not read
                // its own membership back.
                if m.version < 0 {
                    return Err(BadMembership(format!("`{line}`: the version is negative")));
                }
                continue;
            }
            if line.starts_with("server.") {
                let (id, server) = parse_entry(line, as_written)?;
                m.servers.insert(id, server);
            }
        }
        Ok(m)
    }

    pub fn voters(&self) -> Vec<Sid> {
        self.ids(false)
    }

    pub fn observers(&self) -> Vec<Sid> {
        self.ids(true)
    }

    fn ids(&self, observer: bool) -> Vec<Sid> {
        self.servers
            .iter()
            .filter(|(_, s)| s.observer == observer)
            .map(|(id, _)| *id)
            .collect()
    }

    /// `/zookeeper/config`'s text, as ZooKeeper writes it.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (id, server) in &self.servers {
            s.push_str(&format!("server.{id}={}\n", server.spec));
        }
        s.push_str(&format!("version={:x}", self.version));
        s
    }

    /// The membership a `reconfig` asks for, version not yet set: the bulk form
    /// (`new_members`, the whole list) when given, else this one with `leaving` ids
    /// removed (an id that is not a member is no error) and `joining` servers added
    /// (or changed). How many voters it may have is the leader's call.
    pub fn reconfigured(
        &self,
        joining: &str,
        leaving: &str,
        new_members: &str,
    ) -> Result<Membership, Refused> {
        let bulk = !new_members.trim().is_empty();
        if bulk && !(joining.trim().is_empty() && leaving.trim().is_empty()) {
            return Err(Refused::BadArguments(
                "the incremental form (joining, leaving) and the bulk form (new members) cannot be mixed"
                    .into(),
            ));
        }
        let mut servers = if bulk {
            BTreeMap::new()
        } else {
            let mut servers = self.servers.clone();
            for id in split_list(leaving) {
                let id: Sid = id
                    .parse()
                    .map_err(|_| Refused::Malformed(format!("`{id}` is not a server id")))?;
                servers.remove(&id);
            }
            servers
        };
        for entry in split_list(if bulk { new_members } else { joining }) {
            if entry.starts_with("version=") {
                continue;
            }
            let (id, server) =
                parse_entry(entry, check_dynamic).map_err(|e| Refused::BadArguments(e.0))?;
            servers.insert(id, server);
        }
        let mut seen: BTreeMap<String, Sid> = BTreeMap::new();
        for (id, server) in &servers {
            for end in endpoints(*id, &server.spec) {
                if let Some(other) = seen.insert(end.clone(), *id) {
                    return Err(Refused::BadArguments(format!(
                        "servers {other} and {id} both use {end}"
                    )));
                }
            }
        }
        let m = Membership {
            version: self.version,
            servers,
        };
        if bulk && m.voters().is_empty() {
            return Err(Refused::Malformed("the new list has no participant".into()));
        }
        Ok(m)
    }
}

/// The `host:quorumPort` and `host:electionPort` of each address of a spec: two servers
/// may not share one (ZooKeeper's duplicate-address check). A spec that does not read
/// (one written by an older, laxer version) has none to compare.
fn endpoints(id: Sid, spec: &str) -> Vec<String> {
    let Ok(s) = ServerSpec::parse(id, spec) else {
        return Vec::new();
    };
    s.addresses
        .iter()
        .flat_map(|a| {
            let host = super::server_spec::bracket_v6(&a.host);
            [
                format!("{host}:{}", a.quorum_port),
                format!("{host}:{}", a.election_port),
            ]
        })
        .collect()
}

/// Entries of a `reconfig` list: comma- or newline-separated, blanks skipped.
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// `server.N=spec`.
fn parse_entry(
    entry: &str,
    check: fn(&str) -> Result<(String, bool), String>,
) -> Result<(Sid, Server), BadMembership> {
    let Some((key, spec)) = entry.split_once('=') else {
        return Err(BadMembership(format!(
            "`{entry}`: expected server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]"
        )));
    };
    let id: Sid = key
        .trim()
        .strip_prefix("server.")
        .and_then(|n| n.parse().ok())
        .filter(|n| (0..=255).contains(n))
        .ok_or_else(|| BadMembership(format!("`{key}`: expected server.N with N from 0 to 255")))?;
    let (spec, observer) =
        check(spec.trim()).map_err(|m| BadMembership(format!("server.{id}: {m}")))?;
    Ok((id, Server { spec, observer }))
}

/// A spec already in a membership, as it is: only its role is read.
fn as_written(spec: &str) -> Result<(String, bool), String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("an empty server spec".into());
    }
    let peer = spec.split(';').next().unwrap_or(spec);
    let role = peer.rsplit(':').next().unwrap_or("");
    Ok((
        spec.to_string(),
        role.trim().eq_ignore_ascii_case("observer"),
    ))
}

/// A `reconfig` request's server spec: held to the rules of a `server.N` line of
/// `zoo.cfg` and given back as ZooKeeper writes it, with whether it names an observer.
/// Unlike a `zoo.cfg` line, it must name its client port (`;[host:]port`), as ZooKeeper
/// requires of a dynamic membership: there is no `clientPort` to fall back on.
pub fn check_dynamic(spec: &str) -> Result<(String, bool), String> {
    let s = ServerSpec::parse(0, spec)?;
    if s.client.is_none() {
        return Err(format!(
            "`{}` has no client port: a server added by reconfig needs ;[clientHost:]clientPort",
            spec.trim()
        ));
    }
    Ok((s.to_string(), s.role == PeerRole::Observer))
}

impl Membership {
    /// Which of `candidates` is the newest (highest version), a tie going to the
    /// earlier one: the one start-up choice between `zoo.cfg`'s membership, the one
    /// saved by the last committed reconfiguration and the newest snapshot's. A
    /// candidate that names no server (a standalone tree's) is none. The replica is
    /// then built with what this chose
    /// ([`ReplicaConfig::membership`](super::ReplicaConfig::membership)).
    pub fn newest(candidates: &[Membership]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, c) in candidates.iter().enumerate() {
            if c.servers.is_empty() {
                continue;
            }
            if best.is_none_or(|b| c.version > candidates[b].version) {
                best = Some(i);
            }
        }
        best
    }

    /// `voters` and `observers` at version 0 with made-up loopback addresses: the
    /// membership of a replica built without one (the simulator, engine tests), so
    /// that `reconfig` has a list to change.
    pub fn placeholder(voters: &[Sid], observers: &[Sid]) -> Membership {
        let mut m = Membership::default();
        for (ids, observer) in [(voters, false), (observers, true)] {
            for id in ids {
                let role = if observer { "observer" } else { "participant" };
                m.servers.insert(
                    *id,
                    Server {
                        spec: format!("127.0.0.1:{}:{}:{role}", 2888 + id, 3888 + id),
                        observer,
                    },
                );
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "server.1=h1:2888:3888:participant;0.0.0.0:2181\n\
                        server.2=h2:2888:3888:participant;0.0.0.0:2182\n\
                        server.3=h3:2888:3888:observer;0.0.0.0:2183\n\
                        version=0";

    #[test]
    fn text_round_trips() {
        let m = Membership::parse(TEXT).unwrap();
        assert_eq!(m.voters(), vec![1, 2]);
        assert_eq!(m.observers(), vec![3]);
        assert_eq!(m.to_text(), TEXT);
    }

    /// Found by fuzzing (`fuzz/regressions/membership/`): `version=-5` parsed, and
    /// `to_text` wrote it as `fffffffffffffffb`, which does not parse.
    #[test]
    fn a_negative_version_is_refused() {
        assert!(Membership::parse("version=-5").is_err());
        assert!(Membership::parse("server.1=h:1:2\nversion=-0").is_ok());
        let m = Membership::parse("server.1=h:1:2\nversion=7fffffffffffffff").unwrap();
        assert_eq!(Membership::parse(&m.to_text()), Ok(m));
    }

    #[test]
    fn specs_already_in_a_membership_are_read_as_they_are() {
        assert_eq!(
            as_written(" [::1]:1:2:observer;[::1]:3 "),
            Ok(("[::1]:1:2:observer;[::1]:3".into(), true))
        );
        assert_eq!(as_written("h:1:2"), Ok(("h:1:2".into(), false)));
        assert!(as_written(" ").is_err());
    }

    #[test]
    fn a_reconfig_spec_is_checked_as_zoo_cfg_and_needs_a_client_port() {
        assert_eq!(
            check_dynamic(" h:1:2:OBSERVER;3 "),
            Ok(("h:1:2:observer;0.0.0.0:3".into(), true))
        );
        assert_eq!(
            check_dynamic("[::1]:1:2;[::1]:3"),
            Ok(("[::1]:1:2:participant;[::1]:3".into(), false))
        );
        assert!(check_dynamic("h:1:2").is_err(), "no client port");
        assert!(check_dynamic("h:1:1;3").is_err(), "one port for both");
        assert!(check_dynamic("h h:1:2;3").is_err(), "not a host");
        assert!(check_dynamic("h:1:2:leader;3").is_err(), "no such role");
    }

    #[test]
    fn the_newest_membership_wins_and_ties_keep_the_earlier() {
        let at = |v: i64, voters: &[Sid]| Membership {
            version: v,
            ..Membership::placeholder(voters, &[])
        };
        assert_eq!(Membership::newest(&[]), None);
        assert_eq!(
            Membership::newest(&[at(0, &[1, 2, 3]), at(5, &[1, 2]), at(3, &[1])]),
            Some(1)
        );
        assert_eq!(
            Membership::newest(&[at(5, &[1, 2, 3]), at(5, &[1, 2])]),
            Some(0)
        );
        // A standalone tree's /zookeeper/config names no server: no candidate.
        let none = Membership {
            version: 9,
            ..Default::default()
        };
        assert_eq!(Membership::newest(&[at(0, &[1]), none.clone()]), Some(0));
        assert_eq!(Membership::newest(&[none]), None);
        let p = Membership::placeholder(&[1, 2], &[3]);
        assert_eq!((p.voters(), p.observers()), (vec![1, 2], vec![3]));
        assert_eq!(Membership::parse(&p.to_text()), Ok(p));
    }

    #[test]
    fn incremental_and_bulk_forms() {
        let m = Membership::parse(TEXT).unwrap();
        let n = m.reconfigured("server.4=h4:1:2;2184", "3", "").unwrap();
        assert_eq!(n.voters(), vec![1, 2, 4]);
        assert!(n.observers().is_empty());
        assert_eq!(n.servers[&4].spec, "h4:1:2:participant;0.0.0.0:2184");
        let b = m
            .reconfigured("", "", "server.7=h:1:2;5,server.8=h:3:4:observer;6")
            .unwrap();
        assert_eq!((b.voters(), b.observers()), (vec![7], vec![8]));
        let malformed = |r| matches!(r, Err(Refused::Malformed(_)));
        let bad = |r| matches!(r, Err(Refused::BadArguments(_)));
        assert!(malformed(m.reconfigured("", "x", "")));
        assert!(malformed(m.reconfigured(
            "",
            "",
            "server.8=h:3:4:observer;6"
        )));
        assert!(bad(m.reconfigured("server.4=h4", "", "")));
        assert!(
            bad(m.reconfigured("server.4=h4:1:2", "", "")),
            "no client port"
        );
        assert!(bad(m.reconfigured("4=h:1:2;5", "", "")));
        assert!(bad(m.reconfigured("", "1", "server.1=h:1:2;5")));
        assert!(bad(m.reconfigured("server.4=h1:2888:9999;5", "", "")));
        assert!(!bad(m.reconfigured("server.4=h9:1:3888;5", "", "")));
        assert_eq!(
            endpoints(1, "[::1]:1:2:observer;3"),
            vec!["[::1]:1", "[::1]:2"]
        );
        assert_eq!(endpoints(1, "h:1:2"), vec!["h:1", "h:2"]);
        assert!(endpoints(1, "not a spec").is_empty());
        // Not a member: nothing to remove, no error.
        assert_eq!(m.reconfigured("", "99", "").unwrap().servers, m.servers);
    }
}
