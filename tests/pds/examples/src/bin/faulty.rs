//! Touches an unmapped address as soon as it starts: the fault test checks
//! that the monitor reports it and that the other PDs carry on.
#![no_std]
#![no_main]

use microkit::{ChannelSet, Handler, debug_println};

/// Nothing is mapped here in any PD.
const UNMAPPED: u64 = 0xdead_0000;

struct Faulty;

fn init() -> Faulty {
    debug_println!("faulty: reading {UNMAPPED:#x}");
    // SAFETY: not safe at all, on purpose: the read faults, the kernel stops
    // this thread and tells the monitor. Nothing after it runs.
    let v = unsafe { (UNMAPPED as *const u64).read_volatile() };
    debug_println!("faulty: FAILED: read {v:#x} from an unmapped address");
    Faulty
}

impl Handler for Faulty {
    fn notified(&mut self, _: ChannelSet) {}
}

microkit::protection_domain!(init);
