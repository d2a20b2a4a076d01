//! The USB keyboard PD: usb-kbd-core's driver between its UsbBus port
//! (the root hub) and its Keyboard port (the keys' consumer). Without a
//! Keyboard port the keys typed are printed on the console, a line at a
//! time. Every message passes the UsbKeyboard component's observer.
#![no_std]
#![no_main]

use core::cell::RefCell;

use dingo_pd::dingo_rt::port::DataArea;
use dingo_pd::dingo_rt::ring::Arm;
use dingo_pd::dingo_rt::typed::{ComponentPort, Fault, Supervisor};
use dingo_pd::microkit::debug_println;
use dingo_pd::{ConsoleReporter, TimedExecutor};
use dingo_protocols::keyboard::Msg as KbdMsg;
use dingo_protocols::usb_keyboard::Observer as Component;
use usb_bus::session::Session;
use usb_bus::{BusObserver, BusPort};
use usb_core::stats;
use usb_kbd_core::{Driver, Note, Out, Window, ascii};

pd_config::program!("usb-kbd");

static REPORTER: ConsoleReporter = ConsoleReporter;

/// The stats page's layout.
const COUNTERS: [&str; 7] = [
    "attached",
    "detached",
    "pipes",
    "pending",
    "reports",
    "keys",
    "rollovers",
];

type Ex<'a> = TimedExecutor<'a, 0>;

struct Buffers(DataArea);

impl Window for Buffers {
    fn read(&self, offset: u32, dst: &mut [u8]) {
        // The driver reads only its own buffers, inside the window.
        let _ = self.0.read(u64::from(offset), dst);
    }
}

fn message(o: Out) -> KbdMsg {
    match o {
        Out::Connected => KbdMsg::Connected,
        Out::Key(k) => KbdMsg::Key {
            usage: k.usage,
            modifiers: k.modifiers,
            pressed: k.pressed,
        },
        Out::Rollover => KbdMsg::Rollover,
        Out::Disconnected => KbdMsg::Disconnected,
    }
}

/// The console line of typed characters, when no consumer takes the keys.
struct Line {
    buf: [u8; 80],
    len: usize,
}

impl Line {
    fn key(&mut self, o: Out) {
        let Out::Key(k) = o else { return };
        if !k.pressed {
            return;
        }
        match ascii(k.usage, k.modifiers) {
            Some(b'\n') => self.flush(),
            Some(c) => {
                if self.len == self.buf.len() {
                    self.flush();
                }
                self.buf[self.len] = c;
                self.len += 1;
            }
            None => {}
        }
    }

    fn flush(&mut self) {
        let text = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?");
        debug_println!("usb-kbd: typed: {text}");
        self.len = 0;
    }
}

async fn main(ex: &Ex<'_>) {
    let cfg = config::load();
    // SAFETY: system-builder checked that the window is mapped read-write
    // here for its size; the controller writes reports into it, and this
    // PD reads it only through this value.
    let mem =
        Buffers(unsafe { DataArea::new(cfg.regions.buffers.as_ptr(), cfg.regions.buffers.size) });
    let component = RefCell::new(Component::new(ex.now_ns()));
    let mut usb: BusPort<'static, '_, Component> = dingo_pd::observed_port(
        cfg.name,
        &cfg.ports.usb,
        BusObserver::new(&component, usb_bus::class_driver_parts!(Component)),
        Supervisor::log(&REPORTER),
    );
    let mut kbd = cfg.ports.kbd.map(|p| {
        dingo_pd::observed_port(
            cfg.name,
            &p,
            ComponentPort::new(&component, dingo_protocols::usb_keyboard::ports::Kbd),
            Supervisor::log(&REPORTER),
        )
    });
    // SAFETY: system-builder checked that the stats region is mapped
    // read-write here, a page at least; this PD is its writer.
    let page = cfg
        .regions
        .stats
        .map(|r| unsafe { stats::Writer::new(r.as_ptr(), COUNTERS.len()) });
    debug_println!(
        "usb-kbd: waiting for a keyboard from {}; keys go to {}",
        cfg.ports.usb.peer,
        cfg.ports.kbd.map_or("the console", |p| p.peer)
    );
    let mut driver = Driver::new();
    let mut line = Line {
        buf: [0; 80],
        len: 0,
    };
    let mut mask = 1u64 << usb.channel();
    if let Some(k) = &kbd {
        mask |= 1 << k.channel();
    }
    loop {
        let now = ex.now_ns();
        driver.tick(now);
        let mut blocked = false;
        loop {
            let mut moved = false;
            while driver.has_room() {
                match usb.try_recv(now) {
                    Ok(Some(w)) => {
                        driver.input(w, now, &mem);
                        moved = true;
                    }
                    _ => break,
                }
            }
            let s = usb.send_queued(now, &mut driver.session, Session::take, Session::unget);
            moved |= s.sent > 0;
            blocked |= s.full;
            while let Some(o) = driver.take_out() {
                let Some(k) = kbd.as_mut() else {
                    line.key(o);
                    continue;
                };
                match k.try_send(&message(o), now) {
                    Ok(()) => moved = true,
                    Err(Fault::Full) => {
                        driver.unget_out(o);
                        blocked = true;
                        break;
                    }
                    Err(_) => {}
                }
            }
            if !moved {
                break;
            }
        }
        while let Some(n) = driver.take_note() {
            match n {
                Note::Ready {
                    addr,
                    interface,
                    endpoint,
                    interval,
                    polled,
                } => debug_println!(
                    "usb-kbd: keyboard at address {addr}: boot protocol on interface {interface}, reports on endpoint {endpoint:#04x} every {interval} ms, polled every {polled} ms (attach {})",
                    driver.session.attaches
                ),
                Note::Failed(why) => debug_println!("usb-kbd: keyboard given up: {why}"),
                Note::Gone { addr } => {
                    debug_println!(
                        "usb-kbd: keyboard at address {addr} unplugged (detach {})",
                        driver.session.detaches
                    )
                }
            }
        }
        if let Some(p) = &page {
            let s = &driver.session;
            let values = [
                s.attaches,
                s.detaches,
                s.pipes() as u64,
                s.pending() as u64,
                driver.stats.reports,
                driver.stats.keys,
                driver.keys().rollovers,
            ];
            for (i, v) in values.iter().enumerate() {
                p.set(i, *v);
            }
        }
        let _ = usb.check_timeouts(now);
        let mut retry = false;
        dingo_pd::flush(&mut usb);
        retry |= matches!(usb.prepare_recv_sleep(), Ok(Arm::Retry));
        if let Some(k) = kbd.as_mut() {
            dingo_pd::flush(k);
            if blocked {
                retry |= matches!(k.prepare_send_sleep(), Ok(Arm::Retry));
            }
        }
        if blocked {
            retry |= matches!(usb.prepare_send_sleep(), Ok(Arm::Retry));
        }
        if retry {
            continue;
        }
        let deadline = [driver.next_deadline(), usb.deadline_ns()]
            .into_iter()
            .flatten()
            .min();
        ex.any_channel_until(mask, deadline).await;
    }
}

dingo_pd::async_protection_domain!(main, timer);
