//! The CPU's time-stamp counter.

/// The x86 time-stamp counter: invariant (constant rate) on the CPUs and
/// QEMU models this project runs on, and readable at user level on seL4.
/// The timer PD calibrates it against the HPET; benchmarks count it.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the counter into registers.
    unsafe { core::arch::x86_64::_rdtsc() }
}
