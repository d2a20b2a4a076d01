//! Host stand-ins: a Timer port region in ordinary memory, and a reporter
//! that records what it is given.

extern crate std;

use core::cell::RefCell;
use std::boxed::Box;
use std::string::{String, ToString};
use std::vec::Vec;

use dingo_rt::typed::{Report, Reporter, Supervisor};

use crate::port::{End, PORT_SIZE, TimerPort, attach};

/// A Timer port region in ordinary memory.
#[repr(C, align(4096))]
pub struct Region(pub [u8; PORT_SIZE]);

/// A zeroed port region, boxed so that it does not move.
pub fn region() -> Box<Region> {
    Box::new(Region([0; PORT_SIZE]))
}

/// Keeps every report as text; a fatal one panics.
#[derive(Default)]
pub struct Recorder(pub RefCell<Vec<String>>);

impl Reporter for Recorder {
    fn report(&self, report: &Report<'_>) {
        self.0.borrow_mut().push(report.to_string());
    }
    fn fatal(&self, report: &Report<'_>) {
        panic!("fatal: {report}");
    }
}

/// Both ends of a port on `channel` in `region`.
pub fn pair<'r>(
    region: &mut Region,
    channel: u8,
    reporter: &'r Recorder,
) -> (TimerPort<'r>, TimerPort<'r>) {
    let base = region.0.as_mut_ptr();
    let sup = Supervisor::log(reporter);
    // SAFETY: the region outlives the ports (the caller keeps it), and
    // these are its only two ends, one per side.
    unsafe {
        (
            attach(base, channel, End::Provider, sup, "timer", "client", 0).unwrap(),
            attach(base, channel, End::Client, sup, "client", "timer", 0).unwrap(),
        )
    }
}
