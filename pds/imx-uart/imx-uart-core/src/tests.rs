use super::*;
use hwio::fake::FakeBus;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// QEMU's UART as hooks: a receive queue behind URXD/USR2, a transmitter
/// that may be held full.
struct Model {
    rx: VecDeque<u32>,
    tx_full: bool,
}

fn device() -> (FakeBus, Rc<RefCell<Model>>) {
    let bus = FakeBus::new("uart", MMIO_SIZE);
    let model = Rc::new(RefCell::new(Model {
        rx: VecDeque::new(),
        tx_full: false,
    }));
    let m = model.clone();
    bus.on_read(
        USR2,
        move |_, _| {
            if m.borrow().rx.is_empty() { 0 } else { 1 }
        },
    );
    let m = model.clone();
    bus.on_read(URXD, move |_, _| m.borrow_mut().rx.pop_front().unwrap_or(0));
    let m = model.clone();
    bus.on_read(UTS, move |_, _| if m.borrow().tx_full { 1 << 4 } else { 0 });
    (bus, model)
}

const READY: u32 = 1 << 15;

#[test]
fn enable_sets_the_enables_and_keeps_other_bits() {
    let (bus, _) = device();
    // A bootloader's setting elsewhere in UCR2 (CTS control, bit 13).
    bus.poke(UCR2, 1 << 13);
    let mut uart = Uart::new(bus.clone());
    uart.enable();
    assert_eq!(bus.peek(UCR1) & 1, 1);
    assert_eq!(
        bus.peek(UCR2),
        1 << 13 | 1 << 14 | 1 << 5 | 1 << 2 | 1 << 1 | 1
    );
    uart.set_rx_interrupt(true);
    assert_eq!(bus.peek(UCR1) & 1 << 9, 1 << 9);
    assert_eq!(bus.peek(UFCR) & 0x3f, 1);
}

#[test]
fn output_goes_to_utxd_with_crlf() {
    let (bus, _) = device();
    let mut uart = Uart::new(bus.clone());
    core::fmt::Write::write_str(&mut uart, "ok\n").unwrap();
    assert_eq!(bus.writes(UTXD), [b'o' as u32, b'k' as u32, 13, 10]);
    assert_eq!(uart.counters().sent, 4);
}

#[test]
fn a_full_transmitter_drops_the_byte_instead_of_hanging() {
    let (bus, model) = device();
    model.borrow_mut().tx_full = true;
    let mut uart = Uart::new(bus.clone());
    uart.put(b'x');
    assert!(bus.writes(UTXD).is_empty());
    assert_eq!(uart.counters().tx_dropped, 1);
    model.borrow_mut().tx_full = false;
    uart.put(b'y');
    assert_eq!(bus.writes(UTXD), [b'y' as u32]);
}

#[test]
fn received_bytes_with_errors_are_counted_and_skipped() {
    let (bus, model) = device();
    model.borrow_mut().rx.extend([
        READY | b'a' as u32,
        // Overrun (with the summary bit) and a frame error without it: the
        // device's word is not trusted to be consistent.
        READY | 1 << 14 | 1 << 13 | b'b' as u32,
        READY | 1 << 12 | b'c' as u32,
        READY | b'd' as u32,
    ]);
    let mut uart = Uart::new(bus);
    assert_eq!(uart.get(), Some(b'a'));
    assert_eq!(uart.get(), Some(b'd'));
    assert_eq!(uart.get(), None);
    let c = uart.counters();
    assert_eq!((c.received, c.rx_errors, c.rx_spurious), (2, 2, 0));
}

#[test]
fn data_ready_without_a_character_is_spurious() {
    let (bus, model) = device();
    model.borrow_mut().rx.push_back(b'z' as u32);
    let mut uart = Uart::new(bus);
    assert_eq!(uart.get(), None);
    assert_eq!(uart.counters().rx_spurious, 1);
}
