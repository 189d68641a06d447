//! Running the built `scopegate` binary from a test: one command builder, one result
//! type with the checks the tests make on it, and the commands several test files run.

use std::io::Write;
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

    /// Exited 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// (exit code, -1 when killed by a signal; stdout; stderr).
    pub fn parts(self) -> (i32, String, String) {
        (self.code.unwrap_or(-1), self.stdout, self.stderr)
    }

    /// stdout followed by stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
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

    #[track_caller]
    pub fn expect_ok(self) -> Run {
        assert!(
            self.ok(),
            "the CLI failed:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// A refusal: non-zero exit and exactly one `error:` line on stderr, containing
    /// `needle`.
    #[track_caller]
    pub fn expect_refused(self, needle: &str) -> Run {
        assert!(!self.ok(), "the CLI should have failed:\n{}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one clear line, got:\n{}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "expected `{needle}` in: {}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// The built binary, with no standard input.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scopegate"));
    c.stdin(Stdio::null());
    c
}

/// `scopegate <args...>`.
pub fn scopegate(args: &[&str]) -> Run {
    Run::of(bin().args(args).output().expect("the binary runs"))
}

/// `scopegate <args...>` with `input` on its standard input.
pub fn with_input(args: &[&str], input: &[u8]) -> Run {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("the binary reads its input");
    Run::of(child.wait_with_output().expect("the binary runs"))
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

/// `scopegate audit --config <config> <args...>`: (exit code, stdout, stderr).
pub fn audit(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    run(config, &all).parts()
}

/// `scopegate explain --config <config> <args...>`: (exit code, stdout and stderr).
pub fn explain(config: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let r = run(config, &all);
    (r.code.unwrap_or(-1), r.output())
}
