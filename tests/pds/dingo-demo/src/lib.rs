//! Dingo ports on seL4, end to end: `eth-loopback` provides the
//! EthernetController protocol (a simulated NIC that receives every frame it
//! transmits), `net-client` uses it through its mirror, and `eth-rogue`
//! writes a message straight into the port's ring, bypassing its own
//! observer, so that the driver's observer must catch the violation. The
//! port is one shared region: two rings of 64-byte slots and a data area
//! for the frames, which messages name by offset.
#![no_std]

/// Where frames live in the data area: one transmit and one receive buffer.
pub const TX_BUF: u32 = 0;
pub const RX_BUF: u32 = 2048;
pub const BUF_LEN: u16 = 1536;

/// Time for the protocol observers' timeouts. No timer PD is in these
/// systems, so on x86_64 the TSC stands in for nanoseconds (within a
/// factor of the CPU's GHz: only ordering and rough spans matter here).
#[cfg(target_arch = "x86_64")]
pub fn clock() -> u64 {
    dingo_pd::microkit::hwio::tsc::rdtsc()
}

/// On 32-bit ARM user code has no free-running counter of its own (the
/// Cortex-A9's cycle counter is the kernel's, and stops in `wfi`), and
/// these systems have no timer PD: the count of readings stands in. It
/// keeps the order of events, which is what the observers check here; a
/// protocol timeout would never expire by it.
#[cfg(target_arch = "arm")]
pub fn clock() -> u64 {
    use core::sync::atomic::{AtomicU32, Ordering};
    static READINGS: AtomicU32 = AtomicU32::new(0);
    READINGS.fetch_add(1, Ordering::Relaxed).into()
}
