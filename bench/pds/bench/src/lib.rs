//! Benchmark protection domains (`make bench`). `bench-client` and
//! `bench-server` time notification and PPC round trips through the
//! Microkit runtime, for comparison with the raw kernel baseline the monitor
//! measures in the same run. `port-client` and `port-server` time message
//! round trips through a dingo-rt port with its observers, against the same
//! exchange as raw ring writes and notifications.
#![no_std]

use dingo_rt::port::Port;
use dingo_rt::ring::{Arm, NotifyPeer};
use microkit::{Channel, IoPort};

/// Rounds timed per figure, after as many untimed warm-up rounds; the
/// monitor's baseline uses the same numbers.
pub const ROUNDS: u64 = 1000;
pub const WARMUP: u64 = 100;

/// The COM1 ports of the console role, for the console function (a plain
/// `fn(u8)`) to find.
static CONSOLE: spin::Once<pd_config::IoPorts> = spin::Once::new();

/// Prints through COM1 (`console`: its data register at offset 0) when the
/// kernel cannot print.
pub fn use_com1_console(console: pd_config::IoPorts) {
    CONSOLE.call_once(|| console);
    microkit::sel4::set_console(|c| {
        if let Some(p) = CONSOLE.get() {
            let _ = IoPort::of(*p).out8(p.base, c);
        }
    });
}

/// This PD's end of a benchmark port, armed for its first message.
pub fn port(pd: &'static str, cfg: &pd_config::PortConfig) -> Port<64> {
    let mut port = dingo_pd::port(pd, cfg);
    // Ask to be woken for the first message: until the receiver arms its
    // flag, signal suppression tells the sender not to notify.
    let _ = port.rx.prepare_sleep();
    port
}

/// Raw send: one slot into the ring, a notification only when the peer
/// asked for one (the signal suppression the typed port uses too).
pub fn raw_send(port: &mut Port<64>, channel: Channel, slot: &[u8; 64]) {
    match port.tx.push(slot) {
        Ok(NotifyPeer::Yes) => channel.notify(),
        Ok(NotifyPeer::No) => {}
        Err(e) => panic!("raw push failed: {e:?}"),
    }
}

/// Raw receive: every slot in the ring, then re-arm the wake-up flag (and
/// drain again if the peer raced us), as the typed port does.
pub fn raw_drain(port: &mut Port<64>, mut each: impl FnMut(&[u8; 64])) {
    loop {
        while let Ok(Some((slot, _))) = port.rx.pop() {
            each(&slot);
        }
        match port.rx.prepare_sleep() {
            Ok(Arm::Retry) => continue,
            _ => break,
        }
    }
}
