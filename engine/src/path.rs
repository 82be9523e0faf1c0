//! Path rules: what ZooKeeper accepts as a znode path (`PathUtils.validatePath`) and the
//! parent/child split every tree operation needs.

/// Why a path was refused; the server answers BadArguments for all of them.
pub fn validate(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("path length must be > 0");
    }
    if !path.starts_with('/') {
        return Err("path must start with / character");
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("path must not end with / character");
    }
    for comp in path[1..].split('/') {
        match comp {
            "" => return Err("empty node name specified"),
            "." | ".." => return Err("relative paths not allowed"),
            _ => {}
        }
    }
    for c in path.chars() {
        let bad = c == '\0'
            || ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{f000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c);
        if bad {
            return Err("invalid character");
        }
    }
    Ok(())
}

/// The parent of a path ("/" for top-level nodes); `None` for the root and for paths
/// without a slash.
pub fn parent(path: &str) -> Option<&str> {
    let i = path.rfind('/')?;
    if path == "/" {
        return None;
    }
    Some(if i == 0 { "/" } else { &path[..i] })
}

/// The last component of a path.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// The nodes ZooKeeper never lets a client delete (`DataTree.isSpecialPath`).
pub fn is_special(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

/// Whether `path` is `prefix` or lies below it.
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(validate("/").is_ok());
        assert!(validate("/a/b").is_ok());
        for bad in [
            "", "a", "/a/", "//a", "/a//b", "/a/./b", "/..", "/a\0b", "/a\u{1}",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parents() {
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/"), None);
        assert_eq!(name("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_under("/a/b", "/a") && !is_under("/ab", "/a") && is_under("/x", "/"));
    }
}
