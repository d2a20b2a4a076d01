//! The monitor's clock, for handler budgets and restart backoff: timer 1 of
//! the HPET, one-shot and re-armed on every tick. This kernel has no MCS
//! budgets and gives user code no timer of its own, and the timer PD's
//! timeouts go to ports the monitor does not have; HPET timer 1 is free
//! (the timer PD drives timer 0 only) and under LegacyReplacement, the
//! timer PD's route, it interrupts on IOAPIC pin 8. The monitor maps the
//! HPET's page uncached and touches only timer 1's registers, after
//! setting the two bits of the general configuration the timer PD sets
//! too (counter on, LegacyReplacement), so that the tick runs even before
//! the timer PD does.

use crate::error::{Context, Setup};
use crate::resources::{Object, ROOT_CNODE, Resources};
use crate::system::{HPET_WINDOW, System};
use crate::vspace::VSpace;
use hwio::{Mmio, Registers};
use sel4::cap::{self, Cap, Rights, Slot, VmAttributes, kind};
use sel4::{WORD_BITS, init_cap};
use timer_core::hpet::regs::{
    COUNTER_PERIOD, GENERAL_CONFIG, GeneralConfig, MAIN_COUNTER_HI, MAIN_COUNTER_LO, MMIO_SIZE,
    TIMER_COMPARATOR_HI, TIMER_COMPARATOR_LO, TIMER_CONFIG, TimerConfig,
};

/// The HPET timer the monitor drives.
const TIMER: usize = 1;
/// The notification badge of a tick (fault messages come on the endpoint).
pub const TICK_BADGE: u64 = 1;

const IRQ_CONTROL: Cap<kind::IrqControl> = Cap::from_cptr(init_cap::CapIRQControl);

pub struct Tick {
    bus: Mmio,
    period_ticks: u64,
    handler: Cap<kind::IrqHandler>,
    config: hwio::LocalRegisterCopy<u32, TimerConfig::Register>,
}

impl Tick {
    /// Maps the HPET, binds the tick's interrupt to a notification bound
    /// to the monitor's own thread (so that waiting for faults also wakes
    /// for ticks) and arms the first tick.
    pub fn start(
        t: &boot_plan::Tick,
        system: &System,
        res: &mut Resources,
        own: &mut VSpace,
    ) -> Setup<Tick> {
        let copy = res.slots(1)?;
        ROOT_CNODE
            .copy(
                copy,
                WORD_BITS,
                Slot::new(ROOT_CNODE, system.region_frame(t.hpet as usize), WORD_BITS),
                Rights::ALL,
            )
            .ctx("copy the HPET's frame cap")?;
        own.map(
            res,
            copy,
            HPET_WINDOW,
            false,
            Rights::READ_WRITE,
            VmAttributes::CACHE_DISABLED.no_execute(),
        )?;
        // SAFETY: the HPET's register page is mapped uncached at
        // HPET_WINDOW for the monitor's life; of its registers the monitor
        // writes timer 1's and the two general bits the timer PD sets too.
        let mut bus = unsafe { Mmio::new("hpet (monitor)", HPET_WINDOW as usize, MMIO_SIZE) };
        let period_fs = u64::from(bus.get(COUNTER_PERIOD).max(1));
        let period_ticks = (u64::from(t.period_us) * 1_000_000_000 / period_fs).max(1);

        let ntfn = res.alloc(Object::NOTIFICATION)?;
        Cap::<kind::Tcb>::from_cptr(init_cap::CapInitThreadTCB)
            .bind_notification(Cap::from_cptr(ntfn))
            .ctx("bind the monitor's tick notification")?;
        let handler = res.slots(1)?;
        IRQ_CONTROL
            .get_ioapic(
                Slot::new(ROOT_CNODE, handler, WORD_BITS),
                cap::IoapicLine {
                    ioapic: t.ioapic,
                    pin: t.pin,
                    level_triggered: false,
                    active_low: false,
                },
                t.vector,
            )
            .ctx("create the tick's IRQ handler")?;
        let badged = res.slots(1)?;
        ROOT_CNODE
            .mint(
                badged,
                WORD_BITS,
                Slot::new(ROOT_CNODE, ntfn, WORD_BITS),
                Rights::WRITE,
                TICK_BADGE,
            )
            .ctx("badge the tick's notification")?;
        let handler = Cap::<kind::IrqHandler>::from_cptr(handler);
        handler
            .set_notification(Cap::from_cptr(badged))
            .ctx("bind the tick's IRQ")?;

        let mut config = bus.read(TIMER_CONFIG.at(TIMER));
        config.modify(
            TimerConfig::TYPE_CNF::OneShot
                + TimerConfig::INT_TYPE_CNF::Edge
                + TimerConfig::MODE32_CNF::CLEAR
                + TimerConfig::FSB_EN_CNF::CLEAR
                + TimerConfig::INT_ENB_CNF::CLEAR,
        );
        bus.set(TIMER_CONFIG.at(TIMER), config.get());
        bus.modify(
            GENERAL_CONFIG,
            GeneralConfig::ENABLE_CNF::SET + GeneralConfig::LEG_RT_CNF::SET,
        );
        let mut tick = Tick {
            bus,
            period_ticks,
            handler,
            config,
        };
        // Unmasked before the first tick is armed, as in `ticked`.
        tick.handler.ack().ctx("unmask the tick's IRQ")?;
        tick.arm();
        Ok(tick)
    }

    fn now(&mut self) -> u64 {
        loop {
            let hi = self.bus.get(MAIN_COUNTER_HI);
            let lo = self.bus.get(MAIN_COUNTER_LO);
            if self.bus.get(MAIN_COUNTER_HI) == hi {
                return u64::from(hi) << 32 | u64::from(lo);
            }
        }
    }

    /// The next tick, one period from now. The interrupt is off while the
    /// comparator's two halves are written, so a half-written value cannot
    /// fire it.
    fn arm(&mut self) {
        let at = self.now() + self.period_ticks;
        self.bus.set(TIMER_CONFIG.at(TIMER), self.config.get());
        self.bus.set(TIMER_COMPARATOR_LO.at(TIMER), at as u32);
        self.bus
            .set(TIMER_COMPARATOR_HI.at(TIMER), (at >> 32) as u32);
        let mut on = self.config;
        on.modify(TimerConfig::INT_ENB_CNF::SET);
        self.bus.set(TIMER_CONFIG.at(TIMER), on.get());
    }

    /// After a tick: acknowledges the interrupt, then arms the next. In
    /// this order because the kernel keeps the IOAPIC pin masked until the
    /// acknowledgement, and an edge on a masked pin is lost: armed first,
    /// a tick that came due before the acknowledgement (the host can hold
    /// QEMU's CPU longer than a period; a guest's clock runs on meanwhile)
    /// was never delivered, no tick was armed again, and the monitor saw
    /// no more overruns and did no more restarts.
    pub fn ticked(&mut self) -> Setup<()> {
        let acked = self.handler.ack().ctx("acknowledge the tick");
        self.arm();
        acked
    }
}
