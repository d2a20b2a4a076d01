//! The USB Ethernet PD: usb-net-core's driver between its UsbBus port (the
//! root hub) and the network stack, to which it is a NIC driver like any
//! other: it provides EthernetController (frames by offset in the port's
//! data area, copied to and from its DMA window) and Lifecycle, and
//! publishes its counters (nic-stats) for the stack's status page. The
//! UsbBus and EthernetController ports pass the UsbEthernet component's
//! observer, Lifecycle its own.
#![no_std]
#![no_main]

use core::cell::RefCell;

use dingo_pd::dingo_rt::port::DataArea;
use dingo_pd::dingo_rt::ring::Arm;
use dingo_pd::dingo_rt::typed::{ComponentPort, Supervisor};
use dingo_pd::microkit::debug_println;
use dingo_pd::{ConsoleReporter, TimedExecutor};
use dingo_protocols::lifecycle::Observer as LcObserver;
use dingo_protocols::usb_ethernet::Observer as Component;
use nic_stats::Writer;
use usb_bus::session::Session;
use usb_bus::{BusObserver, BusPort};
use usb_net_core::{Driver, Memory, Note, Stats};

pd_config::program!("usb-net");

static REPORTER: ConsoleReporter = ConsoleReporter;

const STATS: [&str; 22] = [
    "attached",
    "detached",
    "pipes",
    "pending",
    "rx_frames",
    "rx_bytes",
    "rx_zero_length",
    "rx_bad_length",
    "rx_too_long_for_buffer",
    "rx_dropped_disabled",
    "rx_bad_lend",
    "tx_frames",
    "tx_bytes",
    "tx_waited",
    "tx_bad_request",
    "tx_aborted",
    "transfer_errors",
    "stalls",
    // CDC notifications (usb_net_core::notify).
    "link_reports",
    "speed_reports",
    "other_notifications",
    "bad_notifications",
];

fn stats(d: &Driver) -> [u64; 22] {
    let Stats {
        rx_frames,
        rx_bytes,
        rx_zero_length,
        rx_bad_length,
        rx_too_long_for_buffer,
        rx_dropped_disabled,
        rx_bad_lend,
        tx_frames,
        tx_bytes,
        tx_waited,
        tx_bad_request,
        tx_aborted,
        transfer_errors,
        stalls,
        failed: _,
        ready: _,
        link_reports,
        speed_reports,
        other_notifications,
        bad_notifications,
    } = d.stats;
    [
        d.session.attaches,
        d.session.detaches,
        d.session.pipes() as u64,
        d.session.pending() as u64,
        rx_frames,
        rx_bytes,
        rx_zero_length,
        rx_bad_length,
        rx_too_long_for_buffer,
        rx_dropped_disabled,
        rx_bad_lend,
        tx_frames,
        tx_bytes,
        tx_waited,
        tx_bad_request,
        tx_aborted,
        transfer_errors,
        stalls,
        link_reports,
        speed_reports,
        other_notifications,
        bad_notifications,
    ]
}

type Ex<'a> = TimedExecutor<'a, 0>;

struct Area(DataArea);

impl Memory for Area {
    fn size(&self) -> u32 {
        self.0.len() as u32
    }
    // The core checks every offset against `size` first; an access
    // outside would be refused by DataArea and leave `dst` as it was.
    fn read(&self, offset: u32, dst: &mut [u8]) {
        let _ = self.0.read(u64::from(offset), dst);
    }
    fn write(&self, offset: u32, src: &[u8]) {
        let _ = self.0.write(u64::from(offset), src);
    }
}

fn print(n: Note) {
    match n {
        Note::Ready {
            count,
            addr,
            config,
            mac: m,
            ep_in,
            ep_out,
        } => debug_println!(
            "usb-net: CDC-ECM device ({count}) at address {addr}: configuration {config}, bulk IN {ep_in:#04x} OUT {ep_out:#04x}; MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, link up",
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5]
        ),
        Note::Failed(why) => debug_println!("usb-net: device given up: {why}"),
        Note::Gone { addr } => {
            debug_println!("usb-net: device at address {addr} unplugged; link down")
        }
        Note::Link { up } => debug_println!(
            "usb-net: the device reports its network {}",
            if up { "connected" } else { "disconnected" }
        ),
        Note::Speed { down, up } => {
            debug_println!("usb-net: the device reports {down} bit/s down, {up} bit/s up")
        }
        Note::BadNotification(m) => {
            debug_println!("usb-net: malformed notification dropped: {m:?}")
        }
    }
}

async fn main(ex: &Ex<'_>) {
    let cfg = config::load();
    // SAFETY: system-builder checked that both regions are mapped
    // read-write here for their sizes; the controller moves frames in and
    // out of the window, the network PD writes and reads the frames area,
    // and this PD touches them only through these values.
    let win =
        Area(unsafe { DataArea::new(cfg.regions.buffers.as_ptr(), cfg.regions.buffers.size) });
    let frames =
        Area(unsafe { DataArea::new(cfg.regions.frames.as_ptr(), cfg.regions.frames.size) });
    let component = RefCell::new(Component::new(ex.now_ns()));
    let mut usb: BusPort<'static, '_, Component> = dingo_pd::observed_port(
        cfg.name,
        &cfg.ports.usb,
        BusObserver::new(&component, usb_bus::class_driver_parts!(Component)),
        Supervisor::log(&REPORTER),
    );
    let mut eth = dingo_pd::observed_port(
        cfg.name,
        &cfg.ports.eth,
        ComponentPort::new(&component, dingo_protocols::usb_ethernet::ports::Eth),
        Supervisor::log(&REPORTER),
    );
    let mut lc = dingo_pd::typed_port(
        cfg.name,
        &cfg.ports.lc,
        LcObserver::new(ex.now_ns()),
        Supervisor::log(&REPORTER),
    );
    // SAFETY: system-builder checked that the stats region is mapped
    // read-write here, a page at least; this PD is its only writer.
    let mut published = unsafe { Writer::new(cfg.regions.stats.as_ptr(), &STATS) };
    debug_println!(
        "usb-net: waiting for a CDC-ECM device from {}; serving {}",
        cfg.ports.usb.peer,
        cfg.ports.eth.peer
    );
    let mut d = Driver::new();
    let mask = 1u64 << usb.channel() | 1u64 << eth.channel() | 1u64 << lc.channel();
    loop {
        let now = ex.now_ns();
        d.tick(now);
        let mut blocked = false;
        loop {
            let mut moved = false;
            while let Ok(Some(w)) = usb.try_recv(now) {
                d.input(w, now, &win, &frames);
                moved = true;
            }
            while let Ok(Some(m)) = lc.try_recv(now) {
                d.lifecycle(m, now);
                moved = true;
            }
            while d.has_room() {
                match eth.try_recv(now) {
                    Ok(Some(m)) => {
                        d.eth(m, now, &win, &frames);
                        moved = true;
                    }
                    _ => break,
                }
            }
            for s in [
                usb.send_queued(now, &mut d.session, Session::take, Session::unget),
                eth.send_queued(now, &mut d, Driver::take_out, Driver::unget_out),
                lc.send_queued(now, &mut d, Driver::take_lc, Driver::unget_lc),
            ] {
                moved |= s.sent > 0;
                blocked |= s.full;
            }
            if !moved {
                break;
            }
        }
        while let Some(n) = d.take_note() {
            print(n);
        }
        let _ = usb.check_timeouts(now);
        let _ = eth.check_timeouts(now);
        let _ = lc.check_timeouts(now);
        let mut retry = false;
        dingo_pd::flush(&mut usb);
        dingo_pd::flush(&mut eth);
        dingo_pd::flush(&mut lc);
        retry |= matches!(usb.prepare_recv_sleep(), Ok(Arm::Retry));
        retry |= matches!(lc.prepare_recv_sleep(), Ok(Arm::Retry));
        // Client requests are armed only while the driver can take them.
        if d.has_room() {
            retry |= matches!(eth.prepare_recv_sleep(), Ok(Arm::Retry));
        }
        if blocked {
            retry |= matches!(usb.prepare_send_sleep(), Ok(Arm::Retry));
            retry |= matches!(eth.prepare_send_sleep(), Ok(Arm::Retry));
            retry |= matches!(lc.prepare_send_sleep(), Ok(Arm::Retry));
        }
        published.publish(&stats(&d));
        if retry {
            continue;
        }
        let deadline = [
            d.next_deadline(),
            usb.deadline_ns(),
            eth.deadline_ns(),
            lc.deadline_ns(),
        ]
        .into_iter()
        .flatten()
        .min();
        ex.any_channel_until(mask, deadline).await;
    }
}

dingo_pd::async_protection_domain!(main, timer);
