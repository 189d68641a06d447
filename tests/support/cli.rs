//! Running the built `scopegate` binary from a test.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// One CLI run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "exit status\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scopegate"));
    c.stdin(Stdio::null());
    c
}

/// `scopegate <args...> --config <config>`.
pub fn run(config: &Path, args: &[&str]) -> Run {
    Run::of(
        bin()
            .args(args)
            .arg("--config")
            .arg(config)
            .output()
            .expect("the binary runs"),
    )
}

/// `token create --json`: (sid, secret).
pub fn create(config: &Path, args: &[&str]) -> (String, String) {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    all.push("--json");
    let j = run(config, &all).expect_code(0).json();
    (
        j["sid"].as_str().unwrap().to_owned(),
        j["secret"].as_str().unwrap().to_owned(),
    )
}
