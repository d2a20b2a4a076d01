//! PCI configuration space, host-testable: the header's typed registers
//! ([`regs`]), access to the bus and to one function ([`config`]: mechanism
//! #1 through ports 0xCF8-0xCFF), what a function is ([`probe`]: identity,
//! BARs decoded and sized, interrupt, capabilities, all checked as device
//! input), the pci PD's protected procedure calls ([`wire`]) and its
//! service with the access policy that gives each driver its own function
//! only ([`server`]). The pci PD and pci-client are thin layers over this.
#![cfg_attr(not(any(test, feature = "fake")), no_std)]

pub mod config;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
pub mod probe;
pub mod regs;
pub mod server;
pub mod wire;

#[cfg(test)]
mod tests;
