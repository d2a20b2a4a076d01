//! The HPET driver against a fake register file that models the counter,
//! timer 0's comparator and its interrupt output.

use super::regs::*;
use super::*;
use crate::test_rng::Rng;
use hwio::fake::{FakeBus, Memory, Op};
use std::cell::{RefCell, RefMut};
use std::rc::Rc;

/// QEMU's capabilities: vendor 0x8086, LEG_RT_CAP, 64-bit counter, 3 timers,
/// revision 1; period 10 ns.
const QEMU_CAPS: u32 = 0x8086_a201;
const QEMU_PERIOD_FS: u32 = 10_000_000;
/// QEMU's timer 0 on the `pc` machine: 64-bit and periodic capable, route
/// capability = IOAPIC pin 2 only.
const QEMU_PC_T0: u32 = 0x30;
const QEMU_PC_ROUTES: u32 = 0x4;
const Q35_ROUTES: u32 = 0x00ff_0104;
/// Timer 0's configuration bits software may change (QEMU's mask).
const T0_WRITABLE: u32 = 0x7f4e;

/// How the model's comparator matches.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Match {
    /// Only when the counter passes the comparator value (real hardware may
    /// do just this): a comparator written in the past never fires.
    Crossing,
    /// Also at once when the comparator is at or behind the counter as a
    /// signed 64-bit distance, as QEMU up to 8.x does.
    QemuPast,
}

/// What the HPET model keeps outside its registers.
struct Model {
    counter: u64,
    mode: Match,
    /// Ticks the counter moves before each counter-half read returns.
    per_read: u64,
    /// Ticks the counter moves before each write lands (slow MMIO).
    per_write: u64,
    /// Counter values at which an interrupt was signalled: the comparator
    /// for a crossing, the counter for QEMU's immediate past-match.
    interrupts: Vec<u64>,
}

fn comparator(m: &Memory) -> u64 {
    join(
        m.get(TIMER_COMPARATOR_HI.at(0)),
        m.get(TIMER_COMPARATOR_LO.at(0)),
    )
}

fn running(m: &Memory) -> bool {
    m.read(GENERAL_CONFIG).is_set(GeneralConfig::ENABLE_CNF)
}

impl Model {
    fn matched(&mut self, m: &mut Memory, at: u64) {
        let cfg = m.read(TIMER_CONFIG.at(0));
        if cfg.matches_all(TimerConfig::INT_TYPE_CNF::Level) {
            let status = m.get(INTERRUPT_STATUS);
            m.set(INTERRUPT_STATUS, status | 1);
        }
        if cfg.is_set(TimerConfig::INT_ENB_CNF) {
            self.interrupts.push(at);
        }
    }

    fn advance(&mut self, m: &mut Memory, ticks: u64) {
        if !running(m) || ticks == 0 {
            return;
        }
        let old = self.counter;
        self.counter += ticks;
        let cmp = comparator(m);
        if old < cmp && cmp <= self.counter {
            self.matched(m, cmp);
        }
    }

    /// QEMU re-evaluates the comparator whenever it or the config changes.
    fn qemu_recheck(&mut self, m: &mut Memory) {
        if self.mode == Match::QemuPast
            && running(m)
            && (comparator(m).wrapping_sub(self.counter) as i64) <= 0
        {
            let now = self.counter;
            self.matched(m, now);
        }
    }
}

/// An HPET as QEMU models it, on hwio's fake bus: registers in the fake's
/// memory, the counter and the interrupt output in [`Model`].
#[derive(Clone)]
struct Hw {
    bus: FakeBus,
    model: Rc<RefCell<Model>>,
}

impl Hw {
    fn new(caps: u32, t0: u32, routes: u32) -> Self {
        let bus = FakeBus::new("hpet", MMIO_SIZE);
        let model = Rc::new(RefCell::new(Model {
            counter: 0,
            mode: Match::Crossing,
            per_read: 0,
            per_write: 0,
            interrupts: Vec::new(),
        }));
        bus.poke(GENERAL_CAPS, caps);
        bus.poke(COUNTER_PERIOD, QEMU_PERIOD_FS);
        bus.poke(TIMER_CONFIG.at(0), t0);
        bus.poke(TIMER_ROUTE_CAP.at(0), routes);
        bus.poke(TIMER_COMPARATOR_LO.at(0), u32::MAX);
        bus.poke(TIMER_COMPARATOR_HI.at(0), u32::MAX);
        for reg in [GENERAL_CAPS.offset(), COUNTER_PERIOD.offset()] {
            bus.ignore_writes(hwio::Register::<u32>::new(reg));
        }
        let hw = Hw { bus, model };
        // Every write takes `per_write` ticks to land.
        hw.on_write(GENERAL_CONFIG, |_, m, v| {
            m.set(GENERAL_CONFIG, v & 0b11);
        });
        hw.on_write(INTERRUPT_STATUS, |_, m, v| {
            let status = m.get(INTERRUPT_STATUS);
            m.set(INTERRUPT_STATUS, status & !v);
        });
        hw.on_write(TIMER_CONFIG.at(0), |model, m, v| {
            let old = m.get(TIMER_CONFIG.at(0));
            m.set(TIMER_CONFIG.at(0), (old & !T0_WRITABLE) | (v & T0_WRITABLE));
            model.qemu_recheck(m);
        });
        for reg in [TIMER_COMPARATOR_LO.at(0), TIMER_COMPARATOR_HI.at(0)] {
            hw.on_write(reg, move |model, m, v| {
                m.set(reg, v);
                model.qemu_recheck(m);
            });
        }
        for (reg, high) in [(MAIN_COUNTER_LO, false), (MAIN_COUNTER_HI, true)] {
            let model = hw.model.clone();
            hw.bus.on_read(reg, move |m, _| {
                let mut model = model.borrow_mut();
                let step = model.per_read;
                model.advance(m, step);
                let c = model.counter;
                if high { (c >> 32) as u32 } else { c as u32 }
            });
        }
        hw
    }

    fn on_write<A: hwio::Access>(
        &self,
        reg: hwio::Register<u32, impl hwio::RegisterLongName, A>,
        hook: impl Fn(&mut Model, &mut Memory, u32) + 'static,
    ) {
        let model = self.model.clone();
        self.bus.on_write(reg, move |m, v| {
            let mut model = model.borrow_mut();
            let step = model.per_write;
            model.advance(m, step);
            hook(&mut model, m, v);
        });
    }

    fn get(&self) -> RefMut<'_, Model> {
        self.model.borrow_mut()
    }

    /// The counter runs on by `ticks`.
    fn advance(&self, ticks: u64) {
        self.bus
            .with_memory(|m| self.model.borrow_mut().advance(m, ticks));
    }

    fn status(&self) -> u32 {
        self.bus.peek(INTERRUPT_STATUS)
    }

    fn t0(&self) -> LocalRegisterCopy<u32, TimerConfig::Register> {
        self.bus.with_memory(|m| m.read(TIMER_CONFIG.at(0)))
    }

    fn general(&self) -> LocalRegisterCopy<u32, GeneralConfig::Register> {
        self.bus.with_memory(|m| m.read(GENERAL_CONFIG))
    }

    fn comparator(&self) -> u64 {
        self.bus.with_memory(|m| comparator(m))
    }

    /// Writes so far, as (offset, value).
    fn writes(&self) -> Vec<(usize, u32)> {
        self.bus
            .log()
            .iter()
            .filter(|a| a.op == Op::Write)
            .map(|a| (a.offset, a.value))
            .collect()
    }

    fn driver(&self, config: Config) -> Result<Hpet<FakeBus>, InitError> {
        Hpet::init(self.bus.clone(), config)
    }
}

fn qemu_pc() -> Hw {
    Hw::new(QEMU_CAPS, QEMU_PC_T0, QEMU_PC_ROUTES)
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
    let hpet = fake.driver(legacy(Trigger::Edge)).unwrap();
    assert_eq!(hpet.period_fs(), 10_000_000);
    assert_eq!(hpet.ioapic_pin(), 2);
    let general = fake.general();
    assert!(general.is_set(GeneralConfig::ENABLE_CNF) && general.is_set(GeneralConfig::LEG_RT_CNF));
    let t0 = fake.t0();
    assert!(!t0.is_set(TimerConfig::INT_ENB_CNF));
    assert!(t0.matches_all(TimerConfig::TYPE_CNF::OneShot + TimerConfig::INT_TYPE_CNF::Edge));
    assert!(!t0.is_set(TimerConfig::MODE32_CNF) && !t0.is_set(TimerConfig::FSB_EN_CNF));
    // The capabilities are untouched and the counter was not reset.
    assert!(t0.is_set(TimerConfig::SIZE_CAP));
    assert_eq!(fake.bus.peek(TIMER_ROUTE_CAP.at(0)), 0x4);
    assert_eq!(fake.get().counter, 777);
    // The counter was stopped before timer 0 was reconfigured.
    assert_eq!(fake.writes()[0], (GENERAL_CONFIG.offset(), 0));
    // Only 32-bit accesses reach the device.
    assert!(fake.bus.log().iter().all(|a| a.width == hwio::Width::W32));
}

#[test]
fn init_routes_to_an_allowed_ioapic_pin_level_triggered() {
    let fake = Hw::new(QEMU_CAPS, QEMU_PC_T0, Q35_ROUTES);
    let cfg = Config {
        route: Route::IoApic(17),
        trigger: Trigger::Level,
    };
    let hpet = fake.driver(cfg).unwrap();
    assert_eq!(hpet.ioapic_pin(), 17);
    let t0 = fake.t0();
    assert_eq!(t0.read(TimerConfig::INT_ROUTE_CNF), 17);
    assert!(t0.matches_all(TimerConfig::INT_TYPE_CNF::Level));
    assert!(!fake.general().is_set(GeneralConfig::LEG_RT_CNF));
}

#[test]
fn init_refuses_routes_the_timer_does_not_offer() {
    let fake = qemu_pc();
    let cfg = Config {
        route: Route::IoApic(11),
        trigger: Trigger::Level,
    };
    let err = fake.driver(cfg).err().unwrap();
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
    assert!(fake.writes().is_empty());

    let cfg = Config {
        route: Route::IoApic(40),
        ..cfg
    };
    assert_eq!(
        qemu_pc().driver(cfg).err(),
        Some(InitError::RouteNotAllowed {
            pin: 40,
            allowed: 0x4
        })
    );
    let no_routes = Hw::new(QEMU_CAPS, QEMU_PC_T0, 0);
    let err = no_routes
        .driver(Config {
            route: Route::IoApic(2),
            ..cfg
        })
        .err()
        .unwrap();
    assert!(err.to_string().ends_with("(no pin allowed)"), "{err}");
}

#[test]
fn init_refuses_unusable_devices() {
    let leg_rt: u32 = GeneralCaps::LEG_RT_CAP::SET.into();
    let no_legacy = Hw::new(QEMU_CAPS & !leg_rt, QEMU_PC_T0, QEMU_PC_ROUTES);
    assert_eq!(
        no_legacy.driver(legacy(Trigger::Edge)).err(),
        Some(InitError::NoLegacyReplacement)
    );
    let count64: u32 = GeneralCaps::COUNT_SIZE_CAP::SET.into();
    let counter32 = Hw::new(QEMU_CAPS & !count64, QEMU_PC_T0, QEMU_PC_ROUTES);
    assert_eq!(
        counter32.driver(legacy(Trigger::Edge)).err(),
        Some(InitError::Counter32Bit)
    );
    let size64: u32 = TimerConfig::SIZE_CAP::SET.into();
    let cmp32 = Hw::new(QEMU_CAPS, QEMU_PC_T0 & !size64, QEMU_PC_ROUTES);
    assert_eq!(
        cmp32.driver(legacy(Trigger::Edge)).err(),
        Some(InitError::Comparator32Bit)
    );
    // An all-ones read is what an unmapped or wrong address tends to give.
    let bogus = Hw::new(u32::MAX, QEMU_PC_T0, QEMU_PC_ROUTES);
    bogus.bus.poke(COUNTER_PERIOD, u32::MAX);
    let err = bogus.driver(legacy(Trigger::Edge)).err().unwrap();
    assert_eq!(
        err,
        InitError::BadPeriod {
            period_fs: u32::MAX
        }
    );
    assert!(err.to_string().contains("really the HPET"));
}

#[test]
fn a_corrupted_capability_read_is_refused_not_trusted() {
    // The period reads as zero once (a glitch on the bus): init refuses
    // the device instead of dividing by it later.
    let fake = qemu_pc();
    fake.bus
        .corrupt_reads(|a| (a.offset == COUNTER_PERIOD.offset()).then_some(0));
    assert_eq!(
        fake.driver(legacy(Trigger::Edge)).err(),
        Some(InitError::BadPeriod { period_fs: 0 })
    );
    fake.bus.stop_corrupting();
    assert!(fake.driver(legacy(Trigger::Edge)).is_ok());
}

#[test]
fn arm_in_the_future_interrupts_at_the_deadline_and_level_needs_ack() {
    let fake = qemu_pc();
    let mut hpet = fake.driver(legacy(Trigger::Level)).unwrap();
    fake.get().counter = 1_000;
    assert_eq!(hpet.arm(5_000), ArmOutcome::Armed);
    fake.advance(3_999);
    assert!(fake.get().interrupts.is_empty());
    fake.advance(1);
    assert_eq!(fake.get().interrupts, [5_000]);
    assert_eq!(fake.status(), 1);
    hpet.ack();
    assert_eq!(fake.status(), 0);
}

#[test]
fn edge_trigger_ack_writes_nothing() {
    let fake = qemu_pc();
    let mut hpet = fake.driver(legacy(Trigger::Edge)).unwrap();
    let before = fake.writes().len();
    hpet.ack();
    assert_eq!(fake.writes().len(), before);
}

#[test]
fn arm_in_the_past_reports_fire_now() {
    for mode in [Match::Crossing, Match::QemuPast] {
        let fake = qemu_pc();
        fake.get().mode = mode;
        let mut hpet = fake.driver(legacy(Trigger::Edge)).unwrap();
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
    let mut hpet = fake.driver(legacy(Trigger::Edge)).unwrap();
    fake.get().counter = 1_000;
    fake.get().per_write = 5;
    let out = hpet.arm(1_003);
    fake.advance(1_000_000);
    assert!(fake.get().interrupts.is_empty());
    assert!(matches!(out, ArmOutcome::FireNow { now_ticks } if now_ticks >= 1_003));
}

#[test]
fn deadline_passing_between_write_and_reread_fires_now() {
    // The writes are instant but the counter moves 4 ticks per read: the
    // comparator matches during the re-read, and the caller is told too.
    let fake = qemu_pc();
    let mut hpet = fake.driver(legacy(Trigger::Edge)).unwrap();
    fake.get().counter = 2_000;
    fake.get().per_read = 4;
    assert!(matches!(hpet.arm(2_005), ArmOutcome::FireNow { .. }));
    assert_eq!(fake.get().interrupts.len(), 1);
}

#[test]
fn rearm_within_the_same_high_half_is_one_write() {
    let fake = qemu_pc();
    let mut hpet = fake.driver(legacy(Trigger::Edge)).unwrap();
    fake.get().counter = 100;
    assert_eq!(hpet.arm(1_000), ArmOutcome::Armed);
    let before = fake.writes().len();
    assert_eq!(hpet.arm(900), ArmOutcome::Armed);
    assert_eq!(
        &fake.writes()[before..],
        [(TIMER_COMPARATOR_LO.at(0).offset(), 900)]
    );
    assert_eq!(fake.comparator(), 900);
}

#[test]
fn changing_the_high_half_never_fires_on_a_half_written_comparator() {
    // The old comparator (0x50) is long past; writing the new low half first
    // leaves (0, 0x200), which QEMU treats as past and fires at once unless
    // the interrupt is off while the halves change.
    let fake = qemu_pc();
    fake.get().mode = Match::QemuPast;
    let mut hpet = fake.driver(legacy(Trigger::Level)).unwrap();
    fake.get().counter = 0x40;
    assert_eq!(hpet.arm(0x50), ArmOutcome::Armed);
    fake.advance(0x10);
    assert_eq!(fake.get().interrupts, [0x50]);
    hpet.ack();
    fake.get().counter = 0x1_0000_0100;
    assert_eq!(hpet.arm(0x1_0000_0200), ArmOutcome::Armed);
    assert_eq!(fake.get().interrupts, [0x50]);
    assert_eq!(fake.status(), 0, "a stale level status survived the re-arm");
    fake.advance(0x100);
    assert_eq!(fake.get().interrupts, [0x50, 0x1_0000_0200]);
}

#[test]
fn disarm_silences_the_timer_and_arm_re_enables_it() {
    let fake = qemu_pc();
    let mut hpet = fake.driver(legacy(Trigger::Edge)).unwrap();
    fake.get().counter = 10;
    assert_eq!(hpet.arm(100), ArmOutcome::Armed);
    hpet.disarm();
    fake.advance(200);
    assert!(fake.get().interrupts.is_empty());
    assert!(!fake.t0().is_set(TimerConfig::INT_ENB_CNF));
    // Same high half, but the interrupt is off: arm must switch it back on.
    assert_eq!(hpet.arm(300), ArmOutcome::Armed);
    fake.advance(100);
    assert_eq!(fake.get().interrupts, [300]);
}

#[test]
fn counter_read_across_a_low_half_carry_is_consistent() {
    let fake = qemu_pc();
    let mut hpet = fake.driver(legacy(Trigger::Edge)).unwrap();
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
        let mut hpet = fake.driver(legacy(trigger)).unwrap();
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
                    fake.get().per_read = 0;
                    fake.advance(deadline.saturating_sub(counter_after));
                    assert!(
                        !fake.get().interrupts.is_empty(),
                        "{ctx}: armed deadline was lost"
                    );
                }
            }
            for &at in &fake.get().interrupts {
                assert!(
                    at >= deadline,
                    "{ctx}: interrupt at {at:#x} before {deadline:#x}"
                );
            }
            hpet.ack();
            if rng.below(5) == 0 {
                hpet.disarm();
            }
        }
    }
}
