//! The host-testable core of the RTL8139 driver PD: the device's typed
//! registers ([`regs`]), the normal-mode receive ring ([`rx`]) and transmit
//! descriptors ([`tx`]), C+ mode's descriptor rings ([`cplus`]), each
//! hardened against a device that writes anything, and the driver state
//! machine over them in either mode ([`nic`]), which turns
//! interrupts, lent buffers and transmit requests into events for the
//! EthernetController protocol. It touches the device only through an hwio
//! bus and kit/dma buffers, so `cargo test` runs all of it against a fake
//! RTL8139 (tests/fake.rs) that behaves like QEMU's model, or writes
//! garbage.
//!
//! # What the driver relies on in QEMU's model (hw/net/rtl8139.c)
//!
//! Read from the model's source and checked by the boot tests:
//! - revision 0x20 (8139C+), BAR0 I/O and BAR1 MMIO of 256 bytes each; the
//!   driver uses the MMIO BAR (an I/O port access is a kernel call);
//! - bus mastering must be on in the PCI command register or DMA does
//!   nothing;
//! - TxConfig writes are ignored while Command.TE is clear; every RxConfig
//!   write resets both ring pointers to 0; CAPR reads and writes are the
//!   read offset minus 16; CBR is the write offset, updated after a whole
//!   record;
//! - a record is a header (status low, length with CRC high), the frame
//!   (padded to 60 bytes), a CRC, 4-byte aligned; with RxConfig.WRAP clear
//!   it wraps at the ring's end;
//! - in normal mode the four transmit descriptors are used strictly in
//!   order and a frame is sent inside the TSD write; no padding;
//! - RxOverflow masked in IntrMask makes the model hold frames back
//!   instead of dropping them while the ring is full;
//! - IntrStatus is write-1-to-clear; `set_link` raises PUN/LinkChg and
//!   flips BMSR.LINK;
//! - any write to CpCmd switches the model to C+ mode until reset, and
//!   normal-mode TSD writes then stop transmitting; C+ mode's own rules
//!   are in [`cplus`]. Which mode the PD runs, and what `make bench`
//!   measured for each, is in the PD's doc (pds/rtl8139/src/bin).
#![cfg_attr(not(test), no_std)]

pub mod campaign;
pub mod cplus;
pub mod nic;
pub mod regs;
pub mod rx;
pub mod tx;

#[cfg(test)]
mod fake;
