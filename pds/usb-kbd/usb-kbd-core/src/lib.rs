//! The USB keyboard driver's core (pds/usb-kbd).
//!
//! - [`Keys`] turns HID boot keyboard reports (a modifier byte, a
//!   reserved byte and up to six usage codes) into presses and releases
//!   by comparing each report with the last good one. A report whose key
//!   slots say ErrorRollOver (more keys held than it can list) changes
//!   nothing: no key is invented or dropped, the phantom state is reported
//!   once, and the next good report is compared with the last good one.
//! - [`Driver`] runs one keyboard over a [`usb_bus::session::Session`]:
//!   reads the configuration, finds the boot keyboard interface (3/1/1)
//!   and its interrupt IN endpoint, sets the configuration, SET_PROTOCOL
//!   (boot) and SET_IDLE (0: report on change only), opens the interrupt
//!   pipe with two reports in flight, and on unplug releases every key
//!   still held before saying the keyboard is gone.
//! - [`ascii`]: usage codes to characters (US layout) for consumers that
//!   print.
#![cfg_attr(not(test), no_std)]

mod driver;
mod keys;

pub use driver::*;
pub use keys::*;
