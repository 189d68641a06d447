//! Which CPU each worker runs on (`worker_cpu_affinity`).
//!
//! Workers are pinned one to a CPU only when they are exactly as many as the CPUs the
//! process may run on, and there are at least two. Then the scheduler has nothing better to
//! do, except that on a machine shared with other busy processes (an app server, a load
//! generator) it now and then stacks both workers on one core, and the requests of the one
//! waiting queue behind the other's: with 2 workers on the 2-core benchmark VM, p99 was
//! 2.1-2.8 ms pinned and 2.7-4.7 ms not (BENCHMARKS.md, round 10). With fewer workers than
//! CPUs, the scheduler's free choice is worth more than a fixed place. And a container
//! limited by a CPU quota rather than a cpuset may run on every CPU of the host: pinning
//! its workers to the host's first CPUs would stack every such container there, so it is
//! not done.

use serde::Deserialize;

/// `worker_cpu_affinity:` in the gateway config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuAffinity {
    /// Pin when the workers exactly cover the process's CPUs (the module doc).
    #[default]
    Auto,
    /// Never pin: the kernel places the workers.
    Off,
}

/// The CPU of each worker, in worker order, or `None` when the workers are not pinned.
/// `allowed` lists the CPUs the process may run on.
pub fn plan(mode: CpuAffinity, workers: usize, allowed: &[usize]) -> Option<Vec<usize>> {
    (mode == CpuAffinity::Auto && workers > 1 && allowed.len() == workers).then(|| allowed.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_are_pinned_only_when_they_cover_the_allowed_cpus_exactly() {
        assert_eq!(plan(CpuAffinity::Auto, 2, &[0, 1]), Some(vec![0, 1]));
        // A cpuset that is not the host's first CPUs: the workers get those CPUs.
        assert_eq!(plan(CpuAffinity::Auto, 2, &[4, 7]), Some(vec![4, 7]));
        // Fewer workers than CPUs (or a quota-limited container on a big host).
        assert_eq!(plan(CpuAffinity::Auto, 2, &[0, 1, 2, 3]), None);
        // More workers than CPUs.
        assert_eq!(plan(CpuAffinity::Auto, 4, &[0, 1]), None);
        // One worker: nothing to keep apart.
        assert_eq!(plan(CpuAffinity::Auto, 1, &[0]), None);
        assert_eq!(plan(CpuAffinity::Off, 2, &[0, 1]), None);
    }
}
