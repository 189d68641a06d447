use std::path::{Path, PathBuf};

use time::{OffsetDateTime, UtcOffset};

use super::codec;
use crate::config::test_fixture;
use crate::config::{load, load_cached, Config, RateLimit, ScopeLimits};
use crate::domain::backends::{Quota, QuotaPeriod};
use crate::domain::netaddr::CidrSet;

/// A folder with both files of the test fixture, `extra` appended to `scopegate.yaml`.
fn folder(extra: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("scopegate.yaml");
    std::fs::write(&config, test_fixture::gateway_yaml(extra)).expect("write config");
    std::fs::write(dir.path().join("tokens.yaml"), test_fixture::tokens_yaml())
        .expect("write tokens");
    (dir, config)
}

fn cache_file(config: &Path) -> PathBuf {
    config.with_file_name("tokens.yaml.cache")
}

/// Loads through the cache (for files of any size); true when the cache was used (a
/// miss hands back the cache to write, which is written here).
fn load_through_cache(config: &Path) -> (Config, bool) {
    let (loaded, pending) = load_cached(config, 0).expect("valid configuration");
    let hit = pending.is_none();
    if let Some(pending) = pending {
        pending.write();
    }
    (loaded, hit)
}

/// What the YAML says, read without the cache.
fn from_yaml(config: &Path) -> Config {
    load(config).expect("valid configuration")
}

fn assert_same_tokens(a: &Config, b: &Config) {
    assert_eq!(a.accounts, b.accounts);
    assert_eq!(a.tokens, b.tokens);
    assert_eq!(a.deleted_sids, b.deleted_sids);
}

fn encoded(config: &Config) -> Vec<u8> {
    let mut bytes = Vec::new();
    codec::encode(
        &mut bytes,
        &config.accounts,
        &config.tokens,
        &config.deleted_sids,
    );
    bytes
}

#[test]
fn every_field_survives_the_codec() {
    let mut config = test_fixture::config("");
    let full = config.tokens[0].clone();
    let mut rich = full.clone();
    rich.sid = "SGrich".into();
    rich.description = "all fields ✓".into();
    rich.primary_contact = "a@example.com".into();
    rich.developer_emails = vec!["b@example.com".into(), "c@example.com".into()];
    rich.api_version = Some("v1".into());
    rich.environment = Some("staging".into());
    let when = |nanos: i128, offset_minutes: i32| {
        let offset = UtcOffset::from_whole_seconds(offset_minutes * 60).expect("offset");
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .expect("time")
            .to_offset(offset)
    };
    let at = when(1_772_593_567_123_456_789, 150);
    rich.created_at = Some(at);
    rich.rotated_at = Some(when(946_684_799_000_000_000, -480));
    rich.expires_at = Some(when(32_472_144_000_000_000_000, 0));
    rich.previous = Some((crate::domain::model::SecretHash::of_secret(b"old"), at));
    rich.shadow_scopes = Some(rich.scopes[..1].to_vec());
    rich.rate_limit = Some(RateLimit {
        requests_per_second: 0.1 + 0.2,
        burst: 7,
    });
    rich.allowed_ips = Some(CidrSet::new([
        "192.0.2.0/24".parse().expect("net"),
        "2001:db8::/48".parse().expect("net"),
        "::ffff:198.51.100.7/128".parse().expect("net"),
    ]));
    rich.quota = Some(Quota {
        requests: 1_000_000,
        per: QuotaPeriod::Month,
    });
    rich.scope_limits = vec![
        ScopeLimits {
            api: 0,
            rate_limit: Some(RateLimit {
                requests_per_second: 5.0,
                burst: 10,
            }),
            quota: None,
        },
        ScopeLimits {
            api: 2,
            rate_limit: None,
            quota: Some(Quota {
                requests: 3,
                per: QuotaPeriod::Day,
            }),
        },
    ];
    config.tokens.push(rich);
    let bytes = encoded(&config);
    let back = codec::decode(&bytes).expect("decodes");
    assert_eq!(back.accounts, config.accounts);
    assert_eq!(back.tokens, config.tokens);
    assert_eq!(back.deleted_sids, config.deleted_sids);
    // `OffsetDateTime` compares instants; the offset written in the file is kept too.
    let created = back.tokens.last().and_then(|t| t.created_at).expect("set");
    assert_eq!(created.offset(), at.offset());
}

/// A source that hands out at most a few bytes per read, as a pipe or a slow disk may.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(7);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn the_decoder_reads_across_short_reads_and_values_longer_than_its_window() {
    let mut config = test_fixture::config("");
    config.tokens[1].description = "x".repeat(700 * 1024);
    let bytes = encoded(&config);
    for back in [
        codec::decode(&bytes),
        codec::decode_from(&mut Trickle(&bytes)),
    ] {
        let back = back.expect("decodes");
        assert_eq!(back.tokens, config.tokens);
        assert_eq!(back.accounts, config.accounts);
    }
}

#[test]
fn a_truncated_or_altered_payload_never_decodes_to_something_else() {
    let config = test_fixture::config("");
    let bytes = encoded(&config);
    for len in 0..bytes.len() {
        assert!(codec::decode(&bytes[..len]).is_none(), "truncated at {len}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(codec::decode(&longer).is_none(), "trailing byte");
}

#[test]
fn a_second_load_reads_the_cache_and_gets_what_the_yaml_says() {
    let (_dir, config) = folder("");
    let (first, hit) = load_through_cache(&config);
    assert!(!hit, "no cache yet");
    assert!(cache_file(&config).exists());
    let (second, hit) = load_through_cache(&config);
    assert!(hit, "the cache matches");
    assert_same_tokens(&second, &first);
    assert_same_tokens(&second, &from_yaml(&config));
}

#[cfg(unix)]
#[test]
fn the_cache_is_private_and_a_loose_one_is_ignored_and_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, config) = folder("");
    load_through_cache(&config);
    let file = cache_file(&config);
    let mode = |p: &Path| std::fs::metadata(p).expect("cache").permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let (loaded, hit) = load_through_cache(&config);
    assert!(!hit, "a world-writable cache is not trusted");
    assert_same_tokens(&loaded, &from_yaml(&config));
    assert_eq!(mode(&file), 0o600, "rewritten private");
}

#[test]
fn an_edited_tokens_file_is_read_again() {
    let (dir, config) = folder("");
    load_through_cache(&config);
    let tokens = dir.path().join("tokens.yaml");
    let edited = test_fixture::tokens_yaml().replacen(
        "        name: reader\n",
        "        name: reader\n        status: disabled\n",
        1,
    );
    std::fs::write(&tokens, edited).expect("edit");
    let (loaded, hit) = load_through_cache(&config);
    assert!(!hit, "stale cache");
    assert_same_tokens(&loaded, &from_yaml(&config));
    let reader = loaded
        .tokens
        .iter()
        .find(|t| t.sid == test_fixture::READER.sid)
        .expect("reader");
    assert_eq!(reader.status, crate::domain::model::TokenStatus::Disabled);
    // The rewritten cache holds the edit.
    let (cached, hit) = load_through_cache(&config);
    assert!(hit);
    assert_same_tokens(&cached, &loaded);
}

#[test]
fn a_changed_catalog_is_not_served_from_a_cache_of_the_old_one() {
    // API ids are positions in the catalog (sorted by name): a new first API shifts the
    // ids the same tokens file validates to.
    let (_dir, config) = folder("");
    let (before, _) = load_through_cache(&config);
    let grown = std::fs::read_to_string(&config).expect("config").replacen(
        "apis:\n",
        "apis:\n  aaa:\n    paths: [\"/aaa/**\"]\n",
        1,
    );
    std::fs::write(&config, grown).expect("add an API");
    let (loaded, hit) = load_through_cache(&config);
    assert!(!hit, "the key covers the settings");
    let yaml = from_yaml(&config);
    assert_same_tokens(&loaded, &yaml);
    assert_ne!(loaded.tokens, before.tokens, "the ids moved");
}

#[test]
fn a_corrupt_or_foreign_cache_falls_back_to_the_yaml() {
    let (dir, config) = folder("");
    load_through_cache(&config);
    let file = cache_file(&config);
    let good = std::fs::read(&file).expect("cache");

    // One flipped bit in the payload: the checksum catches it.
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&file, &flipped).expect("corrupt");
    let (loaded, hit) = load_through_cache(&config);
    assert!(!hit);
    assert_same_tokens(&loaded, &from_yaml(&config));

    // Truncated inside the header, and empty.
    for cut in [&good[..20], &[][..]] {
        std::fs::write(&file, cut).expect("truncate");
        let (loaded, hit) = load_through_cache(&config);
        assert!(!hit);
        assert_same_tokens(&loaded, &from_yaml(&config));
    }

    // A valid cache of another tokens file (copied over this one's): its key does not
    // match.
    let (other_dir, other_config) = folder("");
    let other_tokens = test_fixture::tokens_yaml().replacen("name: reader", "name: intruder", 1);
    std::fs::write(other_dir.path().join("tokens.yaml"), other_tokens).expect("write");
    load_through_cache(&other_config);
    std::fs::copy(cache_file(&other_config), &file).expect("copy");
    let (loaded, hit) = load_through_cache(&config);
    assert!(!hit);
    assert!(loaded.tokens.iter().all(|t| t.name != "intruder"));
    assert_same_tokens(&loaded, &from_yaml(&config));
    drop(dir);
}

#[test]
fn an_unwritable_cache_place_only_means_no_cache() {
    let (dir, config) = folder("");
    // A state_dir under a regular file can never be created, whoever runs the test.
    let blocker = dir.path().join("not-a-folder");
    std::fs::write(&blocker, "").expect("write");
    let with_state = std::fs::read_to_string(&config).expect("config")
        + &format!("state_dir: {}\n", blocker.join("state").display());
    std::fs::write(&config, with_state).expect("write");
    for _ in 0..2 {
        let (loaded, hit) = load_through_cache(&config);
        assert!(!hit);
        assert_same_tokens(&loaded, &from_yaml(&config));
    }
}

#[test]
fn the_cache_lives_in_state_dir_when_there_is_one() {
    let (dir, config) = folder("");
    let state = dir.path().join("state");
    let with_state = std::fs::read_to_string(&config).expect("config")
        + &format!("state_dir: {}\n", state.display());
    std::fs::write(&config, with_state).expect("write");
    load_through_cache(&config);
    assert!(state.join("tokens.cache").exists());
    assert!(!cache_file(&config).exists());
    let (_, hit) = load_through_cache(&config);
    assert!(hit);
}

#[test]
fn errors_are_reported_as_without_the_cache() {
    let (dir, config) = folder("");
    load_through_cache(&config);
    let broken = test_fixture::tokens_yaml().replacen("name: reader", "name: \"\"", 1);
    std::fs::write(dir.path().join("tokens.yaml"), broken).expect("write");
    let cached = load_cached(&config, 0).err().expect("invalid");
    let plain = load(&config).expect_err("invalid");
    assert_eq!(cached.to_string(), plain.to_string());
    std::fs::remove_file(dir.path().join("tokens.yaml")).expect("remove");
    let cached = load_cached(&config, 0).err().expect("missing");
    assert_eq!(
        cached.to_string(),
        load(&config).expect_err("missing").to_string()
    );
}

#[test]
fn small_tokens_files_are_not_cached() {
    let (_dir, config) = folder("");
    let (_, pending) = load_cached(&config, super::MIN_BYTES).expect("valid configuration");
    assert!(pending.is_none());
    assert!(!cache_file(&config).exists());
    let cache = super::Cache::new(&from_yaml(&config).settings, 0).expect("cache");
    assert_eq!(cache.path(), cache_file(&config));
}
