//! The console PD's core, free of seL4 calls so that `cargo test` runs all
//! of it: [`screen`] lays the log out as 80x25 text (status row, wrapping,
//! scrolling, only changed rows redrawn), [`vga`] holds the typed VGA
//! registers (on hwio's bus, so its tests run on hwio's fake device) and
//! decides from them whether the display is in a text mode whose buffer is
//! at 0xB8000, the only thing the console can draw on.
#![cfg_attr(not(test), no_std)]

pub mod screen;
pub mod vga;
