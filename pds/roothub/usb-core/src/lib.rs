//! What every USB PD shares (the host controller, the root hub and the
//! class drivers): the USB 2.0 specification's chapter 9 (SETUP packets,
//! standard requests, descriptors) and the numbers the USB protocols of
//! `tingu/dingo-protocols` carry (transfer kinds, completion status, the
//! host controller's buffer addresses).
//!
//! Descriptors come from the device and are untrusted: [`desc`] checks
//! every length and count before anything is read, and reports the
//! descriptor, the field and the value it refused.
#![cfg_attr(not(test), no_std)]

pub mod desc;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod notes;
pub mod setup;
pub mod stats;

pub use setup::Setup;

/// Transfer types, numbered as an endpoint descriptor's `bmAttributes`
/// (the `kind` fields of UsbHostController and UsbBus).
pub mod kind {
    pub use dingo_protocols::usb_host_controller::{BULK, CONTROL, INTERRUPT, ISOCHRONOUS};

    /// A name for messages.
    pub const fn name(kind: u8) -> &'static str {
        match kind {
            CONTROL => "control",
            ISOCHRONOUS => "isochronous",
            BULK => "bulk",
            INTERRUPT => "interrupt",
            _ => "unknown",
        }
    }
}

/// Completion status of a transfer (UsbHostController.complete and
/// UsbPipe.complete: the same numbers).
pub mod status {
    pub use dingo_protocols::usb_host_controller::{ABORTED, FAILED, OK, STALL};
    pub use dingo_protocols::usb_pipe::UNPLUGGED;

    const _: () = assert!(
        dingo_protocols::usb_pipe::OK == OK
            && dingo_protocols::usb_pipe::STALL == STALL
            && dingo_protocols::usb_pipe::ABORTED == ABORTED
            && dingo_protocols::usb_pipe::FAILED == FAILED
    );

    pub const fn name(status: u8) -> &'static str {
        match status {
            OK => "ok",
            STALL => "stall",
            ABORTED => "aborted",
            UNPLUGGED => "unplugged",
            FAILED => "failed",
            _ => "unknown",
        }
    }
}

/// Bus speeds (UsbBus.attached).
pub mod speed {
    pub use dingo_protocols::usb_bus::{FULL, LOW};

    pub const fn name(speed: u8) -> &'static str {
        match speed {
            LOW => "low",
            FULL => "full",
            _ => "unknown",
        }
    }
}

/// Buffers on UsbHostController: the controller's driver has several DMA
/// windows (one per class driver, one for the root hub), and a buffer
/// address names the window in its top byte and the offset below.
pub mod window {
    /// Bits of the offset.
    pub const SHIFT: u32 = 24;
    /// The largest window.
    pub const MAX_SIZE: u32 = 1 << SHIFT;

    /// The address of `offset` in window `window`, if the offset fits.
    pub const fn address(window: u8, offset: u32) -> Option<u32> {
        if offset < MAX_SIZE {
            Some((window as u32) << SHIFT | offset)
        } else {
            None
        }
    }

    /// The window and offset of an address.
    pub const fn split(address: u32) -> (u8, u32) {
        ((address >> SHIFT) as u8, address & (MAX_SIZE - 1))
    }
}

/// The largest control transfer data stage the USB PDs move (descriptors
/// and class requests are far smaller).
pub const MAX_CONTROL_DATA: u32 = 4096;
