//! The driver core against the model of QEMU's controller (`fake`).

use std::collections::VecDeque;
use std::rc::Rc;

use dma::host::HostDma;
use dma::{AddressWidth, DmaBuf};
use hwio::fake::FakeBus;
use usb_core::fixtures::STORAGE_DEVICE;
use usb_core::setup::{Setup, descriptor, request};
use usb_core::{kind, status, window};

use crate::fake::{Device, FakeOhci, IN, OUT, Reply, SETUP};
use crate::hcd::*;

const MS: u64 = 1_000_000;

/// How a test device's bulk IN endpoint answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum InMode {
    Data,
    /// A short packet once `n` bytes have been sent in the current burst.
    ShortAt(usize),
    Nak,
    Stall,
}

/// A device with endpoint 0 (descriptors, SET_ADDRESS), bulk IN 1 (a byte
/// pattern), bulk OUT 2 (a sink) and interrupt IN 3 (queued reports).
struct TestDevice {
    addr: u8,
    pending_addr: Option<u8>,
    setup: Option<Setup>,
    sent: usize,
    in_mode: InMode,
    in_pos: usize,
    sink: Vec<u8>,
    reports: VecDeque<Vec<u8>>,
    resets: u32,
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 8)) as u8
}

impl TestDevice {
    fn new() -> Box<Self> {
        Box::new(TestDevice {
            addr: 0,
            pending_addr: None,
            setup: None,
            sent: 0,
            in_mode: InMode::Data,
            in_pos: 0,
            sink: Vec::new(),
            reports: VecDeque::new(),
            resets: 0,
        })
    }
}

impl Device for TestDevice {
    fn address(&self) -> u8 {
        self.addr
    }

    fn packet(&mut self, pid: u8, endpoint: u8, buf: &mut [u8]) -> Reply {
        match (endpoint, pid) {
            (0, SETUP) => {
                let mut b = [0; 8];
                b.copy_from_slice(&buf[..8]);
                let s = Setup::from_bytes(b);
                self.setup = Some(s);
                self.sent = 0;
                if s.request == request::SET_ADDRESS {
                    self.pending_addr = Some(s.value as u8);
                }
                if s.request == 0x55 {
                    return Reply::Stall;
                }
                Reply::Ok(8)
            }
            (0, IN) => {
                let Some(s) = self.setup else {
                    return Reply::Stall;
                };
                if s.is_in() && self.sent < s.length as usize {
                    if s.request != request::GET_DESCRIPTOR || s.value >> 8 != 1 {
                        return Reply::Stall;
                    }
                    let d = &STORAGE_DEVICE[..];
                    let n = (d.len().min(s.length as usize) - self.sent).min(buf.len());
                    buf[..n].copy_from_slice(&d[self.sent..self.sent + n]);
                    self.sent += n;
                    return Reply::Ok(n);
                }
                // Status stage of an OUT request: the address takes effect.
                if let Some(a) = self.pending_addr.take() {
                    self.addr = a;
                }
                Reply::Ok(0)
            }
            (0, OUT) => Reply::Ok(buf.len()),
            (1, IN) => match self.in_mode {
                InMode::Nak => Reply::Nak,
                InMode::Stall => Reply::Stall,
                InMode::Data => {
                    for b in buf.iter_mut() {
                        *b = pattern(self.in_pos);
                        self.in_pos += 1;
                    }
                    Reply::Ok(buf.len())
                }
                InMode::ShortAt(n) => {
                    let room = n.saturating_sub(self.in_pos).min(buf.len());
                    for b in buf[..room].iter_mut() {
                        *b = pattern(self.in_pos);
                        self.in_pos += 1;
                    }
                    if room < buf.len() {
                        self.in_mode = InMode::Data;
                    }
                    Reply::Ok(room)
                }
            },
            (2, OUT) => {
                self.sink.extend_from_slice(buf);
                Reply::Ok(buf.len())
            }
            (5, IN) => Reply::Nak,
            (3, IN) => match self.reports.pop_front() {
                Some(r) => {
                    let n = r.len().min(buf.len());
                    buf[..n].copy_from_slice(&r[..n]);
                    Reply::Ok(n)
                }
                None => Reply::Nak,
            },
            _ => Reply::Stall,
        }
    }

    fn reset(&mut self) {
        self.addr = 0;
        self.setup = None;
        self.resets += 1;
    }

    fn queue_report(&mut self, report: Vec<u8>) {
        self.reports.push_back(report);
    }

    fn received(&self) -> Vec<u8> {
        self.sink.clone()
    }

    fn set_naks(&mut self, on: bool) {
        self.in_mode = if on { InMode::Nak } else { InMode::Data };
    }
}

impl Rig {
    /// Queues a report on the test device at `port` (its interrupt IN 3).
    fn push_report(&mut self, port: usize, report: Vec<u8>) {
        self.hc.push_report(port, report);
    }
}

struct Rig {
    hc: FakeOhci,
    ohci: Ohci<FakeBus>,
    buf: DmaBuf,
    now: u64,
    events: Vec<Event>,
}

const WINDOW: usize = 2 << 20;

fn rig() -> Rig {
    let mem = Rc::new(HostDma::new(WINDOW + 0x40000, 0x1000_0000));
    let hc = FakeOhci::new(mem.clone(), 3);
    let mut region = mem.region("usb", AddressWidth::BITS32).unwrap();
    let buf = region.alloc("window 0", WINDOW, 4096).unwrap();
    let windows = [Window {
        paddr: buf.paddr(),
        size: WINDOW as u32,
    }];
    let mut ohci = Ohci::new(hc.bus.clone(), &mut region, &windows).unwrap();
    ohci.start(0).unwrap();
    let mut r = Rig {
        hc,
        ohci,
        buf,
        now: 0,
        events: Vec::new(),
    };
    r.service();
    r.events.clear();
    r
}

impl Rig {
    fn service(&mut self) {
        if self.hc.irq() {
            self.ohci.interrupt(self.now);
        }
        while let Some(e) = self.ohci.next_event() {
            self.events.push(e);
        }
        assert_eq!(self.ohci.check_schedule(), Ok(()), "schedule checker");
    }

    fn frames(&mut self, n: usize) {
        for _ in 0..n {
            self.hc.frame();
            self.now += MS;
            self.ohci.tick(self.now);
            self.service();
        }
    }

    fn take(&mut self) -> Vec<Event> {
        self.service();
        std::mem::take(&mut self.events)
    }

    fn open(&mut self, ep: u16, spec: EndpointSpec) {
        self.ohci.open_endpoint(ep, spec);
        let ev = self.take();
        assert_eq!(ev, [Event::EndpointOpened { ep }]);
    }

    fn completions(&mut self) -> Vec<(u32, u8, u32)> {
        self.take()
            .into_iter()
            .filter_map(|e| match e {
                Event::Complete {
                    xfer,
                    status,
                    actual,
                } => Some((xfer, status, actual)),
                _ => None,
            })
            .collect()
    }

    /// Runs frames until `n` completions arrived (at most `limit` frames).
    fn wait_completions(&mut self, n: usize, limit: usize) -> Vec<(u32, u8, u32)> {
        let mut got = Vec::new();
        for _ in 0..limit {
            got.extend(self.completions());
            if got.len() >= n {
                return got;
            }
            self.frames(1);
        }
        got.extend(self.completions());
        got
    }

    /// No descriptor, transfer or endpoint in use beyond what is open.
    fn assert_idle(&self, endpoints: usize) {
        let u = self.ohci.usage();
        assert_eq!(
            (u.tds, u.transfers, u.endpoints, u.eds, u.placeholders),
            (0, 0, endpoints, endpoints, endpoints),
            "{u:?}"
        );
    }
}

fn control_spec(addr: u8) -> EndpointSpec {
    EndpointSpec {
        addr,
        number: 0,
        kind: kind::CONTROL,
        dir_in: false,
        max_packet: 8,
        interval: 0,
        low_speed: false,
    }
}

fn bulk_spec(number: u8, dir_in: bool) -> EndpointSpec {
    EndpointSpec {
        addr: 0,
        number,
        kind: kind::BULK,
        dir_in,
        max_packet: 64,
        interval: 0,
        low_speed: false,
    }
}

fn buf(offset: u32) -> u32 {
    window::address(0, offset).unwrap()
}

#[test]
fn start_reports_the_connected_ports() {
    let mem = Rc::new(HostDma::new(0x40000, 0x2000_0000));
    let hc = FakeOhci::new(mem.clone(), 3);
    hc.attach(1, TestDevice::new());
    let mut region = mem.region("usb", AddressWidth::BITS32).unwrap();
    let mut ohci = Ohci::new(hc.bus.clone(), &mut region, &[]).unwrap();
    ohci.start(0).unwrap();
    assert_eq!(ohci.ports(), 3);
    if hc.irq() {
        ohci.interrupt(0);
    }
    let ev: Vec<_> = std::iter::from_fn(|| ohci.next_event()).collect();
    assert!(ev.contains(&Event::PortStatus {
        port: 1,
        connected: true,
        enabled: false,
        low_speed: false
    }));
    assert!(ev.contains(&Event::PortStatus {
        port: 0,
        connected: false,
        enabled: false,
        low_speed: false
    }));
    // The controller runs: frames advance and the HCCA's frame number
    // follows.
    hc.frames(3);
    assert_eq!(hc.frame_number(), 3);
}

#[test]
fn a_window_beyond_4g_is_refused() {
    let mem = Rc::new(HostDma::new(0x40000, 0x1000_0000));
    let hc = FakeOhci::new(mem.clone(), 3);
    let mut region = mem.region("usb", AddressWidth::BITS32).unwrap();
    let w = Window {
        paddr: 0xffff_f000,
        size: 0x2000,
    };
    let e = Ohci::new(hc.bus.clone(), &mut region, &[w]).err().unwrap();
    assert!(e.to_string().contains("beyond 32-bit"), "{e}");
}

/// Enumerates a device's address the way the root hub does and reads its
/// device descriptor through the control list.
#[test]
fn control_transfers_reset_address_and_descriptor() {
    let mut r = rig();
    r.hc.attach(0, TestDevice::new());
    r.frames(1);
    r.take();
    r.ohci.port_reset(0);
    let ev = r.take();
    assert!(
        ev.contains(&Event::PortResetDone { port: 0, ok: true }),
        "{ev:?}"
    );
    r.open(1, control_spec(0));
    let get = Setup::get_descriptor(descriptor::DEVICE, 0, 18);
    r.ohci.submit(10, 1, get.to_u64(), buf(0), 18);
    let done = r.wait_completions(1, 5);
    assert_eq!(done, [(10, status::OK, 18)]);
    let mut d = [0u8; 18];
    r.buf.copy_out(0, &mut d);
    assert_eq!(d, STORAGE_DEVICE);
    // SET_ADDRESS(5): no data stage; then the device answers at 5 only.
    r.ohci.submit(11, 1, Setup::set_address(5).to_u64(), 0, 0);
    let done = r.wait_completions(1, 5);
    assert_eq!(done, [(11, status::OK, 0)]);
    r.ohci.close_endpoint(1);
    r.frames(3);
    assert_eq!(r.take(), [Event::EndpointClosed { ep: 1 }]);
    r.open(2, control_spec(5));
    r.ohci.submit(12, 2, get.to_u64(), buf(64), 18);
    assert_eq!(r.wait_completions(1, 5), [(12, status::OK, 18)]);
    // A request the device refuses: STALL, and the endpoint goes on.
    r.ohci
        .submit(13, 2, Setup::new(0, 0x55, 0, 0, 0).to_u64(), 0, 0);
    r.ohci.submit(14, 2, get.to_u64(), buf(128), 18);
    let done = r.wait_completions(2, 5);
    assert_eq!(done, [(13, status::STALL, 0), (14, status::OK, 18)]);
    assert!(r.ohci.stats().halts_recovered >= 1);
    r.assert_idle(1);
}

#[test]
fn bulk_in_of_a_mebibyte_is_split_into_tds_and_arrives_whole() {
    let mut r = rig();
    r.hc.attach(0, TestDevice::new());
    r.ohci.port_reset(0);
    r.take();
    r.open(3, bulk_spec(1, true));
    // An unaligned start: the first TD is short of its page.
    let len = MAX_TRANSFER;
    r.ohci.submit(20, 3, 0, buf(0x100), len);
    let u = r.ohci.usage();
    assert_eq!(u.tds, len as usize / 8192 + 1, "{u:?}");
    let done = r.wait_completions(1, 3);
    assert_eq!(done, [(20, status::OK, len)]);
    let mut got = vec![0u8; len as usize];
    r.buf.copy_out(0x100, &mut got);
    assert!(got.iter().enumerate().all(|(i, b)| *b == pattern(i)));
    r.assert_idle(1);
    // Larger than the driver moves at once: refused, completed FAILED.
    r.ohci.submit(21, 3, 0, buf(0), MAX_TRANSFER + 1);
    assert_eq!(r.completions(), [(21, status::FAILED, 0)]);
    assert!(matches!(
        r.ohci.take_refusal(),
        Some(Refusal::TooLong { .. })
    ));
    // Outside the window: refused.
    r.ohci.submit(22, 3, 0, buf(WINDOW as u32 - 8), 64);
    assert_eq!(r.completions(), [(22, status::FAILED, 0)]);
    assert!(matches!(
        r.ohci.take_refusal(),
        Some(Refusal::BadBuffer { .. })
    ));
}

#[test]
fn bulk_out_moves_max_packet_pieces() {
    let mut r = rig();
    r.hc.attach(0, TestDevice::new());
    r.ohci.port_reset(0);
    r.take();
    r.open(4, bulk_spec(2, false));
    let data: Vec<u8> = (0..20000).map(pattern).collect();
    r.buf.copy_in(0, &data);
    r.ohci.submit(30, 4, 0, buf(0), 20000);
    assert_eq!(r.wait_completions(1, 3), [(30, status::OK, 20000)]);
    let packets = r.hc.take_packets();
    assert!(
        packets
            .iter()
            .all(|&(_, ep, pid, n)| ep == 2 && pid == OUT && n <= 64)
    );
    let sink = r.hc.with_device(0, |d| d.received()).unwrap();
    assert_eq!(sink, data, "the device got every byte, in order");
    // A zero-length packet is one TD without a buffer.
    r.ohci.submit(31, 4, 0, 0, 0);
    assert_eq!(r.wait_completions(1, 3), [(31, status::OK, 0)]);
    r.assert_idle(1);
}

#[test]
fn a_short_packet_ends_a_multi_td_transfer_and_the_halted_ed_recovers() {
    let mut r = rig();
    let mut dev = TestDevice::new();
    dev.in_mode = InMode::ShortAt(10000);
    r.hc.attach(0, dev);
    r.ohci.port_reset(0);
    r.take();
    r.open(5, bulk_spec(1, true));
    r.ohci.submit(40, 5, 0, buf(0), 65536);
    r.ohci.submit(41, 5, 0, buf(65536), 512);
    let done = r.wait_completions(2, 5);
    // QEMU does not advance a TD's CBP when it retires it with
    // DATAUNDERRUN (the short TD's bytes land in memory but are not
    // counted): only the whole TDs before it count.
    assert_eq!(done, [(40, status::OK, 8192), (41, status::OK, 512)]);
    assert_eq!(r.ohci.stats().short_packets, 1);
    assert_eq!(r.ohci.stats().halts_recovered, 1);
    let mut got = vec![0u8; 512];
    r.buf.copy_out(65536, &mut got);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, b)| *b == pattern(10000 + i))
    );
    r.assert_idle(1);
}

#[test]
fn a_stall_completes_the_transfer_and_the_next_one_runs() {
    let mut r = rig();
    let mut dev = TestDevice::new();
    dev.in_mode = InMode::Stall;
    r.hc.attach(0, dev);
    r.ohci.port_reset(0);
    r.take();
    r.open(6, bulk_spec(1, true));
    r.ohci.submit(50, 6, 0, buf(0), 16384);
    assert_eq!(r.wait_completions(1, 3), [(50, status::STALL, 0)]);
    r.assert_idle(1);
    // The device's halt cleared (CLEAR_FEATURE elsewhere), the toggle too.
    r.ohci.reset_toggle(6);
    r.frames(3);
    assert!(r.take().is_empty());
    r.assert_idle(1);
}

#[test]
fn a_transfer_that_naks_forever_is_ended_by_abort() {
    let mut r = rig();
    let mut dev = TestDevice::new();
    dev.in_mode = InMode::Nak;
    r.hc.attach(0, dev);
    r.ohci.port_reset(0);
    r.take();
    r.open(7, bulk_spec(1, true));
    r.ohci.submit(60, 7, 0, buf(0), 64);
    r.ohci.submit(61, 7, 0, buf(64), 64);
    r.frames(50);
    assert!(r.completions().is_empty(), "a NAK is retried without limit");
    r.ohci.abort_endpoint(7);
    // Not before two frame boundaries have passed.
    assert!(r.completions().is_empty());
    r.frames(1);
    assert!(r.take().is_empty());
    r.frames(2);
    let ev = r.take();
    assert_eq!(
        ev,
        [
            Event::Complete {
                xfer: 60,
                status: status::ABORTED,
                actual: 0
            },
            Event::Complete {
                xfer: 61,
                status: status::ABORTED,
                actual: 0
            },
            Event::EndpointAborted { ep: 7 },
        ]
    );
    r.assert_idle(1);
    // The endpoint is usable again.
    r.hc.with_device(0, |d| d.set_naks(false));
    r.ohci.submit(62, 7, 0, buf(0), 64);
    assert_eq!(r.wait_completions(1, 3), [(62, status::OK, 64)]);
    r.ohci.close_endpoint(7);
    r.frames(3);
    assert_eq!(r.take(), [Event::EndpointClosed { ep: 7 }]);
    r.assert_idle(0);
}

#[test]
fn tds_of_an_unplugged_device_are_never_completed_until_closed() {
    let mut r = rig();
    r.hc.attach(0, TestDevice::new());
    r.ohci.port_reset(0);
    r.take();
    r.open(8, bulk_spec(1, true));
    r.open(9, bulk_spec(2, false));
    r.hc.detach(0);
    r.frames(1);
    let ev = r.take();
    assert!(ev.contains(&Event::PortStatus {
        port: 0,
        connected: false,
        enabled: false,
        low_speed: false
    }));
    r.ohci.submit(70, 8, 0, buf(0), 4096);
    r.ohci.submit(71, 9, 0, buf(4096), 100);
    r.frames(20);
    assert!(r.completions().is_empty());
    r.ohci.close_endpoint(8);
    r.ohci.close_endpoint(9);
    r.frames(3);
    let ev = r.take();
    assert!(ev.contains(&Event::Complete {
        xfer: 70,
        status: status::ABORTED,
        actual: 0
    }));
    assert!(ev.contains(&Event::EndpointClosed { ep: 8 }));
    assert!(ev.contains(&Event::EndpointClosed { ep: 9 }));
    r.assert_idle(0);
}

#[test]
fn an_unrecoverable_error_reinitialises_and_aborts_everything() {
    let mut r = rig();
    r.hc.attach(0, TestDevice::new());
    r.ohci.port_reset(0);
    r.take();
    r.open(10, bulk_spec(1, true));
    let mut dev_nak = TestDevice::new();
    dev_nak.in_mode = InMode::Nak;
    r.hc.detach(0);
    r.hc.attach(0, dev_nak);
    r.ohci.port_reset(0);
    r.take();
    r.ohci.submit(80, 10, 0, buf(0), 64);
    r.frames(2);
    // Corrupt the ED's head pointer to 0: the controller dies.
    let ed = r.ohci.eps.iter().flatten().next().unwrap().ed;
    r.ohci.poke_pool(ed, 2, 0);
    r.frames(1);
    assert!(r.hc.dead() || r.ohci.stats().controller_resets == 1);
    let ev = r.take();
    let reset_at = ev.iter().position(|e| {
        matches!(
            e,
            Event::ControllerReset {
                cause: Fatal::Unrecoverable
            }
        )
    });
    let aborted_at = ev.iter().position(|e| {
        *e == Event::Complete {
            xfer: 80,
            status: status::ABORTED,
            actual: 0,
        }
    });
    assert!(aborted_at.unwrap() < reset_at.unwrap(), "{ev:?}");
    // Devices are reported again after the re-initialisation.
    assert!(ev[reset_at.unwrap()..].iter().any(|e| matches!(
        e,
        Event::PortStatus {
            port: 0,
            connected: true,
            ..
        }
    )));
    r.assert_idle(0);
    r.frames(3);
    assert!(!r.hc.dead());
}

#[test]
fn the_watchdog_reinitialises_a_controller_whose_frames_stopped() {
    let mut r = rig();
    r.frames(5);
    r.hc.freeze();
    for _ in 0..150 {
        r.now += MS;
        r.ohci.tick(r.now);
    }
    let ev = r.take();
    assert!(ev.contains(&Event::ControllerReset {
        cause: Fatal::Watchdog
    }));
    assert_eq!(r.ohci.stats().watchdog_resets, 1);
    r.frames(3);
    assert_eq!(r.ohci.stats().watchdog_resets, 1, "running again");
}

#[test]
fn a_bad_done_queue_entry_is_counted_and_survived() {
    let mut r = rig();
    r.hc.attach(0, TestDevice::new());
    r.ohci.port_reset(0);
    r.take();
    r.open(11, bulk_spec(1, true));
    r.ohci.submit(90, 11, 0, buf(0), 64);
    r.hc.frame();
    // The controller wrote a done head; replace it with garbage before the
    // driver reads it.
    r.ohci.poke_hcca_done(0xdead_bee0);
    r.service();
    assert_eq!(r.ohci.stats().bad_done, 1);
    // The transfer is lost to the controller's queue: the caller's abort
    // still ends it.
    r.ohci.abort_endpoint(11);
    r.frames(3);
    let ev = r.take();
    assert!(ev.contains(&Event::EndpointAborted { ep: 11 }), "{ev:?}");
    r.assert_idle(1);
}

#[test]
fn port_reset_of_an_empty_port_fails_and_unknown_ports_are_refused() {
    let mut r = rig();
    r.ohci.port_reset(2);
    assert!(
        r.take()
            .contains(&Event::PortResetDone { port: 2, ok: false })
    );
    r.ohci.port_reset(7);
    assert!(
        r.take()
            .contains(&Event::PortResetDone { port: 7, ok: false })
    );
    r.hc.attach(2, TestDevice::new());
    r.ohci.port_reset(2);
    assert!(
        r.take()
            .contains(&Event::PortResetDone { port: 2, ok: true })
    );
    assert_eq!(r.hc.port_status(2) & 3, 3);
    // Disabling is no change the controller reports (QEMU sets no PESC
    // for it); the port is disabled, its device still connected.
    r.ohci.port_disable(2);
    assert_eq!(r.hc.port_status(2) & 3, 1);
}

#[test]
fn endpoints_the_driver_cannot_serve_are_refused() {
    let mut r = rig();
    let mut iso = bulk_spec(1, true);
    iso.kind = kind::ISOCHRONOUS;
    r.ohci.open_endpoint(1, iso);
    r.ohci.open_endpoint(
        2,
        EndpointSpec {
            max_packet: 0,
            ..bulk_spec(1, true)
        },
    );
    r.ohci.open_endpoint(3, bulk_spec(1, true));
    r.ohci.open_endpoint(3, bulk_spec(2, false));
    assert_eq!(
        r.take(),
        [
            Event::EndpointFailed {
                ep: 1,
                error: OpenError::Isochronous
            },
            Event::EndpointFailed {
                ep: 2,
                error: OpenError::BadParams
            },
            Event::EndpointOpened { ep: 3 },
            Event::EndpointFailed {
                ep: 3,
                error: OpenError::Duplicate
            },
        ]
    );
    // A SETUP packet on a bulk endpoint, an unknown endpoint.
    r.ohci
        .submit(1, 3, Setup::set_address(1).to_u64(), buf(0), 8);
    r.ohci.submit(2, 99, 0, buf(0), 8);
    assert_eq!(
        r.completions(),
        [(1, status::FAILED, 0), (2, status::FAILED, 0)]
    );
}

#[test]
fn interrupt_endpoints_are_polled_at_their_interval() {
    let mut r = rig();
    r.hc.attach(0, TestDevice::new());
    r.ohci.port_reset(0);
    r.take();
    let spec = EndpointSpec {
        addr: 0,
        number: 3,
        kind: kind::INTERRUPT,
        dir_in: true,
        max_packet: 8,
        interval: 10,
        low_speed: false,
    };
    r.open(12, spec);
    r.open(
        13,
        EndpointSpec {
            interval: 1,
            number: 5,
            ..spec
        },
    );
    r.ohci.submit(100, 12, 0, buf(0), 8);
    r.ohci.submit(101, 13, 0, buf(8), 8);
    // Nothing to report: both NAK. bInterval 10 is polled every 8 ms, 1
    // every frame.
    r.hc.take_packets();
    r.frames(32);
    let polls = r.hc.take_packets();
    let count = |ep| polls.iter().filter(|p| p.1 == ep).count();
    assert_eq!((count(3), count(5)), (4, 32));
    assert!(r.completions().is_empty());
    r.push_report(0, vec![7; 8]);
    let done = r.wait_completions(1, 10);
    assert_eq!(done, [(100, status::OK, 8)]);
    let mut rep = [0u8; 8];
    r.buf.copy_out(0, &mut rep);
    assert_eq!(rep, [7; 8]);
    r.ohci.close_endpoint(12);
    r.ohci.close_endpoint(13);
    r.frames(3);
    let ev = r.take();
    assert!(ev.contains(&Event::Complete {
        xfer: 101,
        status: status::ABORTED,
        actual: 0
    }));
    r.assert_idle(0);
}

#[test]
fn the_schedule_checker_finds_a_cycle_and_a_lost_tail() {
    let mut r = rig();
    r.open(14, bulk_spec(1, true));
    r.open(15, bulk_spec(2, false));
    assert_eq!(r.ohci.check_schedule(), Ok(()));
    // The second ED pointing back at the first: a cycle.
    let eds: Vec<u16> = r.ohci.eps.iter().flatten().map(|e| e.ed).collect();
    let first = r.ohci.slot_paddr(eds[0]);
    r.ohci.poke_pool(eds[1], 3, first);
    assert!(matches!(
        r.ohci.check_schedule(),
        Err(crate::check::Violation::Cycle { .. })
    ));
    r.ohci.poke_pool(eds[1], 3, 0);
    // A tail that is not the placeholder.
    r.ohci.poke_pool(eds[0], 1, 0);
    assert_eq!(
        r.ohci.check_schedule(),
        Err(crate::check::Violation::Tail { ep: 14 })
    );
}

#[test]
fn a_closed_ed_is_not_freed_before_two_frames_passed() {
    let mut r = rig();
    r.open(16, bulk_spec(1, true));
    r.ohci.close_endpoint(16);
    assert_eq!(r.ohci.usage().eds, 1);
    r.frames(1);
    assert_eq!(r.ohci.usage().eds, 1, "the controller may still look at it");
    r.frames(2);
    assert_eq!(r.ohci.usage().eds, 0);
    assert_eq!(r.take(), [Event::EndpointClosed { ep: 16 }]);
}

/// Many cycles of open, transfer, unplug in the middle, close: nothing
/// leaks.
#[test]
fn replug_cycles_leak_nothing() {
    let mut r = rig();
    for cycle in 0..100u32 {
        r.hc.attach(1, TestDevice::new());
        r.ohci.port_reset(1);
        r.take();
        r.open(20, bulk_spec(1, true));
        r.open(21, bulk_spec(2, false));
        r.ohci.submit(cycle * 4, 20, 0, buf(0), 40000);
        r.ohci.submit(cycle * 4 + 1, 21, 0, buf(40960), 3000);
        if cycle % 2 == 0 {
            r.frames(1);
        }
        r.hc.detach(1);
        r.frames(1);
        r.ohci.close_endpoint(20);
        r.ohci.close_endpoint(21);
        r.frames(3);
        let ev = r.take();
        let closed = ev
            .iter()
            .filter(|e| matches!(e, Event::EndpointClosed { .. }))
            .count();
        assert_eq!(closed, 2, "cycle {cycle}: {ev:?}");
        r.assert_idle(0);
    }
    assert_eq!(r.ohci.stats().bad_done, 0);
    assert_eq!(r.ohci.stats().out_of_order, 0);
}

/// QMP's device_add can land between the driver's read of a port and its
/// clear of the change bits: QEMU sets the connect change again (already
/// set) and the clear wipes it, so the next look at the port finds no
/// change. The plug must still be reported, after the unplug it follows.
#[test]
fn a_plug_between_the_port_read_and_its_clear_is_reported() {
    let mut r = rig();
    r.hc.attach(1, TestDevice::new());
    r.frames(1);
    assert!(r.take().contains(&Event::PortStatus {
        port: 1,
        connected: true,
        enabled: false,
        low_speed: false
    }));
    r.hc.detach(1);
    r.hc.attach_after_status_read(1, TestDevice::new());
    r.frames(3);
    let ports: Vec<Event> = r
        .take()
        .into_iter()
        .filter(|e| matches!(e, Event::PortStatus { port: 1, .. }))
        .collect();
    let status = |connected| Event::PortStatus {
        port: 1,
        connected,
        enabled: false,
        low_speed: false,
    };
    assert_eq!(ports, [status(false), status(true)]);
    assert_eq!(r.ohci.stats().lost_connect_changes, 1);
    // Nothing more to say about the port: its change bits are clear.
    r.frames(3);
    assert!(
        !r.take()
            .iter()
            .any(|e| matches!(e, Event::PortStatus { port: 1, .. }))
    );
    assert_eq!(r.ohci.stats().lost_connect_changes, 1);
}
