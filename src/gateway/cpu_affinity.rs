//! Pinning worker threads to CPUs, as [`crate::domain::cpu_affinity::plan`] decides.
//!
//! A thread starts with its creator's CPU set, so once the first worker's thread (the
//! process's main thread) is pinned, the threads it starts later would share its one CPU:
//! among them the blocking-pool threads that parse a reloaded tokens file on two threads.
//! The runtimes therefore hand every thread they start back the whole set
//! ([`release_current_thread`], their `on_thread_start`).

use std::sync::OnceLock;

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// The CPU set the process started with, kept before any thread is pinned.
static PROCESS_CPUS: OnceLock<CpuSet> = OnceLock::new();

/// The CPUs the process may run on, in order (its set when first asked, before pinning).
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // An unreadable set is kept empty: nothing is pinned, and releasing is refused by the
    // kernel (an empty set) and ignored.
    let set = *PROCESS_CPUS.get_or_init(|| sched_getaffinity(None).unwrap_or_default());
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect();
    if cpus.is_empty() {
        return Err(std::io::Error::other(
            "the process's CPU set could not be read",
        ));
    }
    Ok(cpus)
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set)?;
    Ok(())
}

/// Gives the calling thread the CPU set the process started with (what it had anyway,
/// unless it was started by a pinned worker). Nothing before `allowed_cpus` was asked.
pub fn release_current_thread() {
    if let Some(set) = PROCESS_CPUS.get() {
        let _ = sched_setaffinity(None, set);
    }
}
