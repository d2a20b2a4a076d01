//! Benchmark protection domains (`make bench`). `bench-client` and
//! `bench-server` time notification and PPC round trips through the
//! Microkit runtime, for comparison with the raw kernel baseline the monitor
//! measures in the same run. `port-client` and `port-server` time message
//! round trips through a dingo-rt port with its observers, against the same
//! exchange as raw ring writes and notifications.
#![no_std]

use dingo_rt::port::{Port, Side};
use dingo_rt::ring::{Arm, NotifyPeer};
use microkit::{Channel, IoPort};

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

/// Size and slots of each benchmark port region; both sides agree.
pub const PORT_SIZE: usize = 0x2000;
pub const PORT_SLOTS: u32 = 16;
/// The raw and the typed port's channels, the same id at both ends.
pub const RAW: Channel = Channel::new(0);
pub const TYPED: Channel = Channel::new(1);

/// This PD's end of the port region at `vaddr` on `channel`.
pub fn port(vaddr: u64, side: Side, channel: Channel) -> Port<64> {
    // SAFETY: system.xml maps PORT_SIZE bytes read-write at `vaddr` in the
    // two PDs of this port, one per side, and nothing else touches them.
    let mut port = match unsafe {
        Port::new(
            vaddr as *mut u8,
            PORT_SIZE,
            PORT_SLOTS,
            side,
            channel.index(),
        )
    } {
        Ok(p) => p,
        Err(e) => panic!("bad port region at {vaddr:#x}: {e:?}"),
    };
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
