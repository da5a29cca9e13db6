//! How the process's memory allocator is tuned (glibc's malloc, on Linux).
//!
//! A password hash (argon2id) takes a 19 MiB block. glibc serves a block that large with its
//! own mapping, but each time one is freed it raises that threshold to the freed size, so
//! from the second hash on the blocks come from the thread's arena, and an arena keeps what
//! it once held. The hashes run on the blocking pool, a thread (and an arena) each: a burst
//! of a hundred sign-ups left an idle server at 660 MiB (`cargo bench --bench memory`).
//! A fixed threshold stops the adjustment: every block of 1 MiB or more is mapped on its own
//! and goes back to the system when freed.

/// Blocks at least this large are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: usize = 1 << 20;

/// Applies the tuning; call it once, first thing in `main`.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets one of malloc's parameters; glibc takes its own lock.
        let set = unsafe { nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as nix::libc::c_int) };
        if set != 1 {
            eprintln!("huddle: the allocator's mmap threshold could not be set");
        }
    }
}

/// Resident memory of process `pid` (`VmRSS` in `/proc/<pid>/status`), KiB; 0 where unknown.
/// For the memory benchmark and tests.
pub fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
