//! The root hub PD: roothub-core between the host controller's ports and
//! the class drivers' ports.
//!
//! Each message passes the RootHub component's observer on its way in or
//! out (the controller's two ports, each class driver's UsbBus port and the
//! pipes spawned on it). Input is read only while the hub's outboxes have
//! room for its answers; answers wait while a ring is full. The executor
//! sleeps until the hub's next deadline (debounce, reset, recovery,
//! timeouts) or a port's observer deadline, whichever is first. What the
//! hub notes (devices enumerated, bound, unplugged, failures, refusals)
//! is printed as one line each; half a second after the last device was
//! bound or unplugged, so is what the hub has in use (tests compare it
//! after hot-plug cycles with what it was at boot).
#![no_std]
#![no_main]

use core::cell::RefCell;

use dingo_pd::dingo_rt::port::DataArea;
use dingo_pd::dingo_rt::ring::Arm;
use dingo_pd::dingo_rt::typed::{ComponentPort, Fault, Supervisor, TypedPort};
use dingo_pd::microkit::debug_println;
use dingo_pd::{ConsoleReporter, TimedExecutor};
use dingo_protocols::root_hub::Observer as HubObserver;
use pd_config::PortConfig;
use roothub_core::{
    BusConfig, COUNTERS, Hub, HubConfig, HubMemory, MAX_BUSES, MAX_PORTS, Note, Rule,
};
use usb_bus::{BusObserver, BusParts, BusPort, RestartFn};
use usb_core::{speed, stats};

pd_config::program!("roothub");

/// How long after the last bind or unplug the hub counts as settled.
const SETTLE_NS: u64 = 500_000_000;

static REPORTER: ConsoleReporter = ConsoleReporter;

type Ex<'a> = TimedExecutor<'a, 0>;
type HcPort<'c> = TypedPort<'static, ComponentPort<'c, dingo_protocols::root_hub::ports::Hc>>;
type PortsPort<'c> = TypedPort<'static, ComponentPort<'c, dingo_protocols::root_hub::ports::Ports>>;

/// The hub's buffer, through which its control transfers read descriptors.
struct Buffer(DataArea);

impl HubMemory for Buffer {
    fn size(&self) -> usize {
        self.0.len()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        // In range: the hub reads at most its buffer's size from 0.
        let _ = self.0.read(offset as u64, dst);
    }
}

/// How bus port `i` of the RootHub component starts over when its class
/// driver is restarted.
fn restart_fn(i: usize) -> RestartFn<HubObserver> {
    match i {
        0 => HubObserver::restart_bus0,
        1 => HubObserver::restart_bus1,
        2 => HubObserver::restart_bus2,
        _ => HubObserver::restart_bus3,
    }
}

/// Where bus port `i` sits in the RootHub component.
fn parts(i: usize) -> BusParts<HubObserver> {
    let (bus, pipes): (
        usb_bus::ObserveFn<HubObserver, usb_bus::BusMsg>,
        usb_bus::ObserveSubportFn<HubObserver, usb_bus::PipeMsg>,
    ) = match i {
        0 => (HubObserver::observe_bus0, HubObserver::observe_pipes0),
        1 => (HubObserver::observe_bus1, HubObserver::observe_pipes1),
        2 => (HubObserver::observe_bus2, HubObserver::observe_pipes2),
        _ => (HubObserver::observe_bus3, HubObserver::observe_pipes3),
    };
    BusParts {
        bus,
        pipes,
        timeouts: HubObserver::check_timeouts,
        deadline: HubObserver::deadline_ns,
    }
}

fn print(n: Note) {
    match n {
        Note::Enumerated {
            port,
            speed: s,
            addr,
            vendor,
            product,
            class,
        } => debug_println!(
            "roothub: port {port}: {} speed device at address {addr}: {vendor:04x}:{product:04x}, class {:02x}/{:02x}/{:02x}",
            speed::name(s),
            class.0,
            class.1,
            class.2
        ),
        Note::Bound {
            addr,
            bus,
            name,
            class,
        } => debug_println!(
            "roothub: address {addr} bound to {name} (bus{bus}, class {:02x}/{:02x}/{:02x})",
            class.0,
            class.1,
            class.2
        ),
        Note::NoDriver {
            addr,
            vendor,
            product,
        } => debug_println!(
            "roothub: address {addr} ({vendor:04x}:{product:04x}): no class driver takes it"
        ),
        Note::Detached { port, addr } => {
            debug_println!("roothub: port {port}: device at address {addr} unplugged")
        }
        Note::Failed { port, attempt, why } => {
            debug_println!("roothub: port {port}: enumeration attempt {attempt} failed: {why}")
        }
        Note::Refused { bus, why } => debug_println!("roothub: bus{bus}: refused: {why}"),
        Note::ControllerReset { error } => debug_println!(
            "roothub: the controller was re-initialised (error {error}); every device is enumerated again"
        ),
        Note::DriverRestarted {
            bus,
            name,
            pipes,
            transfers,
            addr,
        } => match addr {
            Some(addr) => debug_println!(
                "roothub: bus{bus}: {name} restarted; its {pipes} pipes closed, {transfers} transfers dropped; address {addr} offered to the new instance"
            ),
            None => debug_println!(
                "roothub: bus{bus}: {name} restarted; its {pipes} pipes closed, {transfers} transfers dropped; no device bound"
            ),
        },
    }
}

async fn main(ex: &Ex<'_>) {
    let cfg = config::load();
    let p = &cfg.params;
    let binds = [p.bind0, p.bind1, p.bind2, p.bind3];
    let wins = [p.window0, p.window1, p.window2, p.window3];
    let bus_cfgs: [Option<PortConfig>; MAX_BUSES] = [
        cfg.ports.bus0,
        cfg.ports.bus1,
        cfg.ports.bus2,
        cfg.ports.bus3,
    ];
    let mut buses = [None; MAX_BUSES];
    for i in 0..MAX_BUSES {
        let Some(pc) = bus_cfgs[i] else { continue };
        let Some(rule) = Rule::decode(binds[i]) else {
            debug_println!(
                "roothub: bus{i} ({}): bind{i} = {:#x} is no rule (0x1_VVVV_PPPP or 0x2_00CC_SSPP); the port stays unused",
                pc.peer,
                binds[i]
            );
            continue;
        };
        debug_println!("roothub: bus{i}: {} takes {rule}", pc.peer);
        buses[i] = Some(BusConfig {
            name: pc.peer,
            rule,
            window: wins[i],
        });
    }
    // SAFETY: system-builder checked that the buffer is mapped read-write
    // here for its size; the controller writes it (it is one of its DMA
    // windows) and nothing else in this PD uses it.
    let mem =
        Buffer(unsafe { DataArea::new(cfg.regions.buffer.as_ptr(), cfg.regions.buffer.size) });
    let mut hub = Hub::new(
        mem,
        HubConfig {
            buses,
            window: p.window,
        },
        MAX_PORTS as u8,
    );
    let observer = RefCell::new(HubObserver::new(ex.now_ns()));
    let mut hc: HcPort<'_> = TypedPort::new(
        dingo_pd::port(cfg.name, &cfg.ports.hc),
        ComponentPort::new(&observer, dingo_protocols::root_hub::ports::Hc),
        Supervisor::log(&REPORTER),
        cfg.name,
        "hc",
    );
    let mut rp: PortsPort<'_> = TypedPort::new(
        dingo_pd::port(cfg.name, &cfg.ports.ports),
        ComponentPort::new(&observer, dingo_protocols::root_hub::ports::Ports),
        Supervisor::log(&REPORTER),
        cfg.name,
        "ports",
    );
    let names = ["bus0", "bus1", "bus2", "bus3"];
    let mut ports: [Option<BusPort<'static, '_, HubObserver>>; MAX_BUSES] =
        [None, None, None, None];
    for i in 0..MAX_BUSES {
        if let Some(pc) = bus_cfgs[i] {
            ports[i] = Some(TypedPort::new(
                dingo_pd::port(cfg.name, &pc),
                BusObserver::new(&observer, parts(i)).restartable(restart_fn(i)),
                Supervisor::log(&REPORTER),
                cfg.name,
                names[i],
            ));
        }
    }
    // SAFETY: system-builder checked that the stats region is mapped
    // read-write here, a page at least, and this PD is its writer.
    let page = cfg
        .regions
        .stats
        .map(|r| unsafe { stats::Writer::new(r.as_ptr(), COUNTERS.len()) });
    let mut mask = 1u64 << hc.channel() | 1u64 << rp.channel();
    for p in ports.iter().flatten() {
        mask |= 1 << p.channel();
    }
    let mut settle: Option<u64> = None;
    loop {
        let now = ex.now_ns();
        hub.tick(now);
        // The rings an answer waits for room on: each is armed for space.
        let mut blocked_rp = false;
        let mut blocked_hc = false;
        let mut blocked_bus = [false; MAX_BUSES];
        loop {
            let mut moved = false;
            while hub.has_room() {
                match rp.try_recv(now) {
                    Ok(Some(m)) => {
                        hub.ports_message(m, now);
                        moved = true;
                    }
                    _ => break,
                }
            }
            while hub.has_room() {
                match hc.try_recv(now) {
                    Ok(Some(m)) => {
                        hub.hc_message(m, now);
                        moved = true;
                    }
                    _ => break,
                }
            }
            for (i, p) in ports.iter_mut().enumerate() {
                let Some(p) = p else { continue };
                while hub.has_room() {
                    match p.try_recv(now) {
                        Ok(Some(w)) => {
                            hub.bus_message(i, w, now);
                            moved = true;
                        }
                        // The class driver's new instance: the port's
                        // session (and its observer) started over.
                        Err(Fault::PeerRestarted { .. }) => {
                            hub.bus_restarted(i, now);
                            moved = true;
                        }
                        _ => break,
                    }
                }
            }
            let sent = rp.send_queued(now, &mut hub, Hub::take_ports, Hub::unget_ports);
            moved |= sent.sent > 0;
            blocked_rp |= sent.full;
            let sent = hc.send_queued(now, &mut hub, Hub::take_hc, Hub::unget_hc);
            moved |= sent.sent > 0;
            blocked_hc |= sent.full;
            for (i, p) in ports.iter_mut().enumerate() {
                let Some(p) = p else {
                    while hub.take_bus(i).is_some() {}
                    continue;
                };
                while let Some(w) = hub.take_bus(i) {
                    match p.try_send(&w, now) {
                        Ok(()) => moved = true,
                        Err(Fault::Full) => {
                            hub.unget_bus(i, w);
                            blocked_bus[i] = true;
                            break;
                        }
                        // `w` was for the old instance.
                        Err(Fault::PeerRestarted { .. }) => {
                            hub.bus_restarted(i, now);
                            moved = true;
                        }
                        Err(_) => {}
                    }
                }
            }
            if !moved {
                break;
            }
        }
        while let Some(n) = hub.take_note() {
            if matches!(n, Note::Bound { .. } | Note::Detached { .. }) {
                settle = Some(now + SETTLE_NS);
            }
            print(n);
        }
        if settle.is_some_and(|t| now >= t) {
            settle = None;
            let u = hub.usage();
            let s = hub.stats();
            debug_println!(
                "roothub: settled after {} drivers attached and {} detached: {} addresses, {} endpoint handles, {} transfers, {} pipes in use",
                s.attached,
                s.detached,
                u.addresses,
                u.handles,
                u.transfers,
                u.pipes
            );
        }
        if let Some(page) = &page {
            for (i, v) in hub.counters().iter().enumerate() {
                page.set(i, *v);
            }
        }
        let _ = hc.check_timeouts(now);
        let _ = rp.check_timeouts(now);
        for p in ports.iter_mut().flatten() {
            let _ = p.check_timeouts(now);
        }
        // Input is armed only while the hub can take it: otherwise a
        // waiting message would wake this PD at once, over and over, and
        // starve the lower-priority class drivers whose reading makes room.
        let room = hub.has_room();
        let mut retry = false;
        dingo_pd::flush(&mut hc);
        if room {
            retry |= matches!(hc.prepare_recv_sleep(), Ok(Arm::Retry));
        }
        if blocked_hc {
            retry |= matches!(hc.prepare_send_sleep(), Ok(Arm::Retry));
        }
        dingo_pd::flush(&mut rp);
        if room {
            retry |= matches!(rp.prepare_recv_sleep(), Ok(Arm::Retry));
        }
        if blocked_rp {
            retry |= matches!(rp.prepare_send_sleep(), Ok(Arm::Retry));
        }
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            dingo_pd::flush(p);
            if room {
                retry |= matches!(p.prepare_recv_sleep(), Ok(Arm::Retry));
            }
            if blocked_bus[i] {
                retry |= matches!(p.prepare_send_sleep(), Ok(Arm::Retry));
            }
        }
        if retry {
            continue;
        }
        let deadline = [
            hub.next_deadline(),
            hc.deadline_ns(),
            rp.deadline_ns(),
            ports.iter().flatten().filter_map(|p| p.deadline_ns()).min(),
            settle,
        ]
        .into_iter()
        .flatten()
        .min();
        ex.any_channel_until(mask, deadline).await;
    }
}

dingo_pd::async_protection_domain!(main, timer);
