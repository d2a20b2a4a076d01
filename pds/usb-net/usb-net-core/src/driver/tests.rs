//! The driver against a scripted hub with QEMU's usb-net behind it, every
//! message checked by the UsbEthernet component's observer (UsbBus, its
//! pipes and EthernetController) and Lifecycle's.

use std::cell::RefCell;
use std::vec::Vec;

use dingo_protocols::{lifecycle, usb_ethernet};
use tingu_rt::{Flow, Observer as _};
use usb_bus::{BusMsg, PipeMsg, Wire};
use usb_core::fixtures::{NET_CONFIG_CDC, NET_CONFIG_RNDIS, NET_DEVICE, NET_MAC_STRING};

use super::*;

struct Mem(RefCell<Vec<u8>>);

impl Mem {
    fn new(n: usize) -> Self {
        Mem(RefCell::new(vec![0; n]))
    }
}

impl Memory for Mem {
    fn size(&self) -> u32 {
        self.0.borrow().len() as u32
    }
    fn read(&self, offset: u32, dst: &mut [u8]) {
        let o = offset as usize;
        dst.copy_from_slice(&self.0.borrow()[o..o + dst.len()]);
    }
    fn write(&self, offset: u32, src: &[u8]) {
        let o = offset as usize;
        self.0.borrow_mut()[o..o + src.len()].copy_from_slice(src);
    }
}

/// What the device sends for each control request.
struct Fake {
    device: Vec<u8>,
    configs: Vec<Vec<u8>>,
    mac: Vec<u8>,
}

impl Fake {
    fn qemu() -> Self {
        Fake {
            device: NET_DEVICE.to_vec(),
            configs: vec![NET_CONFIG_RNDIS.to_vec(), NET_CONFIG_CDC.to_vec()],
            mac: NET_MAC_STRING.to_vec(),
        }
    }
}

struct Hub {
    win: Mem,
    frames: Mem,
    fake: Fake,
    obs: usb_ethernet::Observer,
    lc: lifecycle::Observer,
    now: u64,
    /// Control requests seen: (request, value, index).
    requests: Vec<(u8, u16, u16)>,
    /// Bulk transfers waiting: (pipe, xfer, buf, len).
    bulk: Vec<(u32, u32, u32, u32)>,
    eth: Vec<EthMsg>,
    sent: Vec<Wire>,
    dead: bool,
}

impl Hub {
    fn new(fake: Fake) -> Self {
        Hub {
            win: Mem::new(WINDOW_BYTES as usize),
            frames: Mem::new(0x10000),
            fake,
            obs: usb_ethernet::Observer::new(0),
            lc: lifecycle::Observer::new(0),
            now: 0,
            requests: Vec::new(),
            bulk: Vec::new(),
            eth: Vec::new(),
            sent: Vec::new(),
            dead: false,
        }
    }

    fn deliver(&mut self, d: &mut Driver, w: Wire) {
        check(&mut self.obs, &w, Flow::Received, self.now);
        d.input(w, self.now, &self.win, &self.frames);
        self.pump(d);
    }

    fn eth_in(&mut self, d: &mut Driver, m: EthMsg) {
        self.obs.observe_eth(&m, Flow::Received, self.now).unwrap();
        d.eth(m, self.now, &self.win, &self.frames);
        self.pump(d);
    }

    fn lc_in(&mut self, d: &mut Driver, m: LcMsg) {
        self.lc
            .observe(&m, tingu_rt::Direction::In, self.now)
            .unwrap();
        d.lifecycle(m, self.now);
        self.pump(d);
    }

    fn tick(&mut self, d: &mut Driver, now: u64) {
        self.now = now;
        d.tick(now);
        self.pump(d);
    }

    fn pump(&mut self, d: &mut Driver) {
        while let Some(m) = d.take_out() {
            self.obs.observe_eth(&m, Flow::Sent, self.now).unwrap();
            self.eth.push(m);
        }
        while let Some(m) = d.take_lc() {
            self.lc
                .observe(&m, tingu_rt::Direction::Out, self.now)
                .unwrap();
        }
        let mut replies = Vec::new();
        while let Some(w) = d.session.take() {
            check(&mut self.obs, &w, Flow::Sent, self.now);
            self.sent.push(w);
            match w {
                Wire::Bus(BusMsg::OpenPipe { pipe, .. }) => replies.push(Wire::Pipe {
                    pipe,
                    msg: PipeMsg::Opened,
                }),
                Wire::Bus(BusMsg::SetConfiguration { config }) => {
                    replies.push(Wire::Bus(BusMsg::Configured { config }))
                }
                Wire::Pipe {
                    pipe: 0,
                    msg:
                        PipeMsg::Submit {
                            xfer, setup, buf, ..
                        },
                } => {
                    let s = Setup::from_u64(setup);
                    self.requests.push((s.request, s.value, s.index));
                    let data: Vec<u8> = match (s.request, (s.value >> 8) as u8) {
                        (6, descriptor::DEVICE) => self.fake.device.clone(),
                        (6, descriptor::CONFIGURATION) => {
                            match self.fake.configs.get(usize::from(s.value as u8)) {
                                Some(c) => c.clone(),
                                None => {
                                    replies.push(Wire::Pipe {
                                        pipe: 0,
                                        msg: PipeMsg::Complete {
                                            xfer,
                                            status: status::STALL,
                                            actual: 0,
                                        },
                                    });
                                    continue;
                                }
                            }
                        }
                        (6, descriptor::STRING) => self.fake.mac.clone(),
                        _ => Vec::new(),
                    };
                    let n = data.len().min(usize::from(s.length));
                    self.win.write(buf, &data[..n]);
                    replies.push(Wire::Pipe {
                        pipe: 0,
                        msg: PipeMsg::Complete {
                            xfer,
                            status: status::OK,
                            actual: n as u32,
                        },
                    });
                }
                Wire::Pipe {
                    pipe,
                    msg: PipeMsg::Submit { xfer, buf, len, .. },
                } => self.bulk.push((pipe, xfer, buf, len)),
                Wire::Pipe {
                    pipe,
                    msg: PipeMsg::Close,
                } => {
                    let st = if self.dead {
                        status::UNPLUGGED
                    } else {
                        status::ABORTED
                    };
                    let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.bulk)
                        .into_iter()
                        .partition(|b| b.0 == pipe);
                    self.bulk = keep;
                    for (p, x, _, _) in gone {
                        replies.push(Wire::Pipe {
                            pipe: p,
                            msg: PipeMsg::Complete {
                                xfer: x,
                                status: st,
                                actual: 0,
                            },
                        });
                    }
                    replies.push(Wire::Pipe {
                        pipe,
                        msg: PipeMsg::Closed,
                    });
                }
                _ => {}
            }
        }
        for r in replies {
            self.deliver(d, r);
        }
    }

    fn attach(&mut self, d: &mut Driver) {
        self.deliver(d, Wire::Bus(BusMsg::Attached { port: 2, speed: 1 }));
        self.deliver(
            d,
            Wire::Bus(BusMsg::Addressed {
                addr: 3,
                vendor: 0x0525,
                product: 0xa4a2,
                class: 2,
                subclass: 0,
                protocol: 0,
            }),
        );
    }

    fn unplug(&mut self, d: &mut Driver) {
        self.dead = true;
        self.deliver(d, Wire::Bus(BusMsg::Detached));
        for pipe in [0, 1, 2, 3] {
            self.deliver(
                d,
                Wire::Pipe {
                    pipe,
                    msg: PipeMsg::Unplugged,
                },
            );
        }
        self.dead = false;
    }

    /// The device answers the oldest bulk IN with `frame`.
    fn receive(&mut self, d: &mut Driver, frame: &[u8]) {
        let i = self
            .bulk
            .iter()
            .position(|b| b.0 == 1)
            .expect("a receive queued");
        let (pipe, xfer, buf, len) = self.bulk.remove(i);
        assert!(frame.len() <= len as usize);
        self.win.write(buf, frame);
        self.deliver(
            d,
            Wire::Pipe {
                pipe,
                msg: PipeMsg::Complete {
                    xfer,
                    status: status::OK,
                    actual: frame.len() as u32,
                },
            },
        );
    }

    /// The device takes every queued bulk OUT packet; returns their lengths.
    fn take_out(&mut self, d: &mut Driver) -> Vec<u32> {
        let (outs, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.bulk)
            .into_iter()
            .partition(|b| b.0 == 2);
        self.bulk = keep;
        let mut lens = Vec::new();
        for (pipe, xfer, _, len) in outs {
            lens.push(len);
            self.deliver(
                d,
                Wire::Pipe {
                    pipe,
                    msg: PipeMsg::Complete {
                        xfer,
                        status: status::OK,
                        actual: len,
                    },
                },
            );
        }
        lens
    }

    fn eth(&mut self) -> Vec<EthMsg> {
        std::mem::take(&mut self.eth)
    }

    /// The device answers the queued notification read with `bytes` (or
    /// completes it with `st`).
    fn notify(&mut self, d: &mut Driver, bytes: &[u8], st: u8) {
        let i = self
            .bulk
            .iter()
            .position(|b| b.0 == 3)
            .expect("a notification read queued");
        let (pipe, xfer, buf, len) = self.bulk.remove(i);
        let n = bytes.len().min(len as usize);
        self.win.write(buf, &bytes[..n]);
        self.deliver(
            d,
            Wire::Pipe {
                pipe,
                msg: PipeMsg::Complete {
                    xfer,
                    status: st,
                    actual: n as u32,
                },
            },
        );
    }

    fn notify_queued(&self) -> usize {
        self.bulk.iter().filter(|b| b.0 == 3).count()
    }
}

/// A notification from interface 0 (usb-net's control interface).
fn notification(code: u8, value: u16, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0xa1, code];
    b.extend_from_slice(&value.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(data.len() as u16).to_le_bytes());
    b.extend_from_slice(data);
    b
}

fn check(o: &mut usb_ethernet::Observer, w: &Wire, flow: Flow, now: u64) {
    let r = match w {
        Wire::Bus(m) => o.observe_usb(m, flow, now).map_err(|v| v.to_string()),
        Wire::Pipe { pipe, msg } => o
            .observe_pipes(u64::from(*pipe), msg, flow, now)
            .map_err(|v| v.to_string()),
    };
    if let Err(v) = r {
        panic!("{v}");
    }
}

/// A started, enabled driver with QEMU's device and `lend` buffers lent.
fn running(lend: u32) -> (Driver, Hub) {
    let mut d = Driver::new();
    let mut h = Hub::new(Fake::qemu());
    h.lc_in(&mut d, LcMsg::Start);
    h.attach(&mut d);
    h.eth_in(&mut d, EthMsg::Enable);
    for i in 0..lend {
        h.eth_in(
            &mut d,
            EthMsg::RxBuffer {
                buf: i * 2048,
                len: 2048,
            },
        );
    }
    (d, h)
}

#[test]
fn qemus_configurations_give_the_ecm_function() {
    let c = Config::parse(&NET_CONFIG_CDC).unwrap();
    let e = ecm_of(&c).unwrap();
    assert_eq!((e.config, e.mac_string), (1, 3));
    assert_eq!((e.data_interface, e.alternate), (1, 1));
    assert_eq!((e.bulk_in.address, e.bulk_out.address), (0x82, 0x02));
    assert_eq!(e.bulk_out.max_packet, 64);
    // RNDIS (a vendor protocol on 2/2/0xff) is not ECM.
    assert_eq!(ecm_of(&Config::parse(&NET_CONFIG_RNDIS).unwrap()), None);
}

#[test]
fn an_ecm_function_missing_a_part_is_none() {
    // No Ethernet functional descriptor: its subtype changed.
    let mut c = NET_CONFIG_CDC;
    c[30] = 0x0e;
    assert_eq!(ecm_of(&Config::parse(&c).unwrap()), None);
    // MAC string index 0.
    let mut c = NET_CONFIG_CDC;
    c[31] = 0;
    assert_eq!(ecm_of(&Config::parse(&c).unwrap()), None);
    // The bulk OUT endpoint turned into a second IN.
    let mut c = NET_CONFIG_CDC;
    c[75] = 0x83;
    assert_eq!(ecm_of(&Config::parse(&c).unwrap()), None);
}

#[test]
fn the_mac_string_is_twelve_hex_digits() {
    assert_eq!(mac_of(&NET_MAC_STRING), Some([0x40, 1, 2, 3, 4, 5]));
    let mut bad = NET_MAC_STRING;
    bad[4] = b'g';
    assert_eq!(mac_of(&bad), None);
    // Eleven digits.
    let mut short = NET_MAC_STRING.to_vec();
    short.truncate(24);
    short[0] = 24;
    assert_eq!(mac_of(&short), None);
    // Thirteen.
    let mut long = NET_MAC_STRING.to_vec();
    long.extend_from_slice(&[b'0', 0]);
    long[0] = 28;
    assert_eq!(mac_of(&long), None);
    // bLength odd.
    let mut odd = NET_MAC_STRING;
    odd[0] = 25;
    assert_eq!(mac_of(&odd), None);
}

#[test]
fn setup_finds_ecm_in_the_second_configuration_and_enables() {
    let (d, mut h) = running(0);
    // Device, then config 0's header and whole (RNDIS), config 1's, the
    // MAC string, SET_INTERFACE(1, 1).
    let reqs: Vec<_> = h.requests.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        reqs,
        [
            (6, 0x100),
            (6, 0x200),
            (6, 0x200),
            (6, 0x201),
            (6, 0x201),
            (6, 0x303),
            (11, 1)
        ]
    );
    assert_eq!(h.requests[6].2, 1, "SET_INTERFACE names the data interface");
    assert!(
        h.sent
            .contains(&Wire::Bus(BusMsg::SetConfiguration { config: 1 }))
    );
    assert_eq!(
        h.eth(),
        [
            EthMsg::MacAddress {
                mac: 0x4001_0203_0405
            },
            EthMsg::EnableComplete,
            EthMsg::LinkChange { up: true },
        ]
    );
    assert_eq!(h.bulk.iter().filter(|b| b.0 == 1).count(), RX_SLOTS);
    assert!(d.running());
}

#[test]
fn an_enable_before_the_device_waits_for_it_or_fails() {
    let mut d = Driver::new();
    let mut h = Hub::new(Fake::qemu());
    h.lc_in(&mut d, LcMsg::Start);
    h.eth_in(&mut d, EthMsg::Enable);
    assert!(h.eth().is_empty());
    h.attach(&mut d);
    assert!(h.eth().contains(&EthMsg::EnableComplete));
    // Without a device: failed after the wait.
    let mut d = Driver::new();
    let mut h = Hub::new(Fake::qemu());
    h.lc_in(&mut d, LcMsg::Start);
    h.tick(&mut d, START_WAIT_NS);
    h.eth_in(&mut d, EthMsg::Enable);
    h.tick(&mut d, START_WAIT_NS + ENABLE_WAIT_NS);
    assert_eq!(h.eth(), [EthMsg::EnableFailed { error: eth::GONE }]);
}

#[test]
fn frames_are_sent_as_full_packets_then_a_short_one() {
    let (mut d, mut h) = running(0);
    h.eth();
    for (len, parts) in [
        (60u16, vec![60u32]),
        (128, vec![128, 0]),
        (1514, vec![1472, 42]),
        (64, vec![64, 0]),
    ] {
        h.frames.write(0x8000, &vec![0xab; usize::from(len)]);
        h.eth_in(&mut d, EthMsg::TxPacket { buf: 0x8000, len });
        assert_eq!(h.eth(), [EthMsg::TxPacketDone { buf: 0x8000 }]);
        assert_eq!(h.take_out(&mut d), parts, "frame of {len}");
    }
    assert_eq!(d.stats.tx_frames, 4);
    // Bad requests are aborted, not sent.
    h.eth_in(&mut d, EthMsg::TxPacket { buf: 0, len: 1515 });
    h.eth_in(
        &mut d,
        EthMsg::TxPacket {
            buf: 0xfff0,
            len: 100,
        },
    );
    assert_eq!(
        h.eth(),
        [
            EthMsg::TxPacketAbort {
                buf: 0,
                error: eth::BAD_REQUEST
            },
            EthMsg::TxPacketAbort {
                buf: 0xfff0,
                error: eth::BAD_REQUEST
            }
        ]
    );
    assert!(h.take_out(&mut d).is_empty());
}

#[test]
fn the_frame_copied_out_is_the_clients() {
    let (mut d, mut h) = running(0);
    let frame: Vec<u8> = (0..100u8).collect();
    h.frames.write(0x4000, &frame);
    h.eth_in(
        &mut d,
        EthMsg::TxPacket {
            buf: 0x4000,
            len: 100,
        },
    );
    let (_, _, buf, len) = h.bulk.iter().copied().find(|b| b.0 == 2).unwrap();
    let mut got = vec![0; len as usize];
    h.win.read(buf, &mut got);
    assert_eq!(got, frame[..64]);
}

#[test]
fn many_transmits_wait_and_stop_the_queue_until_slots_free() {
    let (mut d, mut h) = running(0);
    h.eth();
    for i in 0..(TX_SLOTS as u32 + STOP_AT as u32) {
        h.eth_in(
            &mut d,
            EthMsg::TxPacket {
                buf: i * 128,
                len: 60,
            },
        );
    }
    let e = h.eth();
    assert_eq!(
        e.iter()
            .filter(|m| matches!(m, EthMsg::TxPacketDone { .. }))
            .count(),
        TX_SLOTS
    );
    assert_eq!(e.last(), Some(&EthMsg::TxStopQueue));
    // A transmit that crossed the stop notice waits too.
    h.eth_in(
        &mut d,
        EthMsg::TxPacket {
            buf: 0xf000,
            len: 60,
        },
    );
    let mut done = TX_SLOTS;
    let mut started = false;
    while d.waiting() > 0 {
        assert!(!h.take_out(&mut d).is_empty());
        for m in h.eth() {
            match m {
                EthMsg::TxPacketDone { .. } => done += 1,
                EthMsg::TxStartQueue => started = true,
                m => panic!("{m:?}"),
            }
        }
    }
    assert_eq!(done, TX_SLOTS + STOP_AT + 1, "every transmit done once");
    assert!(started);
}

#[test]
fn received_frames_go_into_lent_buffers_and_wait_for_one() {
    let (mut d, mut h) = running(1);
    h.eth();
    let frame: Vec<u8> = (0..200).map(|i| i as u8).collect();
    h.receive(&mut d, &frame);
    assert_eq!(h.eth(), [EthMsg::RxPacket { buf: 0, len: 200 }]);
    let mut got = vec![0; 200];
    h.frames.read(0, &mut got);
    assert_eq!(got, frame);
    // The zero-length packet after a frame of full packets is no frame.
    h.receive(&mut d, &[]);
    assert!(h.eth().is_empty());
    assert_eq!(d.stats.rx_zero_length, 1);
    // No buffer lent: the frame waits, its slot is not queued again.
    let queued = h.bulk.iter().filter(|b| b.0 == 1).count();
    h.receive(&mut d, &frame[..64]);
    assert!(h.eth().is_empty());
    assert_eq!(h.bulk.iter().filter(|b| b.0 == 1).count(), queued - 1);
    h.eth_in(
        &mut d,
        EthMsg::RxBuffer {
            buf: 0x800,
            len: 2048,
        },
    );
    assert_eq!(
        h.eth(),
        [EthMsg::RxPacket {
            buf: 0x800,
            len: 64
        }]
    );
    assert_eq!(h.bulk.iter().filter(|b| b.0 == 1).count(), queued);
    // A runt is counted and dropped.
    h.eth_in(
        &mut d,
        EthMsg::RxBuffer {
            buf: 0x1000,
            len: 2048,
        },
    );
    h.receive(&mut d, &frame[..10]);
    assert!(h.eth().is_empty());
    assert_eq!(d.stats.rx_bad_length, 1);
}

#[test]
fn unplug_takes_the_link_down_and_a_replug_brings_it_back() {
    let (mut d, mut h) = running(4);
    h.eth();
    // Slots full and more waiting when the device goes.
    for i in 0..(TX_SLOTS as u32 + 2) {
        h.eth_in(
            &mut d,
            EthMsg::TxPacket {
                buf: i * 128,
                len: 60,
            },
        );
    }
    h.eth();
    h.unplug(&mut d);
    let e = h.eth();
    assert_eq!(
        e.iter()
            .filter(|m| matches!(m, EthMsg::TxPacketAbort { .. }))
            .count(),
        2
    );
    assert_eq!(e.last(), Some(&EthMsg::LinkChange { up: false }));
    assert_eq!(h.sent.last(), Some(&Wire::Bus(BusMsg::Release)));
    assert_eq!(d.session.pipes(), 0);
    // While unplugged transmits are aborted at once.
    h.eth_in(&mut d, EthMsg::TxPacket { buf: 0, len: 60 });
    assert_eq!(
        h.eth(),
        [EthMsg::TxPacketAbort {
            buf: 0,
            error: eth::GONE
        }]
    );
    h.attach(&mut d);
    assert_eq!(h.eth(), [EthMsg::LinkChange { up: true }]);
    let notes: Vec<Note> = std::iter::from_fn(|| d.take_note()).collect();
    assert!(
        matches!(notes.last(), Some(Note::Ready { count: 2, .. })),
        "{notes:?}"
    );
    h.receive(&mut d, &[0x55; 60]);
    assert_eq!(h.eth(), [EthMsg::RxPacket { buf: 0, len: 60 }]);
    // Disable returns every lent buffer.
    h.eth_in(&mut d, EthMsg::Disable);
    let e = h.eth();
    assert_eq!(
        e.iter()
            .filter(|m| matches!(m, EthMsg::RxBufferReturn { .. }))
            .count(),
        3
    );
    assert_eq!(e.last(), Some(&EthMsg::DisableComplete));
}

#[test]
fn a_device_without_ecm_or_with_a_bad_mac_is_released() {
    for (fake, why) in [
        (
            Fake {
                device: {
                    let mut d = NET_DEVICE;
                    d[17] = 1;
                    d.to_vec()
                },
                configs: vec![NET_CONFIG_RNDIS.to_vec()],
                ..Fake::qemu()
            },
            Failure::NoEcm,
        ),
        (
            Fake {
                mac: b"\x04\x03A\x00".to_vec(),
                ..Fake::qemu()
            },
            Failure::BadMac,
        ),
    ] {
        let mut d = Driver::new();
        let mut h = Hub::new(fake);
        h.attach(&mut d);
        assert_eq!(d.take_note(), Some(Note::Failed(why)));
        assert_eq!(h.sent.last(), Some(&Wire::Bus(BusMsg::Release)));
    }
    // A device descriptor cut short.
    let mut d = Driver::new();
    let mut h = Hub::new(Fake {
        device: NET_DEVICE[..8].to_vec(),
        ..Fake::qemu()
    });
    h.attach(&mut d);
    assert!(matches!(
        d.take_note(),
        Some(Note::Failed(Failure::Descriptor(_)))
    ));
}

#[test]
fn the_notification_endpoint_is_found_and_read_without_being_needed() {
    let c = Config::parse(&NET_CONFIG_CDC).unwrap();
    let e = ecm_of(&c).unwrap();
    assert_eq!(e.control_interface, 0);
    let n = e.notify.expect("usb-net's interrupt IN 0x81");
    assert_eq!(
        (n.address, n.kind, n.max_packet, n.interval),
        (0x81, kind::INTERRUPT, 16, 32)
    );
    // Running with the link up though the device said nothing yet: one
    // read waits on the notification pipe.
    let (d, h) = running(0);
    assert!(d.running());
    assert!(h.eth.contains(&EthMsg::LinkChange { up: true }));
    assert_eq!(h.notify_queued(), 1);
    assert_eq!(d.session.pipes(), 4);
}

#[test]
fn network_connection_notifications_take_the_link_down_and_up() {
    let (mut d, mut h) = running(2);
    assert!(h.eth().contains(&EthMsg::LinkChange { up: true }));
    h.notify(&mut d, &notification(0x00, 0, &[]), status::OK);
    assert_eq!(h.eth(), [EthMsg::LinkChange { up: false }]);
    // Said again: no change to report; the read is queued again each time.
    h.notify(&mut d, &notification(0x00, 0, &[]), status::OK);
    assert_eq!(h.eth(), []);
    assert_eq!(h.notify_queued(), 1);
    // Frames still move while the link is down (the device decides).
    h.receive(&mut d, &[0x11; 60]);
    assert_eq!(h.eth(), [EthMsg::RxPacket { buf: 0, len: 60 }]);
    h.notify(&mut d, &notification(0x00, 1, &[]), status::OK);
    assert_eq!(h.eth(), [EthMsg::LinkChange { up: true }]);
    assert_eq!(d.stats.link_reports, 3);
    let notes: Vec<Note> = std::iter::from_fn(|| d.take_note()).collect();
    assert!(notes.contains(&Note::Link { up: false }) && notes.contains(&Note::Link { up: true }));
}

#[test]
fn qemus_connected_report_for_its_data_interface_is_taken_quietly() {
    let (mut d, mut h) = running(0);
    h.eth();
    while d.take_note().is_some() {}
    // What QEMU 7.2's usb-net answers each poll: NetworkConnection,
    // connected, wIndex 1 (the data interface).
    let qemu = [0xa1, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00];
    for _ in 0..5 {
        h.notify(&mut d, &qemu, status::OK);
    }
    assert_eq!((d.stats.link_reports, d.stats.bad_notifications), (5, 0));
    assert_eq!(h.eth(), []);
    assert_eq!(d.take_note(), None);
    assert_eq!(h.notify_queued(), 1);
}

#[test]
fn a_link_reported_down_stays_down_across_an_enable_until_a_replug() {
    let (mut d, mut h) = running(0);
    h.notify(&mut d, &notification(0x00, 0, &[]), status::OK);
    h.eth_in(&mut d, EthMsg::Disable);
    h.eth();
    h.eth_in(&mut d, EthMsg::Enable);
    let e = h.eth();
    assert!(e.contains(&EthMsg::EnableComplete), "{e:?}");
    assert!(
        !e.iter().any(|m| matches!(m, EthMsg::LinkChange { .. })),
        "{e:?}"
    );
    // A new device is assumed connected until it says otherwise.
    h.unplug(&mut d);
    h.eth();
    h.attach(&mut d);
    assert_eq!(h.eth(), [EthMsg::LinkChange { up: true }]);
}

#[test]
fn speed_changes_are_kept_and_bad_notifications_counted() {
    let (mut d, mut h) = running(0);
    h.eth();
    let mut rates = Vec::new();
    rates.extend_from_slice(&100_000_000u32.to_le_bytes());
    rates.extend_from_slice(&10_000_000u32.to_le_bytes());
    h.notify(&mut d, &notification(0x2a, 0, &rates), status::OK);
    assert_eq!(d.speed, Some((100_000_000, 10_000_000)));
    assert_eq!(d.stats.speed_reports, 1);
    // Short, wrong type, wrong interface, wrong lengths, a value past 1,
    // a speed change without its rates.
    let mut wrong_type = notification(0x00, 1, &[]);
    wrong_type[0] = 0x21;
    let mut other_interface = notification(0x00, 1, &[]);
    other_interface[4] = 2;
    let mut long_connection = notification(0x00, 1, &[]);
    long_connection[6] = 2;
    for bad in [
        vec![0xa1, 0x00, 1],
        wrong_type,
        other_interface,
        long_connection,
        notification(0x00, 2, &[]),
        notification(0x2a, 0, &rates[..4]),
    ] {
        h.notify(&mut d, &bad, status::OK);
    }
    assert_eq!(d.stats.bad_notifications, 6);
    // RESPONSE_AVAILABLE is valid and not ECM's business.
    h.notify(&mut d, &notification(0x01, 0, &[]), status::OK);
    assert_eq!(d.stats.other_notifications, 1);
    // None of it touched the link.
    assert_eq!(h.eth(), []);
    assert_eq!(h.notify_queued(), 1);
    // A transfer error is retried; a STALL leaves the endpoint alone and
    // the frames keep moving.
    h.notify(&mut d, &[], status::FAILED);
    assert_eq!(h.notify_queued(), 1);
    h.notify(&mut d, &[], status::STALL);
    assert_eq!(h.notify_queued(), 0);
    assert!(d.running());
    h.eth_in(&mut d, EthMsg::TxPacket { buf: 0, len: 60 });
    assert_eq!(h.eth(), [EthMsg::TxPacketDone { buf: 0 }]);
}

#[test]
fn a_device_without_a_notification_endpoint_runs_the_same() {
    // usb-net's CDC configuration without its interrupt endpoint: the
    // control interface says 0 endpoints and the descriptor goes.
    let mut cfg = NET_CONFIG_CDC.to_vec();
    let at = cfg.windows(3).position(|w| w == [7, 5, 0x81]).unwrap();
    cfg.drain(at..at + 7);
    cfg[2] = cfg.len() as u8;
    cfg[9 + 4] = 0;
    let mut fake = Fake::qemu();
    fake.configs[1] = cfg;
    let mut d = Driver::new();
    let mut h = Hub::new(fake);
    h.lc_in(&mut d, LcMsg::Start);
    h.attach(&mut d);
    h.eth_in(&mut d, EthMsg::Enable);
    assert!(d.running());
    assert!(h.eth().contains(&EthMsg::LinkChange { up: true }));
    assert_eq!(h.notify_queued(), 0);
    assert_eq!(d.session.pipes(), 3);
}
