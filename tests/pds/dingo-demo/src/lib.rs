//! Dingo ports on seL4, end to end: `eth-loopback` provides the
//! EthernetController protocol (a simulated NIC that receives every frame it
//! transmits), `net-client` uses it through its mirror, and `eth-rogue`
//! writes a message straight into the port's ring, bypassing its own
//! observer, so that the driver's observer must catch the violation. The
//! port is one shared region: two rings of 64-byte slots and a data area
//! for the frames, which messages name by offset.
#![no_std]

use dingo_pd::microkit;

/// Where frames live in the data area: one transmit and one receive buffer.
pub const TX_BUF: u32 = 0;
pub const RX_BUF: u32 = 2048;
pub const BUF_LEN: u16 = 1536;

/// Time for the protocol observers' timeouts. No timer PD is in these
/// systems, so the TSC stands in for nanoseconds (within a factor of the
/// CPU's GHz: only ordering and rough spans matter here).
pub fn clock() -> u64 {
    microkit::hwio::tsc::rdtsc()
}
