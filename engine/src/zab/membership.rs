//! The ensemble's membership and how a `reconfig` request changes it.
//!
//! The membership lives where ZooKeeper keeps it: as the text of `/zookeeper/config`,
//! one `server.N=spec` line per member and a last `version=<hex>` line, the version
//! being the zxid of the reconfiguration that made it (0 for the one from `zoo.cfg`).
//! A reconfiguration is one transaction (`Txn::Reconfig`) that replaces that text, so
//! the membership travels with the log and the snapshots like any other state.
//!
//! Parsing a server's spec (`host:quorumPort:electionPort[:role][;[clientHost:]port]`)
//! is the caller's: `net` checks it exactly as it checks `zoo.cfg`, so nothing is
//! accepted here that a server could not then connect to. [`simple_spec`] is the
//! check used where there is no `net` (the simulator, tests).

use std::collections::BTreeMap;

use super::Sid;

/// Checks one server spec and gives it back in canonical form, with whether it names an
/// observer. The error says what is wrong with it.
pub type SpecCheck = fn(&str) -> Result<(String, bool), String>;

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
    /// are ignored, as ZooKeeper's dynamic file allows none.
    pub fn parse(text: &str, check: SpecCheck) -> Result<Membership, BadMembership> {
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
                let (id, server) = parse_entry(line, check)?;
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
        check: SpecCheck,
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
            let (id, server) = parse_entry(entry, check).map_err(|e| Refused::BadArguments(e.0))?;
            servers.insert(id, server);
        }
        let mut seen: BTreeMap<String, Sid> = BTreeMap::new();
        for (id, server) in &servers {
            for end in endpoints(&server.spec) {
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
/// may not share one (ZooKeeper's duplicate-address check).
fn endpoints(spec: &str) -> Vec<String> {
    let peer = spec.split(';').next().unwrap_or(spec);
    let mut out = Vec::new();
    for address in peer.split('|') {
        let mut parts: Vec<&str> = address.trim().rsplitn(4, ':').collect();
        if parts.first().is_some_and(|r| {
            r.eq_ignore_ascii_case("participant") || r.eq_ignore_ascii_case("observer")
        }) {
            parts.remove(0);
        } else if parts.len() == 4 {
            // No role: the fourth piece from the right belongs to the host.
            let host = address.trim().rsplitn(3, ':').nth(2).unwrap_or("");
            parts = vec![parts[0], parts[1], host];
        }
        if let [election, quorum, host, ..] = parts.as_slice() {
            out.push(format!("{host}:{quorum}"));
            out.push(format!("{host}:{election}"));
        }
    }
    out
}

/// Entries of a `reconfig` list: comma- or newline-separated, blanks skipped.
fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// `server.N=spec`.
fn parse_entry(entry: &str, check: SpecCheck) -> Result<(Sid, Server), BadMembership> {
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

/// Reads a spec already in a membership (logged, committed, from `zoo.cfg` or from a
/// peer) as it is: only its role matters here. Those were checked when they were
/// written; holding them to today's rules again could make a server that is stricter
/// (a newer version, say) refuse a committed membership the others run with.
pub fn any_spec(spec: &str) -> Result<(String, bool), String> {
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

/// A plain check of `host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`
/// (no IPv6 literals, no `|` lists): what the simulator and tests use. Production
/// servers use `net`'s parser of `zoo.cfg` lines.
pub fn simple_spec(spec: &str) -> Result<(String, bool), String> {
    let (peer, client) = match spec.split_once(';') {
        Some((p, c)) => (p, Some(c)),
        None => (spec, None),
    };
    let parts: Vec<&str> = peer.split(':').map(str::trim).collect();
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
    let (host, q, e) = match parts.as_slice() {
        [h, q, e] | [h, q, e, _] if !h.is_empty() => (*h, port(q), port(e)),
        _ => {
            return Err(format!(
                "`{spec}` is not host:quorumPort:electionPort[:role]"
            ))
        }
    };
    let (Some(q), Some(e)) = (q, e) else {
        return Err(format!("`{spec}`: a port is not a number from 1 to 65535"));
    };
    let observer = match parts.get(3).map(|r| r.to_ascii_lowercase()) {
        None => false,
        Some(r) if r == "participant" => false,
        Some(r) if r == "observer" => true,
        Some(r) => return Err(format!("unknown role `{r}`: use participant or observer")),
    };
    let role = if observer { "observer" } else { "participant" };
    let mut out = format!("{host}:{q}:{e}:{role}");
    if let Some(c) = client {
        let (ch, cp) = c.trim().rsplit_once(':').unwrap_or(("0.0.0.0", c.trim()));
        let Some(cp) = port(cp) else {
            return Err(format!(
                "client port in `{spec}` is not a number from 1 to 65535"
            ));
        };
        out.push_str(&format!(";{ch}:{cp}"));
    }
    Ok((out, observer))
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
        let m = Membership::parse(TEXT, simple_spec).unwrap();
        assert_eq!(m.voters(), vec![1, 2]);
        assert_eq!(m.observers(), vec![3]);
        assert_eq!(m.to_text(), TEXT);
    }

    /// Found by fuzzing (`fuzz/regressions/membership/`): `version=-5` parsed, and
    /// `to_text` wrote it as `fffffffffffffffb`, which does not parse.
    #[test]
    fn a_negative_version_is_refused() {
        assert!(Membership::parse("version=-5", any_spec).is_err());
        assert!(Membership::parse("server.1=h:1:2\nversion=-0", any_spec).is_ok());
        let m = Membership::parse("server.1=h:1:2\nversion=7fffffffffffffff", any_spec).unwrap();
        assert_eq!(Membership::parse(&m.to_text(), any_spec), Ok(m));
    }

    #[test]
    fn specs_already_in_a_membership_are_read_as_they_are() {
        assert_eq!(
            any_spec(" [::1]:1:2:observer;[::1]:3 "),
            Ok(("[::1]:1:2:observer;[::1]:3".into(), true))
        );
        assert_eq!(any_spec("h:1:2"), Ok(("h:1:2".into(), false)));
        assert!(any_spec(" ").is_err());
    }

    #[test]
    fn incremental_and_bulk_forms() {
        let m = Membership::parse(TEXT, simple_spec).unwrap();
        let n = m
            .reconfigured("server.4=h4:1:2;2184", "3", "", simple_spec)
            .unwrap();
        assert_eq!(n.voters(), vec![1, 2, 4]);
        assert!(n.observers().is_empty());
        assert_eq!(n.servers[&4].spec, "h4:1:2:participant;0.0.0.0:2184");
        let b = m
            .reconfigured(
                "",
                "",
                "server.7=h:1:2,server.8=h:3:4:observer",
                simple_spec,
            )
            .unwrap();
        assert_eq!((b.voters(), b.observers()), (vec![7], vec![8]));
        let malformed = |r| matches!(r, Err(Refused::Malformed(_)));
        let bad = |r| matches!(r, Err(Refused::BadArguments(_)));
        assert!(malformed(m.reconfigured("", "x", "", simple_spec)));
        assert!(malformed(m.reconfigured(
            "",
            "",
            "server.8=h:3:4:observer",
            simple_spec
        )));
        assert!(bad(m.reconfigured("server.4=h4", "", "", simple_spec)));
        assert!(bad(m.reconfigured("4=h:1:2", "", "", simple_spec)));
        assert!(bad(m.reconfigured("", "1", "server.1=h:1:2", simple_spec)));
        assert!(bad(m.reconfigured(
            "server.4=h1:2888:9999",
            "",
            "",
            simple_spec
        )));
        assert!(!bad(m.reconfigured(
            "server.4=h9:1:3888",
            "",
            "",
            simple_spec
        )));
        assert_eq!(
            endpoints("[::1]:1:2:observer;3"),
            vec!["[::1]:1", "[::1]:2"]
        );
        assert_eq!(endpoints("h:1:2"), vec!["h:1", "h:2"]);
        // Not a member: nothing to remove, no error.
        assert_eq!(
            m.reconfigured("", "99", "", simple_spec).unwrap().servers,
            m.servers
        );
    }
}
