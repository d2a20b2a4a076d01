//! The HPET driver against a fake register file that models the counter,
//! timer 0's comparator and its interrupt output.

use super::regs::{self, GeneralConfig, TimerConfig};
use super::*;
use crate::test_rng::Rng;
use std::cell::RefCell;
use std::rc::Rc;

/// QEMU's capabilities word: vendor 0x8086, LEG_RT_CAP, 64-bit counter,
/// 3 timers, revision 1, period 10 ns.
const QEMU_CAPS: u64 = 0x8086_a201 | (10_000_000u64 << 32);
/// QEMU's timer 0 on the `pc` machine: 64-bit and periodic capable, route
/// capability = IOAPIC pin 2 only.
const QEMU_PC_T0: u64 = TimerConfig::SIZE_CAP | TimerConfig::PER_INT_CAP | (0x4 << 32);
const Q35_ROUTE_CAP: u64 = 0x00ff_0104;

/// How the fake's comparator matches.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Match {
    /// Only when the counter passes the comparator value (real hardware may
    /// do just this): a comparator written in the past never fires.
    Crossing,
    /// Also at once when the comparator is at or behind the counter as a
    /// signed 64-bit distance, as QEMU up to 8.x does.
    QemuPast,
}

struct Fake {
    caps: u64,
    general: u64,
    status: u64,
    counter: u64,
    t0_config: u64,
    t0_cmp: u64,
    mode: Match,
    /// Ticks the counter moves before each counter-half read returns.
    per_read: u64,
    /// Ticks the counter moves before each write lands (slow MMIO).
    per_write: u64,
    /// Counter values at which an interrupt was signalled: the comparator
    /// for a crossing, the counter for QEMU's immediate past-match.
    interrupts: Vec<u64>,
    writes: Vec<(usize, u32)>,
}

impl Fake {
    fn new(caps: u64, t0: u64) -> Self {
        Fake {
            caps,
            general: 0,
            status: 0,
            counter: 0,
            t0_config: t0,
            t0_cmp: u64::MAX,
            mode: Match::Crossing,
            per_read: 0,
            per_write: 0,
            interrupts: Vec::new(),
            writes: Vec::new(),
        }
    }

    fn running(&self) -> bool {
        GeneralConfig(self.general).enabled()
    }

    fn matched(&mut self, at: u64) {
        let cfg = TimerConfig(self.t0_config);
        if cfg.level_triggered() {
            self.status |= 1;
        }
        if cfg.interrupt_enabled() {
            self.interrupts.push(at);
        }
    }

    fn advance(&mut self, ticks: u64) {
        if !self.running() || ticks == 0 {
            return;
        }
        let old = self.counter;
        self.counter += ticks;
        if old < self.t0_cmp && self.t0_cmp <= self.counter {
            self.matched(self.t0_cmp);
        }
    }

    /// QEMU re-evaluates the comparator whenever it or the config changes.
    fn qemu_recheck(&mut self) {
        if self.mode == Match::QemuPast
            && self.running()
            && (self.t0_cmp.wrapping_sub(self.counter) as i64) <= 0
        {
            self.matched(self.counter);
        }
    }
}

#[derive(Clone)]
struct Shared(Rc<RefCell<Fake>>);

impl Shared {
    fn new(fake: Fake) -> Self {
        Shared(Rc::new(RefCell::new(fake)))
    }
    fn get(&self) -> std::cell::RefMut<'_, Fake> {
        self.0.borrow_mut()
    }
}

impl Regs for Shared {
    fn read32(&mut self, offset: usize) -> u32 {
        let mut f = self.get();
        let half = |v: u64| {
            if offset & 4 == 0 {
                v as u32
            } else {
                (v >> 32) as u32
            }
        };
        match offset & !4 {
            regs::GENERAL_CAPS => half(f.caps),
            regs::GENERAL_CONFIG => half(f.general),
            regs::INTERRUPT_STATUS => half(f.status),
            regs::MAIN_COUNTER => {
                let step = f.per_read;
                f.advance(step);
                half(f.counter)
            }
            o if o == regs::timer_config(0) => half(f.t0_config),
            o if o == regs::timer_comparator(0) => half(f.t0_cmp),
            o => panic!("read of unmodelled register {o:#x}"),
        }
    }

    fn write32(&mut self, offset: usize, value: u32) {
        let mut f = self.get();
        f.writes.push((offset, value));
        let step = f.per_write;
        f.advance(step);
        let v = u64::from(value);
        match offset {
            regs::GENERAL_CONFIG => {
                f.general = v & (GeneralConfig::ENABLE_CNF | GeneralConfig::LEG_RT_CNF);
            }
            regs::INTERRUPT_STATUS => f.status &= !v,
            o if o == regs::timer_config(0) => {
                const WRITABLE: u64 = 0x7f4e;
                f.t0_config = (f.t0_config & !WRITABLE) | (v & WRITABLE);
                f.qemu_recheck();
            }
            o if o == regs::timer_comparator(0) => {
                f.t0_cmp = (f.t0_cmp & !0xffff_ffff) | v;
                f.qemu_recheck();
            }
            o if o == regs::timer_comparator(0) + 4 => {
                f.t0_cmp = (f.t0_cmp & 0xffff_ffff) | (v << 32);
                f.qemu_recheck();
            }
            o => panic!("write of unmodelled register {o:#x}"),
        }
    }
}

fn qemu_pc() -> Shared {
    Shared::new(Fake::new(QEMU_CAPS, QEMU_PC_T0))
}

fn legacy(trigger: Trigger) -> Config {
    Config {
        route: Route::LegacyReplacement,
        trigger,
    }
}

#[test]
fn init_on_qemu_pc_with_legacy_replacement() {
    let fake = qemu_pc();
    fake.get().counter = 777;
    let hpet = Hpet::init(fake.clone(), legacy(Trigger::Edge)).unwrap();
    assert_eq!(hpet.period_fs(), 10_000_000);
    assert_eq!(hpet.ioapic_pin(), 2);
    let f = fake.get();
    let general = GeneralConfig(f.general);
    assert!(general.enabled() && general.legacy_route());
    let t0 = TimerConfig(f.t0_config);
    assert!(!t0.interrupt_enabled() && !t0.periodic() && !t0.mode_32bit());
    assert!(!t0.level_triggered() && !t0.fsb_enabled());
    // The capability half is untouched and the counter was not reset.
    assert_eq!(t0.route_cap(), 0x4);
    assert_eq!(f.counter, 777);
    // The counter was stopped before timer 0 was reconfigured.
    assert_eq!(f.writes[0], (regs::GENERAL_CONFIG, 0));
}

#[test]
fn init_routes_to_an_allowed_ioapic_pin_level_triggered() {
    let fake = Shared::new(Fake::new(
        QEMU_CAPS,
        QEMU_PC_T0 & 0xffff_ffff | Q35_ROUTE_CAP << 32,
    ));
    let cfg = Config {
        route: Route::IoApic(17),
        trigger: Trigger::Level,
    };
    let hpet = Hpet::init(fake.clone(), cfg).unwrap();
    assert_eq!(hpet.ioapic_pin(), 17);
    let f = fake.get();
    let t0 = TimerConfig(f.t0_config);
    assert_eq!(t0.route(), 17);
    assert!(t0.level_triggered());
    assert!(!GeneralConfig(f.general).legacy_route());
}

#[test]
fn init_refuses_routes_the_timer_does_not_offer() {
    let fake = qemu_pc();
    let cfg = Config {
        route: Route::IoApic(11),
        trigger: Trigger::Level,
    };
    let err = Hpet::init(fake.clone(), cfg).err().unwrap();
    assert_eq!(
        err,
        InitError::RouteNotAllowed {
            pin: 11,
            allowed: 0x4
        }
    );
    assert_eq!(
        err.to_string(),
        "HPET timer 0 cannot interrupt on IOAPIC pin 11: Tn_INT_ROUTE_CAP is 0x00000004 \
         (allowed pins: 2)"
    );
    // Refused before touching the device.
    assert!(fake.get().writes.is_empty());

    let cfg = Config {
        route: Route::IoApic(40),
        ..cfg
    };
    assert_eq!(
        Hpet::init(qemu_pc(), cfg).err(),
        Some(InitError::RouteNotAllowed {
            pin: 40,
            allowed: 0x4
        })
    );
    let no_routes = Shared::new(Fake::new(QEMU_CAPS, QEMU_PC_T0 & 0xffff_ffff));
    let err = Hpet::init(
        no_routes,
        Config {
            route: Route::IoApic(2),
            ..cfg
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().ends_with("(no pin allowed)"), "{err}");
}

#[test]
fn init_refuses_unusable_devices() {
    let no_legacy = Shared::new(Fake::new(QEMU_CAPS & !GeneralCaps::LEG_RT_CAP, QEMU_PC_T0));
    assert_eq!(
        Hpet::init(no_legacy, legacy(Trigger::Edge)).err(),
        Some(InitError::NoLegacyReplacement)
    );
    let counter32 = Shared::new(Fake::new(
        QEMU_CAPS & !GeneralCaps::COUNT_SIZE_CAP,
        QEMU_PC_T0,
    ));
    assert_eq!(
        Hpet::init(counter32, legacy(Trigger::Edge)).err(),
        Some(InitError::Counter32Bit)
    );
    let cmp32 = Shared::new(Fake::new(QEMU_CAPS, QEMU_PC_T0 & !TimerConfig::SIZE_CAP));
    assert_eq!(
        Hpet::init(cmp32, legacy(Trigger::Edge)).err(),
        Some(InitError::Comparator32Bit)
    );
    // An all-ones read is what an unmapped or wrong address tends to give.
    let bogus = Shared::new(Fake::new(u64::MAX, QEMU_PC_T0));
    let err = Hpet::init(bogus, legacy(Trigger::Edge)).err().unwrap();
    assert_eq!(
        err,
        InitError::BadPeriod {
            period_fs: u32::MAX
        }
    );
    assert!(err.to_string().contains("really the HPET"));
}

#[test]
fn arm_in_the_future_interrupts_at_the_deadline_and_level_needs_ack() {
    let fake = qemu_pc();
    let mut hpet = Hpet::init(fake.clone(), legacy(Trigger::Level)).unwrap();
    fake.get().counter = 1_000;
    assert_eq!(hpet.arm(5_000), ArmOutcome::Armed);
    fake.get().advance(3_999);
    assert!(fake.get().interrupts.is_empty());
    fake.get().advance(1);
    assert_eq!(fake.get().interrupts, [5_000]);
    assert_eq!(fake.get().status, 1);
    hpet.ack();
    assert_eq!(fake.get().status, 0);
}

#[test]
fn edge_trigger_ack_writes_nothing() {
    let fake = qemu_pc();
    let mut hpet = Hpet::init(fake.clone(), legacy(Trigger::Edge)).unwrap();
    let before = fake.get().writes.len();
    hpet.ack();
    assert_eq!(fake.get().writes.len(), before);
}

#[test]
fn arm_in_the_past_reports_fire_now() {
    for mode in [Match::Crossing, Match::QemuPast] {
        let fake = qemu_pc();
        fake.get().mode = mode;
        let mut hpet = Hpet::init(fake.clone(), legacy(Trigger::Edge)).unwrap();
        fake.get().counter = 10_000;
        match hpet.arm(5_000) {
            ArmOutcome::FireNow { now_ticks } => assert!(now_ticks >= 10_000),
            ArmOutcome::Armed => panic!("{mode:?}: a past deadline was reported armed"),
        }
    }
}

#[test]
fn deadline_passing_during_the_comparator_write_is_not_lost() {
    // Each write takes 5 ticks to land: the comparator reaches the device
    // after the counter passed it, so crossing-only hardware never fires.
    let fake = qemu_pc();
    let mut hpet = Hpet::init(fake.clone(), legacy(Trigger::Edge)).unwrap();
    fake.get().counter = 1_000;
    fake.get().per_write = 5;
    let out = hpet.arm(1_003);
    fake.get().advance(1_000_000);
    assert!(fake.get().interrupts.is_empty());
    assert!(matches!(out, ArmOutcome::FireNow { now_ticks } if now_ticks >= 1_003));
}

#[test]
fn deadline_passing_between_write_and_reread_fires_now() {
    // The writes are instant but the counter moves 4 ticks per read: the
    // comparator matches during the re-read, and the caller is told too.
    let fake = qemu_pc();
    let mut hpet = Hpet::init(fake.clone(), legacy(Trigger::Edge)).unwrap();
    fake.get().counter = 2_000;
    fake.get().per_read = 4;
    assert!(matches!(hpet.arm(2_005), ArmOutcome::FireNow { .. }));
    assert_eq!(fake.get().interrupts.len(), 1);
}

#[test]
fn rearm_within_the_same_high_half_is_one_write() {
    let fake = qemu_pc();
    let mut hpet = Hpet::init(fake.clone(), legacy(Trigger::Edge)).unwrap();
    fake.get().counter = 100;
    assert_eq!(hpet.arm(1_000), ArmOutcome::Armed);
    let before = fake.get().writes.len();
    assert_eq!(hpet.arm(900), ArmOutcome::Armed);
    let f = fake.get();
    assert_eq!(&f.writes[before..], [(regs::timer_comparator(0), 900)]);
    assert_eq!(f.t0_cmp, 900);
}

#[test]
fn changing_the_high_half_never_fires_on_a_half_written_comparator() {
    // The old comparator (0x50) is long past; writing the new low half first
    // leaves (0, 0x200), which QEMU treats as past and fires at once unless
    // the interrupt is off while the halves change.
    let fake = qemu_pc();
    fake.get().mode = Match::QemuPast;
    let mut hpet = Hpet::init(fake.clone(), legacy(Trigger::Level)).unwrap();
    fake.get().counter = 0x40;
    assert_eq!(hpet.arm(0x50), ArmOutcome::Armed);
    fake.get().advance(0x10);
    assert_eq!(fake.get().interrupts, [0x50]);
    hpet.ack();
    fake.get().counter = 0x1_0000_0100;
    assert_eq!(hpet.arm(0x1_0000_0200), ArmOutcome::Armed);
    assert_eq!(fake.get().interrupts, [0x50]);
    assert_eq!(
        fake.get().status,
        0,
        "a stale level status survived the re-arm"
    );
    fake.get().advance(0x100);
    assert_eq!(fake.get().interrupts, [0x50, 0x1_0000_0200]);
}

#[test]
fn disarm_silences_the_timer_and_arm_re_enables_it() {
    let fake = qemu_pc();
    let mut hpet = Hpet::init(fake.clone(), legacy(Trigger::Edge)).unwrap();
    fake.get().counter = 10;
    assert_eq!(hpet.arm(100), ArmOutcome::Armed);
    hpet.disarm();
    fake.get().advance(200);
    assert!(fake.get().interrupts.is_empty());
    assert!(!TimerConfig(fake.get().t0_config).interrupt_enabled());
    // Same high half, but the interrupt is off: arm must switch it back on.
    assert_eq!(hpet.arm(300), ArmOutcome::Armed);
    fake.get().advance(100);
    assert_eq!(fake.get().interrupts, [300]);
}

#[test]
fn counter_read_across_a_low_half_carry_is_consistent() {
    let fake = qemu_pc();
    let mut hpet = Hpet::init(fake.clone(), legacy(Trigger::Edge)).unwrap();
    for start in [0xffff_fff0u64, 0xffff_fff8, 0xffff_fffc, 0x1_ffff_fff9] {
        fake.get().counter = start;
        fake.get().per_read = 4;
        let got = hpet.now_ticks();
        let end = fake.get().counter;
        assert!(
            start < got && got <= end,
            "start {start:#x}: read {got:#x}, counter {end:#x}"
        );
    }
}

#[test]
fn random_arms_are_never_lost_and_never_early() {
    for seed in 0..300u64 {
        let mut rng = Rng::new(seed);
        let fake = qemu_pc();
        fake.get().mode = if seed % 2 == 0 {
            Match::Crossing
        } else {
            Match::QemuPast
        };
        let trigger = if seed % 3 == 0 {
            Trigger::Level
        } else {
            Trigger::Edge
        };
        let mut hpet = Hpet::init(fake.clone(), legacy(trigger)).unwrap();
        // Start near a low-half carry so that both arm paths run.
        fake.get().counter = 0xffff_f000 + rng.below(0x2000);
        for step in 0..40 {
            let ctx = format!("seed {seed} step {step}");
            {
                let mut f = fake.get();
                f.per_read = rng.below(8);
                f.per_write = rng.below(8);
                f.interrupts.clear();
            }
            let now = fake.get().counter;
            let deadline = (now + rng.below(0x3000)).saturating_sub(0x400);
            let out = hpet.arm(deadline);
            let counter_after = fake.get().counter;
            match out {
                ArmOutcome::FireNow { now_ticks } => {
                    assert!(now_ticks >= deadline, "{ctx}: fire-now before the deadline");
                    assert!(now_ticks <= counter_after, "{ctx}");
                }
                ArmOutcome::Armed => {
                    // The re-read saw the counter before the deadline; it may
                    // have crossed since, with the interrupt already armed.
                    let mut f = fake.get();
                    f.per_read = 0;
                    f.advance(deadline.saturating_sub(counter_after));
                    assert!(!f.interrupts.is_empty(), "{ctx}: armed deadline was lost");
                }
            }
            let f = fake.get();
            for &at in &f.interrupts {
                assert!(
                    at >= deadline,
                    "{ctx}: interrupt at {at:#x} before {deadline:#x}"
                );
            }
            drop(f);
            hpet.ack();
            if rng.below(5) == 0 {
                hpet.disarm();
            }
        }
    }
}
