//! The console PD's in-image test (tests/systems/console.xml): prints more
//! lines than the screen has rows, so the console must scroll, and one
//! longer than the screen is wide, so it must wrap; then the ready line,
//! which the boot test looks for on the screen (tests/run.py reads the VGA
//! text buffer over QMP). It ends nothing: a PC has no debug-exit port, and
//! the test stops QEMU once the screen shows what it expects.
#![no_std]
#![no_main]

use microkit::{ChannelSet, debug_println};

/// More than the 24 rows of the log area.
const LINES: u32 = 30;

struct Idle;

impl microkit::Handler for Idle {
    fn notified(&mut self, _channels: ChannelSet) {}
}

fn init() -> Idle {
    for i in 1..=LINES {
        debug_println!("console-check: line {i:02} of {LINES}");
    }
    debug_println!(
        "console-check: this line is longer than the 80 columns of the screen, so the console wraps it onto the next row"
    );
    debug_println!("console-check: ready");
    Idle
}

microkit::protection_domain!(init);
