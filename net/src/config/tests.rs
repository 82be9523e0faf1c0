//! Tests of configuration parsing: zoo.cfg keys, system properties, the command line
//! and server specs.

use super::*;
use std::fs;

/// A scratch directory with a zoo.cfg whose `@DIR@` is replaced by the directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        let text = text.replace("@DIR@", &self.dir.path().display().to_string());
        fs::write(&p, text).expect("write");
        p
    }
    fn cfg(&self, text: &str) -> Result<Config, ConfigError> {
        Config::from_file(self.write("zoo.cfg", text))
    }
}

fn ok(text: &str) -> Config {
    let s = Scratch::new();
    s.cfg(text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> ConfigError {
    let s = Scratch::new();
    s.cfg(text).expect_err("should fail")
}

fn invalid(e: &ConfigError) -> (usize, &str, &str) {
    match e {
        ConfigError::Invalid {
            line, key, message, ..
        } => (*line, key.as_str(), message.as_str()),
        other => panic!("expected ConfigError::Invalid, got {other:?}: {other}"),
    }
}

fn props(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---- defaults ----

#[test]
fn no_config_is_a_standalone_server_with_defaults() {
    let c = Config::default();
    assert_eq!(c.tick_time_ms, 2000);
    assert_eq!(c.data_dir, PathBuf::from("./keel-data"));
    assert_eq!(c.data_log_dir, c.data_dir);
    assert_eq!(c.client_port, 2181);
    assert_eq!(c.client_port_address, "0.0.0.0");
    assert_eq!(c.client_bind_address(), "0.0.0.0");
    assert_eq!(c.client_host_port(), "0.0.0.0:2181");
    let v6 = Config {
        client_port_address: "::1".into(),
        ..Config::default()
    };
    assert_eq!(
        (
            v6.client_bind_address().as_str(),
            v6.client_host_port().as_str()
        ),
        ("[::1]", "[::1]:2181")
    );
    assert_eq!(c.max_client_cnxns, 60);
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (4000, 40000)
    );
    assert_eq!(c.snap_retain_count, 3);
    assert_eq!(c.purge_interval_hours, 0);
    assert_eq!(c.four_letter_words, BTreeSet::from(["srvr".to_string()]));
    assert_eq!(c.jute_max_buffer, 0xfffff);
    assert_eq!(c.super_digest, None);
    assert!(!c.read_only_mode && !c.extended_types);
    assert_eq!(c.snap_count, 100_000);
    assert_eq!(c.global_outstanding_limit, 1000);
    assert!(c.servers.is_empty() && c.server_id.is_none() && !c.is_distributed());
    assert!(c.admin_enable_server);
    assert_eq!(c.admin_server_port, 8080);
    assert!(c.warnings().is_empty());
    assert_eq!(Config::load(None, &[]).expect("load"), c);
}

#[test]
fn zoo_cfg_without_tick_time_uses_zookeepers_3000() {
    let c = ok("dataDir=@DIR@/data\nclientPort=2181\n");
    assert_eq!(c.tick_time_ms, 3000);
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (6000, 60000)
    );
}

#[test]
fn sample_zoo_cfg() {
    let c = ok("# The number of milliseconds of each tick\ntickTime=2000\ninitLimit=10\nsyncLimit=5\n\
                dataDir=@DIR@/zookeeper\nclientPort=2181\n#maxClientCnxns=60\n#autopurge.snapRetainCount=3\n");
    assert_eq!(c.tick_time_ms, 2000);
    assert_eq!((c.init_limit, c.sync_limit), (10, 5));
    assert!(c.data_dir.ends_with("zookeeper"));
    assert_eq!(c.data_log_dir, c.data_dir);
    assert_eq!(c.client_port, 2181);
    assert!(c.unknown.is_empty(), "{:?}", c.unknown);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

// ---- every key ----

#[test]
fn every_core_key() {
    let c = ok("tickTime=100\ndataDir=@DIR@/d\ndataLogDir=@DIR@/l\nclientPort=2999\nclientPortAddress=127.0.0.1\n\
                clientPortListenBacklog=128\nmaxClientCnxns=0\nminSessionTimeout=300\nmaxSessionTimeout=9000\n\
                initLimit=7\nsyncLimit=3\nautopurge.snapRetainCount=5\nautopurge.purgeInterval=24\n\
                standaloneEnabled=true\nreconfigEnabled=TRUE\nelectionAlg=3\npeerType=participant\nversion=1f\n");
    assert_eq!(c.tick_time_ms, 100);
    assert!(c.data_dir.ends_with("d") && c.data_log_dir.ends_with("l"));
    assert_eq!(c.client_port, 2999);
    assert_eq!(c.client_port_address, "127.0.0.1");
    assert_eq!(c.client_port_listen_backlog, Some(128));
    assert_eq!(c.max_client_cnxns, 0);
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (300, 9000)
    );
    assert_eq!((c.init_limit, c.sync_limit), (7, 3));
    assert_eq!((c.snap_retain_count, c.purge_interval_hours), (5, 24));
    assert!(c.standalone_enabled && c.reconfig_enabled);
    assert_eq!(c.config_version, 0x1f);
    assert!(c.unknown.is_empty(), "{:?}", c.unknown);
}

#[test]
fn every_property_key_from_zoo_cfg() {
    let c = ok("dataDir=@DIR@\nclientPort=2181\nsnapCount=5000\nglobalOutstandingLimit=77\n\
                4lw.commands.whitelist=ruok, stat ,,conf\nDigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n\
                extendedTypesEnabled=true\nadmin.enableServer=false\nadmin.serverPort=9090\nadmin.serverAddress=127.0.0.1\n\
                datadir.autocreate=false\njute.maxbuffer=0x400000\nreadonlymode.enabled=true\n");
    assert_eq!(c.snap_count, 5000);
    assert_eq!(c.global_outstanding_limit, 77);
    let words: Vec<&str> = c.four_letter_words.iter().map(String::as_str).collect();
    assert_eq!(words, ["conf", "isro", "ruok", "srvr", "stat"]);
    assert_eq!(
        c.super_digest.as_deref(),
        Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
    );
    assert!(c.extended_types && c.read_only_mode);
    assert!(!c.admin_enable_server);
    assert_eq!(c.admin_server_port, 9090);
    assert_eq!(c.admin_server_address, "127.0.0.1");
    assert!(!c.data_dir_autocreate);
    assert_eq!(c.jute_max_buffer, 0x400000);
    assert!(c.unknown.is_empty(), "{:?}", c.unknown);
}

#[test]
fn zookeeper_prefixed_keys_work_in_zoo_cfg_too() {
    let c = ok("dataDir=@DIR@\nclientPort=2181\nzookeeper.snapCount=42\nzookeeper.extendedTypesEnabled=true\n");
    assert_eq!(c.snap_count, 42);
    assert!(c.extended_types);
}

#[test]
fn four_letter_word_lists() {
    let all = ok("dataDir=@DIR@\nclientPort=1\n4lw.commands.whitelist=*\n");
    assert_eq!(all.four_letter_words.len(), KNOWN_FOUR_LETTER_WORDS.len());
    assert!(all.is_four_letter_word_enabled("mntr"));
    let none = ok("dataDir=@DIR@\nclientPort=1\n4lw.commands.whitelist=\n");
    assert_eq!(none.four_letter_words, BTreeSet::from(["srvr".to_string()]));
    assert!(none.is_four_letter_word_enabled("srvr"));
    assert!(!none.is_four_letter_word_enabled("ruok"));
    assert!(!none.is_four_letter_word_enabled("isro"));
    let odd = ok("dataDir=@DIR@\nclientPort=1\n4lw.commands.whitelist=ruok,bogus\n");
    assert!(
        odd.four_letter_words.contains("bogus"),
        "kept, as ZooKeeper keeps it"
    );
    assert!(
        odd.warnings()
            .iter()
            .any(|w| w.contains("`bogus` is not a four-letter word")),
        "{:?}",
        odd.warnings()
    );
}

#[test]
fn adjusted_values_are_noted() {
    let c = ok("dataDir=@DIR@\nclientPort=1\nautopurge.snapRetainCount=1\nsnapCount=1\nautopurge.purgeInterval=-5\n\
                clientPortListenBacklog=-1\nminSessionTimeout=-1\n");
    assert_eq!(c.snap_retain_count, 3);
    assert_eq!(c.snap_count, 2);
    assert_eq!(c.purge_interval_hours, 0);
    assert_eq!(c.client_port_listen_backlog, None);
    assert_eq!(c.min_session_timeout_ms, 6000);
    let w = c.warnings().join("\n");
    assert!(
        w.contains("line 3: autopurge.snapRetainCount: 1 is below the minimum of 3"),
        "{w}"
    );
    assert!(
        w.contains("line 4: snapCount: snapCount must be 2 or more"),
        "{w}"
    );
}

#[test]
fn missing_client_port_defaults_to_2181_with_a_note() {
    let c = ok("dataDir=@DIR@\n");
    assert_eq!(c.client_port, 2181);
    assert!(c
        .warnings()
        .iter()
        .any(|w| w.contains("clientPort is not set")));
}

#[test]
fn jute_maxbuffer_reads_like_integer_decode() {
    for (text, n) in [
        ("1048575", 1048575),
        ("0xfffff", 0xfffff),
        ("0X10", 16),
        ("#20", 32),
        ("010", 8),
        ("+5", 5),
    ] {
        let c = ok(&format!(
            "dataDir=@DIR@\nclientPort=1\njute.maxbuffer={text}\n"
        ));
        assert_eq!(c.jute_max_buffer, n, "{text}");
    }
    for bad in ["0", "-1", "0x", "ten", "4294967296", "09"] {
        let e = err(&format!(
            "dataDir=@DIR@\nclientPort=1\njute.maxbuffer={bad}\n"
        ));
        let (line, key, _) = invalid(&e);
        assert_eq!((line, key), (3, "jute.maxbuffer"), "{bad}: {e}");
    }
}

// ---- properties syntax ----

#[test]
fn java_properties_syntax() {
    let text = "  # comment\n! also a comment\n\n   tickTime = 2500  \nclientPort:2182\ndataDir    @DIR@/with\\\n    continued\n\
                4lw.commands.whitelist=ruok,\\\n  stat\r\nadmin.serverAddress\t=\t127.0.0.1\rsnapCount=1\\u0030\nkey\\ with\\=odd=x\n\
                # comment ending in backslash \\\nglobalOutstandingLimit=5\n";
    let c = ok(text);
    assert_eq!(c.tick_time_ms, 2500);
    assert_eq!(c.client_port, 2182);
    assert!(c.data_dir.ends_with("withcontinued"), "{:?}", c.data_dir);
    assert!(c.four_letter_words.contains("stat") && c.four_letter_words.contains("ruok"));
    assert_eq!(c.admin_server_address, "127.0.0.1");
    assert_eq!(c.snap_count, 10);
    assert_eq!(c.global_outstanding_limit, 5);
    assert_eq!(c.unknown, vec![(12, "key with=odd".to_string())]);
}

#[test]
fn property_parser_details() {
    let e = parse_properties("a=1\nb\\\n\nc=3\nd\ne:\n  f  =  g h  \nlast=x\\").expect("parses");
    let got: Vec<(usize, &str, &str)> = e
        .iter()
        .map(|x| (x.line, x.key.as_str(), x.value.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "a", "1"),
            (2, "b", ""),
            (4, "c", "3"),
            (5, "d", ""),
            (6, "e", ""),
            (7, "f", "g h"),
            (8, "last", "x")
        ]
    );
    // Escaped backslash at the end does not continue; \u escapes, including surrogate pairs.
    let e = parse_properties("p=a\\\\\nq=\\u00e9\\uD83D\\uDE00\\t!").expect("parses");
    assert_eq!(e[0].value, "a\\");
    assert_eq!(e[1].value, "é😀\t!");
    let (line, key, msg) = parse_properties("ok=1\nbad=\\u12G4\n").expect_err("malformed");
    assert_eq!((line, key.as_str()), (2, "bad"));
    assert!(msg.contains("\\uXXXX"), "{msg}");
}

#[test]
fn later_duplicates_win() {
    let c = ok("dataDir=@DIR@\nclientPort=1\nclientPort=2\ntickTime=abc\ntickTime=10\n");
    assert_eq!(c.client_port, 2);
    assert_eq!(c.tick_time_ms, 10);
}

#[test]
fn latin1_and_bom() {
    let s = Scratch::new();
    let mut bytes = b"\xef\xbb\xbfdataDir=".to_vec();
    bytes.extend_from_slice(s.dir.path().to_string_lossy().as_bytes());
    bytes.extend_from_slice(b"\nclientPort=1\nfoo=caf\xe9\n");
    let p = s.path("zoo.cfg");
    fs::write(&p, bytes).expect("write");
    let c = Config::from_file(&p).expect("parses");
    assert_eq!(c.unknown, vec![(3, "foo".to_string())]);
}

// ---- errors name file, line and key ----

#[test]
fn bad_values_name_line_and_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("tickTime=abc", "tickTime", "not a whole number"),
        ("tickTime=0", "tickTime", "out of range"),
        ("tickTime=-2000", "tickTime", "out of range"),
        ("tickTime=99999999999", "tickTime", "out of range"),
        ("clientPort=70000", "clientPort", "1 to 65535"),
        ("clientPort=0", "clientPort", "1 to 65535"),
        ("clientPort=http", "clientPort", "not a port number"),
        (
            "clientPortAddress=not a host",
            "clientPortAddress",
            "neither a host name nor an IP",
        ),
        ("maxClientCnxns=-1", "maxClientCnxns", "0 for unlimited"),
        (
            "minSessionTimeout=1s",
            "minSessionTimeout",
            "not a whole number",
        ),
        ("maxSessionTimeout=-7", "maxSessionTimeout", "out of range"),
        ("initLimit=ten", "initLimit", "not a whole number"),
        ("syncLimit=-1", "syncLimit", "out of range"),
        (
            "autopurge.snapRetainCount=x",
            "autopurge.snapRetainCount",
            "not a whole number",
        ),
        (
            "autopurge.purgeInterval=1h",
            "autopurge.purgeInterval",
            "not a whole number",
        ),
        (
            "standaloneEnabled=yes",
            "standaloneEnabled",
            "use true or false",
        ),
        ("reconfigEnabled=1", "reconfigEnabled", "use true or false"),
        ("electionAlg=0", "electionAlg", "only electionAlg=3"),
        ("peerType=leader", "peerType", "participant or observer"),
        ("dataLogDir=", "dataLogDir", "empty"),
        ("version=xyz", "version", "hexadecimal"),
        ("snapCount=many", "snapCount", "not a whole number"),
        (
            "globalOutstandingLimit=0",
            "globalOutstandingLimit",
            "out of range",
        ),
        (
            "extendedTypesEnabled=yes",
            "extendedTypesEnabled",
            "use true or false",
        ),
        (
            "readonlymode.enabled=on",
            "readonlymode.enabled",
            "use true or false",
        ),
        (
            "admin.enableServer=no",
            "admin.enableServer",
            "use true or false",
        ),
        ("admin.serverPort=99999", "admin.serverPort", "1 to 65535"),
        (
            "DigestAuthenticationProvider.superDigest=nocolon",
            "DigestAuthenticationProvider.superDigest",
            "USER:DIGEST",
        ),
        (
            "DigestAuthenticationProvider.superDigest=super:not base64!",
            "DigestAuthenticationProvider.superDigest",
            "USER:DIGEST",
        ),
        ("group.1=1:2:3", "group.1", "hierarchical quorums"),
        ("weight.1=1", "weight.1", "hierarchical quorums"),
        ("server.x=h:1:2", "server.x", "not a server id"),
        ("server.256=h:1:2", "server.256", "0 to 255"),
    ];
    for (line_text, key, expect) in cases {
        let e = err(&format!("dataDir=@DIR@\n# comment\n{line_text}\n# end\n"));
        let (line, got_key, message) = invalid(&e);
        assert_eq!((line, got_key), (3, *key), "{line_text}: {e}");
        assert!(message.contains(expect), "{line_text}: {e}");
        let shown = e.to_string();
        assert!(
            shown.contains("zoo.cfg, line 3: ") && shown.contains(key),
            "{shown}"
        );
    }
}

#[test]
fn unreadable_file_is_named() {
    let s = Scratch::new();
    let missing = s.path("nope.cfg");
    let e = Config::from_file(&missing).expect_err("missing");
    assert!(
        matches!(e, ConfigError::Io { ref path, .. } if *path == missing),
        "{e:?}"
    );
    assert!(e.to_string().contains("nope.cfg"), "{e}");
    let e = Config::from_file(s.dir.path()).expect_err("a directory");
    assert!(matches!(e, ConfigError::Io { .. }), "{e:?}");
}

#[test]
fn data_dir_is_required_in_a_zoo_cfg() {
    let e = err("tickTime=2000\nclientPort=2181\n");
    assert!(matches!(e, ConfigError::File { .. }), "{e:?}");
    assert!(e.to_string().contains("dataDir is not set"), "{e}");
}

#[test]
fn min_session_timeout_above_max_is_an_error_naming_the_key() {
    let e = err("dataDir=@DIR@\nclientPort=1\nminSessionTimeout=5000\nmaxSessionTimeout=4000\n");
    let (line, key, msg) = invalid(&e);
    assert_eq!((line, key), (4, "maxSessionTimeout"));
    assert!(
        msg.contains("minSessionTimeout=5000 must not be larger than maxSessionTimeout=4000"),
        "{msg}"
    );
    // Against a default: the key that was set is named.
    let e = err("tickTime=1000\ndataDir=@DIR@\nclientPort=1\nminSessionTimeout=30000\n");
    let (line, key, msg) = invalid(&e);
    assert_eq!((line, key), (4, "minSessionTimeout"));
    assert!(
        msg.contains("maxSessionTimeout 20000 (the default, 20 × tickTime)"),
        "{msg}"
    );
}

#[test]
fn malformed_property_escape_names_the_line() {
    let e = err("dataDir=@DIR@\nclientPort=1\nsnapCount=\\u00\n");
    let (line, key, _) = invalid(&e);
    assert_eq!((line, key), (3, "snapCount"));
}

// ---- unknown keys are warnings ----

#[test]
fn unknown_keys_are_warnings_not_errors() {
    let c = ok("dataDir=@DIR@\nclientPort=2181\nserverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
                authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
                metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
                metricsProvider.httpPort=7000\nsecureClientPort=2281\nsyncEnabled=true\nTickTime=5\n=orphan\n");
    let keys: Vec<(usize, &str)> = c.unknown.iter().map(|(l, k)| (*l, k.as_str())).collect();
    assert_eq!(
        keys,
        [
            (3, "serverCnxnFactory"),
            (4, "authProvider.1"),
            (5, "metricsProvider.className"),
            (6, "metricsProvider.httpPort"),
            (7, "secureClientPort"),
            (8, "syncEnabled"),
            (9, "TickTime"),
            (10, ""),
        ]
    );
    let w = c.warnings();
    assert!(
        w[0].ends_with("zoo.cfg, line 3: serverCnxnFactory: unknown setting; ignored"),
        "{}",
        w[0]
    );
    assert!(
        w[2].contains(
            "line 5: metricsProvider.className: a ZooKeeper setting Keel does not use; ignored"
        ),
        "{}",
        w[2]
    );
    assert!(
        w[6].contains("TickTime: unknown setting; did you mean tickTime?"),
        "{}",
        w[6]
    );
    assert!(w[7].contains("(empty key)"), "{}", w[7]);
    assert_eq!(c.tick_time_ms, 3000);
}

// ---- -D properties ----

#[test]
fn system_properties_set_every_property() {
    let mut c = Config::default();
    c.apply_system_properties(&props(&[
        ("zookeeper.snapCount", "20"),
        ("zookeeper.globalOutstandingLimit", "9"),
        ("zookeeper.4lw.commands.whitelist", "mntr,conf"),
        (
            "zookeeper.DigestAuthenticationProvider.superDigest",
            "super:abc=",
        ),
        ("zookeeper.extendedTypesEnabled", "true"),
        ("readonlymode.enabled", "true"),
        ("jute.maxbuffer", "4194304"),
        ("zookeeper.admin.enableServer", "false"),
        ("zookeeper.admin.serverPort", "8081"),
        ("zookeeper.admin.serverAddress", "[::1]"),
        ("zookeeper.datadir.autocreate", "false"),
    ]))
    .expect("valid");
    assert_eq!(c.snap_count, 20);
    assert_eq!(c.global_outstanding_limit, 9);
    let words: Vec<&str> = c.four_letter_words.iter().map(String::as_str).collect();
    assert_eq!(words, ["conf", "isro", "mntr", "srvr"]);
    assert_eq!(c.super_digest.as_deref(), Some("super:abc="));
    assert!(c.extended_types && c.read_only_mode);
    assert_eq!(c.jute_max_buffer, 4 << 20);
    assert!(!c.admin_enable_server);
    assert_eq!(c.admin_server_port, 8081);
    assert_eq!(c.admin_server_address, "::1");
    assert!(!c.data_dir_autocreate);
    assert!(c.notes.is_empty(), "{:?}", c.notes);
}

#[test]
fn system_properties_override_the_file() {
    let s = Scratch::new();
    let path = s.write(
        "zoo.cfg",
        "dataDir=@DIR@\nclientPort=1\nsnapCount=10\n4lw.commands.whitelist=ruok\n",
    );
    let c = Config::load(Some(&path), &props(&[("zookeeper.snapCount", "30")])).expect("valid");
    assert_eq!(c.snap_count, 30);
    assert!(c.is_four_letter_word_enabled("ruok"));
    // Turning read-only on from -D adds isro to the file's list.
    let c = Config::load(Some(&path), &props(&[("readonlymode.enabled", "true")])).expect("valid");
    assert!(c.four_letter_words.contains("isro") && c.four_letter_words.contains("ruok"));
}

#[test]
fn bad_system_property_names_the_argument() {
    let mut c = Config::default();
    let e = c
        .apply_system_properties(&props(&[("zookeeper.snapCount", "lots")]))
        .expect_err("bad");
    assert!(
        matches!(e, ConfigError::Property { ref name, ref value, .. } if name == "zookeeper.snapCount" && value == "lots")
    );
    assert!(
        e.to_string().starts_with("-Dzookeeper.snapCount=lots: "),
        "{e}"
    );
    for (name, value) in [
        ("jute.maxbuffer", "big"),
        ("readonlymode.enabled", "yes"),
        ("zookeeper.extendedTypesEnabled", "1"),
        ("zookeeper.admin.serverPort", "0"),
        ("zookeeper.globalOutstandingLimit", "-3"),
        ("zookeeper.DigestAuthenticationProvider.superDigest", ":x"),
    ] {
        let e = Config::default()
            .apply_system_properties(&props(&[(name, value)]))
            .expect_err(name);
        assert!(
            e.to_string().starts_with(&format!("-D{name}={value}: ")),
            "{e}"
        );
    }
}

#[test]
fn jvm_properties_are_ignored_silently_and_unknown_zookeeper_ones_noted() {
    let mut c = Config::default();
    c.apply_system_properties(&props(&[
        ("zookeeper.log.dir", "/var/log/zookeeper"),
        ("zookeeper.log.file", "zookeeper.log"),
        ("zookeeper.root.logger", "INFO,CONSOLE"),
        (
            "log4j.configuration",
            "file:/etc/zookeeper/conf/log4j.properties",
        ),
        ("com.sun.management.jmxremote", ""),
        ("com.sun.management.jmxremote.local.only", "false"),
        ("java.net.preferIPv4Stack", "true"),
        ("file.encoding", "UTF-8"),
        ("jline.terminal", "none"),
        ("zookeeper.jmx.log4j.disable", "true"),
        ("zookeeper.nio.sessionlessCnxnTimeout", "5000"),
        ("znode.container.checkIntervalMs", "100"),
        ("something.else", "x"),
    ]))
    .expect("valid");
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    assert_eq!(c, Config::default());

    c.apply_system_properties(&props(&[
        (
            "zookeeper.serverCnxnFactory",
            "org.apache.zookeeper.server.NettyServerCnxnFactory",
        ),
        ("snapCount", "5"),
        ("tickTime", "5"),
    ]))
    .expect("valid");
    let w = c.warnings();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].contains("zookeeper.serverCnxnFactory") && w[0].contains("does not use"),
        "{}",
        w[0]
    );
    assert!(
        w[1].contains("did you mean -Dzookeeper.snapCount?"),
        "{}",
        w[1]
    );
    assert!(w[2].contains("zoo.cfg setting"), "{}", w[2]);
    assert_eq!(c.snap_count, DEFAULT_SNAP_COUNT);
    assert_eq!(c.tick_time_ms, DEFAULT_TICK_TIME_MS);
}

#[test]
fn empty_super_digest_means_none() {
    let mut c = Config::default();
    c.apply_system_properties(&props(&[(
        "zookeeper.DigestAuthenticationProvider.superDigest",
        "super:x",
    )]))
    .expect("valid");
    c.apply_system_properties(&props(&[(
        "zookeeper.DigestAuthenticationProvider.superDigest",
        "",
    )]))
    .expect("valid");
    assert_eq!(c.super_digest, None);
}

// ---- server lines, myid ----

#[test]
fn server_spec_forms() {
    let s = ServerSpec::parse(1, "zk1.example.com:2888:3888").expect("plain");
    assert_eq!(
        s.addresses,
        [PeerAddress {
            host: "zk1.example.com".into(),
            quorum_port: 2888,
            election_port: 3888
        }]
    );
    assert_eq!((s.role, s.client.clone()), (PeerRole::Participant, None));
    assert_eq!(s.to_string(), "zk1.example.com:2888:3888:participant");

    let s = ServerSpec::parse(2, "10.0.0.2:2888:3888:observer;2181").expect("observer + port");
    assert_eq!(s.role, PeerRole::Observer);
    assert_eq!(
        s.client,
        Some(ClientAddress {
            host: "0.0.0.0".into(),
            port: 2181
        })
    );
    assert_eq!(s.to_string(), "10.0.0.2:2888:3888:observer;0.0.0.0:2181");

    let s = ServerSpec::parse(3, "[::1]:2888:3888:Participant;[::1]:2181").expect("ipv6");
    assert_eq!(s.addresses[0].host, "::1");
    assert_eq!(
        s.client,
        Some(ClientAddress {
            host: "::1".into(),
            port: 2181
        })
    );
    assert_eq!(s.to_string(), "[::1]:2888:3888:participant;[::1]:2181");

    let s = ServerSpec::parse(4, "b:1:2|a:3:4;h:5").expect("multi-address");
    assert_eq!(s.addresses.len(), 2);
    assert_eq!(s.to_string(), "a:3:4|b:1:2:participant;h:5");

    // Java's split drops a trailing empty part.
    assert_eq!(
        ServerSpec::parse(5, "h:1:2;").expect("trailing ;").client,
        None
    );

    for bad in [
        "",
        "h:1",
        "h:1:2:3:4",
        "h:1:2;3;4",
        "h:x:2",
        "h:1:70000",
        "h:5:5",
        "h:1:2:leader",
        "[::1:2888:3888",
        "h:1:2;x",
        "h:1:2;a:b:c",
        "a:1:2:observer|b:3:4:participant",
        " :1:2",
        "h h:1:2",
    ] {
        assert!(
            ServerSpec::parse(9, bad).is_err(),
            "`{bad}` should be rejected"
        );
    }
}

fn ensemble(myid: Option<&str>, extra: &str) -> (Scratch, Result<Config, ConfigError>) {
    let s = Scratch::new();
    if let Some(id) = myid {
        s.write("myid", id);
    }
    let text = format!(
        "tickTime=2000\ndataDir=@DIR@\ninitLimit=10\nsyncLimit=5\nserver.1=127.0.0.1:2888:3888\n\
         server.2=127.0.0.1:2889:3889;2182\nserver.3=127.0.0.1:2890:3890:participant;127.0.0.1:2183\n\
         server.4=127.0.0.1:2891:3891:observer\n{extra}"
    );
    let r = s.cfg(&text);
    (s, r)
}

#[test]
fn ensemble_with_myid() {
    let (_s, r) = ensemble(Some("3\n"), "");
    let c = r.unwrap_or_else(|e| panic!("{e}"));
    assert!(c.is_distributed());
    assert_eq!(c.server_id, Some(3));
    assert_eq!(
        c.servers.iter().map(|s| s.id).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert_eq!(c.servers[0].line, 5);
    assert_eq!(c.this_server().map(|s| s.id), Some(3));
    // The server line's client address is this server's.
    assert_eq!(
        (c.client_port_address.as_str(), c.client_port),
        ("127.0.0.1", 2183)
    );

    let (_s, r) = ensemble(Some("1"), "clientPort=2181\n");
    let c = r.expect("valid");
    assert_eq!(
        (c.client_port_address.as_str(), c.client_port),
        ("0.0.0.0", 2181)
    );
}

#[test]
fn ensemble_errors() {
    let (s, r) = ensemble(None, "");
    let e = r.expect_err("no myid");
    assert!(
        matches!(e, ConfigError::File { ref path, .. } if *path == s.path("myid")),
        "{e:?}"
    );
    assert!(e.to_string().contains("myid file is missing"), "{e}");

    let (_s, r) = ensemble(Some("three"), "");
    let e = r.expect_err("bad myid");
    assert!(
        e.to_string().contains("myid") && e.to_string().contains("`three` is not a server id"),
        "{e}"
    );

    let (_s, r) = ensemble(Some("9"), "");
    assert!(r
        .expect_err("unlisted")
        .to_string()
        .contains("server id 9 is not among the server.N lines"));

    let (_s, r) = ensemble(Some("2"), "clientPort=2181\n");
    let (line, key, msg) = invalid(r.as_ref().expect_err("clash"));
    assert_eq!((line, key), (9, "clientPort"));
    assert!(
        msg.contains("differ from this server's client address"),
        "{msg}"
    );

    let s = Scratch::new();
    s.write("myid", "1");
    let e = s
        .cfg("dataDir=@DIR@\nsyncLimit=5\nserver.1=a:1:2\nserver.2=b:1:2\n")
        .expect_err("initLimit");
    assert!(e.to_string().contains("initLimit is not set"), "{e}");
    let e = s
        .cfg("dataDir=@DIR@\ninitLimit=5\nserver.1=a:1:2\nserver.2=b:1:2\n")
        .expect_err("syncLimit");
    assert!(e.to_string().contains("syncLimit is not set"), "{e}");

    let e = s
        .cfg("dataDir=@DIR@\nserver.1=a:1:2:observer\n")
        .expect_err("observers only");
    assert!(e.to_string().contains("only observers"), "{e}");
    let e = s
        .cfg("dataDir=@DIR@\nserver.1=a:1:2\nserver.2=b:1:2:observer\n")
        .expect_err("observer w/o quorum");
    assert!(e.to_string().contains("observers need a quorum"), "{e}");
    let e = s
        .cfg("dataDir=@DIR@\nstandaloneEnabled=false\n")
        .expect_err("no participants");
    assert!(e.to_string().contains("standaloneEnabled=false"), "{e}");

    let e = s
        .cfg("dataDir=@DIR@\nclientPort=1\nserver.1=a:1\n")
        .expect_err("malformed");
    let (line, key, msg) = invalid(&e);
    assert_eq!((line, key), (3, "server.1"));
    assert!(msg.contains("host:quorumPort:electionPort"), "{msg}");

    // TTL nodes cannot use server id 255.
    let s = Scratch::new();
    s.write("myid", "255");
    let text = "dataDir=@DIR@\ninitLimit=5\nsyncLimit=2\nserver.255=a:1:2\nserver.2=b:1:2\nextendedTypesEnabled=true\n";
    let e = s.cfg(text).expect_err("255 + ttl");
    let (line, key, _) = invalid(&e);
    assert_eq!((line, key), (6, "extendedTypesEnabled"));
    let c = s
        .cfg(&text.replace("extendedTypesEnabled=true\n", ""))
        .expect("255 without ttl");
    let mut c2 = c.clone();
    let e = c2
        .apply_system_properties(&props(&[("zookeeper.extendedTypesEnabled", "true")]))
        .expect_err("255 + ttl from -D");
    assert!(
        e.to_string()
            .starts_with("-Dzookeeper.extendedTypesEnabled=true: "),
        "{e}"
    );
}

#[test]
fn peer_type_that_disagrees_with_the_server_line_is_a_warning() {
    let (_s, r) = ensemble(Some("4"), "peerType=observer\n");
    let c = r.expect("valid");
    assert_eq!(c.this_server().map(|s| s.role), Some(PeerRole::Observer));
    assert!(
        c.warnings().iter().all(|w| !w.contains("peerType")),
        "{:?}",
        c.warnings()
    );

    let (_s, r) = ensemble(Some("1"), "peerType=observer\n");
    let c = r.expect("valid");
    // The server.N line wins, as in ZooKeeper.
    assert_eq!(c.this_server().map(|s| s.role), Some(PeerRole::Participant));
    let w = c.warnings();
    assert!(
        w.iter()
            .any(|w| w.contains("line 9: peerType") && w.contains("using the server.1 line")),
        "{w:?}"
    );
    let (_s, r) = ensemble(Some("4"), "peerType=participant\n");
    assert!(r
        .expect("valid")
        .warnings()
        .iter()
        .any(|w| w.contains("peerType=participant")));
}

#[test]
fn empty_or_garbage_myid_is_named() {
    for bad in ["", "\n", "1x", "-1", "256", "0x1"] {
        let (s, r) = ensemble(Some(bad), "");
        let e = r.expect_err(bad);
        assert!(
            matches!(e, ConfigError::File { ref path, .. } if *path == s.path("myid")),
            "{bad:?}: {e:?}"
        );
        assert!(e.to_string().contains("is not a server id"), "{e}");
    }
}

#[test]
fn single_server_line_runs_standalone_like_zookeeper() {
    let c = ok("dataDir=@DIR@\nclientPort=2181\nserver.1=localhost:2888:3888\n");
    assert!(!c.is_distributed());
    assert_eq!(c.server_id, None, "no myid needed");
    assert!(c
        .warnings()
        .iter()
        .any(|w| w.contains("only one server.N line")));
    // With standaloneEnabled=false it is a one-member ensemble and needs the rest.
    let s = Scratch::new();
    s.write("myid", "1");
    let c = s
        .cfg("dataDir=@DIR@\nclientPort=2181\ninitLimit=5\nsyncLimit=2\nstandaloneEnabled=false\nserver.1=localhost:2888:3888\n")
        .expect("valid");
    assert!(c.is_distributed());
    assert_eq!(c.server_id, Some(1));
}

#[test]
fn dynamic_config_file() {
    let s = Scratch::new();
    s.write("myid", "2");
    s.write(
        "zoo.cfg.dynamic.100000000",
        "server.1=a:2888:3888\nserver.2=b:2888:3888;2181\n",
    );
    let c = s
        .cfg("dataDir=@DIR@\ninitLimit=5\nsyncLimit=2\ndynamicConfigFile=@DIR@/zoo.cfg.dynamic.100000000\n")
        .expect("valid");
    assert_eq!(c.servers.len(), 2);
    assert_eq!(c.config_version, 0x100000000);
    assert_eq!(c.client_port, 2181);
    assert!(c.membership().ends_with("version=100000000"));

    let e = s
        .cfg("dataDir=@DIR@\ndynamicConfigFile=@DIR@/zoo.cfg.dynamic.100000000\nserver.1=a:2888:3888\n")
        .expect_err("servers in both");
    assert!(
        e.to_string().contains("must be in the dynamic config file"),
        "{e}"
    );

    s.write("bad.dynamic", "server.1=a:2888:3888\nversion=5\n");
    let e = s
        .cfg("dataDir=@DIR@\ndynamicConfigFile=@DIR@/bad.dynamic\n")
        .expect_err("version inside");
    let (line, key, _) = invalid(&e);
    assert_eq!((line, key), (2, "version"));
    assert!(e.to_string().contains("bad.dynamic"), "{e}");

    let e = s
        .cfg("dataDir=@DIR@\ndynamicConfigFile=@DIR@/missing.dynamic\n")
        .expect_err("missing");
    let (line, key, msg) = invalid(&e);
    assert_eq!((line, key), (2, "dynamicConfigFile"));
    assert!(msg.contains("missing.dynamic"), "{msg}");
}

// ---- conf ----

#[test]
fn describe_conf_standalone_matches_zookeeper_layout() {
    let s = Scratch::new();
    let c = s
        .cfg("tickTime=2000\ndataDir=@DIR@/data\nclientPort=21810\n")
        .expect("valid");
    fs::create_dir_all(s.path("data/version-2")).expect("mkdir");
    fs::write(s.path("data/version-2/log.1"), vec![0u8; 457]).expect("write");
    let d = s.path("data/version-2").display().to_string();
    let expected = format!(
        "clientPort=21810\nsecureClientPort=-1\ndataDir={d}\ndataDirSize=457\ndataLogDir={d}\ndataLogSize=457\n\
         tickTime=2000\nmaxClientCnxns=60\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n\
         clientPortListenBacklog=-1\nserverId=0\n"
    );
    assert_eq!(c.describe_conf(), expected);
}

#[test]
fn describe_conf_ensemble_adds_quorum_settings_and_membership() {
    let (s, r) = ensemble(Some("2"), "");
    let c = r.expect("valid");
    let text = c.describe_conf_with_sizes(1, 2);
    let d = s.dir.path().join("version-2").display().to_string();
    let expected = format!(
        "clientPort=2182\nsecureClientPort=-1\ndataDir={d}\ndataDirSize=1\ndataLogDir={d}\ndataLogSize=2\n\
         tickTime=2000\nmaxClientCnxns=60\nminSessionTimeout=4000\nmaxSessionTimeout=40000\n\
         clientPortListenBacklog=-1\nserverId=2\ninitLimit=10\nsyncLimit=5\nelectionAlg=3\nelectionPort=3889\n\
         quorumPort=2889\npeerType=0\nmembership: \nserver.1=127.0.0.1:2888:3888:participant\n\
         server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n\
         server.3=127.0.0.1:2890:3890:participant;127.0.0.1:2183\nserver.4=127.0.0.1:2891:3891:observer\nversion=0"
    );
    assert_eq!(text, expected);
}

#[test]
fn relative_data_dir_is_printed_absolute() {
    let c = Config::default();
    let text = c.describe_conf_with_sizes(0, 0);
    let line = text.lines().nth(2).expect("dataDir line");
    let path = line.strip_prefix("dataDir=").expect("dataDir=");
    assert!(Path::new(path).is_absolute(), "{line}");
    assert!(path.ends_with("keel-data/version-2"), "{line}");
}

#[test]
fn load_combines_file_and_properties() {
    let s = Scratch::new();
    let path = s.write("zoo.cfg", "dataDir=@DIR@\nclientPort=3000\nfoo=bar\n");
    let props = props(&[
        ("zookeeper.extendedTypesEnabled", "true"),
        ("zookeeper.bogus", "1"),
    ]);
    let c = Config::load(Some(&path), &props).expect("valid");
    assert_eq!(c.client_port, 3000);
    assert!(c.extended_types);
    let w = c.warnings();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("line 3: foo: unknown setting; ignored"),
        "{}",
        w[0]
    );
    assert!(w[1].contains("-Dzookeeper.bogus=1"), "{}", w[1]);
}
