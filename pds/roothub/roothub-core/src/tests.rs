//! The hub core against a fake host controller (the UsbRootPorts and
//! UsbHostController protocols' provider side, with devices behind it that
//! answer control transfers from QEMU's descriptors or malformed ones). Every message in
//! both directions is also checked by the observers of both ends: the
//! RootHub component on the hub's side, the class driver's component on
//! the other.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use dingo_protocols::{root_hub, usb_host_controller as hc, usb_root_ports as rp, usb_storage};
use tingu_rt::{Direction, Flow, Observer as _};
use usb_core::fixtures::*;
use usb_core::setup::{Setup, descriptor, request};

use super::*;
use std::vec::Vec;

#[derive(Clone)]
struct Mem(Rc<RefCell<Vec<u8>>>);

impl HubMemory for Mem {
    fn size(&self) -> usize {
        self.0.borrow().len()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        dst.copy_from_slice(&self.0.borrow()[offset..offset + dst.len()]);
    }
}

/// How a fake device misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Quirk {
    None,
    /// Never answers a control transfer (NAKs forever).
    NakForever,
    /// STALLs every GET_DESCRIPTOR.
    StallDescriptors,
}

#[derive(Clone)]
struct FakeDevice {
    device: Vec<u8>,
    configs: Vec<Vec<u8>>,
    addr: u8,
    quirk: Quirk,
}

fn kbd() -> FakeDevice {
    FakeDevice {
        device: KBD_DEVICE.to_vec(),
        configs: vec![KBD_CONFIG.to_vec()],
        addr: 0,
        quirk: Quirk::None,
    }
}

fn disk() -> FakeDevice {
    FakeDevice {
        device: STORAGE_DEVICE.to_vec(),
        configs: vec![STORAGE_CONFIG.to_vec()],
        addr: 0,
        quirk: Quirk::None,
    }
}

fn net() -> FakeDevice {
    FakeDevice {
        device: NET_DEVICE.to_vec(),
        configs: vec![NET_CONFIG_RNDIS.to_vec(), NET_CONFIG_CDC.to_vec()],
        addr: 0,
        quirk: Quirk::None,
    }
}

#[derive(Clone, Copy, Debug)]
struct Ep {
    addr: u8,
    endpoint: u8,
    kind: u8,
}

/// The controller's side: endpoints, pending transfers, the devices.
struct FakeHc {
    hub_mem: Rc<RefCell<Vec<u8>>>,
    ports: Vec<Option<FakeDevice>>,
    eps: BTreeMap<u16, Ep>,
    /// Transfers the fake leaves pending: (xfer, ep).
    pending: Vec<(u32, u16)>,
    /// Every submit of a class driver's pipe: (xfer, ep, setup, buf, len).
    submits: Vec<(u32, u16, u64, u32, u32)>,
    toggles: Vec<u16>,
    disabled: Vec<u8>,
    addresses_set: Vec<u8>,
}

impl FakeHc {
    fn device_at(&mut self, addr: u8) -> Option<&mut FakeDevice> {
        self.ports.iter_mut().flatten().find(|d| d.addr == addr)
    }

    fn handle_ports(&mut self, m: PortsMsg, out: &mut Vec<PortsMsg>) {
        match m {
            PortsMsg::PortReset { port } => {
                let ok = match self.ports[usize::from(port)].as_mut() {
                    Some(d) => {
                        d.addr = 0;
                        true
                    }
                    None => false,
                };
                out.push(PortsMsg::PortResetDone { port, ok });
            }
            PortsMsg::PortDisable { port } => self.disabled.push(port),
            _ => panic!("the hub sent {m:?}"),
        }
    }

    fn handle(&mut self, m: HcMsg, out: &mut Vec<HcMsg>) {
        match m {
            HcMsg::OpenEndpoint {
                ep,
                addr,
                endpoint,
                kind,
                ..
            } => {
                self.eps.insert(
                    ep,
                    Ep {
                        addr,
                        endpoint,
                        kind,
                    },
                );
                out.push(HcMsg::EndpointOpened { ep });
            }
            HcMsg::Submit {
                xfer,
                ep,
                setup,
                buf,
                len,
            } => {
                let Some(e) = self.eps.get(&ep).copied() else {
                    out.push(HcMsg::Complete {
                        xfer,
                        status: status::FAILED,
                        actual: 0,
                    });
                    return;
                };
                if e.kind != kind::CONTROL || window::split(buf).0 != 0 && setup != 0 {
                    self.submits.push((xfer, ep, setup, buf, len));
                    if e.kind != kind::CONTROL {
                        self.pending.push((xfer, ep));
                        return;
                    }
                }
                let mem = self.hub_mem.clone();
                let Some(d) = self.device_at(e.addr) else {
                    // No device there: QEMU leaves the TD forever.
                    self.pending.push((xfer, ep));
                    return;
                };
                if d.quirk == Quirk::NakForever {
                    self.pending.push((xfer, ep));
                    return;
                }
                let s = Setup::from_u64(setup);
                let data: Option<Vec<u8>> = match (s.request, (s.value >> 8) as u8) {
                    (request::GET_DESCRIPTOR, _) if d.quirk == Quirk::StallDescriptors => None,
                    (request::GET_DESCRIPTOR, descriptor::DEVICE) => Some(d.device.clone()),
                    (request::GET_DESCRIPTOR, descriptor::CONFIGURATION) => {
                        d.configs.get(usize::from(s.value as u8)).cloned()
                    }
                    (request::SET_ADDRESS, _) => {
                        d.addr = s.value as u8;
                        self.addresses_set.push(s.value as u8);
                        Some(Vec::new())
                    }
                    (request::GET_DESCRIPTOR, _) => None,
                    _ => Some(Vec::new()),
                };
                match data {
                    None => out.push(HcMsg::Complete {
                        xfer,
                        status: status::STALL,
                        actual: 0,
                    }),
                    Some(bytes) => {
                        let n = bytes.len().min(len as usize);
                        let (w, off) = window::split(buf);
                        if w == 0 && n > 0 {
                            mem.borrow_mut()[off as usize..off as usize + n]
                                .copy_from_slice(&bytes[..n]);
                        }
                        out.push(HcMsg::Complete {
                            xfer,
                            status: status::OK,
                            actual: n as u32,
                        });
                    }
                }
            }
            HcMsg::ResetToggle { ep } => self.toggles.push(ep),
            HcMsg::AbortEndpoint { ep } => {
                self.flush(ep, out);
                out.push(HcMsg::EndpointAborted { ep });
            }
            HcMsg::CloseEndpoint { ep } => {
                self.flush(ep, out);
                self.eps.remove(&ep);
                out.push(HcMsg::EndpointClosed { ep });
            }
            m => panic!("the hub sent the controller's message {m}"),
        }
    }

    fn flush(&mut self, ep: u16, out: &mut Vec<HcMsg>) {
        let (gone, keep): (Vec<_>, Vec<_>) = self.pending.iter().partition(|(_, e)| *e == ep);
        self.pending = keep;
        for (xfer, _) in gone {
            out.push(HcMsg::Complete {
                xfer,
                status: status::ABORTED,
                actual: 0,
            });
        }
    }
}

/// A class driver's end of its bus port, as the test plays it: every
/// message checked by the driver's component observer.
struct Driver {
    obs: usb_storage::Observer,
    got: Vec<Wire>,
}

fn observe_driver(o: &mut usb_storage::Observer, w: &Wire, flow: Flow, now: u64) {
    let r = match w {
        Wire::Bus(m) => o.observe_usb(m, flow, now).map_err(|v| v.to_string()),
        Wire::Pipe { pipe, msg } => o
            .observe_pipes(u64::from(*pipe), msg, flow, now)
            .map_err(|v| v.to_string()),
    };
    if let Err(v) = r {
        panic!("class driver's observer: {v}");
    }
}

fn observe_hub_bus(o: &mut root_hub::Observer, bus: usize, w: &Wire, flow: Flow, now: u64) {
    let r = match (bus, w) {
        (0, Wire::Bus(m)) => o.observe_bus0(m, flow, now).map_err(|v| v.to_string()),
        (1, Wire::Bus(m)) => o.observe_bus1(m, flow, now).map_err(|v| v.to_string()),
        (2, Wire::Bus(m)) => o.observe_bus2(m, flow, now).map_err(|v| v.to_string()),
        (0, Wire::Pipe { pipe, msg }) => o
            .observe_pipes0(u64::from(*pipe), msg, flow, now)
            .map_err(|v| v.to_string()),
        (1, Wire::Pipe { pipe, msg }) => o
            .observe_pipes1(u64::from(*pipe), msg, flow, now)
            .map_err(|v| v.to_string()),
        (2, Wire::Pipe { pipe, msg }) => o
            .observe_pipes2(u64::from(*pipe), msg, flow, now)
            .map_err(|v| v.to_string()),
        _ => unreachable!(),
    };
    if let Err(v) = r {
        panic!("hub's observer: {v}");
    }
}

struct Rig {
    hub: Hub<Mem>,
    hc: FakeHc,
    obs: root_hub::Observer,
    hc_obs: hc::Observer,
    ports_obs: rp::Observer,
    drivers: Vec<Driver>,
    notes: Vec<Note>,
    now: u64,
}

const KBD_BUS: usize = 0;
const DISK_BUS: usize = 1;
const NET_BUS: usize = 2;

fn rig() -> Rig {
    let mem = Rc::new(RefCell::new(vec![0u8; 4096]));
    let bus = |name, rule, window| {
        Some(BusConfig {
            name,
            rule: Rule::decode(rule).unwrap(),
            window,
        })
    };
    let cfg = HubConfig {
        buses: [
            bus("usb-kbd", 0x2_0003_0101, 1),
            bus("usb-storage", 0x2_0008_0650, 2),
            bus("usb-net", 0x1_0525_a4a2, 3),
            None,
        ],
        window: 0,
    };
    Rig {
        hub: Hub::new(Mem(mem.clone()), cfg, 3),
        hc: FakeHc {
            hub_mem: mem,
            ports: vec![None, None, None],
            eps: BTreeMap::new(),
            pending: Vec::new(),
            submits: Vec::new(),
            toggles: Vec::new(),
            disabled: Vec::new(),
            addresses_set: Vec::new(),
        },
        obs: root_hub::Observer::new(0),
        hc_obs: hc::Observer::new(0),
        ports_obs: rp::Observer::new(0),
        drivers: (0..3)
            .map(|_| Driver {
                obs: usb_storage::Observer::new(0),
                got: Vec::new(),
            })
            .collect(),
        notes: Vec::new(),
        now: 0,
    }
}

impl Rig {
    /// Moves messages until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(m) = self.hub.take_ports() {
                moved = true;
                self.obs.observe_ports(&m, Flow::Sent, self.now).unwrap();
                self.ports_obs.observe(&m, Direction::In, self.now).unwrap();
                let mut out = Vec::new();
                self.hc.handle_ports(m, &mut out);
                for r in out {
                    self.ports_obs
                        .observe(&r, Direction::Out, self.now)
                        .unwrap();
                    self.obs
                        .observe_ports(&r, Flow::Received, self.now)
                        .unwrap();
                    self.hub.ports_message(r, self.now);
                }
            }
            while let Some(m) = self.hub.take_hc() {
                moved = true;
                // The hub is the mirror side of UsbHostController.
                self.obs.observe_hc(&m, Flow::Sent, self.now).unwrap();
                self.hc_obs.observe(&m, Direction::In, self.now).unwrap();
                let mut out = Vec::new();
                self.hc.handle(m, &mut out);
                for r in out {
                    self.hc_obs.observe(&r, Direction::Out, self.now).unwrap();
                    self.obs.observe_hc(&r, Flow::Received, self.now).unwrap();
                    self.hub.hc_message(r, self.now);
                }
            }
            let mut closes = Vec::new();
            for b in 0..3 {
                while let Some(w) = self.hub.take_bus(b) {
                    moved = true;
                    observe_hub_bus(&mut self.obs, b, &w, Flow::Sent, self.now);
                    observe_driver(&mut self.drivers[b].obs, &w, Flow::Received, self.now);
                    // A driver answers `unplugged` with `close`.
                    if let Wire::Pipe {
                        pipe,
                        msg: PipeMsg::Unplugged,
                    } = w
                    {
                        closes.push((b, pipe));
                    }
                    self.drivers[b].got.push(w);
                }
            }
            for (b, pipe) in closes {
                let w = Wire::Pipe {
                    pipe,
                    msg: PipeMsg::Close,
                };
                observe_driver(&mut self.drivers[b].obs, &w, Flow::Sent, self.now);
                observe_hub_bus(&mut self.obs, b, &w, Flow::Received, self.now);
                self.hub.bus_message(b, w, self.now);
            }
            while let Some(n) = self.hub.take_note() {
                self.notes.push(n);
            }
            if !moved {
                return;
            }
        }
    }

    fn send_hub(&mut self, bus: usize, w: Wire) {
        observe_driver(&mut self.drivers[bus].obs, &w, Flow::Sent, self.now);
        observe_hub_bus(&mut self.obs, bus, &w, Flow::Received, self.now);
        self.hub.bus_message(bus, w, self.now);
        self.pump();
    }

    fn recv_ports(&mut self, m: PortsMsg) {
        self.ports_obs
            .observe(&m, Direction::Out, self.now)
            .unwrap();
        self.obs
            .observe_ports(&m, Flow::Received, self.now)
            .unwrap();
        self.hub.ports_message(m, self.now);
        self.pump();
    }

    fn recv_hc(&mut self, m: HcMsg) {
        self.hc_obs.observe(&m, Direction::Out, self.now).unwrap();
        self.obs.observe_hc(&m, Flow::Received, self.now).unwrap();
        self.hub.hc_message(m, self.now);
        self.pump();
    }

    /// Advances time in 1 ms steps.
    fn run_ms(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += MS;
            self.hub.tick(self.now);
            self.pump();
        }
    }

    fn plug(&mut self, port: u8, d: FakeDevice) {
        self.hc.ports[usize::from(port)] = Some(d);
        self.recv_ports(PortsMsg::PortStatus {
            port,
            connected: true,
            enabled: false,
            low_speed: false,
        });
    }

    fn unplug(&mut self, port: u8) {
        self.hc.ports[usize::from(port)] = None;
        self.recv_ports(PortsMsg::PortStatus {
            port,
            connected: false,
            enabled: false,
            low_speed: false,
        });
    }

    fn got(&mut self, bus: usize) -> Vec<Wire> {
        std::mem::take(&mut self.drivers[bus].got)
    }

    fn notes(&mut self) -> Vec<Note> {
        std::mem::take(&mut self.notes)
    }

    /// Configures the bound device of `bus` and opens `pipe` on endpoint.
    fn configure(&mut self, bus: usize, config: u8) {
        self.send_hub(bus, Wire::Bus(BusMsg::SetConfiguration { config }));
        let got = self.got(bus);
        assert_eq!(got, [Wire::Bus(BusMsg::Configured { config })]);
    }

    fn open(
        &mut self,
        bus: usize,
        pipe: u32,
        endpoint: u8,
        kind: u8,
        max_packet: u16,
    ) -> Vec<Wire> {
        self.send_hub(
            bus,
            Wire::Bus(BusMsg::OpenPipe {
                pipe,
                endpoint,
                kind,
                max_packet,
                interval: 10,
            }),
        );
        self.got(bus)
    }
}

fn opened(pipe: u32) -> Wire {
    Wire::Pipe {
        pipe,
        msg: PipeMsg::Opened,
    }
}

#[test]
fn a_keyboard_is_debounced_reset_enumerated_and_bound() {
    let mut r = rig();
    r.plug(0, kbd());
    r.run_ms(99);
    assert!(
        r.hc.addresses_set.is_empty(),
        "nothing before the 100 ms debounce"
    );
    r.run_ms(1 + 50 + 10);
    r.run_ms(20);
    assert_eq!(r.hc.addresses_set, [1]);
    let notes = r.notes();
    assert!(
        notes.contains(&Note::Enumerated {
            port: 0,
            speed: speed::FULL,
            addr: 1,
            vendor: 0x0627,
            product: 1,
            class: (0, 0, 0)
        }),
        "{notes:?}"
    );
    assert!(notes.contains(&Note::Bound {
        addr: 1,
        bus: KBD_BUS,
        name: "usb-kbd",
        class: (3, 1, 1)
    }));
    assert_eq!(
        r.got(KBD_BUS),
        [
            Wire::Bus(BusMsg::Attached { port: 0, speed: 1 }),
            Wire::Bus(BusMsg::Addressed {
                addr: 1,
                vendor: 0x0627,
                product: 1,
                class: 3,
                subclass: 1,
                protocol: 1
            })
        ]
    );
    r.configure(KBD_BUS, 1);
    assert_eq!(r.open(KBD_BUS, 5, 0x81, kind::INTERRUPT, 8), [opened(5)]);
    // A report buffer at offset 0x40 of the driver's window (window 1).
    r.send_hub(
        KBD_BUS,
        Wire::Pipe {
            pipe: 5,
            msg: PipeMsg::Submit {
                xfer: 77,
                setup: 0,
                buf: 0x40,
                len: 8,
            },
        },
    );
    let (hx, hep, _, hbuf, hlen) = *r.hc.submits.last().unwrap();
    assert_eq!((hbuf, hlen), (window::address(1, 0x40).unwrap(), 8));
    assert_eq!(r.hc.eps[&hep].endpoint, 1);
    r.hc.pending.retain(|p| p.0 != hx);
    r.recv_hc(HcMsg::Complete {
        xfer: hx,
        status: status::OK,
        actual: 8,
    });
    assert_eq!(
        r.got(KBD_BUS),
        [Wire::Pipe {
            pipe: 5,
            msg: PipeMsg::Complete {
                xfer: 77,
                status: status::OK,
                actual: 8
            }
        }]
    );
    assert_eq!(r.hub.usage().addresses, 1);
}

#[test]
fn a_connection_that_flaps_restarts_the_debounce() {
    let mut r = rig();
    r.plug(1, disk());
    r.run_ms(60);
    r.unplug(1);
    r.run_ms(10);
    r.plug(1, disk());
    r.run_ms(90);
    assert!(r.hc.addresses_set.is_empty());
    r.run_ms(100);
    assert_eq!(r.hc.addresses_set, [1]);
    assert_eq!(r.got(DISK_BUS).len(), 2, "attached and addressed");
}

#[test]
fn all_three_devices_one_at_a_time_and_bound_by_rule() {
    let mut r = rig();
    r.plug(0, kbd());
    r.plug(1, disk());
    r.plug(2, net());
    r.run_ms(400);
    assert_eq!(r.hc.addresses_set, [1, 2, 3]);
    for (bus, vendor) in [(KBD_BUS, 0x0627), (DISK_BUS, 0x46f4), (NET_BUS, 0x0525)] {
        let got = r.got(bus);
        assert!(
            matches!(got[1], Wire::Bus(BusMsg::Addressed { vendor: v, .. }) if v == vendor),
            "{got:?}"
        );
    }
    // usb-net: configuration value 1 (CDC) is its second descriptor.
    r.configure(NET_BUS, 1);
    assert_eq!(r.open(NET_BUS, 1, 0x82, kind::BULK, 64), [opened(1)]);
    assert_eq!(r.open(NET_BUS, 2, 0x02, kind::BULK, 64), [opened(2)]);
    // A configuration the device does not have.
    r.send_hub(NET_BUS, Wire::Bus(BusMsg::SetConfiguration { config: 9 }));
    assert!(matches!(
        r.got(NET_BUS)[..],
        [Wire::Bus(BusMsg::ConfigFailed { config: 9, .. })]
    ));
}

fn enumeration_fails_twice(r: &mut Rig, port: u8) -> Vec<Failure> {
    r.run_ms(1500);
    let fails: Vec<Failure> = r
        .notes()
        .into_iter()
        .filter_map(|n| match n {
            Note::Failed { port: p, why, .. } if p == port => Some(why),
            _ => None,
        })
        .collect();
    assert_eq!(fails.len(), usize::from(ATTEMPTS), "{fails:?}");
    assert_eq!(r.hc.disabled, [port]);
    assert_eq!(r.hub.usage(), Usage::default(), "nothing kept");
    assert!(r.hc.eps.is_empty());
    fails
}

#[test]
fn a_descriptor_of_length_zero_fails_the_enumeration() {
    let mut r = rig();
    let mut d = disk();
    d.configs[0][18] = 0;
    r.plug(1, d);
    let why = enumeration_fails_twice(&mut r, 1);
    assert!(
        matches!(why[0], Failure::Descriptor { error, .. } if error.field == "bLength" && error.value == 0),
        "{why:?}"
    );
    assert!(r.got(DISK_BUS).is_empty());
}

#[test]
fn a_total_length_past_the_buffer_fails_the_enumeration() {
    let mut r = rig();
    let mut d = kbd();
    // The header claims 900 bytes; the device sends its 34.
    d.configs[0][2] = (900 & 0xff) as u8;
    d.configs[0][3] = (900 >> 8) as u8;
    r.plug(0, d);
    let why = enumeration_fails_twice(&mut r, 0);
    assert!(
        matches!(
            why[0],
            Failure::Short {
                got: 34,
                want: 900,
                ..
            }
        ),
        "{why:?}"
    );
    // Longer than the hub keeps: refused before it is read.
    let mut r = rig();
    let mut d = kbd();
    d.configs[0][2] = 0xff;
    d.configs[0][3] = 0x7f;
    r.plug(0, d);
    let why = enumeration_fails_twice(&mut r, 0);
    assert!(
        matches!(why[0], Failure::ConfigurationTooLong(0x7fff)),
        "{why:?}"
    );
}

#[test]
fn max_packet_zero_fails_the_enumeration() {
    let mut r = rig();
    let mut d = kbd();
    d.device[7] = 0;
    r.plug(0, d);
    let why = enumeration_fails_twice(&mut r, 0);
    assert!(
        matches!(why[0], Failure::Descriptor { error, .. } if error.field == "bMaxPacketSize0"),
        "{why:?}"
    );
    let mut r = rig();
    let mut d = disk();
    d.configs[0][22] = 0;
    r.plug(1, d);
    let why = enumeration_fails_twice(&mut r, 1);
    assert!(
        matches!(why[0], Failure::Descriptor { error, .. } if error.field == "wMaxPacketSize"),
        "{why:?}"
    );
}

#[test]
fn a_device_that_naks_forever_is_given_up_on() {
    let mut r = rig();
    let mut d = kbd();
    d.quirk = Quirk::NakForever;
    r.plug(0, d);
    let why = enumeration_fails_twice(&mut r, 0);
    assert_eq!(
        why[0],
        Failure::Transfer {
            step: "device descriptor (8 bytes)",
            status: status::ABORTED
        }
    );
    assert!(why[0].to_string().contains("no answer within 500 ms"));
}

#[test]
fn a_stall_fails_the_enumeration() {
    let mut r = rig();
    let mut d = disk();
    d.quirk = Quirk::StallDescriptors;
    r.plug(1, d);
    let why = enumeration_fails_twice(&mut r, 1);
    assert!(matches!(why[0], Failure::Transfer { status: s, .. } if s == status::STALL));
    // The port is good again once it reports a new connection.
    r.unplug(1);
    r.plug(1, disk());
    r.run_ms(300);
    assert_eq!(r.got(DISK_BUS).len(), 2);
}

#[test]
fn unplug_during_a_transfer_takes_the_protocols_unplug_path() {
    let mut r = rig();
    r.plug(1, disk());
    r.run_ms(300);
    r.got(DISK_BUS);
    r.configure(DISK_BUS, 1);
    assert_eq!(r.open(DISK_BUS, 1, 0x81, kind::BULK, 64), [opened(1)]);
    assert_eq!(r.open(DISK_BUS, 2, 0x02, kind::BULK, 64), [opened(2)]);
    for (pipe, xfer) in [(1, 10), (1, 11), (2, 12)] {
        r.send_hub(
            DISK_BUS,
            Wire::Pipe {
                pipe,
                msg: PipeMsg::Submit {
                    xfer,
                    setup: 0,
                    buf: 0,
                    len: 4096,
                },
            },
        );
    }
    r.unplug(1);
    let got = r.got(DISK_BUS);
    assert_eq!(got[0], Wire::Bus(BusMsg::Detached));
    let count = |m: &dyn Fn(&Wire) -> bool| got.iter().filter(|w| m(w)).count();
    assert_eq!(
        count(&|w| matches!(
            w,
            Wire::Pipe {
                msg: PipeMsg::Unplugged,
                ..
            }
        )),
        2
    );
    assert_eq!(
        count(
            &|w| matches!(w, Wire::Pipe { msg: PipeMsg::Complete { status: s, .. }, .. } if *s == status::UNPLUGGED)
        ),
        3
    );
    assert_eq!(
        count(&|w| matches!(
            w,
            Wire::Pipe {
                msg: PipeMsg::Closed,
                ..
            }
        )),
        2
    );
    assert_eq!(
        r.hub.usage(),
        Usage::default(),
        "address, handles, transfers freed"
    );
    // A submit that crossed the unplug notice... the pipe is closed now, so
    // it is the driver's observer that would have refused it. The driver
    // releases the device; the port takes the next one.
    r.send_hub(DISK_BUS, Wire::Bus(BusMsg::Release));
    r.plug(1, disk());
    r.run_ms(300);
    assert_eq!(r.hc.addresses_set, [1, 1], "the address is recycled");
    assert_eq!(r.got(DISK_BUS).len(), 2);
    assert_eq!(r.hub.stats().detached, 1);
}

#[test]
fn the_hubs_requests_are_refused_on_a_control_pipe_and_halts_reset_toggles() {
    let mut r = rig();
    r.plug(1, disk());
    r.run_ms(300);
    r.got(DISK_BUS);
    r.configure(DISK_BUS, 1);
    assert_eq!(r.open(DISK_BUS, 0, 0, kind::CONTROL, 8), [opened(0)]);
    assert_eq!(r.open(DISK_BUS, 1, 0x81, kind::BULK, 64), [opened(1)]);
    let control = |xfer, s: Setup| Wire::Pipe {
        pipe: 0,
        msg: PipeMsg::Submit {
            xfer,
            setup: s.to_u64(),
            buf: 0,
            len: 0,
        },
    };
    r.send_hub(DISK_BUS, control(1, Setup::set_address(9)));
    r.send_hub(DISK_BUS, control(2, Setup::set_configuration(1)));
    let got = r.got(DISK_BUS);
    assert!(got.iter().all(|w| matches!(w, Wire::Pipe { msg: PipeMsg::Complete { status: s, .. }, .. } if *s == status::FAILED)), "{got:?}");
    assert_eq!(got.len(), 2);
    assert!(r.notes().iter().any(|n| matches!(
        n,
        Note::Refused {
            why: Refusal::Request { request: 5 },
            ..
        }
    )));
    // CLEAR_FEATURE(ENDPOINT_HALT) on 0x81: the controller's toggle too.
    r.send_hub(DISK_BUS, control(3, Setup::clear_halt(0x81)));
    assert!(matches!(
        r.got(DISK_BUS)[..],
        [Wire::Pipe {
            msg: PipeMsg::Complete {
                xfer: 3,
                status: 0,
                ..
            },
            ..
        }]
    ));
    let bulk_in =
        r.hc.eps
            .iter()
            .find(|(_, e)| e.endpoint == 1)
            .map(|(h, _)| *h)
            .unwrap();
    assert_eq!(r.hc.toggles, [bulk_in]);
    // An endpoint the configuration does not have; a larger max packet.
    let got = r.open(DISK_BUS, 2, 0x83, kind::BULK, 64);
    assert!(
        matches!(
            got[..],
            [Wire::Pipe {
                pipe: 2,
                msg: PipeMsg::OpenFailed { .. }
            }]
        ),
        "{got:?}"
    );
    assert!(matches!(
        r.open(DISK_BUS, 2, 0x02, kind::BULK, 512)[..],
        [Wire::Pipe {
            pipe: 2,
            msg: PipeMsg::OpenFailed { .. }
        }]
    ));
    // A buffer beyond the window's addressing.
    r.send_hub(
        DISK_BUS,
        Wire::Pipe {
            pipe: 1,
            msg: PipeMsg::Submit {
                xfer: 4,
                setup: 0,
                buf: 0x00ff_ff00,
                len: 0x200,
            },
        },
    );
    assert!(
        matches!(r.got(DISK_BUS)[..], [Wire::Pipe { msg: PipeMsg::Complete { xfer: 4, status: s, .. }, .. }] if s == status::FAILED)
    );
}

#[test]
fn a_controller_reset_unplugs_everything_and_ports_come_back() {
    let mut r = rig();
    r.plug(0, kbd());
    r.plug(1, disk());
    r.run_ms(300);
    r.got(KBD_BUS);
    r.got(DISK_BUS);
    r.configure(DISK_BUS, 1);
    assert_eq!(r.open(DISK_BUS, 1, 0x81, kind::BULK, 64), [opened(1)]);
    r.send_hub(
        DISK_BUS,
        Wire::Pipe {
            pipe: 1,
            msg: PipeMsg::Submit {
                xfer: 9,
                setup: 0,
                buf: 0,
                len: 512,
            },
        },
    );
    // The controller died: it completes everything ABORTED, then says so.
    let mut out = Vec::new();
    for (x, _) in std::mem::take(&mut r.hc.pending) {
        out.push(HcMsg::Complete {
            xfer: x,
            status: status::ABORTED,
            actual: 0,
        });
    }
    r.hc.eps.clear();
    for m in out {
        r.recv_hc(m);
    }
    r.recv_hc(HcMsg::ControllerReset { error: 1 });
    let got = r.got(DISK_BUS);
    assert!(got.contains(&Wire::Bus(BusMsg::Detached)), "{got:?}");
    assert!(got.contains(&Wire::Pipe {
        pipe: 1,
        msg: PipeMsg::Closed
    }));
    assert!(r.got(KBD_BUS).contains(&Wire::Bus(BusMsg::Detached)));
    assert_eq!(r.hub.usage(), Usage::default());
    r.send_hub(KBD_BUS, Wire::Bus(BusMsg::Release));
    r.send_hub(DISK_BUS, Wire::Bus(BusMsg::Release));
    for p in 0..2 {
        if let Some(d) = r.hc.ports[p].as_mut() {
            d.addr = 0;
        }
        r.recv_ports(PortsMsg::PortStatus {
            port: p as u8,
            connected: true,
            enabled: false,
            low_speed: false,
        });
    }
    r.run_ms(400);
    assert_eq!(r.got(KBD_BUS).len(), 2);
    assert_eq!(r.got(DISK_BUS).len(), 2);
}

#[test]
fn port_reports_that_overtake_a_controller_reset_are_not_lost() {
    let mut r = rig();
    r.plug(0, kbd());
    r.run_ms(300);
    assert_eq!(r.got(KBD_BUS).len(), 2);
    // After re-initialising, the controller reports the port (on the ports
    // ring) before the hub reads the reset notice (on the other).
    r.hc.eps.clear();
    if let Some(d) = r.hc.ports[0].as_mut() {
        d.addr = 0;
    }
    r.recv_ports(PortsMsg::PortStatus {
        port: 0,
        connected: true,
        enabled: false,
        low_speed: false,
    });
    r.recv_hc(HcMsg::ControllerReset { error: 1 });
    assert!(r.got(KBD_BUS).contains(&Wire::Bus(BusMsg::Detached)));
    r.send_hub(KBD_BUS, Wire::Bus(BusMsg::Release));
    r.run_ms(300);
    assert_eq!(r.got(KBD_BUS).len(), 2, "the keyboard is attached again");
    assert_eq!(r.hub.stats().attached, 2);
}

#[test]
fn a_hundred_replug_cycles_leak_nothing() {
    let mut r = rig();
    for cycle in 0..100 {
        r.plug(0, kbd());
        r.run_ms(200);
        let got = r.got(KBD_BUS);
        assert_eq!(got.len(), 2, "cycle {cycle}: {got:?}");
        r.configure(KBD_BUS, 1);
        assert_eq!(r.open(KBD_BUS, 1, 0x81, kind::INTERRUPT, 8), [opened(1)]);
        r.send_hub(
            KBD_BUS,
            Wire::Pipe {
                pipe: 1,
                msg: PipeMsg::Submit {
                    xfer: cycle,
                    setup: 0,
                    buf: 0,
                    len: 8,
                },
            },
        );
        // Unplug half the time during enumeration of the next, half with
        // the report pending.
        r.unplug(0);
        let got = r.got(KBD_BUS);
        assert_eq!(
            got.iter()
                .filter(|w| **w == Wire::Bus(BusMsg::Detached))
                .count(),
            1
        );
        r.send_hub(KBD_BUS, Wire::Bus(BusMsg::Release));
        assert_eq!(r.hub.usage(), Usage::default(), "cycle {cycle}");
        if cycle % 2 == 1 {
            // Gone in the middle of enumeration.
            r.plug(0, kbd());
            r.run_ms(130);
            r.unplug(0);
            r.run_ms(5);
            assert_eq!(
                r.hub.usage(),
                Usage::default(),
                "cycle {cycle} mid-enumeration"
            );
        }
    }
    let s = r.hub.stats();
    assert_eq!((s.attached, s.detached), (100, 100));
    assert_eq!(r.hub.next_deadline(), None);
}

#[test]
fn an_unplug_and_replug_seen_as_one_change_is_both() {
    let mut r = rig();
    r.plug(1, disk());
    r.run_ms(300);
    r.got(DISK_BUS);
    // The controller saw the port once: connected, no longer enabled.
    r.hc.ports[1] = Some(disk());
    r.recv_ports(PortsMsg::PortStatus {
        port: 1,
        connected: true,
        enabled: false,
        low_speed: false,
    });
    assert_eq!(r.got(DISK_BUS), [Wire::Bus(BusMsg::Detached)]);
    r.send_hub(DISK_BUS, Wire::Bus(BusMsg::Release));
    r.run_ms(300);
    assert_eq!(r.got(DISK_BUS).len(), 2, "the new device is attached");
    assert_eq!(r.hub.stats().detached, 1);
}

#[test]
fn a_driver_that_lets_a_device_go_is_answered_detached_and_not_offered_it_again() {
    let mut r = rig();
    r.plug(1, disk());
    r.run_ms(300);
    r.got(DISK_BUS);
    r.send_hub(DISK_BUS, Wire::Bus(BusMsg::Release));
    assert_eq!(r.got(DISK_BUS), [Wire::Bus(BusMsg::Detached)]);
    r.run_ms(300);
    assert!(r.got(DISK_BUS).is_empty(), "not attached again");
    assert_eq!(r.hub.usage().addresses, 1, "the device stays addressed");
    // Unplugged and plugged again: a new device, offered again.
    r.unplug(1);
    assert!(
        r.got(DISK_BUS).is_empty(),
        "no second detach for the released one"
    );
    r.plug(1, disk());
    r.run_ms(300);
    assert_eq!(r.got(DISK_BUS).len(), 2);
}

impl Rig {
    /// The monitor restarted the class driver of `bus`: a fresh instance
    /// (a fresh observer at its end), the hub's port observer started over
    /// (as the PD's port does on the new session), then the hub is told.
    fn restart_driver(&mut self, bus: usize) {
        self.drivers[bus].obs = usb_storage::Observer::new(self.now);
        self.drivers[bus].got.clear();
        match bus {
            KBD_BUS => self.obs.restart_bus0(self.now),
            DISK_BUS => self.obs.restart_bus1(self.now),
            _ => self.obs.restart_bus2(self.now),
        }
        self.hub.bus_restarted(bus, self.now);
        self.pump();
    }

    /// A disk bound, configured, both bulk pipes open and `n` transfers
    /// pending on them; returns the usage before the configuration.
    fn busy_disk(&mut self, n: u32) -> Usage {
        self.plug(1, disk());
        self.run_ms(300);
        assert_eq!(self.got(DISK_BUS).len(), 2);
        let idle = self.hub.usage();
        self.configure(DISK_BUS, 1);
        assert_eq!(self.open(DISK_BUS, 1, 0x81, kind::BULK, 64), [opened(1)]);
        assert_eq!(self.open(DISK_BUS, 2, 0x02, kind::BULK, 64), [opened(2)]);
        for xfer in 0..n {
            self.send_hub(
                DISK_BUS,
                Wire::Pipe {
                    pipe: 1 + xfer % 2,
                    msg: PipeMsg::Submit {
                        xfer,
                        setup: 0,
                        buf: 0,
                        len: 512,
                    },
                },
            );
        }
        idle
    }
}

fn announced(w: &[Wire]) -> bool {
    matches!(
        w,
        [
            Wire::Bus(BusMsg::Attached { port: 1, .. }),
            Wire::Bus(BusMsg::Addressed {
                vendor: 0x46f4,
                class: 8,
                ..
            })
        ]
    )
}

#[test]
fn a_restarted_class_driver_has_its_pipes_closed_and_its_device_offered_again() {
    let mut r = rig();
    let idle = r.busy_disk(3);
    assert_eq!(r.hub.usage().transfers, 3);
    assert_eq!(r.hc.pending.len(), 3);
    let addresses = r.hc.addresses_set.clone();
    r.restart_driver(DISK_BUS);
    // Only the announcement reaches the new instance: the old pipes'
    // aborted transfers and closes go nowhere (its observer, fresh, would
    // have refused any of them).
    let got = r.got(DISK_BUS);
    assert!(announced(&got), "{got:?}");
    assert!(r.hc.pending.is_empty(), "the controller aborted them");
    assert!(
        r.hc.eps.values().all(|e| e.endpoint == 0),
        "both bulk endpoints closed: {:?}",
        r.hc.eps
    );
    assert_eq!(r.hub.usage(), idle, "as before the old instance configured");
    assert_eq!(r.hc.addresses_set, addresses, "not enumerated again");
    assert!(r.notes().contains(&Note::DriverRestarted {
        bus: DISK_BUS,
        name: "usb-storage",
        pipes: 2,
        transfers: 3,
        addr: Some(1),
    }));
    // The new instance sets the device up as the old one did, with the
    // same pipe keys, and its transfers go through.
    r.configure(DISK_BUS, 1);
    assert_eq!(r.open(DISK_BUS, 1, 0x81, kind::BULK, 64), [opened(1)]);
    assert_eq!(r.open(DISK_BUS, 2, 0x02, kind::BULK, 64), [opened(2)]);
    r.send_hub(
        DISK_BUS,
        Wire::Pipe {
            pipe: 2,
            msg: PipeMsg::Submit {
                xfer: 7,
                setup: 0,
                buf: 0,
                len: 31,
            },
        },
    );
    assert_eq!(r.hc.pending.len(), 1);
    let s = r.hub.stats();
    assert_eq!((s.attached, s.detached, s.driver_restarts), (2, 0, 1));
    assert_eq!(r.hub.counters()[10], 1, "driver_restarts on the stats page");
}

#[test]
fn a_driver_restarted_before_it_released_an_unplugged_device_takes_the_next() {
    let mut r = rig();
    r.busy_disk(2);
    r.unplug(1);
    let got = r.got(DISK_BUS);
    assert_eq!(got[0], Wire::Bus(BusMsg::Detached));
    // The old instance dies before its `release`.
    r.restart_driver(DISK_BUS);
    assert!(r.got(DISK_BUS).is_empty(), "no device to offer");
    assert_eq!(r.hub.usage(), Usage::default(), "nothing left of it");
    r.plug(1, disk());
    r.run_ms(300);
    assert!(announced(&r.got(DISK_BUS)));
}

#[test]
fn a_driver_that_had_let_its_device_go_is_offered_it_again_after_a_restart() {
    let mut r = rig();
    r.plug(1, disk());
    r.run_ms(300);
    r.got(DISK_BUS);
    // Given up on (usb-storage releases a device it cannot use).
    r.send_hub(DISK_BUS, Wire::Bus(BusMsg::Release));
    assert_eq!(r.got(DISK_BUS), [Wire::Bus(BusMsg::Detached)]);
    r.restart_driver(DISK_BUS);
    assert!(announced(&r.got(DISK_BUS)), "a new instance tries again");
}

#[test]
fn a_hundred_restarts_with_transfers_pending_leak_nothing() {
    let mut r = rig();
    let idle = r.busy_disk(4);
    for cycle in 0..100u32 {
        r.restart_driver(DISK_BUS);
        assert!(announced(&r.got(DISK_BUS)), "cycle {cycle}");
        assert_eq!(r.hub.usage(), idle, "cycle {cycle}");
        r.configure(DISK_BUS, 1);
        assert_eq!(r.open(DISK_BUS, 1, 0x81, kind::BULK, 64), [opened(1)]);
        assert_eq!(r.open(DISK_BUS, 2, 0x02, kind::BULK, 64), [opened(2)]);
        for xfer in 0..1 + cycle % 4 {
            r.send_hub(
                DISK_BUS,
                Wire::Pipe {
                    pipe: 1 + xfer % 2,
                    msg: PipeMsg::Submit {
                        xfer,
                        setup: 0,
                        buf: 0,
                        len: 512,
                    },
                },
            );
        }
    }
    r.restart_driver(DISK_BUS);
    assert_eq!(r.hub.usage(), idle);
    assert!(r.hc.pending.is_empty());
    let s = r.hub.stats();
    assert_eq!((s.attached, s.detached, s.driver_restarts), (102, 0, 101));
}
