//! The virtio-drivers crate on this project's driver kit, for the virtio
//! driver PDs (virtio-net, virtio-blk): the crate's HAL over kit/dma
//! memory with real physical addresses ([`hal`]), its PCI transport
//! through the pci PD's pci-client and the bring-up both PDs share
//! ([`pci`], [`pci::set_up`]), and what the crate leaves
//! unchecked about a device: the used ring's indices, ids and lengths,
//! notification suppression, feature negotiation and bounded waits
//! ([`used`]), and MSI-X vectors for the crate's transport ([`vectors`]). Host tests run it against pci-core's fake configuration
//! space and a fake device's rings in kit/dma host memory.
#![cfg_attr(not(test), no_std)]

pub mod hal;
pub mod pci;
pub mod used;
pub mod vectors;

pub use virtio_drivers;

#[cfg(test)]
mod tests;
