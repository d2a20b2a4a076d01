//! Recurses until its stack runs into the unmapped guard page below it: the
//! fault test checks that the monitor names this a stack overflow and that
//! the other PDs carry on.
#![no_std]
#![no_main]

use microkit::{ChannelSet, Handler, debug_println};

struct Overflow;

/// Uses a page of stack per call; `black_box` keeps the frame and the
/// recursion from being optimised away.
#[expect(
    unconditional_recursion,
    reason = "running out of stack is this PD's job"
)]
fn descend(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth as u8; 4096]);
    frame[depth as usize % 4096] as u64 + core::hint::black_box(descend)(depth + 1)
}

fn init() -> Overflow {
    debug_println!("overflow: recursing without end");
    let v = descend(0);
    debug_println!("overflow: FAILED: returned {v}");
    Overflow
}

impl Handler for Overflow {
    fn notified(&mut self, _: ChannelSet) {}
}

microkit::protection_domain!(init);
