//! Access control: authentication schemes (digest, ip, super) and the ACL checks and
//! fix-ups ZooKeeper applies, with the same outcomes (NoAuth, InvalidACL, AuthFailed).

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::proto::{perm, Acl, Code, Id};

/// `user:base64(sha1("user:password"))`, the id a digest ACL names.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Handles an `auth` packet: the ids the connection gains, or AuthFailed.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    addr: IpAddr,
    super_digest: Option<&str>,
) -> Result<Vec<Id>, Code> {
    match scheme {
        "digest" => {
            let text = String::from_utf8_lossy(auth);
            let id = digest_id(&text);
            let mut ids = Vec::new();
            if super_digest == Some(id.as_str()) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", &id));
            Ok(ids)
        }
        "ip" => Ok(vec![Id::new("ip", &addr.to_string())]),
        _ => Err(Code::AuthFailed),
    }
}

/// Whether an ip ACL id (`a.b.c.d` or `a.b.c.d/bits`) matches a client address.
fn ip_matches(acl_id: &str, client: &str) -> bool {
    let (net, bits) = match acl_id.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (acl_id, None),
    };
    let (Ok(net), Ok(client)) = (net.parse::<IpAddr>(), client.parse::<IpAddr>()) else {
        return false;
    };
    match (net, client) {
        (IpAddr::V4(n), IpAddr::V4(c)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(c) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(c)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(c) & mask
        }
        _ => false,
    }
}

fn valid_ip_id(id: &str) -> bool {
    let (net, bits) = match id.split_once('/') {
        Some((n, b)) => (n, Some(b)),
        None => (id, None),
    };
    let Ok(addr) = net.parse::<IpAddr>() else {
        return false;
    };
    match bits {
        None => true,
        Some(b) => b
            .parse::<u32>()
            .is_ok_and(|b| b <= if addr.is_ipv4() { 32 } else { 128 }),
    }
}

/// `ZooKeeperServer.checkACL`: super passes; an empty ACL passes; otherwise some entry
/// granting `want` must match one of the caller's ids.
pub fn check(acl: &[Acl], want: i32, ids: &[Id]) -> Result<(), Code> {
    if acl.is_empty() || ids.iter().any(|i| i.scheme == "super") {
        return Ok(());
    }
    for a in acl {
        if a.perms & want == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        for me in ids.iter().filter(|i| i.scheme == a.id.scheme) {
            let ok = match a.id.scheme.as_str() {
                "digest" => me.id == a.id.id,
                "ip" => ip_matches(&a.id.id, &me.id),
                _ => false,
            };
            if ok {
                return Ok(());
            }
        }
    }
    Err(Code::NoAuth)
}

/// `PrepRequestProcessor.fixupACL`: replaces `auth` entries with the caller's
/// authenticated ids and validates the rest; an empty or invalid list is InvalidACL.
pub fn fixup(acl: &[Acl], ids: &[Id]) -> Result<Vec<Acl>, Code> {
    if acl.is_empty() {
        return Err(Code::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for a in acl {
        if a.perms & !perm::ALL != 0 && a.perms > perm::ALL {
            // ZooKeeper keeps unknown perm bits; nothing to refuse.
        }
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => push(a.clone()),
            "auth" => {
                let mut any = false;
                for me in ids
                    .iter()
                    .filter(|i| i.scheme == "digest" || i.scheme == "super")
                {
                    any = true;
                    push(Acl {
                        perms: a.perms,
                        id: me.clone(),
                    });
                }
                if !any {
                    return Err(Code::InvalidAcl);
                }
            }
            "digest" if a.id.id.split(':').count() == 2 => push(a.clone()),
            "ip" if valid_ip_id(&a.id.id) => push(a.clone()),
            _ => return Err(Code::InvalidAcl),
        }
    }
    Ok(out)
}

/// The ACL as a caller without ADMIN sees it: digest hashes hidden (ZOOKEEPER-1392).
pub fn redacted(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                Acl {
                    perms: a.perms,
                    id: Id::new("digest", &format!("{user}:x")),
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_zookeeper() {
        // zkCli: `addauth digest super:test` is super:D/InIHSb7yEEbrWz8b9l71RjZJU=
        assert_eq!(
            digest_id("super:test"),
            "super:D/InIHSb7yEEbrWz8b9l71RjZJU="
        );
    }

    #[test]
    fn checks() {
        let me = vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "u:h")];
        let acl = vec![Acl {
            perms: perm::READ,
            id: Id::new("digest", "u:h"),
        }];
        assert!(check(&acl, perm::READ, &me).is_ok());
        assert_eq!(check(&acl, perm::WRITE, &me), Err(Code::NoAuth));
        let ip = vec![Acl {
            perms: perm::ALL,
            id: Id::new("ip", "127.0.0.0/8"),
        }];
        assert!(check(&ip, perm::WRITE, &me).is_ok());
        assert!(check(&ip, perm::WRITE, &[Id::new("super", "")]).is_ok());
    }

    #[test]
    fn fixups() {
        let auth = vec![Acl {
            perms: perm::ALL,
            id: Id::new("auth", ""),
        }];
        assert_eq!(
            fixup(&auth, &[Id::new("ip", "1.2.3.4")]),
            Err(Code::InvalidAcl)
        );
        let fixed = fixup(&auth, &[Id::new("digest", "u:h")]).unwrap();
        assert_eq!(fixed[0].id, Id::new("digest", "u:h"));
        assert_eq!(fixup(&[], &[]), Err(Code::InvalidAcl));
        assert_eq!(
            fixup(
                &[Acl {
                    perms: 1,
                    id: Id::new("world", "x")
                }],
                &[]
            ),
            Err(Code::InvalidAcl)
        );
        assert_eq!(
            fixup(
                &[Acl {
                    perms: 1,
                    id: Id::new("ip", "nope")
                }],
                &[]
            ),
            Err(Code::InvalidAcl)
        );
    }
}
