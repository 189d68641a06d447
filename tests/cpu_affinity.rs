//! `worker_cpu_affinity`, through the built binary: with as many workers as the process
//! has CPUs, each worker thread runs on a CPU of its own, and the threads started later
//! (the blocking pool that parses a reload) still get every CPU; `off`, or fewer workers
//! than CPUs, pins nothing. Read from `/proc/<pid>/task/*/status`, as an operator would.

mod support;

use std::collections::BTreeSet;

use support::process::{start_serve, wait_generation, Proc};
use support::Upstream;

/// The CPUs in a `Cpus_allowed_list` value: `0-3,6`.
fn cpu_list(text: &str) -> BTreeSet<usize> {
    let mut cpus = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => {
                cpus.insert(part.parse().unwrap());
            }
        }
    }
    cpus
}

fn allowed_in(status: &str) -> BTreeSet<usize> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc status");
    cpu_list(line)
}

/// Each thread of process `pid`: (name, CPUs it may run on).
fn threads(pid: u32) -> Vec<(String, BTreeSet<usize>)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(name), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        out.push((name.trim().to_owned(), allowed_in(&status)));
    }
    out
}

fn own_cpus() -> BTreeSet<usize> {
    allowed_in(&std::fs::read_to_string("/proc/self/status").unwrap())
}

/// The workers' threads: the main thread (worker 0) and `scopegate-worker-N`.
fn worker_threads(p: &Proc) -> Vec<(String, BTreeSet<usize>)> {
    threads(p.child.id())
        .into_iter()
        .filter(|(name, _)| name == "scopegate" || name.starts_with("scopegate-worke"))
        .collect()
}

/// The workers' threads once `done` holds for them, or after 10 s: a new thread carries
/// its creator's name and CPUs until its own first steps rename (and pin) it, and the
/// gateway may answer `/readyz` (from the first worker) before a busy machine has run
/// them. The caller asserts on what was seen last.
async fn workers_when(
    p: &Proc,
    done: impl Fn(&[(String, BTreeSet<usize>)]) -> bool,
) -> Vec<(String, BTreeSet<usize>)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = worker_threads(p);
        if done(&seen) || std::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The number of threads the further workers (all but the first) have named as theirs.
fn started(seen: &[(String, BTreeSet<usize>)]) -> usize {
    seen.iter()
        .filter(|(name, _)| name.starts_with("scopegate-worke"))
        .count()
}

#[tokio::test]
async fn workers_covering_every_cpu_each_get_one_and_later_threads_get_all() {
    let all = own_cpus();
    if all.len() < 2 {
        eprintln!("SKIPPED the pinned case: this process may run on one CPU only");
        return;
    }
    let upstream = Upstream::start().await;
    let workers = all.len().to_string();
    let (mut p, _listen, admin, dir) = start_serve(
        upstream.addr,
        "",
        &[],
        &[("TOKIO_WORKER_THREADS", &workers)],
    );
    p.wait_ready(&admin).await;
    let pinned = workers_when(&p, |seen| {
        seen.len() == all.len() && seen.iter().all(|(_, cpus)| cpus.len() == 1)
    })
    .await;
    assert_eq!(pinned.len(), all.len(), "{pinned:?}");
    let mut seen = BTreeSet::new();
    for (name, cpus) in &pinned {
        assert_eq!(cpus.len(), 1, "{name} runs on {cpus:?}");
        assert!(
            cpus.is_subset(&all),
            "{name} runs on {cpus:?}, outside {all:?}"
        );
        seen.extend(cpus);
    }
    assert_eq!(seen, all, "one worker per CPU: {pinned:?}");
    assert!(p
        .stderr()
        .contains("each worker pinned to a CPU of its own"));

    // A reload parses on the blocking pool, whose threads start after the pinning.
    let tokens = dir.path("tokens.yaml");
    let text = std::fs::read_to_string(&tokens).unwrap();
    std::fs::write(&tokens, format!("{text}\n# touched\n")).unwrap();
    wait_generation(&admin, 2).await;
    let later: Vec<_> = threads(p.child.id())
        .into_iter()
        .filter(|(name, _)| name.starts_with("tokio-r"))
        .collect();
    assert!(
        !later.is_empty(),
        "a blocking-pool thread: {:?}",
        threads(p.child.id())
    );
    for (name, cpus) in later {
        assert_eq!(cpus, all, "{name} was started by a pinned worker");
    }
}

#[tokio::test]
async fn off_or_fewer_workers_than_cpus_pin_nothing() {
    let all = own_cpus();
    let upstream = Upstream::start().await;
    let workers = all.len().to_string();
    let fewer = (all.len() - 1).max(1).to_string();
    let cases = [
        ("worker_cpu_affinity: off\n", workers.as_str()),
        ("", fewer.as_str()),
    ];
    for (extra, workers) in cases {
        let (mut p, _listen, admin, _dir) = start_serve(
            upstream.addr,
            extra,
            &[],
            &[("TOKIO_WORKER_THREADS", workers)],
        );
        p.wait_ready(&admin).await;
        // Every worker thread has started (a pin, were there one, is its next step).
        let further = workers.parse::<usize>().unwrap() - 1;
        let seen = workers_when(&p, |seen| started(seen) == further).await;
        assert_eq!(started(&seen), further, "worker threads started: {seen:?}");
        for (name, cpus) in threads(p.child.id()) {
            assert_eq!(cpus, all, "{name} with {extra:?} and {workers} workers");
        }
        assert!(!p.stderr().contains("pinned"), "{}", p.stderr());
    }
}
