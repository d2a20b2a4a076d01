//! The virtio-net driver PD: finds QEMU's virtio-net-pci through the pci
//! PD, checks the resources system.xml gave it (the memory BAR with the
//! virtio structures, the INTx line or MSI, and for an MSI the MSI-X
//! table's BAR) against the device, builds
//! virtio-drivers' PCI transport through pci-client (virtio-kit) and runs
//! virtio-net-core on the crate's virtqueues. It provides
//! EthernetController to the network PD with the same messages, counters
//! page and Lifecycle as the RTL8139 driver, so the network PD runs
//! unchanged over either; frames stay in the port's data area, which the
//! device reads and writes directly. Every port is observed by the
//! EthernetDriver component observer.
//!
//! # Bounded work
//!
//! One interrupt handles at most [`BUDGET`] receive entries; what is left
//! is polled before the PD sleeps, and a frame is taken only into a buffer
//! the client lent. With none lent, QEMU holds frames back (it stops
//! reading its network backend), so a flood cannot keep the driver busy
//! beyond the buffers it was given.
#![no_std]
#![no_main]

use core::cell::{Cell, RefCell};

use dingo_pd::microkit::{self, Channel, debug_println};
use dingo_pd::{ConsoleReporter, Watch};
use dingo_protocols::ethernet_controller::{self as eth, Msg};
use dingo_protocols::ethernet_driver;
use dingo_rt::ring::Arm;
use dingo_rt::typed::{ComponentPort, Supervisor, TypedPort};
use eth_driver::{Event, Lifecycle, Outbox, Request};
use nic_stats::{Hot, Writer};
use timer_client::clock::TimeReader;
use virtio_kit::hal::{HalSlot, HalState, KitHal};
use virtio_kit::pci::{Parts, Resources, Signal};
use virtio_kit::vectors::KitTransport;
use virtio_kit::virtio_drivers::transport::DeviceType;
use virtio_net_core::{Counters, HDRS_LEN, Nic};

pd_config::program!("virtio-net");

static REPORTER: ConsoleReporter = ConsoleReporter;

struct NetHal;
impl HalSlot for NetHal {
    fn state() -> &'static HalState {
        static S: HalState = HalState::new();
        &S
    }
}

/// Receive entries per interrupt (or per round when work is left).
const BUDGET: usize = 32;
/// Messages waiting for room on the EthernetController port.
const OUTBOX: usize = 768;
/// Ring memory: each set-up of the device takes fresh rings (six pages),
/// and a reset device is set up again on the next enable.
const POOL: usize = 0x18000;

type Component = ethernet_driver::Observer;

const STATS: [&str; 18] = [
    "interrupts",
    "spurious",
    "config_changes",
    "rx_frames",
    "rx_bytes",
    "tx_frames",
    "tx_bytes",
    "rx_too_long",
    "rx_runt",
    "rx_bad_header",
    "rx_bad_lend",
    "tx_bad_request",
    "tx_queue_full",
    "device_faults",
    "rx_notifies",
    "tx_notifies",
    "pci_refused",
    "ring_pool_bytes",
];

/// The counters that change with every frame (see `Writer::publish_hot`):
/// interrupts, rx_frames, rx_bytes, tx_frames, tx_bytes, rx_notifies,
/// tx_notifies.
const HOT: Hot = Hot::of(&[0, 3, 4, 5, 6, 14, 15]);

fn stats(c: &Counters, refused: u32) -> [u64; 18] {
    [
        c.interrupts,
        c.spurious,
        c.config_changes,
        c.rx_frames,
        c.rx_bytes,
        c.tx_frames,
        c.tx_bytes,
        c.rx_too_long,
        c.rx_runt,
        c.rx_bad_header,
        c.rx_bad_lend,
        c.tx_bad_request,
        c.tx_queue_full,
        c.device_faults,
        c.rx_notifies,
        c.tx_notifies,
        refused.into(),
        NetHal::state().pool_used() as u64,
    ]
}

/// Where the core's events go: the outbox towards the client.
fn sink<const N: usize>(outbox: &mut Outbox<N>) -> impl FnMut(Event) + '_ {
    |e| {
        if let Event::Link { up } = e {
            debug_println!("virtio-net: link {}", if up { "up" } else { "down" });
        }
        outbox.push(e.into());
    }
}

fn idle(why: core::fmt::Arguments<'_>) -> ! {
    dingo_pd::idle("virtio-net", why)
}

fn main() -> ! {
    let cfg = config::load();
    // SAFETY: system-builder checked that the time page is mapped readable
    // here, a page at least; the timer PD writes it.
    let time = unsafe { TimeReader::new(cfg.regions.time_page.as_ptr()) };
    let now = || time.now_ns();

    let dev = match pci_client::open(cfg.pci.nic) {
        Ok(d) => d,
        Err(e) => idle(format_args!("{e}")),
    };
    if let Err(e) = virtio_kit::pci::check_device(&dev, DeviceType::Network, &cfg.irqs.nic) {
        idle(format_args!("{e}"));
    }
    let info = dev.info();
    let bdf = dev.bdf();
    let signal = Signal {
        irq: cfg.irqs.nic,
        line: dev.interrupt().line,
    };
    let dev = RefCell::new(dev);

    // The HAL's memory: rings from the pool, headers beside it, and the
    // data area, all with the physical addresses the monitor gave them.
    let dma = match cfg.regions.dma.dma("virtio-net dma") {
        Ok(d) => d,
        Err(e) => idle(format_args!("{e}")),
    };
    let frames = match cfg.regions.frames.dma("eth frames") {
        Ok(f) => f,
        Err(e) => idle(format_args!("{e}")),
    };
    let regs = cfg.regions.regs;
    let refused = Cell::new(0);
    let Parts {
        transport,
        hdrs,
        data: frames,
    } = match virtio_kit::pci::set_up::<NetHal, _>(
        &dev,
        dma,
        POOL,
        HDRS_LEN,
        frames,
        Resources {
            regs: &regs,
            irq: &cfg.irqs.nic,
            msix: cfg.regions.msix.as_ref(),
        },
        &refused,
    ) {
        Ok(p) => p,
        Err(e) => idle(format_args!("{bdf}: {e}")),
    };
    let mut nic = match Nic::<KitHal<NetHal>, _>::new(transport, NetHal::state(), hdrs, frames) {
        Ok(n) => n,
        Err(e) => idle(format_args!("{bdf}: {e}")),
    };
    let lost = nic.transport().inner.vectors_refused();
    if lost > 0 {
        debug_println!(
            "virtio-net: {bdf} took no MSI-X vector for {lost} of its queue and configuration sources: those will not interrupt"
        );
    }
    let m = nic.mac();
    debug_println!(
        "virtio-net: {bdf} {info} with its structures in BAR memory at {:#x}, {signal}; MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, link {}",
        regs.paddr,
        m[0],
        m[1],
        m[2],
        m[3],
        m[4],
        m[5],
        if nic.link_up() { "up" } else { "down" }
    );

    let component = RefCell::new(Component::new(now()));
    let supervisor = Supervisor::log(&REPORTER);
    let eth = dingo_pd::observed_port(
        cfg.name,
        &cfg.ports.eth,
        ComponentPort::new(&component, ethernet_driver::ports::Eth),
        supervisor,
    );
    let lc = dingo_pd::observed_port(
        cfg.name,
        &cfg.ports.lc,
        ComponentPort::new(&component, ethernet_driver::ports::Lc),
        supervisor,
    );
    // SAFETY: system-builder checked that the stats region is mapped
    // read-write here, a page at least; this PD is its only writer.
    let published = unsafe { Writer::new(cfg.regions.stats.as_ptr(), &STATS) };
    let irq = Channel::from(cfg.irqs.nic);

    serve(nic, eth, lc, published, irq, &refused, &time)
}

type EthPort<'c> = TypedPort<'static, ComponentPort<'c, ethernet_driver::ports::Eth>>;
type LcPort<'c> = TypedPort<'static, ComponentPort<'c, ethernet_driver::ports::Lc>>;

/// The event loop. A function of its own, kept out of `main`, so that the
/// set-up code does not change how the compiler builds it: with the loop
/// in `main`, moving the set-up into virtio-kit cost the net bench's
/// 64-byte echo about 80 instructions.
#[inline(never)]
fn serve(
    mut nic: Nic<KitHal<NetHal>, KitTransport>,
    mut eth: EthPort<'_>,
    mut lc: LcPort<'_>,
    mut published: Writer,
    irq: Channel,
    refused: &Cell<u32>,
    time: &TimeReader,
) -> ! {
    let now = || time.now_ns();
    let mut outbox: Outbox<OUTBOX> = Outbox::new();
    let mut life = Lifecycle::new();
    let mut interrupted = false;
    let mut more = false;
    let mut fault_said = false;
    let mut bad_lend_said = false;
    // The ports to read: 0 eth, 1 lc.
    let mut watch = Watch::new([eth.channel(), lc.channel()]);
    // The time is read once per wake-up (and per round of a flood): the
    // rounds a retry adds follow at once.
    let mut t = now();
    loop {
        life.serve(&mut lc, watch.looks_at(1), t, || {
            nic.disable(&mut sink(&mut outbox))
        });

        let mut work = false;
        while watch.looks_at(0) && outbox.has_room(BUDGET) {
            let Some(r) = eth_driver::request(&mut eth, t) else {
                break;
            };
            match r {
                Request::Enable => match nic.enable() {
                    Ok(()) => outbox.enabled(nic.mac(), nic.link_up()),
                    Err(e) => {
                        debug_println!("virtio-net: setting the device up again: {e}");
                        outbox.push(Msg::EnableFailed { error: eth::DEVICE });
                    }
                },
                Request::Disable => {
                    nic.disable(&mut sink(&mut outbox));
                    outbox.push(Msg::DisableComplete);
                }
                Request::Lend { buf, len } => {
                    if let Err(e) = nic.lend(buf, len)
                        && !core::mem::replace(&mut bad_lend_said, true)
                    {
                        debug_println!(
                            "virtio-net: refused receive buffer {buf:#x}+{len:#x}: {e:?} (counted)"
                        );
                    }
                    work = true;
                }
                Request::Transmit { buf, len } => {
                    nic.transmit(buf, len, &mut sink(&mut outbox));
                    work = true;
                }
            }
        }

        let s = if interrupted {
            interrupted = false;
            let s = nic.service(BUDGET, &mut sink(&mut outbox));
            if let Err(e) = irq.irq_ack() {
                debug_println!("virtio-net: IRQ ack refused: {e:?}");
            }
            Some(s)
        } else if more || work {
            Some(nic.poll(BUDGET, &mut sink(&mut outbox)))
        } else {
            None
        };
        if let Some(s) = s {
            more = s.more;
            if let Some(f) = nic.fault()
                && !core::mem::replace(&mut fault_said, true)
            {
                debug_println!(
                    "virtio-net: the device wrote an impossible used-ring entry ({f}); it was reset and is not used until the client enables it again (counted)"
                );
            }
        }

        outbox.send(&mut eth, t);
        dingo_pd::flush(&mut eth);
        dingo_pd::flush(&mut lc);

        if more {
            published.publish_hot(&stats(nic.counters(), refused.get()), HOT);
            t = now();
            continue;
        }
        let mut retry = watch.arm(0, &mut eth) | watch.arm(1, &mut lc);
        if !outbox.is_empty() && matches!(eth.prepare_send_sleep(), Ok(Arm::Retry)) {
            retry = true;
            watch.again(0);
        }
        if retry {
            continue;
        }
        // Published once the work is done, not on every retry round.
        published.publish_hot(&stats(nic.counters(), refused.get()), HOT);
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
