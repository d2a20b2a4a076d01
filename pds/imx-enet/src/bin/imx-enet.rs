//! The i.MX6 ENET driver PD: drives the SoC's Ethernet controller at the
//! registers system.xml maps (no bus to probe: the SoC has it at a fixed
//! address, and the driver checks it is an ENET after a reset) with
//! imx-enet-core, and provides EthernetController to the network PD with
//! the same ports and messages as the pc's rtl8139 driver, so the net PD
//! runs unchanged: frames stay in the port's data area, which the
//! controller reads and writes directly (received frames land in the
//! client's lent buffers, no copy), messages carry offsets. It answers
//! Lifecycle, and uses a Timer port to poll the PHY (the link) and for
//! the transmit watchdog. Every port is observed by the EthernetDriver
//! component observer. It publishes its counters (nic-stats) for the
//! network PD's status page.
//!
//! Its DMA memory and the data area must be mapped uncached (see
//! imx-enet-core's doc: the controller is not cache-coherent).
//!
//! # Bounded work
//!
//! One interrupt handles at most [`BUDGET`] receive descriptors, and the
//! controller fills only descriptors armed with a lent buffer: a flood
//! waits (in QEMU) or is dropped by the controller (on the board) until
//! the network PD, at a lower priority, returns buffers.
#![no_std]
#![no_main]

use core::cell::RefCell;

use dingo_pd::ConsoleReporter;
use dingo_pd::microkit::{self, Channel, debug_println};
use dingo_protocols::ethernet_controller::Msg;
use dingo_protocols::{ethernet_driver, timer};
use dingo_rt::ring::Arm;
use dingo_rt::typed::{ComponentPort, Supervisor};
use eth_driver::{Event, Lifecycle, Outbox, Request};
use imx_enet_core::nic::{Counters, Nic};
use nic_stats::Writer;
use pd_config::IrqSource;
use timer_client::clock::TimeReader;

pd_config::program!("imx-enet");

static REPORTER: ConsoleReporter = ConsoleReporter;

/// Receive descriptors per interrupt (or per round when work is left).
const BUDGET: usize = 32;
/// Messages waiting for room on the EthernetController port.
const OUTBOX: usize = 768;
/// How often the PHY is asked for the link (and the watchdog looks):
/// QMP's link flaps in the tests last half a second.
const TICK_NS: u64 = 100_000_000;

type Component = ethernet_driver::Observer;

const STATS: [&str; 22] = [
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
    "rx_bad_length",
    "rx_ring_resets",
    "rx_missed",
    "rx_babbling",
    "rx_bad_lend",
    "tx_bad_request",
    "tx_errors",
    "tx_queue_full",
    "tx_failed",
    "chip_resets",
    "bus_errors",
    "mdio_errors",
];

fn stats(c: &Counters) -> [u64; 22] {
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
        c.rx_bad_length,
        c.rx_ring_resets,
        c.rx_missed,
        c.rx_babbling,
        c.rx_bad_lend,
        c.tx_bad_request,
        c.tx_errors,
        c.tx_queue_full,
        c.tx_failed,
        c.chip_resets,
        c.bus_errors,
        c.mdio_errors,
    ]
}

/// Where the core's events go: the outbox towards the client.
fn sink<const N: usize>(outbox: &mut Outbox<N>) -> impl FnMut(Event) + '_ {
    |e| outbox.push(e.into())
}

fn idle(why: core::fmt::Arguments<'_>) -> ! {
    dingo_pd::idle("imx-enet", why)
}

fn main() -> ! {
    let cfg = config::load();
    // SAFETY: system-builder checked that the time page is mapped readable
    // here, a page at least (the timer PD writes it), and the GPT's page
    // read-only.
    let time = match unsafe {
        TimeReader::for_board(
            cfg.regions.time_page.as_ptr(),
            Some(cfg.regions.counter.vaddr),
        )
    } {
        Ok(t) => t,
        Err(e) => idle(format_args!("{e}")),
    };
    let now = || time.now_ns();

    let bus = cfg.regions.regs.mmio("imx-enet");
    let mut dma = match cfg.regions.dma.dma("imx-enet dma") {
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
    let mac = (cfg.params.mac != 0).then(|| {
        let b = cfg.params.mac.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    });
    let mut nic = match Nic::new(bus, &mut dma, frames, mac) {
        Ok(n) => n,
        Err(e) => idle(format_args!(
            "the controller at {:#x}: {e}",
            cfg.regions.regs.paddr
        )),
    };
    let m = nic.mac();
    let phy = nic.phy();
    let irq_number = match cfg.irqs.enet.source {
        IrqSource::Gic { irq } => irq,
        _ => 0,
    };
    debug_println!(
        "imx-enet: ENET at {:#x}, IRQ {}; PHY {} (id {:#010x}); MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, link {}",
        cfg.regions.regs.paddr,
        irq_number,
        phy.addr,
        phy.id,
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
    let irq = Channel::from(cfg.irqs.enet);

    let mut outbox: Outbox<OUTBOX> = Outbox::new();
    let mut life = Lifecycle::new();
    let mut tick: Option<u32> = None;
    let mut next_id = 1u32;
    let mut interrupted = false;
    let mut more = false;
    let mut bad_lend_said = false;
    loop {
        let t = now();

        life.serve(&mut lc, true, t, || nic.disable(&mut sink(&mut outbox)));

        let mut lent_more = false;
        while outbox.has_room(BUDGET) {
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
                            "imx-enet: refused receive buffer {buf:#x}+{len:#x}: {e:?} (counted; handed back on disable)"
                        );
                    }
                    lent_more = true;
                }
                Request::Transmit { buf, len } => nic.transmit(buf, len, t, &mut sink(&mut outbox)),
            }
        }

        while let Ok(Some(msg)) = tm.try_recv(t) {
            if let timer::Msg::Fired { id } = msg
                && tick == Some(id)
            {
                tick = None;
                if let Some(up) = nic.poll_link(&mut sink(&mut outbox)) {
                    if up {
                        debug_println!("imx-enet: link up ({})", nic.mode());
                    } else {
                        debug_println!("imx-enet: link down");
                    }
                }
                if nic.check_watchdog(t, &mut sink(&mut outbox)) {
                    debug_println!("imx-enet: transmit watchdog: controller restarted");
                }
            }
        }

        if interrupted {
            interrupted = false;
            more = nic.service(BUDGET, t, &mut sink(&mut outbox)).more;
            if let Err(e) = irq.irq_ack() {
                debug_println!("imx-enet: IRQ ack refused: {e:?}");
            }
        } else if more || lent_more {
            more = nic.poll_rx(BUDGET, &mut sink(&mut outbox)).more;
        }
        published.publish(&stats(nic.counters()));

        outbox.send(&mut eth, t);
        if tick.is_none() && (nic.is_enabled() || nic.tx_outstanding() > 0) {
            let id = next_id;
            next_id = next_id.wrapping_add(1).max(1);
            let request = timer::Msg::Request {
                id,
                deadline_ns: t + TICK_NS,
            };
            if tm.try_send(&request, t).is_ok() {
                tick = Some(id);
            }
        }
        dingo_pd::flush(&mut eth);
        dingo_pd::flush(&mut lc);
        dingo_pd::flush(&mut tm);

        if more {
            continue;
        }
        let mut retry = false;
        for arm in [
            eth.prepare_recv_sleep(),
            lc.prepare_recv_sleep(),
            tm.prepare_recv_sleep(),
        ] {
            retry |= matches!(arm, Ok(Arm::Retry));
        }
        if !outbox.is_empty() {
            retry |= matches!(eth.prepare_send_sleep(), Ok(Arm::Retry));
        }
        if retry {
            continue;
        }
        interrupted = microkit::wait().contains(irq);
    }
}

microkit::entry!(main);
