//! The profile-guided build's training (`benches/pgo.sh train`), run with the test build of
//! the gateway. The whole profile-guided build takes two release builds, too long for every
//! CI run; its training step is what config or CLI changes can break silently (a training
//! gateway that refuses everything would teach the compiler that allowed requests are
//! rare). So: the CLI makes the tokens, the gateway serves both rounds in front of
//! `scopegate echo`, and each round sees every answer the mix is built to reach.

mod support;

use std::path::Path;
use std::process::Command;

use support::process::find_tool;

const BIN: &str = env!("CARGO_BIN_EXE_scopegate");

#[test]
fn the_training_mix_reaches_allowed_refused_and_limited_answers() {
    if find_tool("python3", "PYTHON3").is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 is not installed, and CI=true requires this test to run"
        );
        eprintln!("SKIPPED: python3 is not installed");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("benches/pgo.sh"))
        .args(["train", BIN])
        .env("PGO_REQUESTS", "3000")
        .current_dir(root)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "benches/pgo.sh train failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let rounds: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("pgo_train:"))
        .collect();
    assert_eq!(rounds.len(), 2, "two training rounds:\n{stdout}");
    for round in rounds {
        for status in ["200:", "401:", "403:", "429:"] {
            assert!(round.contains(status), "no {status} answers in {round}");
        }
        assert!(!round.contains("broken"), "connections broke: {round}");
    }
}
