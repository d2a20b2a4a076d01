//! Benchmark protection domains (`make bench`): a client that times round
//! trips to a server through the Microkit runtime, for comparison with the
//! raw kernel baseline the monitor measures in the same run.
#![no_std]

use microkit::IoPort;

/// Rounds timed per figure, after as many untimed warm-up rounds; the
/// monitor's baseline uses the same numbers.
pub const ROUNDS: u64 = 1000;
pub const WARMUP: u64 = 100;

const COM1: u16 = 0x3f8;
/// The client's `<ioport id="1">`: COM1, its console on release kernels.
const CONSOLE: IoPort = IoPort::new(1);

/// Prints through COM1 when the kernel cannot print.
pub fn use_com1_console() {
    microkit::sel4::set_console(|c| {
        let _ = CONSOLE.out8(COM1, c);
    });
}
