//! The USB Ethernet driver's core (pds/usb-net): a CDC-ECM device (QEMU's
//! usb-net) over a [`usb_bus::session::Session`], seen from its client as
//! an EthernetController.
//!
//! - Set-up: the device descriptor (how many configurations), then each
//!   configuration until one has a CDC Ethernet control interface (2/6/0)
//!   with its Ethernet functional descriptor (the MAC's string index) and
//!   a data interface (class 10) with an alternate setting holding a bulk
//!   IN and a bulk OUT endpoint. SET_CONFIGURATION, the MAC from its string
//!   (twelve hex digits), SET_INTERFACE to that alternate, both bulk pipes
//!   opened, [`RX_SLOTS`] receives queued. Every descriptor is untrusted:
//!   a device without all of this is released with the reason.
//! - Frames: receives land in the driver's DMA window and are copied into
//!   the buffers the client lent; a filled slot waits for a lent buffer
//!   (it is not queued again meanwhile, so the device holds further frames
//!   back). A transmit is copied into a free slot of the window and is
//!   done for the client at once; without a free slot it waits, and the
//!   client's queue is stopped while many wait. A frame leaves as its full
//!   packets and then the short rest, a zero-length packet when there is
//!   none: the end of a frame is a short packet (CDC 1.2 §3.3.1).
//! - Link state: the control interface's interrupt IN endpoint, if it has
//!   one, is read all along for CDC notifications ([`notify`]):
//!   NetworkConnection takes the client's link down and up,
//!   ConnectionSpeedChange is kept ([`Driver::speed`]) and printed, others
//!   and malformed ones are counted. Nothing waits for one: a device is
//!   taken as connected until it says otherwise, since a device need not
//!   report. QEMU's usb-net reports "connected" on every 32 ms poll, for
//!   its data interface rather than its control interface ([`notify`]
//!   takes either). A stalled notification endpoint is left so.
//! - Why frames are copied: the window is the controller's DMA memory
//!   (the controller PD is given its users' windows and only those), and
//!   the EthernetController data area is the client's, shared with this
//!   PD only. Zero-copy would need the net PD's frame buffers to live in
//!   this PD's DMA window, so that a lent buffer's offset could go into a
//!   transfer as is: one region mapped into three PDs (net, usb-net,
//!   ohci), the window grown to the client's 128 buffers, and receives
//!   queued into lent buffers rather than slots (a frame that is a multiple
//!   of 64 bytes then ends in a separate zero-length read). That changes
//!   three PDs' memory layout for one memcpy each way per frame, which no
//!   bench here has shown to matter, so it is not done.
//! - Hot-unplug: the link goes down, waiting transmits are aborted, lent
//!   buffers stay lent; a device plugged again is set up again and the
//!   link comes back up.
#![cfg_attr(not(test), no_std)]

mod driver;
pub mod notify;

pub use driver::*;
