//! The RTL8139 driver PD: finds its NIC through the pci PD, checks the
//! resources system.xml gave it against the device, turns on memory
//! decoding and bus mastering, and drives the chip through its MMIO BAR
//! (an I/O port access would cost a kernel call each) with rtl8139-core.
//! It provides EthernetController to the network PD (frames stay in the
//! port's data area, which the device reads and writes directly; messages
//! carry offsets), answers Lifecycle, and uses a Timer port for the
//! transmit watchdog. Every port is observed by the EthernetDriver
//! component observer, so that enable, txPacket and rxBuffer are accepted
//! only while Lifecycle is running. It publishes its counters (nic-stats)
//! for the network PD's status page.
//!
//! # Receive mode
//!
//! Both of the chip's modes are implemented (rtl8139-core's `nic::Mode`);
//! the `cplus` param (pd.toml) picks one, default normal mode. Normal mode:
//! one contiguous receive ring copied out into the client's lent buffers,
//! four transmit descriptors fed straight from the client's buffers (frames
//! under 60 bytes or misaligned go through a bounce buffer). C+ mode:
//! descriptor rings, each receive descriptor holding a lent buffer the
//! device writes the frame into (zero-copy), up to 64 transmits handed
//! over per batch and started with one TxPoll.
//!
//! One run of the net bench (bench/net/run.py: net-echo and
//! net-echo-cplus, the same system; guest instructions per echo in busy
//! periods, the driver's own code in brackets):
//!
//! | load                 | normal         | C+             | C+ vs normal |
//! |----------------------|----------------|----------------|--------------|
//! | 64 B, 32 in flight   | 3,846 (1,352)  | 3,876 (1,335)  | +1%          |
//! | 1,472 B, 32 in flight| 5,960 (1,552)  | 5,764 (1,351)  | -3%          |
//! | 64 B, ping-pong      | 7,331 (2,159)  | 7,275 (2,099)  | -1%          |
//!
//! The modes are within a few percent of each other. Normal mode's receive
//! copy goes from the ring straight into the lent buffer as string moves
//! (shared-copy: about an eighth of an instruction a byte; the volatile
//! word loop an earlier run measured cost 1.8, which put C+ 24% ahead at
//! 1,472 bytes), so C+ saves the driver about 200 instructions at 1,472
//! bytes and about 20 at 64. Echoes per second (host time) are noisy
//! between runs: this one had 34,600 in normal mode against 31,900 in C+
//! at 64 bytes, an earlier one 5,960 against 35,200 with instruction
//! counts within 2%.
//! Normal mode stays the default: QEMU's C+ model has no flow control, so a frame arriving
//! while no descriptor holds a lent buffer is dropped. The net-wire-cplus
//! boot test's 256-frame burst into an idle guest loses about half of it
//! (123 of 256 in one run, with the network PD's 64 receive buffers), where
//! normal mode holds frames back in QEMU and loses none; and the device
//! drops frames too long for a descriptor's buffer itself (counted as
//! missed, not as too long) and any frame arriving before the network PD
//! has lent its buffers (it lends them on enableComplete): the first ARP
//! request of a boot test was lost that way once. C+ would be the better default once the
//! network PD lends a buffer for every descriptor (256; today its data
//! area holds 64 each way).
//!
//! # Bounded work
//!
//! One interrupt handles at most [`BUDGET`] receive records, and records
//! are taken only into lent buffers (see rtl8139-core's `nic` module): in
//! normal mode a flood leaves frames in the ring, where QEMU holds further
//! ones back, until the network PD returns buffers; in C+ mode the device
//! drops what finds no lent buffer.
//!
//! # Priority
//!
//! The driver runs below the network PD (system.xml). The frames of an
//! interrupt wake the network PD, which preempts the driver at once, and
//! the driver keeps its EthernetController port awake meanwhile
//! (`Watch::stay_awake`): the echoes the network PD sends come in before
//! the driver sleeps, with no notification and no wake-up of their own.
//! In ping-pong that saved two system calls and a PD switch per echo
//! (8,808 to 7,941 instructions when it came).
#![no_std]
#![no_main]

use core::cell::RefCell;

use dingo_pd::microkit::{self, Channel, debug_println};
use dingo_pd::{ConsoleReporter, Watch};
use dingo_protocols::ethernet_controller::Msg;
use dingo_protocols::{ethernet_driver, timer};
use dingo_rt::ring::Arm;
use dingo_rt::typed::ComponentPort;
use eth_driver::{Event, Lifecycle, Outbox, Request};
use hwio::garbage::{Pattern, Select};
use hwio::{Bus, Corrupting, Garbage, Mmio};
use nic_stats::{Hot, Writer};
use pci_client::Decode;
use rtl8139_core::campaign::{self, Class, Effect, Garbage as CampaignGarbage};
use rtl8139_core::nic::{Counters, Mode, Nic};
use rtl8139_core::regs::REGISTER_BYTES;
use timer_client::clock::{TimeReader, rdtsc};

pd_config::program!("rtl8139");

static REPORTER: ConsoleReporter = ConsoleReporter;

/// The receive ring: 32 KiB holds about twenty full frames.
const RING_LEN: usize = 32 << 10;
/// Receive records per interrupt (or per round when work is left).
const BUDGET: usize = 32;
/// Messages waiting for room on the EthernetController port.
const OUTBOX: usize = 768;
/// How often the watchdog looks while transmits are outstanding.
const WATCHDOG_PERIOD_NS: u64 = 1_000_000_000;

type Component = ethernet_driver::Observer;

const STATS: [&str; 25] = [
    "interrupts",
    "spurious",
    "rx_frames",
    "rx_bytes",
    "tx_frames",
    "tx_bytes",
    "tx_bounced",
    "rx_bad_status",
    "rx_runt",
    "rx_too_long",
    "rx_buffer_too_small",
    "rx_ring_resets",
    "rx_reset_bad_cbr",
    "rx_reset_bad_length",
    "rx_reset_other",
    "isr_impossible",
    "device_gone",
    "rx_missed",
    "rx_overflows",
    "rx_bad_lend",
    "tx_bad_request",
    "tx_failed",
    "tx_queue_full",
    "chip_resets",
    "pci_errors",
];

/// The counters that change with every frame (see `Writer::publish_hot`):
/// interrupts, rx_frames, rx_bytes, tx_frames, tx_bytes.
const HOT: Hot = Hot::of(&[0, 2, 3, 4, 5]);

fn stats(c: &Counters) -> [u64; 25] {
    [
        c.interrupts,
        c.spurious,
        c.rx_frames,
        c.rx_bytes,
        c.tx_frames,
        c.tx_bytes,
        c.tx_bounced,
        c.rx_bad_status,
        c.rx_runt,
        c.rx_too_long,
        c.rx_buffer_too_small,
        c.rx_ring_resets,
        c.rx_reset_bad_cbr,
        c.rx_reset_bad_length,
        c.rx_reset_other,
        c.isr_impossible,
        c.device_gone,
        c.rx_missed,
        c.rx_overflows,
        c.rx_bad_lend,
        c.tx_bad_request,
        c.tx_failed,
        c.tx_queue_full,
        c.chip_resets,
        c.pci_errors,
    ]
}

/// Where the core's events go: the outbox towards the client.
fn sink<const N: usize>(outbox: &mut Outbox<N>) -> impl FnMut(Event) + '_ {
    |e| {
        if let Event::Link { up } = e {
            debug_println!("rtl8139: link {}", if up { "up" } else { "down" });
        }
        outbox.push(e.into());
    }
}

/// Fault injection (see pd.toml's params): the next fault this instance is
/// to get, and after how many received frames.
struct Scheduled {
    /// The fault's number (in a campaign, over the whole campaign).
    number: u64,
    class: Class,
    /// `rx_frames` at or after which it is injected.
    at_frames: u64,
}

/// The fault injection of one instance: a campaign's schedule
/// (rtl8139-core's `campaign`), or the restart tests' crash and hang.
struct Injector {
    campaign: u64,
    next: Option<Scheduled>,
    /// A garbage fault armed for the next interrupt: its number and
    /// pattern.
    pending: Option<(u64, CampaignGarbage)>,
    /// A fault the driver recovered from by itself, until it receives
    /// again: its number and the frame count at detection.
    recovering: Option<(u64, u64)>,
}

impl Injector {
    fn new(params: &config::Params) -> Self {
        let n = microkit::recovery::incarnation();
        let next = if params.campaign != 0 {
            campaign::first_fault(n, params.campaign).map(|k| Scheduled {
                number: k,
                class: campaign::fault(k),
                at_frames: campaign::frames_before(k),
            })
        } else {
            let (class, at) = match n {
                1 => (Class::Crash, params.crash_at_rx),
                2 => (Class::Hang, params.hang_at_rx),
                _ => (Class::Crash, 0),
            };
            (at != 0).then_some(Scheduled {
                number: n,
                class,
                at_frames: at,
            })
        };
        Injector {
            campaign: params.campaign,
            next,
            pending: None,
            recovering: None,
        }
    }

    /// Whether any fault of this instance reads garbage from the device:
    /// only then is the driver core built over a corrupting bus.
    fn wants_garbage(&self) -> bool {
        self.next
            .as_ref()
            .is_some_and(|first| campaign::instance_reads_garbage(first.number, self.campaign))
    }

    /// The fault due now that `rx_frames` have arrived, if any; a crash or
    /// a hang does not return. The schedule moves on to the next fault
    /// only after one the driver survives by itself.
    fn due(&mut self, rx_frames: u64) -> Option<(u64, Class)> {
        let s = self.next.as_ref().filter(|s| rx_frames >= s.at_frames)?;
        let (k, class) = (s.number, s.class);
        self.next = None;
        match class {
            Class::Crash | Class::Hang | Class::Violation => {
                say_injected(k, class, rx_frames, rdtsc());
                match class {
                    Class::Crash => {
                        // SAFETY: none, on purpose: nothing is mapped at
                        // this address, so the kernel stops this thread
                        // and tells the monitor.
                        unsafe { (0xdead_0000 as *mut u64).write_volatile(rx_frames) };
                    }
                    Class::Hang => loop {
                        core::hint::spin_loop();
                    },
                    _ => {}
                }
            }
            Class::Garbage(g) => self.pending = Some((k, g)),
        }
        Some((k, class))
    }

    /// Says when the driver, having recovered from a fault by itself,
    /// receives again.
    fn check_recovered(&mut self, rx_frames: u64) {
        if let Some((k, frames)) = self.recovering
            && rx_frames > frames
        {
            self.recovering = None;
            debug_println!(
                "rtl8139: fault {k} recovered by the driver: receiving again at tsc {}",
                rdtsc()
            );
        }
    }

    /// After a fault the driver survived, the campaign's next one.
    fn schedule_after(&mut self, k: u64, rx_frames: u64) {
        if k < self.campaign {
            self.next = Some(Scheduled {
                number: k + 1,
                class: campaign::fault(k + 1),
                at_frames: rx_frames + campaign::frames_before(k + 1),
            });
        }
    }
}

fn say_injected(k: u64, class: Class, rx_frames: u64, tsc: u64) {
    debug_println!(
        "rtl8139: fault injection {k}: {} after {rx_frames} frames at tsc {tsc}",
        class.describe()
    );
}

/// A counter of the driver's checks, what its growth means, and how the
/// driver goes on.
type Verdict = (fn(&Counters) -> u64, &'static str, &'static str);

/// What the driver's checks made of one event read through garbage: the
/// first reason its counters show, and how it recovered.
fn judge(before: &Counters, after: &Counters) -> Option<(&'static str, &'static str)> {
    const RESET: &str = "recovering by itself: receiver reset";
    // In order of precedence: the first counter that grew names the fault.
    let checks: [Verdict; 5] = [
        (
            |c| c.device_gone,
            "the interrupt status reads 0xffff (device gone)",
            "failing, so that the monitor restarts the driver",
        ),
        (
            |c| c.isr_impossible,
            "an impossible interrupt status (bits the chip never sets)",
            "recovering by itself: the status ignored, the device serviced again on its next interrupt",
        ),
        (
            |c| c.rx_reset_bad_cbr,
            "a receive write offset (CBR) outside the ring",
            RESET,
        ),
        (
            |c| c.rx_reset_bad_length,
            "a receive record longer than what the device wrote",
            RESET,
        ),
        (|c| c.rx_reset_other, "a receive record in doubt", RESET),
    ];
    checks
        .into_iter()
        .find(|(count, _, _)| count(after) > count(before))
        .map(|(_, why, then)| (why, then))
}

fn idle(why: core::fmt::Arguments<'_>) -> ! {
    dingo_pd::idle("rtl8139", why)
}

fn main() -> ! {
    let cfg = config::load();

    let mut dev = match pci_client::open(cfg.pci.nic) {
        Ok(d) => d,
        Err(e) => idle(format_args!("{e}")),
    };
    let info = dev.info();
    if (info.vendor, info.device) != (0x10ec, 0x8139) {
        idle(format_args!("{} is {info}, not an RTL8139", dev.bdf()));
    }
    let offset = match dev.check_mmio(1, &cfg.regions.regs) {
        Ok(off) => off,
        Err(e) => idle(format_args!("{e}")),
    };
    if let Err(e) = dev.check_irq(&cfg.irqs.nic) {
        idle(format_args!("{e}"));
    }
    let decode = Decode {
        io: false,
        memory: true,
        bus_master: true,
    };
    if let Err(e) = dev.enable(decode) {
        idle(format_args!("enabling decoding and bus mastering: {e}"));
    }
    // SAFETY: check_mmio confirmed that BAR1 (its 256 registers) lies in
    // the device region at `offset`, which system-builder mapped uncached
    // for this PD's life; nothing else here touches it.
    let bus = unsafe { Mmio::new("rtl8139", cfg.regions.regs.vaddr + offset, REGISTER_BYTES) };
    let dma = match cfg.regions.dma.dma("rtl8139 dma") {
        Ok(d) => d,
        Err(e) => idle(format_args!("{e}")),
    };
    let frames = match cfg
        .regions
        .frames
        .dma("eth frames")
        .and_then(|mut r| r.alloc("frames", cfg.regions.frames.size, dma::PAGE_SIZE))
    {
        Ok(f) => f,
        Err(e) => idle(format_args!("{e}")),
    };
    let mode = if cfg.params.cplus {
        Mode::CPlus
    } else {
        Mode::Normal { ring_len: RING_LEN }
    };
    let injector = Injector::new(&cfg.params);
    // Decided once: a driver that is not to read garbage runs over the
    // bare MMIO bus, its read path as without injection.
    let plan = Garbage::new();
    let bar = cfg.regions.regs.paddr + offset as u64;
    if injector.wants_garbage() {
        let bus = Corrupting::new(bus, &plan);
        serve(
            &cfg,
            &dev,
            bar,
            bus,
            dma,
            frames,
            mode,
            injector,
            Some(&plan),
        )
    } else {
        serve(&cfg, &dev, bar, bus, dma, frames, mode, injector, None)
    }
}

/// Brings the chip up with the driver core over bus `B` and serves the
/// ports; `garbage` is the corruption plan under `B` when the injection
/// reads garbage. The core is built here, in this frame: a copy moved
/// between frames would not fit the PD's stack.
#[allow(clippy::too_many_arguments)]
fn serve<B: Bus>(
    cfg: &config::Config,
    dev: &pci_client::Device<pci_client::Ppc>,
    bar: u64,
    bus: B,
    mut dma: dma::DmaRegion,
    frames: dma::DmaBuf,
    mode: Mode,
    mut injector: Injector,
    garbage: Option<&Garbage>,
) -> ! {
    // SAFETY: system-builder checked that the time page is mapped readable
    // here, a page at least; the timer PD writes it.
    let time = unsafe { TimeReader::new(cfg.regions.time_page.as_ptr()) };
    let now = || time.now_ns();
    let mut nic = match Nic::new(bus, &mut dma, frames, mode) {
        Ok(n) => n,
        Err(e) => idle(format_args!("{}: {e}", dev.bdf())),
    };
    let m = nic.mac();
    debug_println!(
        "rtl8139: {} {} at BAR1 {:#x}, IRQ pin {}; MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, link {}, {} mode",
        dev.bdf(),
        dev.info(),
        bar,
        dev.interrupt().line,
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        if nic.link_up() { "up" } else { "down" },
        if cfg.params.cplus { "C+" } else { "normal" }
    );

    let component = RefCell::new(Component::new(now()));
    let supervisor = dingo_pd::supervisor(&REPORTER);
    let mut eth = dingo_pd::observed_port(
        cfg.name,
        &cfg.ports.eth,
        ComponentPort::new(&component, ethernet_driver::ports::Eth),
        supervisor,
    );
    let mut lc = dingo_pd::observed_port(
        cfg.name,
        &cfg.ports.lc,
        ComponentPort::new(&component, ethernet_driver::ports::Lc),
        supervisor,
    );
    let mut tm = dingo_pd::observed_port(
        cfg.name,
        &cfg.ports.timer,
        ComponentPort::new(&component, ethernet_driver::ports::Timer),
        supervisor,
    );
    // SAFETY: system-builder checked that the stats region is mapped
    // read-write here, a page at least; this PD is its only writer.
    let mut published = unsafe { Writer::new(cfg.regions.stats.as_ptr(), &STATS) };
    let irq = Channel::from(cfg.irqs.nic);

    let mut outbox: Outbox<OUTBOX> = Outbox::new();
    let mut life = Lifecycle::new();
    // Whether Lifecycle is running (startComplete sent): EthernetController
    // is served only then. A restarted instance can find the client's
    // replayed `enable` before its replayed `start`; taken first, its
    // enableComplete would break the component's dependency.
    let mut running = false;
    let mut watchdog: Option<u32> = None;
    let mut next_id = 1u32;
    let mut interrupted = false;
    let mut more = false;
    let mut starved = false;
    let mut gone_said = false;
    let mut bad_lend_said = false;
    // The ports to read: 0 eth, 1 lc, 2 timer.
    let mut watch = Watch::new([eth.channel(), lc.channel(), tm.channel()]);
    // The time is read once per wake-up (and per round of a flood): the
    // rounds a retry adds follow at once.
    let mut t = now();
    loop {
        if let Some(started) = life.serve(&mut lc, watch.looks_at(1), t, || {
            nic.disable(&mut sink(&mut outbox))
        }) {
            running = started;
        }

        let mut lent_more = false;
        while watch.looks_at(0) && running && outbox.has_room(BUDGET) {
            let Some(r) = eth_driver::request(&mut eth, t) else {
                break;
            };
            match r {
                Request::Enable => {
                    nic.enable();
                    outbox.enabled(nic.mac(), nic.link_up());
                }
                Request::Disable => {
                    nic.disable(&mut sink(&mut outbox));
                    outbox.push(Msg::DisableComplete);
                }
                Request::Lend { buf, len } => {
                    if let Err(e) = nic.lend(buf, len)
                        && !core::mem::replace(&mut bad_lend_said, true)
                    {
                        debug_println!(
                            "rtl8139: refused receive buffer {buf:#x}+{len:#x}: {e:?} (counted)"
                        );
                    }
                    lent_more = true;
                }
                Request::Transmit { buf, len } => nic.transmit(buf, len, t, &mut sink(&mut outbox)),
            }
        }
        // Everything the batch handed over goes out together.
        nic.flush_tx(t, &mut sink(&mut outbox));

        while watch.looks_at(2)
            && let Ok(Some(msg)) = tm.try_recv(t)
        {
            if let timer::Msg::Fired { id } = msg
                && watchdog == Some(id)
            {
                watchdog = None;
                if nic.check_watchdog(t, &mut sink(&mut outbox)) {
                    debug_println!("rtl8139: transmit watchdog: chip re-initialised");
                }
            }
        }

        if interrupted {
            interrupted = false;
            // A garbage fault covers this one event.
            let armed = match (injector.pending.take(), garbage) {
                (Some((k, g)), Some(plan)) => {
                    let pattern = match g {
                        CampaignGarbage::AllOnes => Pattern::AllOnes,
                        CampaignGarbage::Noise { seed } => Pattern::Noise { seed },
                    };
                    plan.arm(pattern, Select::All);
                    Some((k, g, plan, *nic.counters(), rdtsc()))
                }
                _ => None,
            };
            let s = nic.service(BUDGET, t, &mut sink(&mut outbox));
            if let Some((k, g, plan, before, injected_at)) = armed {
                let reads = plan.disarm();
                let at = rdtsc();
                // Said afterwards, so that the console's time is not the
                // detection's.
                say_injected(k, Class::Garbage(g), before.rx_frames, injected_at);
                let rx_frames = nic.counters().rx_frames;
                match judge(&before, nic.counters()) {
                    Some((why, then)) => {
                        debug_println!("rtl8139: fault {k} detected: {why} at tsc {at}; {then}");
                        if !s.gone {
                            injector.recovering = Some((k, rx_frames));
                        }
                    }
                    None => debug_println!(
                        "rtl8139: fault {k} not detected: {reads} reads of garbage passed every check"
                    ),
                }
                if !s.gone {
                    injector.schedule_after(k, rx_frames);
                }
            }
            if let Err(e) = irq.irq_ack() {
                debug_println!("rtl8139: IRQ ack refused: {e:?}");
            }
            more = s.more;
            starved = s.starved;
            if s.gone {
                // A new instance probes the device again: it may be back
                // (a glitch), or the new one stays idle.
                if microkit::recovery::restartable() {
                    panic!(
                        "rtl8139: the device is gone (status reads 0xffff); failing, so that the monitor restarts the driver"
                    );
                }
                if !core::mem::replace(&mut gone_said, true) {
                    debug_println!("rtl8139: the device is gone (status reads 0xffff)");
                }
            }
            let rx_frames = nic.counters().rx_frames;
            // Before the next fault, which these frames may bring due.
            injector.check_recovered(rx_frames);
            // Only a violation comes back, to be sent first.
            if let Some((_, Class::Violation)) = injector.due(rx_frames) {
                outbox.push_front(Msg::EnableComplete);
            }
        } else if more || (starved && lent_more) {
            let s = nic.poll_rx(BUDGET, &mut sink(&mut outbox));
            more = s.more;
            starved = s.starved;
        }
        injector.check_recovered(nic.counters().rx_frames);

        outbox.send(&mut eth, t);
        if watchdog.is_none() && nic.tx_outstanding() > 0 {
            let id = next_id;
            next_id = next_id.wrapping_add(1).max(1);
            let request = timer::Msg::Request {
                id,
                deadline_ns: t + WATCHDOG_PERIOD_NS,
            };
            if tm.try_send(&request, t).is_ok() {
                watchdog = Some(id);
            }
        }
        dingo_pd::flush(&mut eth);
        dingo_pd::flush(&mut lc);
        dingo_pd::flush(&mut tm);

        if more {
            published.publish_hot(&stats(nic.counters()), HOT);
            t = now();
            continue;
        }
        let mut retry = watch.arm(0, &mut eth) | watch.arm(1, &mut lc) | watch.arm(2, &mut tm);
        if !outbox.is_empty() && matches!(eth.prepare_send_sleep(), Ok(Arm::Retry)) {
            retry = true;
            watch.again(0);
        }
        if retry {
            continue;
        }
        // Published once the work is done, not on every retry round.
        published.publish_hot(&stats(nic.counters()), HOT);
        let woken = microkit::wait();
        interrupted = woken.contains(irq);
        watch.woken(woken);
        // The frames this interrupt brings wake the net PD, which runs at
        // a higher priority: its answers come in before this PD sleeps.
        if interrupted {
            watch.stay_awake(0, &mut eth);
        }
        t = now();
    }
}

microkit::entry!(main);
