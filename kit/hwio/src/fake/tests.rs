//! The fake bus against a small scripted device: a command register whose
//! reset bit clears the others and itself, a write-1-to-clear interrupt
//! status, a counter that advances per read, a read-only identity.

use super::*;
use crate::{ReadOnly, ReadWrite, Registers, WriteOnly, register_bitfields};
use std::cell::Cell;

register_bitfields![u8,
    Cmd [
        RST OFFSET(4) NUMBITS(1) [],
        RX_ENABLE OFFSET(3) NUMBITS(1) [],
        TX_ENABLE OFFSET(2) NUMBITS(1) [],
    ],
];
register_bitfields![u16,
    Isr [
        RX_OK OFFSET(0) NUMBITS(1) [],
        TX_OK OFFSET(2) NUMBITS(1) [],
        LINK OFFSET(5) NUMBITS(1) [],
    ],
];

const ID: Register<u32, (), ReadOnly> = Register::new(0x00);
const COUNTER: Register<u32, (), ReadOnly> = Register::new(0x04);
const ISR: Register<u16, Isr::Register, ReadWrite> = Register::new(0x08);
const IMR: Register<u16, Isr::Register, ReadWrite> = Register::new(0x0a);
const CMD: Register<u8, Cmd::Register, ReadWrite> = Register::new(0x0c);
const DOORBELL: Register<u8, (), WriteOnly> = Register::new(0x0d);

fn device() -> FakeBus {
    let bus = FakeBus::new("nic", 0x10);
    bus.poke(ID, 0x8139_10ec);
    bus.ignore_writes(ID);
    bus.write_1_to_clear(ISR);
    bus.on_read(COUNTER, |m, v| {
        m.set(COUNTER, v + 1);
        v + 1
    });
    bus.on_write(CMD, |m, v| {
        let cmd = LocalRegisterCopy::<u8, Cmd::Register>::new(v);
        if cmd.is_set(Cmd::RST) {
            // Reset completes at once and clears the enables too.
            m.set(ISR, 0);
            m.set(IMR, 0);
            m.set(CMD, 0);
        } else {
            m.set(CMD, v);
        }
    });
    bus
}

#[test]
fn unhooked_registers_read_back_what_was_written() {
    let mut bus = device();
    bus.write(IMR, Isr::RX_OK::SET + Isr::LINK::SET);
    assert_eq!(bus.get(IMR), 0x21);
    assert!(bus.read(IMR).is_set(Isr::LINK));
}

#[test]
fn write_one_to_clear_clears_only_the_bits_written() {
    let mut bus = device();
    bus.poke(ISR, 0x25);
    bus.write(ISR, Isr::RX_OK::SET);
    assert_eq!(bus.peek(ISR), 0x24);
    bus.set(ISR, 0xffff);
    assert_eq!(bus.peek(ISR), 0);
}

#[test]
fn side_effects_and_read_only_registers() {
    let mut bus = device();
    bus.write(CMD, Cmd::RX_ENABLE::SET + Cmd::TX_ENABLE::SET);
    bus.poke(ISR, 0x5);
    bus.set(IMR, 0x5);
    bus.modify(CMD, Cmd::RST::SET);
    assert_eq!((bus.get(CMD), bus.peek(ISR), bus.peek(IMR)), (0, 0, 0));
    bus.set(DOORBELL, 1);
    assert_eq!(bus.peek(DOORBELL), 1);
    // A write to the read-only identity is logged but changes nothing.
    bus.write32(ID.offset(), 0);
    assert_eq!(bus.get(ID), 0x8139_10ec);
    assert_eq!(bus.writes(ID), [0]);
}

#[test]
fn read_hooks_model_a_counter_and_scripts_run_out_into_memory() {
    let mut bus = device();
    assert_eq!([bus.get(COUNTER), bus.get(COUNTER)], [1, 2]);
    bus.poke(ISR, 0x4);
    bus.script_reads(ISR, [0x1, 0x20]);
    let seen: Vec<u16> = (0..3).map(|_| bus.get(ISR)).collect();
    assert_eq!(seen, [0x1, 0x20, 0x4]);
}

#[test]
fn the_log_records_every_access_in_order() {
    let mut bus = device();
    let _ = bus.get(ID);
    bus.write(CMD, Cmd::TX_ENABLE::SET);
    let log = bus.take_log();
    assert_eq!(
        log,
        [
            Access {
                op: Op::Read,
                offset: 0,
                width: Width::W32,
                value: 0x8139_10ec,
                corrupted: false
            },
            Access {
                op: Op::Write,
                offset: 0xc,
                width: Width::W8,
                value: 0x4,
                corrupted: false
            },
        ]
    );
    assert_eq!(bus.log_len(), 0);
    bus.modify(CMD, Cmd::RX_ENABLE::SET);
    assert_eq!(bus.writes(CMD), [0xc]);
}

#[test]
fn corruption_changes_what_the_driver_reads_not_the_device() {
    let mut bus = device();
    let reads = Rc::new(Cell::new(0));
    let seen = reads.clone();
    // Every second read of the identity register comes back all ones, as
    // from a device that fell off the bus.
    bus.corrupt_reads(move |a: &Access| {
        if a.offset != ID.offset() {
            return None;
        }
        seen.set(seen.get() + 1);
        (seen.get() % 2 == 0).then_some(u32::MAX)
    });
    assert_eq!(bus.get(ID), 0x8139_10ec);
    assert_eq!(bus.get(ID), u32::MAX);
    // Truncated to the access width; hooks ran first.
    assert_eq!(bus.get(COUNTER), 1);
    assert_eq!(bus.peek(ID), 0x8139_10ec);
    let log = bus.log();
    assert!(log[1].corrupted && log[1].value == u32::MAX);
    assert!(!log[0].corrupted && !log[2].corrupted);
    bus.corrupt_reads(|a: &Access| (a.width == Width::W8).then_some(0x1ff));
    assert_eq!(bus.get(CMD), 0xff);
    bus.stop_corrupting();
    assert_eq!(bus.get(CMD), 0);
    assert_eq!(reads.get(), 2);
}

#[test]
#[should_panic(
    expected = "fake bus 'nic': 1-byte access at offset 0x8, but the register there is 2 bytes"
)]
fn a_hooked_register_at_the_wrong_width_panics() {
    let mut bus = device();
    bus.write8(0x8, 1);
}

#[test]
#[should_panic(
    expected = "hwio: 4-byte access at offset 0xe is outside fake bus 'nic' of 0x10 bytes"
)]
fn an_access_outside_the_device_panics() {
    let mut bus = device();
    bus.read32(0xe);
}
