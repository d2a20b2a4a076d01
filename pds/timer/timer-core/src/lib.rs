//! Timer PD core: the host-testable logic of the timer protection domain,
//! free of seL4 calls so that `cargo test` exercises all of it. [`queue`] is
//! the fixed-capacity timeout queue behind the Timer protocol; [`hpet`] holds
//! the HPET's typed register definitions (hwio) and a one-shot driver over
//! any hwio bus (MMIO in the PD, hwio's fake device in tests), and [`gpt`]
//! the same for the i.MX6's General Purpose Timer (the Sabre Lite's timer
//! PD, `gpt-timer`); [`clock`]
//! calibrates the TSC against the HPET and converts between TSC ticks,
//! nanoseconds and HPET ticks; [`timepage`] is the seqlocked page through
//! which the timer PD publishes that conversion to every other PD.
//!
//! # Why reading the time needs no IPC
//!
//! The TSC is invariant (constant rate, not stopped in idle states) on every
//! x86 CPU of the last decade and in QEMU, and `rdtsc` is allowed at user
//! level on seL4. The only thing a PD lacks to turn a TSC reading into
//! nanoseconds is the conversion: the TSC frequency, which the timer PD
//! measures once at start-up against the HPET's fixed, architecturally
//! documented period. The timer PD therefore publishes the conversion
//! (`tsc_base`, `ns_base`, `mult`, `shift`, `tsc_hz`) on a page that every PD
//! maps read-only, and a PD computes `now` as
//! `ns_base + ((rdtsc() - tsc_base) * mult) >> shift` locally. The page
//! changes only when the timer PD re-publishes, so a seqlock is enough to
//! hand readers a consistent copy without any lock they could block on.
//! Timeouts, which need an interrupt, are the only service that goes through
//! the Timer protocol.
//!
//! No allocation, no locks, `no_std` outside tests.
#![cfg_attr(not(test), no_std)]

pub mod clock;
pub mod gpt;
pub mod hpet;
pub mod queue;
pub mod timepage;

#[cfg(test)]
mod test_rng;
