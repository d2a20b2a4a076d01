use super::*;
use hwio::fake::FakeBus;
use std::cell::RefCell;
use std::rc::Rc;

/// QEMU's GPT as hooks: a counter that advances `step` ticks per read of
/// CNT (from `start`), SWR that clears itself, write-1-to-clear status.
struct Model {
    count: u32,
    step: u32,
}

fn device(start: u32, step: u32) -> (FakeBus, Rc<RefCell<Model>>) {
    let bus = FakeBus::new("gpt", regs::MMIO_SIZE);
    let model = Rc::new(RefCell::new(Model { count: start, step }));
    let m = model.clone();
    bus.on_read(CNT, move |_, _| {
        let mut m = m.borrow_mut();
        m.count = m.count.wrapping_add(m.step);
        m.count
    });
    bus.on_write(CR, |mem, v| {
        mem.store(CR.offset(), hwio::Width::W32, v & !(1 << 15))
    });
    bus.write_1_to_clear(SR);
    (bus, model)
}

#[test]
fn extend_follows_the_low_half_across_wraps() {
    assert_eq!(extend(5, 0), 5);
    assert_eq!(extend(0x10, 0x1_ffff_fff0), 0x2_0000_0010);
    assert_eq!(extend(0xffff_fff0, 0x1_ffff_ff00), 0x1_ffff_fff0);
    // Just under a wrap past the base is still right.
    assert_eq!(extend(0xffff_ffff, 0x2_0000_0000), 0x2_ffff_ffff);
}

#[test]
fn init_runs_the_counter_at_3_mhz_from_the_crystal() {
    let (bus, _) = device(0, 1);
    let gpt = Gpt::init(bus.clone()).unwrap();
    let cr = bus.peek(CR);
    assert_eq!(cr >> 6 & 7, 5, "CLKSRC crystal");
    assert_eq!(
        cr & (1 << 10 | 1 << 9 | 1 << 1 | 1),
        1 << 10 | 1 << 9 | 1 << 1 | 1
    );
    assert_eq!(bus.peek(PR), 7 << 12, "24 MHz / 8, no further prescaling");
    // Only the rebase interrupt, half a wrap ahead.
    assert_eq!(bus.peek(IR), 1 << 1);
    assert_eq!(bus.peek(OCR2).wrapping_sub(gpt.last as u32), REBASE_TICKS);
}

#[test]
fn a_stopped_counter_is_refused() {
    let (bus, _) = device(0x1234, 0);
    assert_eq!(
        Gpt::init(bus).err(),
        Some(InitError::Stopped { count: 0x1234 })
    );
}

#[test]
fn the_counter_is_extended_across_its_wrap() {
    let (bus, model) = device(0xffff_ff00, 0x40);
    let mut gpt = Gpt::init(bus).unwrap();
    let mut last = gpt.now();
    for _ in 0..20 {
        let now = gpt.now();
        assert!(now > last);
        last = now;
    }
    assert!(last > 0xffff_ffff, "wrapped past 2^32: {last:#x}");
    // A device that steps back is not followed.
    model.borrow_mut().step = 0u32.wrapping_sub(0x1000);
    assert_eq!(gpt.now(), last);
    assert_eq!(gpt.counters().backwards, 1);
}

#[test]
fn a_deadline_in_the_past_fires_at_once() {
    let (bus, _) = device(1000, 1);
    let mut gpt = Gpt::init(bus.clone()).unwrap();
    let now = gpt.now();
    assert!(matches!(gpt.arm(now - 10), ArmOutcome::FireNow { .. }));
    assert!(matches!(gpt.arm(now), ArmOutcome::FireNow { .. }));
    assert_eq!(gpt.armed(), None);
    assert_eq!(bus.peek(IR) & 1, 0, "no compare interrupt left enabled");
}

#[test]
fn a_deadline_the_counter_passes_while_arming_fires_at_once() {
    // Each read moves 100 ticks: a deadline 150 ahead is passed by the
    // re-read after the compare is written.
    let (bus, _) = device(0, 100);
    let mut gpt = Gpt::init(bus).unwrap();
    let now = gpt.now();
    assert!(matches!(gpt.arm(now + 150), ArmOutcome::FireNow { .. }));
}

#[test]
fn arming_writes_the_low_half_and_enables_the_compare() {
    let (bus, _) = device(0x7fff_0000, 1);
    let mut gpt = Gpt::init(bus.clone()).unwrap();
    let deadline = gpt.now() + 3_000_000;
    assert_eq!(gpt.arm(deadline), ArmOutcome::Armed);
    assert_eq!(bus.peek(OCR1), deadline as u32);
    assert_eq!(bus.peek(IR), 0b11);
    assert_eq!(gpt.armed(), Some(deadline));
    gpt.disarm();
    assert_eq!(bus.peek(IR), 0b10);
}

#[test]
fn a_far_deadline_is_reached_in_steps() {
    let (bus, _) = device(0, 1);
    let mut gpt = Gpt::init(bus.clone()).unwrap();
    let now = gpt.now();
    let far = now + 10 * u64::from(REBASE_TICKS);
    match gpt.arm(far) {
        ArmOutcome::ArmedShort { at } => {
            assert!(at < far && at > now);
            assert_eq!(bus.peek(OCR1), at as u32);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn events_say_what_fired_and_count_the_inexplicable() {
    let (bus, _) = device(0, 1);
    let mut gpt = Gpt::init(bus.clone()).unwrap();
    let d = gpt.now() + 1000;
    assert_eq!(gpt.arm(d), ArmOutcome::Armed);
    // The device sets OF1 and, with no enable for it, ROV.
    bus.poke(SR, 1 | 1 << 5);
    let e = gpt.take_events();
    assert!(e.compare && !e.rebase);
    assert_eq!(e.unexpected, 1 << 5);
    assert_eq!(gpt.counters().unexpected_status, 1);
    assert_eq!(bus.peek(SR), 0, "status cleared");
    assert_eq!(gpt.armed(), None);
    bus.poke(SR, 1 << 1);
    assert!(gpt.take_events().rebase);
}
