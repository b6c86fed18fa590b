//! The configuration's unit tests: the embedded defaults, validation messages naming the key,
//! file-over-defaults merging and environment overrides. Must never touch the real data dir.

use super::*;

#[test]
fn embedded_defaults_parse_and_validate() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(c.http.listen.port(), 8080);
    assert_eq!(c.school.quality_interval_sec, 5);
    let off = Config::from_toml_over_defaults("[school]\nquality_interval_sec = 0\n", "t").unwrap();
    assert_eq!(off.school.quality_interval_sec, 0);
}

/// The defaults live in the embedded TOML and in the serde `default_*` functions (which
/// also read `sfu::worker::FAN_OUT_CHUNK`, `sfu::pipe::BACKLOG`...): they must agree, key
/// by key, or a file that leaves a key out would get another value than the docs say.
#[test]
fn serde_defaults_equal_the_embedded_toml() {
    let embedded = toml::Value::try_from(Config::default()).unwrap();
    // Every section of the embedded file, with every key left out that serde can fill.
    let full: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
    let mut sparse = toml::Table::new();
    for (section, v) in &full {
        let mut keep = toml::Table::new();
        if let toml::Value::Table(t) = v {
            for (k, x) in t {
                let mut probe = full.clone();
                if let Some(toml::Value::Table(pt)) = probe.get_mut(section) {
                    pt.remove(k);
                }
                if toml::Value::Table(probe).try_into::<Config>().is_err() {
                    keep.insert(k.clone(), x.clone()); // required: no serde default
                }
            }
            sparse.insert(section.clone(), toml::Value::Table(keep));
        } else {
            sparse.insert(section.clone(), v.clone());
        }
    }
    let from_serde: Config = toml::Value::Table(sparse).try_into().unwrap();
    let from_serde = toml::Value::try_from(from_serde).unwrap();
    let (toml::Value::Table(a), toml::Value::Table(b)) = (&embedded, &from_serde) else {
        panic!("a config serializes to a table");
    };
    for (section, va) in a {
        let vb = &b[section];
        if let (toml::Value::Table(ta), toml::Value::Table(tb)) = (va, vb) {
            for (k, x) in ta {
                assert_eq!(
                    Some(x),
                    tb.get(k),
                    "default of {section}.{k}: TOML vs serde"
                );
            }
        } else {
            assert_eq!(va, vb, "default of {section}: TOML vs serde");
        }
    }
    assert_eq!(embedded, from_serde);
}

#[test]
fn unknown_key_is_named() {
    let err = Config::from_toml_over_defaults("[media]\nudp_prot = 5\n", "t.toml").unwrap_err();
    assert!(err.to_string().contains("udp_prot"), "{err}");
}

#[test]
fn wrong_type_is_named() {
    let err =
        Config::from_toml_over_defaults("[media]\nworkers = \"two\"\n", "t.toml").unwrap_err();
    assert!(err.to_string().contains("workers"), "{err}");
}

#[test]
fn env_overrides_keep_types() {
    let mut v: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
    apply_env(
        &mut v,
        &[
            ("CLASSRELAY_MEDIA__UDP_PORT".into(), "5002".into()),
            ("CLASSRELAY_DATA__DIR".into(), "/tmp/x".into()),
            ("CLASSRELAY_LOG".into(), "debug".into()),
        ],
    )
    .unwrap();
    let c: Config = v.try_into().unwrap();
    assert_eq!(c.media.udp_port, 5002);
    assert_eq!(c.data.dir, PathBuf::from("/tmp/x"));
    let mut v: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
    let err = apply_env(
        &mut v,
        &[("CLASSRELAY_MEDIA__UDP_PORT".into(), "many".into())],
    )
    .unwrap_err();
    assert!(err.to_string().contains("media.udp_port"), "{err}");
}

#[test]
fn bad_values_are_named() {
    let err = Config::from_toml_over_defaults("[auth]\ndefault_ttl = \"soon\"\n", "t").unwrap_err();
    assert!(err.to_string().contains("auth.default_ttl"), "{err}");
    let err = Config::from_toml_over_defaults("[[ice_servers]]\nurls = [\"http://x\"]\n", "t")
        .unwrap_err();
    assert!(err.to_string().contains("ice_servers[0].urls"), "{err}");
    let err = Config::from_toml_over_defaults("[media]\nfanout_chunk = 0\n", "t").unwrap_err();
    assert!(err.to_string().contains("media.fanout_chunk"), "{err}");
    for (text, key) in [
        ("connect_timeout_ms = 999", "media.connect_timeout_ms"),
        ("connect_timeout_ms = 120001", "media.connect_timeout_ms"),
        ("max_publish_kbps = 99", "media.max_publish_kbps"),
        ("max_publish_pps = 49", "media.max_publish_pps"),
    ] {
        let err = Config::from_toml_over_defaults(&format!("[media]\n{text}\n"), "t").unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
    let c = Config::default();
    assert_eq!(
        (
            c.media.connect_timeout_ms,
            c.media.max_publish_kbps,
            c.media.max_publish_pps
        ),
        (10_000, 10_000, 2_500)
    );
}

#[test]
fn login_limits_are_checked() {
    let c = Config::default();
    assert_eq!(c.auth.login_address_burst, 30);
    assert_eq!(c.auth.login_username_burst, 5);
    for (text, key) in [
        ("login_address_burst = 0", "auth.login_address_burst"),
        (
            "login_address_interval = \"0s\"",
            "auth.login_address_interval",
        ),
        (
            "login_address_interval = \"often\"",
            "auth.login_address_interval",
        ),
        ("login_username_burst = 0", "auth.login_username_burst"),
        (
            "login_username_backoff = \"0s\"",
            "auth.login_username_backoff",
        ),
        (
            "login_username_backoff = \"1h\"\nlogin_username_backoff_max = \"1m\"",
            "auth.login_username_backoff_max",
        ),
        ("login_tracked_max = 10", "auth.login_tracked_max"),
    ] {
        let err = Config::from_toml_over_defaults(&format!("[auth]\n{text}\n"), "t").unwrap_err();
        assert!(err.to_string().contains(key), "{text}: {err}");
    }
}

#[test]
fn session_caps_default_and_refuse_zero() {
    let c = Config::default();
    assert_eq!(
        (
            c.media.max_sessions_per_principal,
            c.media.max_sessions_per_token
        ),
        (16, 8)
    );
    assert_eq!(c.media.max_room_share_percent, 50);
    for key in [
        "max_sessions_per_principal",
        "max_sessions_per_token",
        "max_room_share_percent",
    ] {
        let err =
            Config::from_toml_over_defaults(&format!("[media]\n{key} = 0\n"), "t").unwrap_err();
        assert!(err.to_string().contains(&format!("media.{key}")), "{err}");
    }
    let err = Config::from_toml_over_defaults("[media]\nmax_room_share_percent = 101\n", "t")
        .unwrap_err();
    assert!(
        err.to_string().contains("media.max_room_share_percent"),
        "{err}"
    );
}

#[test]
fn bad_http_values_are_named() {
    for (toml, key) in [
        ("max_connections = 0", "http.max_connections"),
        ("header_read_timeout_ms = 0", "http.header_read_timeout_ms"),
        ("request_timeout_ms = 0", "http.request_timeout_ms"),
        ("tls_cert = \"/x.pem\"", "http.tls_cert"),
        ("trusted_proxies = [\"proxy\"]", "http.trusted_proxies"),
        ("public_url = \"relay.example\"", "http.public_url"),
    ] {
        let err = Config::from_toml_over_defaults(&format!("[http]\n{toml}\n"), "t").unwrap_err();
        assert!(err.to_string().contains(key), "{toml}: {err}");
    }
    let ok = "[http]\ntrusted_proxies = [\"127.0.0.1/32\", \"::1\"]\nmetrics_token = \"m\"\n";
    assert!(Config::from_toml_over_defaults(ok, "t").is_ok());
}
