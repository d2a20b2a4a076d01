//! The USB disk PD: usb-storage-core's driver between its UsbBus port (the
//! root hub) and its BlockDevice port (the disk's user, whose buffers are
//! in the same DMA window the controller moves the data to and from: no
//! copy on the way). Every message passes the UsbStorage component's
//! observer. A system without a disk user (no BlockDevice port) gets the
//! disk's label on the console: the PD reads block 0 itself once the disk
//! is ready.
//!
//! Restarts: when the monitor restarts this PD, the root hub offers the
//! device to the fresh instance, which sets it up anew; the disk user's
//! BlockDevice shadow resubmits what was outstanding. A restartable
//! instance makes violations on its BlockDevice port fatal. The `campaign`
//! param injects faults into the PD itself (see pd.toml and [`Injector`]).
#![no_std]
#![no_main]

use core::cell::RefCell;

use dingo_pd::dingo_rt::port::DataArea;
use dingo_pd::dingo_rt::ring::Arm;
use dingo_pd::dingo_rt::typed::{ComponentPort, Fault, Supervisor};
use dingo_pd::microkit::debug_println;
use dingo_pd::{ConsoleReporter, TimedExecutor};
use dingo_protocols::block_device::{self, Msg as BlkMsg};
use dingo_protocols::usb_storage::Observer as Component;
use fault_campaign::{Class, Garbage};
use timer_client::clock::rdtsc;
use usb_bus::session::Session;
use usb_bus::{BusObserver, BusPort};
use usb_core::stats;
use usb_storage_core::{DATA_BASE, Note, Out, Request, Storage, Window};

pd_config::program!("usb-storage");

static REPORTER: ConsoleReporter = ConsoleReporter;

/// The stats page's layout.
const COUNTERS: [&str; 10] = [
    "attached",
    "detached",
    "pipes",
    "pending",
    "requests",
    "commands",
    "bytes_read",
    "bytes_written",
    "recoveries",
    "failures",
];

type Ex<'a> = TimedExecutor<'a, 0>;

struct Buffers(DataArea);

impl Window for Buffers {
    fn size(&self) -> u32 {
        self.0.len() as u32
    }
    fn read(&self, offset: u32, dst: &mut [u8]) {
        // The driver reads only its own buffers, inside the window.
        let _ = self.0.read(u64::from(offset), dst);
    }
    fn write(&self, offset: u32, src: &[u8]) {
        let _ = self.0.write(u64::from(offset), src);
    }
}

fn message(o: Out) -> BlkMsg {
    match o {
        Out::Ready { blocks, block_size } => BlkMsg::Ready { blocks, block_size },
        Out::Done { req, status } => BlkMsg::Done { req, status },
        Out::Gone => BlkMsg::Gone,
    }
}

/// The label read from block 0 when there is no disk user: its first
/// bytes up to the first one that is not printable ASCII.
const LABEL_BYTES: usize = 32;
/// The request id of that read (no user shares the id space).
const LABEL_REQ: u32 = 0;

/// The label, with how many disks were attached so far (hot-plug tests
/// wait for each replug's line).
fn print_label(mem: &Buffers, attaches: u64) {
    let mut b = [0u8; LABEL_BYTES];
    mem.read(DATA_BASE, &mut b);
    let n = b
        .iter()
        .position(|c| !(0x20..0x7f).contains(c))
        .unwrap_or(b.len());
    match core::str::from_utf8(&b[..n]) {
        Ok(l) if !l.trim().is_empty() => {
            debug_println!(
                "usb-storage: disk label \"{}\" (block 0; attach {attaches})",
                l.trim_end()
            )
        }
        _ => debug_println!("usb-storage: no label in block 0 (attach {attaches})"),
    }
}

fn print(n: Note) {
    match n {
        Note::Disk {
            addr,
            vendor,
            product,
            revision,
            blocks,
            block_size,
        } => {
            let s = |b: &[u8]| core::str::from_utf8(b).unwrap_or("?").trim_end().len();
            let (v, p, r) = (
                &vendor[..s(&vendor)],
                &product[..s(&product)],
                &revision[..s(&revision)],
            );
            debug_println!(
                "usb-storage: disk at address {addr}: \"{}\" \"{}\" rev \"{}\", {blocks} blocks of {block_size} bytes ({} KiB)",
                core::str::from_utf8(v).unwrap_or("?"),
                core::str::from_utf8(p).unwrap_or("?"),
                core::str::from_utf8(r).unwrap_or("?"),
                blocks * u64::from(block_size) / 1024
            )
        }
        Note::Recovery { command, why } => {
            debug_println!("usb-storage: {command}: {why}; reset recovery")
        }
        Note::Failed { command, why } => debug_println!("usb-storage: {command} failed: {why}"),
        Note::Gone { addr } => debug_println!("usb-storage: disk at address {addr} unplugged"),
    }
}

/// Which faults end this driver's instance: all but garbage, which its
/// status checks notice and reset recovery gets over.
fn ends(c: Class) -> bool {
    !matches!(c, Class::Garbage(_))
}

fn describe(c: Class) -> &'static str {
    match c {
        Class::Crash => "a wild write",
        Class::Hang => "spinning in the handler",
        Class::Violation => "ready while the disk is present",
        Class::Garbage(Garbage::AllOnes) => {
            "garbage from the device (a status wrapper of all ones)"
        }
        Class::Garbage(Garbage::Noise { .. }) => {
            "garbage from the device (a status wrapper of noise)"
        }
    }
}

/// A garbage fault injected, until the driver is over it.
struct Watch {
    number: u64,
    recoveries: u64,
    commands: u64,
    detected: bool,
}

/// The fault injection of one instance (the `campaign` param): the next
/// fault, due once this many READ/WRITE commands have passed and the next
/// request is being worked on.
struct Injector {
    campaign: u64,
    every: u64,
    next: Option<(u64, u64)>,
    watch: Option<Watch>,
}

impl Injector {
    fn new(params: &config::Params) -> Self {
        let n = dingo_pd::microkit::recovery::incarnation();
        let mut i = Injector {
            campaign: params.campaign,
            every: params.fault_every,
            next: None,
            watch: None,
        };
        i.next = fault_campaign::first_fault(n, params.campaign, ends).map(|k| (k, i.gap(k)));
        i
    }

    fn gap(&self, k: u64) -> u64 {
        if self.every != 0 {
            self.every
        } else {
            fault_campaign::events_before(k)
        }
    }

    /// Injects the fault that is due; a crash or a hang does not return,
    /// a violation is returned for the caller to commit.
    fn step(&mut self, s: &mut Storage) -> Option<Class> {
        let commands = s.stats.data_commands;
        if let Some(w) = self.watch.as_mut() {
            if !w.detected && s.stats.recoveries > w.recoveries {
                w.detected = true;
                debug_println!(
                    "usb-storage: fault {} detected: the status wrapper fails the driver's checks at tsc {}; recovering by itself: reset recovery, the command retried",
                    w.number,
                    rdtsc()
                );
            }
            if commands > w.commands {
                let k = w.number;
                if w.detected {
                    debug_println!(
                        "usb-storage: fault {k} recovered by the driver: commands pass again at tsc {}",
                        rdtsc()
                    );
                } else {
                    debug_println!(
                        "usb-storage: fault {k} not detected: a garbage status wrapper passed every check"
                    );
                }
                self.watch = None;
                if k < self.campaign {
                    self.next = Some((k + 1, commands + self.gap(k + 1)));
                }
            }
            return None;
        }
        // With a request of the user's in progress, so that the fault
        // finds one outstanding (for the shadow to resubmit) and garbage a
        // status wrapper to come.
        let (k, _) = self
            .next
            .filter(|&(_, at)| commands >= at && s.pending() > 0)?;
        self.next = None;
        let class = fault_campaign::fault(k);
        debug_println!(
            "usb-storage: fault injection {k}: {} after {commands} commands at tsc {}",
            describe(class),
            rdtsc()
        );
        match class {
            Class::Crash => {
                // SAFETY: none, on purpose: nothing is mapped at this
                // address, so the kernel stops this thread and tells the
                // monitor.
                unsafe { (0xdead_0000 as *mut u64).write_volatile(commands) };
                None
            }
            Class::Hang => loop {
                core::hint::spin_loop();
            },
            Class::Violation => Some(class),
            Class::Garbage(g) => {
                s.corrupt_next_status(g);
                self.watch = Some(Watch {
                    number: k,
                    recoveries: s.stats.recoveries,
                    commands,
                    detected: false,
                });
                None
            }
        }
    }
}

async fn main(ex: &Ex<'_>) {
    let cfg = config::load();
    // SAFETY: system-builder checked that the window is mapped read-write
    // here for its size; the controller and the disk's user share it, and
    // this PD touches it only through this value.
    let mem =
        Buffers(unsafe { DataArea::new(cfg.regions.buffers.as_ptr(), cfg.regions.buffers.size) });
    let component = RefCell::new(Component::new(ex.now_ns()));
    let mut usb: BusPort<'static, '_, Component> = dingo_pd::observed_port(
        cfg.name,
        &cfg.ports.usb,
        BusObserver::new(&component, usb_bus::class_driver_parts!(Component)),
        Supervisor::log(&REPORTER),
    );
    let mut blk = cfg.ports.blk.map(|p| {
        dingo_pd::observed_port(
            cfg.name,
            &p,
            ComponentPort::new(&component, dingo_protocols::usb_storage::ports::Blk),
            dingo_pd::supervisor(&REPORTER),
        )
    });
    // SAFETY: system-builder checked that the stats region is mapped
    // read-write here, a page at least; this PD is its writer.
    let page = cfg
        .regions
        .stats
        .map(|r| unsafe { stats::Writer::new(r.as_ptr(), COUNTERS.len()) });
    debug_println!(
        "usb-storage: waiting for a disk from {}; serving {}",
        cfg.ports.usb.peer,
        cfg.ports
            .blk
            .map_or("no disk user (the label goes to the console)", |p| p.peer)
    );
    let mut s = Storage::new();
    let mut injector = Injector::new(&cfg.params);
    let mut mask = 1u64 << usb.channel();
    if let Some(b) = &blk {
        mask |= 1u64 << b.channel();
    }
    loop {
        let now = ex.now_ns();
        s.tick(now);
        // The rings an answer waits for room on: each is armed for space.
        let (mut blocked_usb, mut blocked_blk) = (false, false);
        loop {
            let mut moved = false;
            while let Ok(Some(w)) = usb.try_recv(now) {
                s.input(w, now, &mem);
                moved = true;
            }
            while let Some(blk) = blk.as_mut().filter(|_| s.has_room()) {
                match blk.try_recv(now) {
                    Ok(Some(m)) => {
                        let r = match m {
                            BlkMsg::Read {
                                req,
                                block,
                                count,
                                buf,
                            } => Request {
                                req,
                                block,
                                count,
                                buf,
                                write: false,
                            },
                            BlkMsg::Write {
                                req,
                                block,
                                count,
                                buf,
                            } => Request {
                                req,
                                block,
                                count,
                                buf,
                                write: true,
                            },
                            // The driver's own messages: refused by the
                            // observer before they get here.
                            _ => continue,
                        };
                        s.request(r, now, &mem);
                        moved = true;
                    }
                    _ => break,
                }
            }
            let sent = usb.send_queued(now, &mut s.session, Session::take, Session::unget);
            moved |= sent.sent > 0;
            blocked_usb |= sent.full;
            while let Some(o) = s.take_out() {
                let Some(blk) = blk.as_mut() else {
                    // No disk user: read the label once the disk is there.
                    match o {
                        Out::Ready { .. } => {
                            let label = Request {
                                req: LABEL_REQ,
                                block: 0,
                                count: 1,
                                buf: DATA_BASE,
                                write: false,
                            };
                            s.request(label, now, &mem);
                        }
                        Out::Done {
                            req: LABEL_REQ,
                            status: block_device::OK,
                        } => print_label(&mem, s.session.attaches),
                        Out::Done { status, .. } => {
                            debug_println!("usb-storage: reading block 0 failed: status {status}")
                        }
                        Out::Gone => {}
                    }
                    moved = true;
                    continue;
                };
                match blk.try_send(&message(o), now) {
                    Ok(()) => moved = true,
                    Err(Fault::Full) => {
                        s.unget_out(o);
                        blocked_blk = true;
                        break;
                    }
                    Err(_) => {}
                }
            }
            if !moved {
                break;
            }
        }
        while let Some(n) = s.take_note() {
            print(n);
        }
        if let Some(Class::Violation) = injector.step(&mut s)
            && let Some(blk) = blk.as_mut()
        {
            // Refused by this PD's own observer (the disk is present);
            // fatal on a restartable instance.
            let _ = blk.try_send(
                &BlkMsg::Ready {
                    blocks: 1,
                    block_size: 512,
                },
                now,
            );
        }
        if let Some(p) = &page {
            let values = [
                s.session.attaches,
                s.session.detaches,
                s.session.pipes() as u64,
                s.pending() as u64,
                s.stats.requests,
                s.stats.commands,
                s.stats.bytes_read,
                s.stats.bytes_written,
                s.stats.recoveries,
                s.stats.failures,
            ];
            for (i, v) in values.iter().enumerate() {
                p.set(i, *v);
            }
        }
        let _ = usb.check_timeouts(now);
        let mut retry = false;
        dingo_pd::flush(&mut usb);
        retry |= matches!(usb.prepare_recv_sleep(), Ok(Arm::Retry));
        if blocked_usb {
            retry |= matches!(usb.prepare_send_sleep(), Ok(Arm::Retry));
        }
        if let Some(blk) = blk.as_mut() {
            let _ = blk.check_timeouts(now);
            dingo_pd::flush(blk);
            retry |= matches!(blk.prepare_recv_sleep(), Ok(Arm::Retry));
            if blocked_blk {
                retry |= matches!(blk.prepare_send_sleep(), Ok(Arm::Retry));
            }
        }
        if retry {
            continue;
        }
        let blk_deadline = blk.as_ref().and_then(|b| b.deadline_ns());
        let deadline = [s.next_deadline(), usb.deadline_ns(), blk_deadline]
            .into_iter()
            .flatten()
            .min();
        ex.any_channel_until(mask, deadline).await;
    }
}

dingo_pd::async_protection_domain!(main, timer);
