//! The OHCI host controller PD.
//!
//! It asks the pci PD for its controller, checks the register BAR and the
//! interrupt line against what system.xml gave it, turns on memory
//! decoding and bus mastering, and runs ohci-core's driver over the BAR,
//! its descriptor memory and its users' DMA windows. The root hub talks to
//! it over UsbRootPorts (the ports) and UsbHostController (endpoints and
//! transfers); every message passes the Ohci component's observer.
//! Requests are taken only while every answer they can cause fits the
//! driver's event queue, and answers wait while the port's ring is full,
//! so neither side can overrun the other. A watchdog tick every
//! 50 ms checks that the frame counter moves. Debug builds run the
//! schedule checker after every batch of work and count its findings on
//! the stats page. Half a second after endpoints stop opening and closing
//! (devices plugged or unplugged), one line says what is in use.
#![no_std]
#![no_main]

use core::cell::RefCell;

use dingo_pd::dingo_rt::executor::{Either, select};
use dingo_pd::dingo_rt::ring::Arm;
use dingo_pd::dingo_rt::typed::{ComponentPort, Fault, Supervisor, TypedPort};
use dingo_pd::microkit::hwio::Mmio;
use dingo_pd::microkit::{Channel, debug_println};
use dingo_pd::{ConsoleReporter, TimedExecutor};
use dingo_protocols::ohci::Observer as OhciObserver;
use dingo_protocols::usb_host_controller::Msg;
use dingo_protocols::usb_root_ports::Msg as PortsMsg;
use ohci_core::regs::MMIO_SIZE;
use ohci_core::{COUNTERS, EndpointSpec, Event, Ohci, Window};
use pci_client::Decode;
use usb_core::stats;

pd_config::program!("ohci");

static REPORTER: ConsoleReporter = ConsoleReporter;

/// Watchdog ticks: twice per watchdog period.
const TICK_NS: u64 = ohci_core::WATCHDOG_NS / 2;
/// The schedule is "settled" this long after the last endpoint opened or
/// closed; then what is in use is printed once (tests compare it after
/// hot-plug cycles with what it was at boot).
const SETTLE_NS: u64 = 500_000_000;

type Ex<'a> = TimedExecutor<'a, 0>;
type HcPort<'c> = TypedPort<'static, ComponentPort<'c, dingo_protocols::ohci::ports::Hc>>;
type PortsPort<'c> = TypedPort<'static, ComponentPort<'c, dingo_protocols::ohci::ports::Ports>>;

/// A message of the driver's, for one port or the other.
enum Out {
    Hc(Msg),
    Ports(PortsMsg),
}

fn message(e: Event) -> Out {
    Out::Hc(match e {
        Event::PortStatus {
            port,
            connected,
            enabled,
            low_speed,
        } => {
            return Out::Ports(PortsMsg::PortStatus {
                port,
                connected,
                enabled,
                low_speed,
            });
        }
        Event::PortResetDone { port, ok } => {
            return Out::Ports(PortsMsg::PortResetDone { port, ok });
        }
        Event::EndpointOpened { ep } => Msg::EndpointOpened { ep },
        Event::EndpointFailed { ep, error } => Msg::EndpointFailed {
            ep,
            error: error as u32,
        },
        Event::Complete {
            xfer,
            status,
            actual,
        } => Msg::Complete {
            xfer,
            status,
            actual,
        },
        Event::EndpointAborted { ep } => Msg::EndpointAborted { ep },
        Event::EndpointClosed { ep } => Msg::EndpointClosed { ep },
        Event::ControllerReset { cause } => Msg::ControllerReset {
            error: cause as u32,
        },
        Event::Halted => Msg::Halted,
    })
}

fn ports_request(hcd: &mut Ohci<Mmio>, m: PortsMsg) {
    match m {
        PortsMsg::PortReset { port } => hcd.port_reset(port),
        PortsMsg::PortDisable { port } => hcd.port_disable(port),
        // The driver's own messages: refused by the observer already.
        PortsMsg::PortStatus { .. } | PortsMsg::PortResetDone { .. } => {}
    }
}

fn request(hcd: &mut Ohci<Mmio>, m: Msg) {
    match m {
        Msg::OpenEndpoint {
            ep,
            addr,
            endpoint,
            kind,
            dir_in,
            max_packet,
            interval,
            low_speed,
        } => hcd.open_endpoint(
            ep,
            EndpointSpec {
                addr,
                number: endpoint,
                kind,
                dir_in,
                max_packet,
                interval,
                low_speed,
            },
        ),
        Msg::ResetToggle { ep } => hcd.reset_toggle(ep),
        Msg::Submit {
            xfer,
            ep,
            setup,
            buf,
            len,
        } => hcd.submit(xfer, ep, setup, buf, len),
        Msg::AbortEndpoint { ep } => hcd.abort_endpoint(ep),
        Msg::CloseEndpoint { ep } => hcd.close_endpoint(ep),
        Msg::Halt => hcd.halt(),
        // The controller's own messages: the observer refused them already
        // (wrong direction), so they never get here.
        _ => {}
    }
}

/// The driver with its counters on the stats page, if there is one.
struct Counters {
    page: Option<stats::Writer>,
    violations: u64,
}

impl Counters {
    fn publish(&self, hcd: &Ohci<Mmio>) {
        if let Some(p) = &self.page {
            for (i, v) in hcd.counters().iter().enumerate() {
                p.set(i, *v);
            }
            p.set(COUNTERS.len(), self.violations);
        }
    }
}

async fn main(ex: &Ex<'_>) {
    let cfg = config::load();
    let mut dev = match pci_client::open(cfg.pci.controller) {
        Ok(d) => d,
        Err(e) => {
            debug_println!("ohci: {e}; no USB in this system");
            return;
        }
    };
    let info = dev.info();
    if (info.class, info.subclass, info.prog_if) != (0x0c, 0x03, 0x10) {
        debug_println!(
            "ohci: PCI {} is {:02x}/{:02x}/{:02x}, not an OHCI controller (0c/03/10); staying idle",
            dev.bdf(),
            info.class,
            info.subclass,
            info.prog_if
        );
        return;
    }
    let offset = match dev.check_mmio(0, &cfg.regions.regs) {
        Ok(o) => o,
        Err(e) => {
            debug_println!("ohci: {e}");
            return;
        }
    };
    if let Err(e) = dev.check_irq(&cfg.irqs.controller) {
        debug_println!("ohci: {e}");
        return;
    }
    if let Err(e) = dev.enable(Decode {
        io: false,
        memory: true,
        bus_master: true,
    }) {
        debug_println!("ohci: enabling PCI {}: {e}", dev.bdf());
        return;
    }
    // SAFETY: check_mmio confirmed that BAR0 (MMIO_SIZE bytes on this
    // controller) lies at `offset` inside the device region, which
    // system-builder checked is mapped uncached here for its size, for the
    // PD's life, and is no other role's.
    let bus = unsafe { Mmio::new("ohci", cfg.regions.regs.vaddr + offset, MMIO_SIZE) };
    let mut dma = match cfg.regions.descriptors.dma("ohci descriptors") {
        Ok(d) => d,
        Err(e) => {
            debug_println!("ohci: {e}");
            return;
        }
    };
    let mut windows: heapless::Vec<Window, { ohci_core::MAX_WINDOWS }> = heapless::Vec::new();
    for w in &cfg.regions.windows {
        // The region's own checks (page alignment, 32-bit reach).
        if let Err(e) = w.dma("ohci window") {
            debug_println!("ohci: {e}");
            return;
        }
        let _ = windows.push(Window {
            paddr: w.paddr,
            size: w.size as u32,
        });
    }
    let mut hcd = match Ohci::new(bus, &mut dma, &windows) {
        Ok(h) => h,
        Err(e) => {
            debug_println!("ohci: {e}");
            return;
        }
    };
    if let Err(e) = hcd.start(ex.now_ns()) {
        debug_println!("ohci: {e}");
        return;
    }
    debug_println!(
        "ohci: PCI {} {:04x}:{:04x}, {} root hub ports, IRQ line {}, {} DMA windows; serving {}",
        dev.bdf(),
        info.vendor,
        info.device,
        hcd.ports(),
        dev.interrupt().line,
        windows.len(),
        cfg.ports.hc.peer
    );
    let counters = Counters {
        // SAFETY: system-builder checked that the stats region is mapped
        // read-write here, a page at least, and this PD is its writer.
        page: cfg
            .regions
            .stats
            .map(|r| unsafe { stats::Writer::new(r.as_ptr(), COUNTERS.len() + 1) }),
        violations: 0,
    };
    let observer = RefCell::new(OhciObserver::new(ex.now_ns()));
    let mut port: HcPort<'_> = TypedPort::new(
        dingo_pd::port(cfg.name, &cfg.ports.hc),
        ComponentPort::new(&observer, dingo_protocols::ohci::ports::Hc),
        Supervisor::log(&REPORTER),
        cfg.name,
        "hc",
    );
    let mut ports: PortsPort<'_> = TypedPort::new(
        dingo_pd::port(cfg.name, &cfg.ports.ports),
        ComponentPort::new(&observer, dingo_protocols::ohci::ports::Ports),
        Supervisor::log(&REPORTER),
        cfg.name,
        "ports",
    );
    serve(
        ex,
        &mut hcd,
        &mut port,
        &mut ports,
        Channel::from(cfg.irqs.controller),
        counters,
    )
    .await;
}

async fn serve(
    ex: &Ex<'_>,
    hcd: &mut Ohci<Mmio>,
    port: &mut HcPort<'_>,
    ports: &mut PortsPort<'_>,
    irq: Channel,
    mut counters: Counters,
) {
    // A new IRQ handler stays masked until its first acknowledgement.
    let _ = irq.irq_ack();
    let mut next_tick = ex.now_ns() + TICK_NS;
    let (mut opened, mut closed) = (0u64, 0u64);
    let mut settle: Option<u64> = None;
    loop {
        let now = ex.now_ns();
        // The ring an answer waits for room on: UsbHostController's (true)
        // or UsbRootPorts' (false).
        let mut blocked = None;
        loop {
            let mut moved = false;
            while hcd.can_take_request() {
                match ports.try_recv(now) {
                    Ok(Some(m)) => {
                        ports_request(hcd, m);
                        moved = true;
                    }
                    _ => break,
                }
            }
            while hcd.can_take_request() {
                match port.try_recv(now) {
                    Ok(Some(m)) => {
                        request(hcd, m);
                        moved = true;
                    }
                    Ok(None) => break,
                    // Reported by the port; a poisoned ring stays so.
                    Err(_) => break,
                }
            }
            while let Some(e) = hcd.next_event() {
                let (sent, hc) = match message(e) {
                    Out::Hc(m) => (port.try_send(&m, now), true),
                    Out::Ports(m) => (ports.try_send(&m, now), false),
                };
                match sent {
                    Ok(()) => {
                        moved = true;
                        match e {
                            Event::EndpointOpened { .. } => opened += 1,
                            Event::EndpointClosed { .. } => closed += 1,
                            _ => continue,
                        }
                        settle = Some(now + SETTLE_NS);
                    }
                    Err(Fault::Full) => {
                        // The events keep their order: all wait for room.
                        hcd.unget_event(e);
                        blocked = Some(hc);
                        break;
                    }
                    // A violation of our own (reported): the message is dropped.
                    Err(_) => {}
                }
            }
            if !moved {
                break;
            }
        }
        dingo_pd::flush(port);
        dingo_pd::flush(ports);
        if let Some(r) = hcd.take_refusal() {
            debug_println!("ohci: refused: {r}");
        }
        if cfg!(debug_assertions)
            && let Err(v) = hcd.check_schedule()
        {
            counters.violations += 1;
            if counters.violations <= 4 {
                debug_println!("ohci: schedule checker: {v}");
            }
        }
        counters.publish(hcd);
        // Requests are armed only while the driver can take them (else a
        // waiting one would wake this PD over and over; room comes with
        // the root hub's reading, which the send arm below waits for).
        let mut retry = hcd.can_take_request()
            && (matches!(port.prepare_recv_sleep(), Ok(Arm::Retry))
                | matches!(ports.prepare_recv_sleep(), Ok(Arm::Retry)));
        match blocked {
            Some(true) => retry |= matches!(port.prepare_send_sleep(), Ok(Arm::Retry)),
            Some(false) => retry |= matches!(ports.prepare_send_sleep(), Ok(Arm::Retry)),
            None => {}
        }
        if retry {
            continue;
        }
        let mask = 1u64 << irq.index() | 1u64 << port.channel() | 1u64 << ports.channel();
        match select(ex.any_channel(mask), ex.sleep_until(next_tick)).await {
            Either::First(fired) => {
                if fired & 1 << irq.index() != 0 {
                    hcd.interrupt(ex.now_ns());
                    if let Err(e) = irq.irq_ack() {
                        debug_println!("ohci: IRQ ack refused: {e:?}");
                    }
                }
            }
            Either::Second(()) => {}
        }
        let now = ex.now_ns();
        if now >= next_tick {
            hcd.tick(now);
            next_tick = now + TICK_NS;
        }
        if settle.is_some_and(|t| now >= t) {
            settle = None;
            let u = hcd.usage();
            debug_println!(
                "ohci: settled after {opened} endpoints opened and {closed} closed: {} endpoints, {} EDs, {} TDs, {} placeholder TDs, {} transfers in use",
                u.endpoints,
                u.eds,
                u.tds,
                u.placeholders,
                u.transfers
            );
        }
    }
}

dingo_pd::async_protection_domain!(main, timer);
