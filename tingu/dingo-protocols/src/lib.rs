//! The protocol library: every `.tingu` protocol of the system (Lifecycle,
//! PowerManagement, Timer, EthernetController, UsbHostController,
//! UsbRootPorts, UsbBus, UsbPipe, BlockDevice, Keyboard) and the components
//! that combine them, compiled at build time by `tingu` into message enums
//! with their ring-slot encoding and `no_std` observers. Each protocol is a
//! module named after it (`lifecycle`, `usb_pipe`, ...); each component too
//! (`ethernet_driver`, ...).
//! [`shadow`] holds the client-side shadows of the protocols whose
//! providers are restarted.
#![cfg_attr(not(test), no_std)]

include!(concat!(env!("OUT_DIR"), "/protocols.rs"));

pub mod shadow;
