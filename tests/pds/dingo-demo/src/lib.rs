//! Dingo ports on seL4, end to end: `eth-loopback` provides the
//! EthernetController protocol (a simulated NIC that receives every frame it
//! transmits), `net-client` uses it through its mirror, and `eth-rogue`
//! writes a message straight into the port's ring, bypassing its own
//! observer, so that the driver's observer must catch the violation. The
//! port is one shared region: two rings of 64-byte slots and a data area
//! for the frames, which messages name by offset.
#![no_std]

use dingo_pd::dingo_rt::port::{Port, Side};
use dingo_pd::microkit;

/// The port region's size and slots per ring; both sides must agree.
pub const PORT_SIZE: usize = 0x4000;
pub const PORT_SLOTS: u32 = 16;
/// The channel id of the port at both ends.
pub const ETH_CHANNEL: u8 = 0;

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

/// This PD's end of the port in the region at `vaddr`.
pub fn port(vaddr: u64, side: Side) -> Port<64> {
    // SAFETY: system.xml maps PORT_SIZE bytes read-write at `vaddr` in the
    // two PDs of this port, one per side, and nothing else touches them.
    match unsafe { Port::new(vaddr as *mut u8, PORT_SIZE, PORT_SLOTS, side, ETH_CHANNEL) } {
        Ok(p) => p,
        Err(e) => panic!("bad port region at {vaddr:#x}: {e:?}"),
    }
}
