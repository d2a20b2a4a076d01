//! The core of the OHCI host controller driver (pds/ohci): everything but
//! the PD's ports, on any hwio [`Bus`](hwio::Bus) and a dma region, so that
//! it runs in host tests against a model of the controller.
//!
//! - [`regs`] and [`desc`]: the operational registers and the in-memory
//!   descriptors (ED, TD, HCCA) as typed fields.
//! - [`Ohci`]: the schedule and its transfers. Control and bulk EDs sit on
//!   the controller's two lists, interrupt EDs in a tree of 63 skipped
//!   placeholder EDs under the HCCA's 32 slots (intervals 1 to 32 ms).
//!   Every ED ends in a placeholder TD, so queueing never races the
//!   controller: the new TDs are written behind the placeholder, the
//!   placeholder becomes the first of them, and only then does the tail
//!   move. The done queue is taken on WritebackDoneHead; a halted ED is
//!   recovered (the rest of the failed transfer dropped, the queue
//!   resumed); an ED leaves the schedule by being skipped and unlinked,
//!   and is reused or freed only once two frame boundaries have passed
//!   and the controller's own done list is empty. An UnrecoverableError
//!   or a frame counter that stops (the watchdog) re-initialises the
//!   controller, completing every transfer in flight as aborted.
//! - [`check`]: the schedule checker of debug builds.
//!
//! # What QEMU's model does (hw/usb/hcd-ohci.c, 7.2)
//!
//! Read from the source of the QEMU the tests run; the driver depends on
//! each of these:
//!
//! - A 1 ms frame timer (virtual time) runs only in OPERATIONAL. At each
//!   frame boundary it walks the periodic list of that frame, then the
//!   control and bulk lists if their enable and filled bits are set; it
//!   clears a list's filled bit once a walk finds no work, so the driver
//!   sets it on every enqueue.
//! - One asynchronous packet in flight per controller: while one device
//!   holds a packet (usb-storage waiting for its disk), every other TD of
//!   every ED waits. The completion of that packet re-walks the control and
//!   bulk lists at once, without waiting for a frame.
//! - An IN TD moves one packet of up to the TD's length (8192 bytes at
//!   most); an OUT TD moves max-packet-sized packets until it is done,
//!   all in one walk if the device takes them.
//! - A NAK leaves the TD in place; it is retried at the next walk, without
//!   limit. A transfer that NAKs forever is ended by its caller's abort.
//! - A short IN packet without bufferRounding retires the TD with
//!   DATAUNDERRUN and halts the ED; so do STALL and a missing device.
//! - The done queue is written to the HCCA at a frame boundary, only when
//!   WritebackDoneHead is clear and the delay-interrupt count of the
//!   retired TDs has run out (a TD with DI = 7 never runs it out). Every TD
//!   here has DI = 0, so whatever retired is reported at the next boundary
//!   and nothing lingers in the controller's own done list.
//! - The controller writes an ED's head word back every time it visits the
//!   ED (unless the ED is skipped or halted): the driver changes a head
//!   only while the ED is halted, or skipped and two frames old.
//! - TDs queued for a device that was unplugged are never completed: the
//!   model finds no device and leaves them. The driver's caller aborts them.
//! - UnrecoverableError: a DMA error on an ED, TD or the HCCA, a TD head
//!   of 0, or a SETUP TD on an endpoint other than 0 (7.2.3 onwards); the
//!   frame timer stops. Only a full re-initialisation recovers.
//! - Root hub: 3 ports, always powered (NoPowerSwitching), a port reset
//!   completes inside the register write; switching a port's power off
//!   clears its connect status for good (so this driver never does);
//!   entering USBRESET re-attaches every device (connect status change on
//!   each), which is how start-up learns what is plugged in.
#![cfg_attr(not(test), no_std)]

pub mod check;
pub mod desc;
mod hcd;
pub mod regs;

pub use hcd::*;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
