//! The host-testable core of the i.MX6 ENET driver PD: the controller's
//! typed registers ([`regs`]), the PHY over MDIO ([`phy`]), the receive
//! and transmit descriptor rings ([`desc`]), each hardened against a
//! device that writes anything into a descriptor, and the driver state
//! machine over them ([`nic`]), which turns interrupts, lent buffers,
//! transmit requests and PHY polls into events for the EthernetController
//! protocol. It touches the device only through an hwio bus and kit/dma
//! buffers, so `cargo test` runs all of it against a fake ENET (fake.rs)
//! that behaves like QEMU's model, or writes malformed descriptors.
//!
//! # What the driver relies on in QEMU's model (hw/net/imx_fec.c, 7.2)
//!
//! Read from the model's source and checked by the boot tests:
//! - the sabrelite machine's ENET is at 0x02188000 (16 KiB), its MAC
//!   interrupt is GIC SPI 118 (interrupt 150), and its PHY at MDIO
//!   address 6 (identifier 0x0007c0d1), as on the real board;
//! - registers take 32-bit accesses only; ECR.RESET resets the controller
//!   and the PHY and reloads PALR/PAUR with the configured MAC;
//! - with ECR.EN1588 clear the model uses the legacy 8-byte descriptors
//!   (length, status, address) in the CPU's byte order; clearing
//!   ECR.ETHEREN puts both descriptor pointers back at RDSR and TDSR;
//! - receive: while RDAR reads 0 (the model found no empty descriptor)
//!   QEMU holds frames back instead of dropping them; a write to RDAR
//!   makes it look at its current descriptor again. A frame longer than
//!   MRBR continues in the next descriptors; if they run out the rest is
//!   lost and the last written descriptor has no L bit. The length
//!   includes the 4-byte CRC, which the model always writes; frames are
//!   not padded; LG is set above RCR.MAX_FL;
//! - transmit: the model sends every ready descriptor inside the TDAR
//!   write, clears R and sets TXF and TXB; it neither pads nor reports
//!   errors per frame;
//! - MDIO: an MMFR write completes at once and sets EIR.MII; the PHY
//!   interrupt reaches nothing, so the link has to be polled; QMP's
//!   `set_link` flips the PHY's link bit;
//! - the MIB counters are not modelled (they read 0).
//!
//! # Caches
//!
//! The ENET is not coherent with the Cortex-A9's caches, and PDs cannot
//! clean or invalidate them on 32-bit ARM (no cache maintenance by
//! address at user level; the kernel's page invocations would cost a
//! system call per frame). The descriptor rings, the bounce buffers and
//! the client's data area are therefore mapped uncached (`cached="false"`
//! in system.xml, in every PD that maps them), which seL4 5.0.0 makes
//! strongly-ordered: every access goes to memory in program order, and
//! kit/dma's barriers order the rest. Strongly-ordered memory faults on
//! unaligned accesses, so everything here (and the net PD's copies)
//! moves aligned words or single bytes.
#![cfg_attr(not(test), no_std)]

pub mod desc;
pub mod nic;
pub mod phy;
pub mod regs;

#[cfg(test)]
mod fake;
