//! The network stack PD: the client of a NIC driver's EthernetController
//! port, running smoltcp through net-core (ARP, IPv4, ICMP echo, UDP, TCP;
//! DHCPv4 or a static address from its config) with UDP and TCP echo on
//! port 7 and a plain-text status page on TCP port 80. It starts the
//! driver through Lifecycle, enables the NIC, keeps its receive buffers
//! lent, obeys txStopQueue/txStartQueue, takes every message off the port
//! at once (never blocking the driver), and sleeps on a Timer timeout when
//! the stack has something to do later. Its ports are observed; the
//! EthernetController port's violations are reported with PD, port and
//! state and shown on the status page.
#![no_std]
#![no_main]

use core::fmt::Write;

use dingo_pd::microkit::{self, debug_println};
use dingo_pd::{ConsoleReporter, Watch};
use dingo_protocols::ethernet_controller as eth;
use dingo_protocols::{lifecycle, timer};
use dingo_rt::port::DataArea;
use dingo_rt::ring::Arm;
use dingo_rt::typed::{Fault, Supervisor, TypedPort};
use net_core::device::{Enable, EthDevice, Memory, failure};
use net_core::stack::{Addressing, Net, Stats, Storage};
use nic_stats::Reader;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};
use timer_client::clock::TimeReader;

pd_config::program!("net");

static REPORTER: ConsoleReporter = ConsoleReporter;

/// A timeout closer than this to the one already requested is not worth
/// another request.
const TIMER_SLACK_NS: u64 = 1_000_000;
/// The stack sleeps at most this long between polls (DHCP, TCP timers).
const MAX_SLEEP_NS: u64 = 1_000_000_000;

/// The port's data area, whose ranges and copies (the driver shares the
/// bytes) are the DataArea's.
struct Frames(DataArea);

impl Memory for Frames {
    fn read(&self, offset: u32, dst: &mut [u8]) -> bool {
        self.0.read(u64::from(offset), dst).is_ok()
    }
    fn write(&self, offset: u32, src: &[u8]) -> bool {
        self.0.write(u64::from(offset), src).is_ok()
    }
}

fn ipv4(v: u32) -> Ipv4Address {
    Ipv4Address::from_bits(v)
}

#[allow(clippy::too_many_arguments)]
fn page(
    w: &mut dyn Write,
    stats: &Stats,
    address: Option<Ipv4Cidr>,
    device: &EthDevice<Frames>,
    port: &TypedPort<'_, dingo_rt::typed::Protocol<eth::Observer>>,
    driver: &Reader,
    peer: &str,
) -> core::fmt::Result {
    match address {
        Some(a) => writeln!(w, "address    {a}")?,
        None => writeln!(w, "address    none yet")?,
    }
    writeln!(
        w,
        "link       {}",
        if device.link_up() { "up" } else { "down" }
    )?;
    let c = device.counters();
    writeln!(w, "packets    in {} out {}", c.rx_frames, c.tx_frames)?;
    writeln!(
        w,
        "services   udp echoed {} (not echoed {}), tcp connections {} echoed {} bytes, pages {}, dhcp leases {}",
        stats.udp_echoed,
        stats.udp_not_echoed,
        stats.tcp_connections,
        stats.tcp_echoed_bytes,
        stats.status_pages,
        stats.dhcp_leases
    )?;
    write!(w, "net drops ")?;
    for (name, n) in c.drops() {
        write!(w, " {name}={n}")?;
    }
    writeln!(
        w,
        " raw_echoed={} tx_aborted={}",
        c.raw_echoed, c.tx_aborted
    )?;
    write!(w, "driver     ({peer})")?;
    let mut r = Ok(());
    if !driver.read(|name, value| {
        if r.is_ok() {
            r = write!(w, " {name}={value}");
        }
    }) {
        write!(w, " counters unreadable")?;
    }
    r?;
    writeln!(w)?;
    let pc = port.counters();
    writeln!(
        w,
        "eth port   EthernetController state {}, sent {} received {} malformed {} violations {}",
        port.observer().inner().state().name(),
        pc.sent,
        pc.received,
        pc.malformed,
        pc.violations
    )
}

/// COM1, for the console role: the console on release kernels.
#[cfg(target_arch = "x86_64")]
static CONSOLE: spin::Once<pd_config::IoPorts> = spin::Once::new();

#[cfg(target_arch = "x86_64")]
fn release_console(console: Option<pd_config::IoPorts>) {
    if let Some(console) = console {
        CONSOLE.call_once(|| console);
        microkit::sel4::set_console(|c| {
            if let Some(p) = CONSOLE.get() {
                let _ = microkit::IoPort::of(*p).out8(p.base, c);
            }
        });
    }
}

/// Boards without I/O ports have no such role to bind.
#[cfg(not(target_arch = "x86_64"))]
fn release_console(_: Option<pd_config::IoPorts>) {}

fn main() -> ! {
    let cfg = config::load();
    release_console(cfg.ioports.console);
    let counter = cfg.regions.counter.map(|r| r.vaddr);
    // SAFETY: system-builder checked that the time page is mapped readable
    // here, a page at least, and the counter region (the boards that have
    // one) read-only; the timer PD writes the page.
    let time = match unsafe { TimeReader::for_board(cfg.regions.time_page.as_ptr(), counter) } {
        Ok(t) => t,
        Err(e) => panic!("net: {e}"),
    };
    let now = || time.now_ns();
    let supervisor = Supervisor::log(&REPORTER);
    let mut ethp = dingo_pd::typed_port(
        cfg.name,
        &cfg.ports.eth,
        eth::Observer::new(now()),
        supervisor,
    );
    let mut lc = dingo_pd::typed_port(
        cfg.name,
        &cfg.ports.lc,
        lifecycle::Observer::new(now()),
        supervisor,
    );
    let mut tm = dingo_pd::typed_port(
        cfg.name,
        &cfg.ports.timer,
        timer::Observer::new(now()),
        supervisor,
    );
    let frames = &cfg.regions.frames;
    // SAFETY: system-builder checked that the frames region is mapped
    // read-write here for its size; the driver maps the same bytes, and
    // this PD touches them only through the DataArea's volatile copies.
    let area = unsafe { DataArea::new(frames.as_ptr(), frames.size) };
    let mut device = EthDevice::new(Frames(area), frames.size);
    // SAFETY: system-builder checked that nic_stats is mapped readable
    // here, a page at least; the driver writes it.
    let driver = unsafe { Reader::new(cfg.regions.nic_stats.as_ptr()) };
    let addressing = if cfg.params.dhcp {
        Addressing::Dhcp
    } else {
        Addressing::Static {
            cidr: Ipv4Cidr::new(ipv4(cfg.params.address), cfg.params.prefix),
            gateway: (cfg.params.gateway != 0).then(|| ipv4(cfg.params.gateway)),
        }
    };

    // Start the driver, then enable the NIC.
    let t = now();
    if lc.try_send(&lifecycle::Msg::Start, t).is_err() {
        panic!("net: cannot send start to the driver");
    }
    dingo_pd::flush(&mut lc);
    let mut storage = Storage::new();
    let mut storage = Some(&mut storage);
    let mut net: Option<Net<'_>> = None;
    let mut started = false;
    let mut timer_at: Option<u64> = None;
    // When the stack next wants a poll of its own (its timers): `Some(0)`
    // polls at once.
    let mut poll_due: Option<u64> = Some(0);
    let mut next_id = 1u32;
    let mut said_link: Option<bool> = None;
    // The ports to read: 0 eth, 1 lc, 2 timer.
    let mut watch = Watch::new([ethp.channel(), lc.channel(), tm.channel()]);
    loop {
        let t = now();
        while watch.looks_at(1)
            && let Ok(Some(msg)) = lc.try_recv(t)
        {
            match msg {
                lifecycle::Msg::StartComplete => {
                    started = true;
                    device.enable();
                }
                lifecycle::Msg::StartFailed { error } => {
                    debug_println!("net: the driver failed to start (error {error})")
                }
                _ => {}
            }
        }
        while watch.looks_at(0) {
            match ethp.try_recv(t) {
                Ok(Some(msg)) => device.handle(msg),
                Ok(None) => break,
                Err(Fault::Violation(_) | Fault::Malformed(_)) => {}
                Err(_) => break,
            }
        }
        while watch.looks_at(2)
            && let Ok(Some(msg)) = tm.try_recv(t)
        {
            if let timer::Msg::Fired { .. } | timer::Msg::Rejected { .. } = msg {
                timer_at = None;
            }
        }
        if let Enable::Failed(error) = device.state()
            && started
        {
            debug_println!(
                "net: the driver could not enable the NIC: {} (error {error})",
                failure(error)
            );
            started = false;
        }
        if device.state() == Enable::Enabled
            && let Some(mac) = device.mac()
            && let Some(storage) = storage.take()
        {
            debug_println!(
                "net: NIC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} enabled by {}; {}",
                mac[0],
                mac[1],
                mac[2],
                mac[3],
                mac[4],
                mac[5],
                cfg.ports.eth.peer,
                if cfg.params.dhcp {
                    "asking DHCP for an address"
                } else {
                    "static address"
                }
            );
            // The storage lives in this frame, which never returns.
            net = Some(Net::new(
                storage,
                &mut device,
                mac,
                addressing,
                time.ticks(),
                t,
            ));
        }
        if device.link().is_some() && said_link != device.link() {
            said_link = device.link();
            debug_println!("net: link {}", if device.link_up() { "up" } else { "down" });
        }
        // A poll that would find nothing to do is left out: only new
        // frames, a way out freed while the stack was blocked, or the
        // stack's own deadline call for one.
        if let Some(stack) = net.as_mut()
            && (device.wants_poll() || poll_due.is_some_and(|due| t >= due))
        {
            let peer = cfg.ports.eth.peer;
            let changes = stack.poll(t, &mut device, |w, stats, address, dev| {
                page(w, stats, address, dev, &ethp, &driver, peer)
            });
            if let Some(a) = changes.configured {
                let how = if cfg.params.dhcp { "by DHCP" } else { "static" };
                let (e, s) = (cfg.params.host_echo_port, cfg.params.host_status_port);
                if e != 0 && s != 0 {
                    debug_println!(
                        "net: address {a} ({how}); from the host: UDP and TCP echo at localhost:{e}, status page at http://localhost:{s}/ (guest ports 7 and 80)"
                    );
                } else {
                    debug_println!(
                        "net: address {a} ({how}); UDP and TCP echo on port 7, status page on TCP port 80"
                    );
                }
            }
            if changes.deconfigured {
                debug_println!("net: DHCP lease lost");
            }
            poll_due = stack.poll_delay_ns(t).map(|d| t + d);
        }
        ethp.send_queued(t, &mut device, EthDevice::next_out, EthDevice::unsend);
        if net.is_some()
            && let Some(due) = poll_due
        {
            let at = due.min(t + MAX_SLEEP_NS);
            if timer_at.is_none_or(|armed| at + TIMER_SLACK_NS < armed) {
                let id = next_id;
                next_id = next_id.wrapping_add(1).max(1);
                if tm
                    .try_send(
                        &timer::Msg::Request {
                            id,
                            deadline_ns: at,
                        },
                        t,
                    )
                    .is_ok()
                {
                    timer_at = Some(at);
                }
            }
        }
        dingo_pd::flush(&mut ethp);
        dingo_pd::flush(&mut lc);
        dingo_pd::flush(&mut tm);
        let mut retry = watch.arm(0, &mut ethp) | watch.arm(1, &mut lc) | watch.arm(2, &mut tm);
        if device.has_out() && matches!(ethp.prepare_send_sleep(), Ok(Arm::Retry)) {
            retry = true;
            watch.again(0);
        }
        if !retry {
            watch.woken(microkit::wait());
        }
    }
}

microkit::entry!(main);
