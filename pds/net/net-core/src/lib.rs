//! The host-testable core of the network stack PD: [`device`] is
//! smoltcp's device over an EthernetController port (receive buffers lent
//! to the driver, transmit buffers sent by offset, an outbox towards the
//! port), [`inspect`] checks every received frame and counts what it drops
//! by reason, and [`stack`] runs smoltcp (ARP, IPv4, ICMP echo, UDP, TCP,
//! DHCPv4 or a static address) with the PD's services: UDP and TCP echo
//! on port 7 and a plain-text status page on TCP port 80. Nothing here
//! knows the driver's hardware: the same core serves any NIC that speaks
//! EthernetController.
#![cfg_attr(not(test), no_std)]

pub mod device;
pub mod inspect;
pub mod stack;

#[cfg(test)]
mod tests;
