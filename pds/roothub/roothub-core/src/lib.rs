//! The root hub driver's core (pds/roothub): port debounce, reset and
//! recovery, enumeration of one device at a time through address 0,
//! binding devices to class drivers, and the UsbBus and UsbPipe protocols
//! towards them, on top of the UsbRootPorts and UsbHostController
//! protocols towards the controller's driver. It sees only messages and the
//! clock: the PD moves the messages between this core and its ports, so
//! the whole of it runs in host tests against a fake controller with fake
//! devices.
//!
//! # Enumeration
//!
//! A port that reports a connection is debounced for 100 ms (a connect
//! status that drops meanwhile starts it again), reset (held for 50 ms
//! from the reset request; QEMU's reset itself is instant) and given 10 ms
//! of recovery. Then, one port at a time, through address 0: endpoint 0 with
//! an 8-byte max packet, the device descriptor's first 8 bytes (for
//! `bMaxPacketSize0`), SET_ADDRESS and its 2 ms recovery, endpoint 0 again
//! at the new address, the whole device descriptor, and every
//! configuration (header first for `wTotalLength`, then all of it). Every
//! descriptor is checked by usb-core before anything in it is used; a
//! control transfer that does not complete within 500 ms is aborted. A
//! failed enumeration disables the port after one more attempt and frees
//! the address; the port waits for a new connection.
//!
//! # Binding
//!
//! Each class driver's port has a rule from the system description
//! ([`Rule`]): a vendor:product, or a class/subclass/protocol triple that
//! the device descriptor or any interface of any configuration must have.
//! The first free class driver whose rule matches gets `attached` and
//! `addressed`; its `setConfiguration` and `openPipe` requests are checked
//! against the descriptors read at enumeration, and its transfers go to
//! the controller with their buffers moved into the driver's DMA window.
//! On a control pipe the hub refuses SET_ADDRESS and SET_CONFIGURATION
//! (the addresses and the configuration are the hub's), and after a
//! successful CLEAR_FEATURE(ENDPOINT_HALT) or SET_INTERFACE resets the
//! controller's data toggles of the endpoints concerned.
//!
//! # Unplug
//!
//! A device that goes away mid-anything: its class driver gets `detached`,
//! each open pipe `unplugged`, every transfer still pending is completed
//! UNPLUGGED (the controller is asked to close each endpoint, which
//! completes its transfers as aborted: QEMU never completes them by
//! itself), then `closed`. The address returns to the pool once every
//! endpoint of the device is closed, and the class driver's port takes a
//! new device once the driver has released the old one.
#![cfg_attr(not(test), no_std)]

use core::fmt;

use dingo_protocols::usb_bus::Msg as BusMsg;
use dingo_protocols::usb_host_controller::Msg as HcMsg;
use dingo_protocols::usb_pipe::Msg as PipeMsg;
use dingo_protocols::usb_root_ports::Msg as PortsMsg;
use heapless::{Deque, Vec};
use usb_bus::Wire;
use usb_core::desc::{self, Config, DescError, DeviceDescriptor, DevicePrefix};
use usb_core::notes::Notes;
use usb_core::setup::{Setup, descriptor, request, request_type};
use usb_core::{kind, speed, status, window};

/// Ports of a root hub (OHCI's most).
pub const MAX_PORTS: usize = 15;
/// Class driver ports (`bus0`..`bus3` of the RootHub component).
pub const MAX_BUSES: usize = 4;
/// Pipes per class driver (the component's subport limit).
pub const MAX_PIPES: usize = 4;
/// Device records: one per port, and a few gone ones waiting for their
/// endpoints to close.
pub const MAX_DEVICES: usize = MAX_PORTS + 4;
/// Configurations kept per device.
pub const MAX_CONFIGS: usize = 4;
/// Bytes of all configurations of one device.
pub const CONFIG_BYTES: usize = 1024;
/// Endpoints open at the controller at once.
pub const MAX_HANDLES: usize = 32;
/// Transfers in flight at the controller at once.
pub const MAX_XFERS: usize = 64;

pub const MS: u64 = 1_000_000;
/// USB 2.0 §7.1.7.3: connect debounce.
pub const DEBOUNCE_NS: u64 = 100 * MS;
/// §7.1.7.5: a root port's reset lasts 50 ms.
pub const RESET_NS: u64 = 50 * MS;
/// §7.1.7.5: reset recovery.
pub const RECOVERY_NS: u64 = 10 * MS;
/// §9.2.6.3: SET_ADDRESS recovery.
pub const SET_ADDRESS_NS: u64 = 2 * MS;
/// The hub's own control transfers end after this.
pub const CONTROL_TIMEOUT_NS: u64 = 500 * MS;
/// Enumeration attempts per connection.
pub const ATTEMPTS: u8 = 2;

/// Where the hub reads what its control transfers brought in: its DMA
/// window (on seL4 the shared region; in tests a buffer the fake writes).
pub trait HubMemory {
    /// The window's size in bytes.
    fn size(&self) -> usize;
    /// Copies bytes at `offset` out.
    fn read(&self, offset: usize, dst: &mut [u8]);
}

/// Which devices a class driver takes (from the system description).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Id {
        vendor: u16,
        product: u16,
    },
    Class {
        class: u8,
        subclass: u8,
        protocol: u8,
    },
}

impl Rule {
    /// The system description's encoding: bit 32 with `vendor << 16 |
    /// product`, or bit 33 with `class << 16 | subclass << 8 | protocol`;
    /// 0 is no rule.
    pub const fn decode(v: u64) -> Option<Rule> {
        let low = v as u32;
        match v >> 32 {
            1 => Some(Rule::Id {
                vendor: (low >> 16) as u16,
                product: low as u16,
            }),
            2 if low >> 24 == 0 => Some(Rule::Class {
                class: (low >> 16) as u8,
                subclass: (low >> 8) as u8,
                protocol: low as u8,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rule::Id { vendor, product } => write!(f, "{vendor:04x}:{product:04x}"),
            Rule::Class {
                class,
                subclass,
                protocol,
            } => write!(f, "class {class:02x}/{subclass:02x}/{protocol:02x}"),
        }
    }
}

/// One class driver's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// Names the driver in the hub's notes.
    pub name: &'static str,
    pub rule: Rule,
    /// The controller's DMA window that holds the driver's buffers.
    pub window: u8,
}

/// The hub's configuration.
#[derive(Clone, Copy, Debug)]
pub struct HubConfig {
    pub buses: [Option<BusConfig>; MAX_BUSES],
    /// The controller's DMA window of the hub's own buffer.
    pub window: u8,
}

/// What the hub tells its PD to print (one line each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    Enumerated {
        port: u8,
        speed: u8,
        addr: u8,
        vendor: u16,
        product: u16,
        class: (u8, u8, u8),
    },
    Bound {
        addr: u8,
        bus: usize,
        name: &'static str,
        class: (u8, u8, u8),
    },
    NoDriver {
        addr: u8,
        vendor: u16,
        product: u16,
    },
    Detached {
        port: u8,
        addr: u8,
    },
    Failed {
        port: u8,
        attempt: u8,
        why: Failure,
    },
    /// A class driver broke a rule the protocol cannot express.
    Refused {
        bus: usize,
        why: Refusal,
    },
    ControllerReset {
        error: u32,
    },
    /// A class driver was restarted (by the monitor): what its old instance
    /// had open was closed, and its device (if any) is offered to the new
    /// instance.
    DriverRestarted {
        bus: usize,
        name: &'static str,
        pipes: u8,
        transfers: u8,
        addr: Option<u8>,
    },
}

/// Why an enumeration failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    ResetFailed,
    /// A control transfer ended with this status (or timed out: ABORTED).
    Transfer {
        step: &'static str,
        status: u8,
    },
    Short {
        step: &'static str,
        got: u32,
        want: u32,
    },
    Descriptor {
        step: &'static str,
        error: DescError,
    },
    NoAddress,
    NoHandle,
    EndpointFailed {
        error: u32,
    },
    TooManyConfigurations(u8),
    ConfigurationTooLong(u16),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Failure::ResetFailed => f.write_str("port reset failed"),
            Failure::Transfer { step, status: s } if s == status::ABORTED => {
                write!(f, "{step}: no answer within {} ms", CONTROL_TIMEOUT_NS / MS)
            }
            Failure::Transfer { step, status: s } => {
                write!(f, "{step}: transfer {}", status::name(s))
            }
            Failure::Short { step, got, want } => {
                write!(f, "{step}: {got} bytes, expected {want}")
            }
            Failure::Descriptor { step, error } => write!(f, "{step}: {error}"),
            Failure::NoAddress => f.write_str("all 127 addresses are in use"),
            Failure::NoHandle => f.write_str("no endpoint handle left"),
            Failure::EndpointFailed { error } => {
                write!(f, "the controller refused endpoint 0 (error {error})")
            }
            Failure::TooManyConfigurations(n) => {
                write!(f, "{n} configurations, at most {MAX_CONFIGS} are read")
            }
            Failure::ConfigurationTooLong(n) => {
                write!(f, "a configuration of {n} bytes, at most {CONFIG_BYTES}")
            }
        }
    }
}

/// Why a class driver's request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NoSuchConfiguration(u8),
    /// openPipe for an endpoint the active configuration does not have, or
    /// with another type or a larger max packet.
    NoSuchEndpoint {
        endpoint: u8,
        kind: u8,
        max_packet: u16,
    },
    /// A SETUP packet the hub keeps to itself (SET_ADDRESS, SET_CONFIGURATION).
    Request {
        request: u8,
    },
    /// A buffer beyond the driver's window.
    Buffer {
        buf: u32,
    },
    /// A request for a pipe the driver does not have open.
    UnknownPipe {
        pipe: u32,
    },
    NoHandle,
    /// The hub could not take more transfers.
    Busy,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Refusal::NoSuchConfiguration(c) => {
                write!(f, "configuration {c} is not among the device's")
            }
            Refusal::NoSuchEndpoint {
                endpoint,
                kind: k,
                max_packet,
            } => write!(
                f,
                "endpoint {endpoint:#04x} ({}, max packet {max_packet}) is not in the active configuration",
                kind::name(k)
            ),
            Refusal::Request { request } => write!(
                f,
                "request {request} on a control pipe is the hub's (use setConfiguration)"
            ),
            Refusal::Buffer { buf } => write!(f, "buffer {buf:#x} is beyond the driver's window"),
            Refusal::UnknownPipe { pipe } => write!(f, "pipe {pipe} is not open"),
            Refusal::NoHandle => f.write_str("no endpoint handle left"),
            Refusal::Busy => f.write_str("too many transfers in flight"),
        }
    }
}

/// The hub's counters, for leak checks and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub enumerated: u64,
    pub attached: u64,
    pub detached: u64,
    pub failed: u64,
    pub refused: u64,
    pub controller_resets: u64,
    /// Class driver restarts the hub followed.
    pub driver_restarts: u64,
}

/// What is in use: zero (besides the devices present) when nothing leaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub addresses: usize,
    pub handles: usize,
    pub transfers: usize,
    pub pipes: usize,
}

// ---- internal state ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortState {
    Empty,
    /// Connected; stable until `until`.
    Debouncing {
        until: u64,
    },
    /// Waiting for its turn at address 0.
    Queued,
    /// Being enumerated (see `Hub::enumeration`).
    Enumerating,
    /// A device is there (addressed): `addr`.
    Device {
        addr: u8,
    },
    /// Enumeration failed; waits for a disconnect.
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Reset,
    /// The reset is done; the port is held until `until` (reset time, then
    /// recovery).
    ResetWait {
        until: u64,
    },
    OpenEp0,
    GetPrefix,
    SetAddress,
    AddressWait {
        until: u64,
    },
    CloseEp0,
    ReopenEp0,
    GetDevice,
    GetConfigHeader {
        index: u8,
    },
    GetConfig {
        index: u8,
        len: u16,
    },
}

#[derive(Clone, Copy, Debug)]
struct Enumeration {
    port: u8,
    attempt: u8,
    step: Step,
    addr: u8,
    handle: u16,
    max_packet0: u8,
    low_speed: bool,
    started: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandleUse {
    /// Endpoint 0 of the device at `addr`, the hub's own.
    Ep0 {
        addr: u8,
    },
    Pipe {
        bus: u8,
        pipe: u32,
        addr: u8,
    },
    /// A pipe of a class driver instance that is gone (the monitor
    /// restarted it): being closed, and nobody is told.
    Orphan {
        addr: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandleState {
    Opening,
    Open,
    Closing,
}

#[derive(Clone, Copy, Debug)]
struct Handle {
    used: HandleUse,
    state: HandleState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XferUse {
    /// An enumeration step.
    Enumerate,
    /// SET_CONFIGURATION for a class driver.
    Configure { bus: u8, config: u8 },
    /// A class driver's pipe transfer.
    Pipe {
        bus: u8,
        pipe: u32,
        xfer: u32,
        /// What to do when it completes OK.
        after: After,
    },
    /// A transfer of a class driver instance that is gone (restarted): its
    /// completion goes nowhere.
    Orphan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Nothing,
    /// CLEAR_FEATURE(ENDPOINT_HALT) on this endpoint address.
    ClearHalt(u8),
    /// SET_INTERFACE on this interface.
    SetInterface(u8),
}

#[derive(Clone, Copy, Debug)]
struct Xfer {
    id: u32,
    used: XferUse,
    /// The hub's own transfers time out.
    deadline: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
struct Device {
    addr: u8,
    port: u8,
    speed: u8,
    desc: DeviceDescriptor,
    ep0: u16,
    /// Configurations: (value, offset, length) into `config_bytes`.
    configs: [(u8, u16, u16); MAX_CONFIGS],
    config_count: u8,
    config_bytes: [u8; CONFIG_BYTES],
    config_used: u16,
    active: Option<u8>,
    bus: Option<u8>,
    /// Class drivers (bit per bus) that released it: not offered again.
    released_by: u8,
    /// Unplugged: waits for its endpoints to close.
    gone: bool,
}

impl Device {
    /// Holds an address whose device never got a record (it was lost
    /// between SET_ADDRESS and its descriptor) until its endpoint closes.
    fn placeholder(addr: u8, port: u8) -> Self {
        Device {
            addr,
            port,
            speed: speed::FULL,
            desc: DeviceDescriptor {
                usb_version: 0,
                class: 0,
                subclass: 0,
                protocol: 0,
                max_packet0: 8,
                vendor: 0,
                product: 0,
                device_version: 0,
                manufacturer: 0,
                product_string: 0,
                serial: 0,
                configurations: 0,
            },
            ep0: 0,
            configs: [(0, 0, 0); MAX_CONFIGS],
            config_count: 0,
            config_bytes: [0; CONFIG_BYTES],
            config_used: 0,
            active: None,
            bus: None,
            released_by: 0,
            gone: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PipeState {
    Opening,
    Open,
    Aborting,
    Closing,
    /// Unplugged: waits for its endpoint's close, then `closed`.
    Dead,
}

#[derive(Clone, Copy, Debug)]
struct Pipe {
    key: u32,
    handle: u16,
    endpoint: u8,
    kind: u8,
    state: PipeState,
    /// The driver sent `close` (after an unplug, `closed` waits for it: it
    /// tells that no submit of the driver's is still on its way).
    client_closed: bool,
    /// The controller closed the endpoint (or has none any more).
    hc_closed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BusState {
    /// No device.
    Idle,
    /// A device is bound.
    Bound { addr: u8 },
    /// The device went; waiting for the driver's `release`.
    Gone,
}

#[derive(Clone, Copy, Debug)]
struct Bus {
    cfg: BusConfig,
    state: BusState,
    pipes: [Option<Pipe>; MAX_PIPES],
    /// A SET_CONFIGURATION in flight.
    configuring: bool,
}

/// Outbox sizes: room for an answer to everything that can be pending.
const HC_OUT: usize = 2 * MAX_XFERS + 2 * MAX_HANDLES;
/// A reset (one enumeration at a time) and a disable per port.
const PORTS_OUT: usize = 2 * MAX_PORTS + 2;
const BUS_OUT: usize = 2 * MAX_XFERS + 4 * MAX_PIPES + 8;
const NOTES: usize = 32;

/// The root hub driver.
pub struct Hub<M: HubMemory> {
    mem: M,
    cfg: HubConfig,
    ports: u8,
    port: [PortState; MAX_PORTS],
    /// Connect status seen last, per port (for the debounce).
    connected: [bool; MAX_PORTS],
    queue: Deque<u8, MAX_PORTS>,
    enumeration: Option<Enumeration>,
    /// Addresses in use (bit per address; 0 is always taken).
    addresses: [u64; 2],
    devices: [Option<Device>; MAX_DEVICES],
    buses: [Option<Bus>; MAX_BUSES],
    handles: [Option<Handle>; MAX_HANDLES],
    xfers: [Option<Xfer>; MAX_XFERS],
    /// Entries of `xfers`, and those with a deadline: the table is looked
    /// at on every wake-up (counters, `tick`, `next_deadline`), so the
    /// common case, no transfer of the hub's own, skips the walk.
    live_xfers: usize,
    timed_xfers: usize,
    next_xfer: u32,
    hc_out: Deque<HcMsg, HC_OUT>,
    ports_out: Deque<PortsMsg, PORTS_OUT>,
    bus_out: [Deque<Wire, BUS_OUT>; MAX_BUSES],
    notes: Notes<Note, NOTES>,
    stats: Stats,
    operational: bool,
}

impl<M: HubMemory> Hub<M> {
    pub fn new(mem: M, cfg: HubConfig, ports: u8) -> Self {
        let ports = ports.min(MAX_PORTS as u8);
        let mut buses = [None; MAX_BUSES];
        for (b, c) in buses.iter_mut().zip(cfg.buses) {
            *b = c.map(|cfg| Bus {
                cfg,
                state: BusState::Idle,
                pipes: [None; MAX_PIPES],
                configuring: false,
            });
        }
        Hub {
            mem,
            cfg,
            ports,
            port: [PortState::Empty; MAX_PORTS],
            connected: [false; MAX_PORTS],
            queue: Deque::new(),
            enumeration: None,
            // Address 0 is the default address, never handed out.
            addresses: [1, 0],
            devices: [const { None }; MAX_DEVICES],
            buses,
            handles: [None; MAX_HANDLES],
            xfers: [None; MAX_XFERS],
            live_xfers: 0,
            timed_xfers: 0,
            next_xfer: 1,
            hc_out: Deque::new(),
            ports_out: Deque::new(),
            bus_out: [const { Deque::new() }; MAX_BUSES],
            notes: Notes::new(),
            stats: Stats::default(),
            operational: true,
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn usage(&self) -> Usage {
        debug_assert_eq!(
            (self.live_xfers, self.timed_xfers),
            (
                self.xfers.iter().flatten().count(),
                self.xfers
                    .iter()
                    .flatten()
                    .filter(|x| x.deadline.is_some())
                    .count()
            ),
            "roothub: transfer counts differ from the table"
        );
        Usage {
            addresses: (self.addresses[0].count_ones() + self.addresses[1].count_ones() - 1)
                as usize,
            handles: self.handles.iter().flatten().count(),
            transfers: self.live_xfers,
            pipes: self
                .buses
                .iter()
                .flatten()
                .map(|b| b.pipes.iter().flatten().count())
                .sum(),
        }
    }

    /// The next message for the controller.
    pub fn take_hc(&mut self) -> Option<HcMsg> {
        self.hc_out.pop_front()
    }

    /// Puts back a message the PD could not send yet.
    pub fn unget_hc(&mut self, m: HcMsg) {
        let _ = self.hc_out.push_front(m);
    }

    /// The next message for the controller's ports (UsbRootPorts).
    pub fn take_ports(&mut self) -> Option<PortsMsg> {
        self.ports_out.pop_front()
    }

    pub fn unget_ports(&mut self, m: PortsMsg) {
        let _ = self.ports_out.push_front(m);
    }

    /// The next message for class driver `bus`.
    pub fn take_bus(&mut self, bus: usize) -> Option<Wire> {
        self.bus_out.get_mut(bus)?.pop_front()
    }

    pub fn unget_bus(&mut self, bus: usize, m: Wire) {
        if let Some(q) = self.bus_out.get_mut(bus) {
            let _ = q.push_front(m);
        }
    }

    pub fn take_note(&mut self) -> Option<Note> {
        self.notes.take()
    }

    /// Whether the hub can take another message from the controller or a
    /// class driver without risking its outboxes (the PD reads only then).
    pub fn has_room(&self) -> bool {
        self.hc_out.len() + 8 < HC_OUT
            && self.ports_out.len() + 2 < PORTS_OUT
            && self.bus_out.iter().all(|q| q.len() + 8 < BUS_OUT)
    }

    fn send_hc(&mut self, m: HcMsg) {
        // The outbox holds an answer for everything pending (HC_OUT), and
        // the PD reads no more input while it is nearly full.
        let _ = self.hc_out.push_back(m);
    }

    fn send_ports(&mut self, m: PortsMsg) {
        let _ = self.ports_out.push_back(m);
    }

    fn send_bus(&mut self, bus: u8, m: Wire) {
        if let Some(q) = self.bus_out.get_mut(usize::from(bus)) {
            let _ = q.push_back(m);
        }
    }

    fn note(&mut self, n: Note) {
        self.notes.push(n);
    }

    /// The earliest time `tick` has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut d: Option<u64> = None;
        let mut at = |t: u64| d = Some(d.map_or(t, |x| x.min(t)));
        for p in &self.port[..usize::from(self.ports)] {
            if let PortState::Debouncing { until } = *p {
                at(until);
            }
        }
        if let Some(e) = self.enumeration {
            match e.step {
                Step::ResetWait { until } | Step::AddressWait { until } => at(until),
                _ => {}
            }
        }
        if self.timed_xfers > 0 {
            for x in self.xfers.iter().flatten() {
                if let Some(t) = x.deadline {
                    at(t);
                }
            }
        }
        d
    }

    /// Counts `xfers` again after a change to many entries.
    fn recount_xfers(&mut self) {
        self.live_xfers = self.xfers.iter().flatten().count();
        self.timed_xfers = self
            .xfers
            .iter()
            .flatten()
            .filter(|x| x.deadline.is_some())
            .count();
    }

    // ---- addresses, handles, transfers ----

    fn alloc_address(&mut self) -> Option<u8> {
        for a in 1..128u8 {
            let (w, b) = (usize::from(a / 64), a % 64);
            if self.addresses[w] & 1 << b == 0 {
                self.addresses[w] |= 1 << b;
                return Some(a);
            }
        }
        None
    }

    fn free_address(&mut self, a: u8) {
        if a != 0 {
            self.addresses[usize::from(a / 64)] &= !(1 << (a % 64));
        }
    }

    fn alloc_handle(&mut self, used: HandleUse) -> Option<u16> {
        let i = self.handles.iter().position(Option::is_none)?;
        self.handles[i] = Some(Handle {
            used,
            state: HandleState::Opening,
        });
        Some(i as u16 + 1)
    }

    fn handle(&self, h: u16) -> Option<Handle> {
        self.handles
            .get(usize::from(h).wrapping_sub(1))
            .copied()
            .flatten()
    }

    fn handle_mut(&mut self, h: u16) -> Option<&mut Handle> {
        self.handles
            .get_mut(usize::from(h).wrapping_sub(1))
            .and_then(Option::as_mut)
    }

    fn close_handle(&mut self, h: u16) {
        if let Some(x) = self.handle_mut(h)
            && x.state != HandleState::Closing
        {
            x.state = HandleState::Closing;
            self.send_hc(HcMsg::CloseEndpoint { ep: h });
        }
    }

    fn start_xfer(&mut self, used: XferUse, deadline: Option<u64>) -> Option<u32> {
        let slot = self.xfers.iter().position(Option::is_none)?;
        let id = self.next_xfer;
        self.next_xfer = self.next_xfer.wrapping_add(1).max(1);
        self.xfers[slot] = Some(Xfer { id, used, deadline });
        self.live_xfers += 1;
        self.timed_xfers += usize::from(deadline.is_some());
        Some(id)
    }

    fn take_xfer(&mut self, id: u32) -> Option<Xfer> {
        let i = self
            .xfers
            .iter()
            .position(|x| x.is_some_and(|x| x.id == id))?;
        let x = self.xfers[i].take()?;
        self.live_xfers -= 1;
        self.timed_xfers -= usize::from(x.deadline.is_some());
        Some(x)
    }

    /// A control transfer of the hub's own on `handle`, into the hub's
    /// buffer at offset 0.
    fn control(&mut self, handle: u16, setup: Setup, now: u64) -> bool {
        let Some(id) = self.start_xfer(XferUse::Enumerate, Some(now + CONTROL_TIMEOUT_NS)) else {
            return false;
        };
        let buf = if setup.length == 0 {
            0
        } else {
            window::address(self.cfg.window, 0).unwrap_or(0)
        };
        self.send_hc(HcMsg::Submit {
            xfer: id,
            ep: handle,
            setup: setup.to_u64(),
            buf,
            len: u32::from(setup.length),
        });
        true
    }

    // ---- the controller's messages ----

    /// A message from the host controller's driver about its ports.
    pub fn ports_message(&mut self, m: PortsMsg, now: u64) {
        match m {
            PortsMsg::PortStatus {
                port,
                connected,
                enabled,
                low_speed: _,
            } => self.port_status(port, connected, enabled, now),
            PortsMsg::PortResetDone { port, ok } => self.reset_done(port, ok, now),
            // The hub's own requests; never sent to it.
            PortsMsg::PortReset { .. } | PortsMsg::PortDisable { .. } => {}
        }
    }

    /// A message from the host controller's driver about its endpoints.
    pub fn hc_message(&mut self, m: HcMsg, now: u64) {
        match m {
            HcMsg::EndpointOpened { ep } => self.endpoint_opened(ep, now),
            HcMsg::EndpointFailed { ep, error } => self.endpoint_failed(ep, error, now),
            HcMsg::Complete {
                xfer,
                status,
                actual,
            } => self.complete(xfer, status, actual, now),
            HcMsg::EndpointAborted { ep } => self.endpoint_aborted(ep),
            HcMsg::EndpointClosed { ep } => self.endpoint_closed(ep, now),
            HcMsg::ControllerReset { error } => self.controller_reset(error, now),
            HcMsg::Halted => self.operational = false,
            // The hub's own requests; never sent to it.
            HcMsg::OpenEndpoint { .. }
            | HcMsg::ResetToggle { .. }
            | HcMsg::Submit { .. }
            | HcMsg::AbortEndpoint { .. }
            | HcMsg::CloseEndpoint { .. }
            | HcMsg::Halt => {}
        }
    }

    fn port_status(&mut self, port: u8, connected: bool, enabled: bool, now: u64) {
        let p = usize::from(port);
        if p >= usize::from(self.ports) {
            return;
        }
        // Connected but not enabled where a device was (or was being
        // enumerated): it was unplugged and another plugged in between two
        // looks at the port (the controller reports one connect change for
        // both). The old one goes first.
        if connected && !enabled {
            match self.port[p] {
                PortState::Device { addr } => {
                    self.port[p] = PortState::Empty;
                    self.connected[p] = false;
                    self.unplug(addr, now);
                }
                PortState::Enumerating
                    if self.enumeration.is_some_and(|e| e.step != Step::Reset) =>
                {
                    self.abandon_enumeration(now);
                    self.port[p] = PortState::Empty;
                    self.connected[p] = false;
                }
                _ => {}
            }
        }
        let was = core::mem::replace(&mut self.connected[p], connected);
        match (self.port[p], connected) {
            (PortState::Empty, true) => {
                self.port[p] = PortState::Debouncing {
                    until: now + DEBOUNCE_NS,
                }
            }
            (PortState::Debouncing { .. }, true) if !was => {
                self.port[p] = PortState::Debouncing {
                    until: now + DEBOUNCE_NS,
                }
            }
            (PortState::Debouncing { .. }, false) => self.port[p] = PortState::Empty,
            (PortState::Queued, false) => {
                self.port[p] = PortState::Empty;
                let q: Vec<u8, MAX_PORTS> =
                    self.queue.iter().copied().filter(|&x| x != port).collect();
                self.queue.clear();
                for x in q {
                    let _ = self.queue.push_back(x);
                }
            }
            (PortState::Enumerating, false) => {
                self.abandon_enumeration(now);
                self.port[p] = PortState::Empty;
            }
            (PortState::Device { addr }, false) => {
                self.port[p] = PortState::Empty;
                self.unplug(addr, now);
            }
            (PortState::Failed, false) => self.port[p] = PortState::Empty,
            _ => {}
        }
    }

    fn reset_done(&mut self, port: u8, ok: bool, now: u64) {
        let Some(mut e) = self.enumeration else {
            return;
        };
        if e.port != port || e.step != Step::Reset {
            return;
        }
        if !ok {
            return self.enumeration_failed(Failure::ResetFailed, now);
        }
        let until = e.started.saturating_add(RESET_NS).max(now) + RECOVERY_NS;
        e.step = Step::ResetWait { until };
        self.enumeration = Some(e);
    }

    fn endpoint_opened(&mut self, ep: u16, now: u64) {
        let Some(h) = self.handle_mut(ep) else { return };
        if h.state == HandleState::Opening {
            h.state = HandleState::Open;
        }
        let h = *h;
        match h.used {
            HandleUse::Ep0 { .. } => {
                if let Some(mut e) = self.enumeration
                    && e.handle == ep
                {
                    let next = match e.step {
                        Step::OpenEp0 => {
                            let s = Setup::get_descriptor(descriptor::DEVICE, 0, 8);
                            (Step::GetPrefix, s)
                        }
                        Step::ReopenEp0 => {
                            let s = Setup::get_descriptor(
                                descriptor::DEVICE,
                                0,
                                DeviceDescriptor::LEN as u16,
                            );
                            (Step::GetDevice, s)
                        }
                        _ => return,
                    };
                    e.step = next.0;
                    self.enumeration = Some(e);
                    if !self.control(ep, next.1, now) {
                        self.enumeration_failed(Failure::NoHandle, now);
                    }
                }
            }
            HandleUse::Orphan { .. } => self.close_handle(ep),
            HandleUse::Pipe { bus, pipe, addr } => {
                if h.state == HandleState::Closing {
                    return;
                }
                let alive = self
                    .devices
                    .iter()
                    .flatten()
                    .any(|d| d.addr == addr && !d.gone);
                let Some(p) = self.pipe_mut(bus, pipe) else {
                    return self.close_handle(ep);
                };
                if p.state == PipeState::Opening && alive {
                    p.state = PipeState::Open;
                    self.send_bus(
                        bus,
                        Wire::Pipe {
                            pipe,
                            msg: PipeMsg::Opened,
                        },
                    );
                }
            }
        }
    }

    fn endpoint_failed(&mut self, ep: u16, error: u32, now: u64) {
        let Some(h) = self.handle(ep) else { return };
        self.handles[usize::from(ep) - 1] = None;
        match h.used {
            HandleUse::Ep0 { .. } => {
                if self.enumeration.is_some_and(|e| e.handle == ep) {
                    self.enumeration_failed(Failure::EndpointFailed { error }, now);
                }
            }
            HandleUse::Orphan { addr } => self.maybe_forget(addr),
            HandleUse::Pipe { bus, pipe, .. } => {
                if let Some(p) = self.pipe(bus, pipe)
                    && p.state == PipeState::Opening
                {
                    self.remove_pipe(bus, pipe);
                    self.send_bus(
                        bus,
                        Wire::Pipe {
                            pipe,
                            msg: PipeMsg::OpenFailed { error },
                        },
                    );
                }
            }
        }
    }

    fn endpoint_aborted(&mut self, ep: u16) {
        let Some(h) = self.handle(ep) else { return };
        if let HandleUse::Pipe { bus, pipe, .. } = h.used
            && let Some(p) = self.pipe_mut(bus, pipe)
            && p.state == PipeState::Aborting
        {
            p.state = PipeState::Open;
            self.send_bus(
                bus,
                Wire::Pipe {
                    pipe,
                    msg: PipeMsg::AbortComplete,
                },
            );
        }
    }

    fn endpoint_closed(&mut self, ep: u16, now: u64) {
        let Some(h) = self.handle(ep) else { return };
        self.handles[usize::from(ep) - 1] = None;
        match h.used {
            HandleUse::Ep0 { addr } => {
                if let Some(mut e) = self.enumeration
                    && e.handle == ep
                    && e.step == Step::CloseEp0
                {
                    let Some(handle) = self.alloc_handle(HandleUse::Ep0 { addr: e.addr }) else {
                        return self.enumeration_failed(Failure::NoHandle, now);
                    };
                    e.handle = handle;
                    e.step = Step::ReopenEp0;
                    self.enumeration = Some(e);
                    self.send_hc(HcMsg::OpenEndpoint {
                        ep: handle,
                        addr: e.addr,
                        endpoint: 0,
                        kind: kind::CONTROL,
                        dir_in: false,
                        max_packet: u16::from(e.max_packet0),
                        interval: 0,
                        low_speed: e.low_speed,
                    });
                    return;
                }
                self.maybe_forget(addr);
            }
            HandleUse::Orphan { addr } => self.maybe_forget(addr),
            HandleUse::Pipe { bus, pipe, addr } => {
                if let Some(p) = self.pipe_mut(bus, pipe) {
                    p.hc_closed = true;
                }
                self.maybe_closed(bus, pipe);
                self.maybe_forget(addr);
            }
        }
    }

    fn complete(&mut self, id: u32, st: u8, actual: u32, now: u64) {
        let Some(x) = self.take_xfer(id) else { return };
        match x.used {
            XferUse::Enumerate => self.enumeration_step(st, actual, now),
            XferUse::Orphan => {}
            XferUse::Configure { bus, config } => {
                let Some(b) = self.buses[usize::from(bus)].as_mut() else {
                    return;
                };
                b.configuring = false;
                let BusState::Bound { addr } = b.state else {
                    return;
                };
                if st == status::OK {
                    if let Some(d) = self.device_mut(addr) {
                        d.active = Some(config);
                    }
                    self.send_bus(bus, Wire::Bus(BusMsg::Configured { config }));
                } else {
                    self.send_bus(
                        bus,
                        Wire::Bus(BusMsg::ConfigFailed {
                            config,
                            error: u32::from(st),
                        }),
                    );
                }
            }
            XferUse::Pipe {
                bus,
                pipe,
                xfer,
                after,
            } => {
                let dead = self
                    .pipe(bus, pipe)
                    .is_none_or(|p| p.state == PipeState::Dead);
                let status = if dead { status::UNPLUGGED } else { st };
                if st == status::OK && !dead {
                    self.after(bus, pipe, after);
                }
                self.send_bus(
                    bus,
                    Wire::Pipe {
                        pipe,
                        msg: PipeMsg::Complete {
                            xfer,
                            status,
                            actual,
                        },
                    },
                );
            }
        }
    }

    /// After a successful CLEAR_FEATURE(ENDPOINT_HALT) or SET_INTERFACE,
    /// the controller's toggles follow the device's.
    fn after(&mut self, bus: u8, pipe: u32, after: After) {
        let Some(addr) = self.pipe_addr(bus, pipe) else {
            return;
        };
        let mut resets: Vec<u16, MAX_PIPES> = Vec::new();
        let Some(b) = self.buses[usize::from(bus)].as_ref() else {
            return;
        };
        let dev = self.device(addr);
        let config = dev
            .as_ref()
            .and_then(|d| d.active.and_then(|a| Self::config_of(d, a)));
        for p in b.pipes.iter().flatten() {
            let hit = match after {
                After::Nothing => false,
                After::ClearHalt(ep) => p.endpoint == ep && p.endpoint & 0x0f != 0,
                After::SetInterface(iface) => {
                    p.endpoint & 0x0f != 0
                        && config.is_some_and(|(bytes, _)| {
                            Config::parse(bytes).is_ok_and(|c| {
                                c.interfaces()
                                    .filter(|i| i.number == iface)
                                    .any(|i| c.endpoints(&i).any(|e| e.address == p.endpoint))
                            })
                        })
                }
            };
            if hit {
                let _ = resets.push(p.handle);
            }
        }
        for h in resets {
            self.send_hc(HcMsg::ResetToggle { ep: h });
        }
    }

    fn controller_reset(&mut self, error: u32, now: u64) {
        self.stats.controller_resets += 1;
        self.note(Note::ControllerReset { error });
        // Every endpoint is gone and every device was reset: each is
        // unplugged, and the ports report again. Their reports travel on
        // another ring and may have come first: a port last seen connected
        // is debounced again now (a later report restarts or ends that).
        for h in self.handles.iter_mut() {
            *h = None;
        }
        for x in self.xfers.iter_mut() {
            *x = None;
        }
        self.recount_xfers();
        // An enumeration's address is freed with the devices' below.
        self.enumeration = None;
        for b in 0..MAX_BUSES {
            let Some(bus) = self.buses[b] else { continue };
            if let BusState::Bound { .. } = bus.state {
                self.detach_driver(b as u8, true);
            }
        }
        self.addresses = [1, 0];
        for d in self.devices.iter_mut() {
            *d = None;
        }
        for p in 0..usize::from(self.ports) {
            self.port[p] = if self.connected[p] {
                PortState::Debouncing {
                    until: now + DEBOUNCE_NS,
                }
            } else {
                PortState::Empty
            };
        }
        self.queue.clear();
    }

    // ---- enumeration ----

    /// Periodic work: debounce ends, waits end, timeouts.
    pub fn tick(&mut self, now: u64) {
        for p in 0..usize::from(self.ports) {
            if let PortState::Debouncing { until } = self.port[p]
                && now >= until
            {
                self.port[p] = PortState::Queued;
                let _ = self.queue.push_back(p as u8);
            }
        }
        // Transfers of the hub's own that took too long: abort the
        // endpoint, which completes them ABORTED.
        for i in 0..MAX_XFERS {
            if self.timed_xfers == 0 {
                break;
            }
            let Some(x) = self.xfers[i] else { continue };
            if x.deadline.is_some_and(|d| now >= d) {
                if let Some(x) = self.xfers[i].as_mut() {
                    x.deadline = None;
                }
                self.timed_xfers -= 1;
                if let Some(e) = self.enumeration {
                    self.send_hc(HcMsg::AbortEndpoint { ep: e.handle });
                }
            }
        }
        if let Some(mut e) = self.enumeration {
            match e.step {
                Step::ResetWait { until } if now >= until => {
                    let Some(handle) = self.alloc_handle(HandleUse::Ep0 { addr: 0 }) else {
                        return self.enumeration_failed(Failure::NoHandle, now);
                    };
                    e.handle = handle;
                    e.step = Step::OpenEp0;
                    self.enumeration = Some(e);
                    self.send_hc(HcMsg::OpenEndpoint {
                        ep: handle,
                        addr: 0,
                        endpoint: 0,
                        kind: kind::CONTROL,
                        dir_in: false,
                        max_packet: 8,
                        interval: 0,
                        low_speed: e.low_speed,
                    });
                }
                Step::AddressWait { until } if now >= until => {
                    e.step = Step::CloseEp0;
                    self.enumeration = Some(e);
                    self.close_handle(e.handle);
                }
                _ => {}
            }
        }
        self.next_enumeration(now);
    }

    fn next_enumeration(&mut self, now: u64) {
        if self.enumeration.is_some() || !self.operational {
            return;
        }
        let Some(port) = self.queue.pop_front() else {
            return;
        };
        self.begin(port, 1, now);
    }

    fn begin(&mut self, port: u8, attempt: u8, now: u64) {
        self.port[usize::from(port)] = PortState::Enumerating;
        self.enumeration = Some(Enumeration {
            port,
            attempt,
            step: Step::Reset,
            addr: 0,
            handle: 0,
            max_packet0: 8,
            low_speed: false,
            started: now,
        });
        self.send_ports(PortsMsg::PortReset { port });
    }

    fn read(&self, len: u32) -> Vec<u8, CONFIG_BYTES> {
        let mut v = Vec::new();
        let n = (len as usize).min(CONFIG_BYTES).min(self.mem.size());
        let _ = v.resize(n, 0);
        self.mem.read(0, &mut v);
        v
    }

    fn enumeration_step(&mut self, st: u8, actual: u32, now: u64) {
        let Some(mut e) = self.enumeration else {
            return;
        };
        let step_name = match e.step {
            Step::GetPrefix => "device descriptor (8 bytes)",
            Step::SetAddress => "SET_ADDRESS",
            Step::GetDevice => "device descriptor",
            Step::GetConfigHeader { .. } => "configuration header",
            Step::GetConfig { .. } => "configuration",
            _ => "control transfer",
        };
        if st != status::OK {
            return self.enumeration_failed(
                Failure::Transfer {
                    step: step_name,
                    status: st,
                },
                now,
            );
        }
        let fail = |me: &mut Self, error| {
            me.enumeration_failed(
                Failure::Descriptor {
                    step: step_name,
                    error,
                },
                now,
            )
        };
        match e.step {
            Step::GetPrefix => {
                let b = self.read(actual);
                match DevicePrefix::parse(&b) {
                    Err(err) => return fail(self, err),
                    Ok(p) => e.max_packet0 = p.max_packet0,
                }
                let Some(addr) = self.alloc_address() else {
                    return self.enumeration_failed(Failure::NoAddress, now);
                };
                e.addr = addr;
                e.step = Step::SetAddress;
                self.enumeration = Some(e);
                self.control(e.handle, Setup::set_address(addr), now);
            }
            Step::SetAddress => {
                e.step = Step::AddressWait {
                    until: now + SET_ADDRESS_NS,
                };
                self.enumeration = Some(e);
            }
            Step::GetDevice => {
                let b = self.read(actual);
                let d = match DeviceDescriptor::parse(&b) {
                    Err(err) => return fail(self, err),
                    Ok(d) => d,
                };
                if usize::from(d.configurations) > MAX_CONFIGS {
                    return self
                        .enumeration_failed(Failure::TooManyConfigurations(d.configurations), now);
                }
                let dev = Device {
                    addr: e.addr,
                    port: e.port,
                    speed: if e.low_speed { speed::LOW } else { speed::FULL },
                    desc: d,
                    ep0: e.handle,
                    configs: [(0, 0, 0); MAX_CONFIGS],
                    config_count: 0,
                    config_bytes: [0; CONFIG_BYTES],
                    config_used: 0,
                    active: None,
                    bus: None,
                    released_by: 0,
                    gone: false,
                };
                self.add_device(dev);
                e.step = Step::GetConfigHeader { index: 0 };
                self.enumeration = Some(e);
                let s = Setup::get_descriptor(
                    descriptor::CONFIGURATION,
                    0,
                    desc::CONFIG_HEADER_LEN as u16,
                );
                self.control(e.handle, s, now);
            }
            Step::GetConfigHeader { index } => {
                let b = self.read(actual);
                let total = match desc::config_total_length(&b) {
                    Err(err) => return fail(self, err),
                    Ok(t) => t,
                };
                let used = self.device(e.addr).map_or(0, |d| d.config_used);
                if usize::from(total) + usize::from(used) > CONFIG_BYTES {
                    return self.enumeration_failed(Failure::ConfigurationTooLong(total), now);
                }
                e.step = Step::GetConfig { index, len: total };
                self.enumeration = Some(e);
                let s = Setup::get_descriptor(descriptor::CONFIGURATION, index, total);
                self.control(e.handle, s, now);
            }
            Step::GetConfig { len, .. } => {
                if actual < u32::from(len) {
                    return self.enumeration_failed(
                        Failure::Short {
                            step: step_name,
                            got: actual,
                            want: u32::from(len),
                        },
                        now,
                    );
                }
                let b = self.read(u32::from(len));
                let value = match Config::parse(&b) {
                    Err(err) => return fail(self, err),
                    Ok(c) => c.value,
                };
                let Some(d) = self.device_mut(e.addr) else {
                    return;
                };
                let at = usize::from(d.config_used);
                d.config_bytes[at..at + b.len()].copy_from_slice(&b);
                d.configs[usize::from(d.config_count)] = (value, at as u16, b.len() as u16);
                d.config_count += 1;
                d.config_used += b.len() as u16;
                let (count, want) = (d.config_count, d.desc.configurations);
                if count < want {
                    e.step = Step::GetConfigHeader { index: count };
                    self.enumeration = Some(e);
                    let s = Setup::get_descriptor(
                        descriptor::CONFIGURATION,
                        count,
                        desc::CONFIG_HEADER_LEN as u16,
                    );
                    self.control(e.handle, s, now);
                } else {
                    self.enumerated(now);
                }
            }
            _ => {}
        }
    }

    fn enumeration_failed(&mut self, why: Failure, now: u64) {
        let Some(e) = self.enumeration.take() else {
            return;
        };
        self.stats.failed += 1;
        self.note(Note::Failed {
            port: e.port,
            attempt: e.attempt,
            why,
        });
        self.cleanup_enumeration(&e);
        let p = usize::from(e.port);
        if e.attempt < ATTEMPTS && self.connected[p] {
            self.begin(e.port, e.attempt + 1, now);
        } else {
            self.port[p] = PortState::Failed;
            self.send_ports(PortsMsg::PortDisable { port: e.port });
            self.next_enumeration(now);
        }
    }

    /// The port went away mid-enumeration.
    fn abandon_enumeration(&mut self, now: u64) {
        if let Some(e) = self.enumeration.take() {
            self.cleanup_enumeration(&e);
        }
        self.next_enumeration(now);
    }

    fn cleanup_enumeration(&mut self, e: &Enumeration) {
        // Transfers of the enumeration are dropped with its endpoint.
        for x in self.xfers.iter_mut() {
            if x.is_some_and(|x| x.used == XferUse::Enumerate) {
                *x = None;
            }
        }
        self.recount_xfers();
        if e.handle != 0 && self.handle(e.handle).is_some() {
            self.close_handle(e.handle);
        }
        if e.addr != 0 {
            // The address stays taken until no endpoint of the controller
            // can still reach the device under it.
            match self.device_mut(e.addr) {
                Some(d) => d.gone = true,
                None => self.add_device(Device::placeholder(e.addr, e.port)),
            }
            self.maybe_forget(e.addr);
        }
    }

    fn add_device(&mut self, d: Device) {
        if let Some(slot) = self.devices.iter_mut().find(|d| d.is_none()) {
            *slot = Some(d);
        }
    }

    fn enumerated(&mut self, now: u64) {
        let Some(e) = self.enumeration.take() else {
            return;
        };
        self.stats.enumerated += 1;
        self.port[usize::from(e.port)] = PortState::Device { addr: e.addr };
        if let Some(d) = self.device(e.addr) {
            self.note(Note::Enumerated {
                port: e.port,
                speed: d.speed,
                addr: d.addr,
                vendor: d.desc.vendor,
                product: d.desc.product,
                class: (d.desc.class, d.desc.subclass, d.desc.protocol),
            });
        }
        self.bind(e.addr);
        self.next_enumeration(now);
    }

    /// The class triple `rule` matches on the device, if it does.
    fn matches(d: &Device, rule: Rule) -> Option<(u8, u8, u8)> {
        let dev = (d.desc.class, d.desc.subclass, d.desc.protocol);
        match rule {
            Rule::Id { vendor, product } => {
                (d.desc.vendor == vendor && d.desc.product == product).then_some(dev)
            }
            Rule::Class {
                class,
                subclass,
                protocol,
            } => {
                let want = (class, subclass, protocol);
                if dev == want {
                    return Some(dev);
                }
                for c in 0..usize::from(d.config_count) {
                    let (_, at, len) = d.configs[c];
                    let bytes = &d.config_bytes[usize::from(at)..usize::from(at + len)];
                    if let Ok(cfg) = Config::parse(bytes)
                        && cfg
                            .interfaces()
                            .any(|i| (i.class, i.subclass, i.protocol) == want)
                    {
                        return Some(want);
                    }
                }
                None
            }
        }
    }

    fn bind(&mut self, addr: u8) {
        let Some(d) = self.device(addr) else { return };
        for b in 0..MAX_BUSES {
            let Some(bus) = self.buses[b] else { continue };
            if bus.state != BusState::Idle || d.released_by & 1 << b != 0 {
                continue;
            }
            let Some(class) = Self::matches(&d, bus.cfg.rule) else {
                continue;
            };
            if let Some(bus) = self.buses[b].as_mut() {
                bus.state = BusState::Bound { addr };
            }
            if let Some(d) = self.device_mut(addr) {
                d.bus = Some(b as u8);
            }
            self.stats.attached += 1;
            self.note(Note::Bound {
                addr,
                bus: b,
                name: bus.cfg.name,
                class,
            });
            self.send_bus(
                b as u8,
                Wire::Bus(BusMsg::Attached {
                    port: d.port,
                    speed: d.speed,
                }),
            );
            self.send_bus(
                b as u8,
                Wire::Bus(BusMsg::Addressed {
                    addr,
                    vendor: d.desc.vendor,
                    product: d.desc.product,
                    class: class.0,
                    subclass: class.1,
                    protocol: class.2,
                }),
            );
            return;
        }
        self.note(Note::NoDriver {
            addr,
            vendor: d.desc.vendor,
            product: d.desc.product,
        });
    }

    // ---- devices ----

    fn device(&self, addr: u8) -> Option<Device> {
        self.devices
            .iter()
            .flatten()
            .find(|d| d.addr == addr)
            .copied()
    }

    fn device_mut(&mut self, addr: u8) -> Option<&mut Device> {
        self.devices.iter_mut().flatten().find(|d| d.addr == addr)
    }

    fn config_of(d: &Device, value: u8) -> Option<(&[u8], u8)> {
        (0..usize::from(d.config_count)).find_map(|c| {
            let (v, at, len) = d.configs[c];
            (v == value).then(|| (&d.config_bytes[usize::from(at)..usize::from(at + len)], v))
        })
    }

    /// The device at `addr` went away (or was reset).
    fn unplug(&mut self, addr: u8, _now: u64) {
        let Some(d) = self.device_mut(addr) else {
            return;
        };
        d.gone = true;
        let (port, bus, ep0) = (d.port, d.bus, d.ep0);
        self.stats.detached += 1;
        self.note(Note::Detached { port, addr });
        if let Some(b) = bus {
            self.detach_driver(b, false);
        }
        self.close_handle(ep0);
        self.maybe_forget(addr);
    }

    /// Tells the class driver its device went: detached, then each pipe
    /// unplugged and (once its endpoint closed) closed. `reset`: the
    /// controller already dropped every endpoint.
    fn detach_driver(&mut self, b: u8, reset: bool) {
        let Some(bus) = self.buses[usize::from(b)].as_mut() else {
            return;
        };
        bus.state = BusState::Gone;
        bus.configuring = false;
        let pipes = bus.pipes;
        self.send_bus(b, Wire::Bus(BusMsg::Detached));
        for p in pipes.iter().flatten() {
            if p.state == PipeState::Dead {
                continue;
            }
            let opening = p.state == PipeState::Opening;
            if let Some(q) = self.pipe_mut(b, p.key) {
                q.state = PipeState::Dead;
            }
            if opening {
                // Not open yet: it fails rather than dies.
                self.remove_pipe(b, p.key);
                self.send_bus(
                    b,
                    Wire::Pipe {
                        pipe: p.key,
                        msg: PipeMsg::OpenFailed {
                            error: u32::from(status::UNPLUGGED),
                        },
                    },
                );
                if !reset {
                    self.close_handle(p.handle);
                }
                continue;
            }
            self.send_bus(
                b,
                Wire::Pipe {
                    pipe: p.key,
                    msg: PipeMsg::Unplugged,
                },
            );
            if reset {
                // The controller has no endpoints any more.
                if let Some(q) = self.pipe_mut(b, p.key) {
                    q.hc_closed = true;
                }
                self.maybe_closed(b, p.key);
            } else {
                self.close_handle(p.handle);
            }
        }
    }

    /// Frees a gone device's address once no endpoint of it is open.
    fn maybe_forget(&mut self, addr: u8) {
        let Some(d) = self.device(addr) else { return };
        if !d.gone {
            return;
        }
        let open = self.handles.iter().flatten().any(|h| match h.used {
            HandleUse::Ep0 { addr: a } => a == addr,
            HandleUse::Pipe { addr: a, .. } | HandleUse::Orphan { addr: a } => a == addr,
        });
        if open {
            return;
        }
        self.free_address(addr);
        for slot in self.devices.iter_mut() {
            if slot.is_some_and(|d| d.addr == addr) {
                *slot = None;
            }
        }
    }

    // ---- class drivers ----

    fn pipe(&self, bus: u8, key: u32) -> Option<Pipe> {
        self.buses
            .get(usize::from(bus))?
            .as_ref()?
            .pipes
            .iter()
            .flatten()
            .find(|p| p.key == key)
            .copied()
    }

    fn pipe_mut(&mut self, bus: u8, key: u32) -> Option<&mut Pipe> {
        self.buses
            .get_mut(usize::from(bus))?
            .as_mut()?
            .pipes
            .iter_mut()
            .flatten()
            .find(|p| p.key == key)
    }

    fn remove_pipe(&mut self, bus: u8, key: u32) {
        if let Some(Some(b)) = self.buses.get_mut(usize::from(bus)) {
            for p in b.pipes.iter_mut() {
                if p.is_some_and(|p| p.key == key) {
                    *p = None;
                }
            }
        }
    }

    /// Sends `closed` once the endpoint is closed and, after an unplug,
    /// the driver's `close` arrived.
    fn maybe_closed(&mut self, bus: u8, key: u32) {
        let Some(p) = self.pipe(bus, key) else { return };
        let done = match p.state {
            PipeState::Closing => p.hc_closed,
            PipeState::Dead => p.hc_closed && p.client_closed,
            _ => false,
        };
        if done {
            self.remove_pipe(bus, key);
            self.send_bus(
                bus,
                Wire::Pipe {
                    pipe: key,
                    msg: PipeMsg::Closed,
                },
            );
        }
    }

    fn pipe_addr(&self, bus: u8, key: u32) -> Option<u8> {
        let p = self.pipe(bus, key)?;
        match self.handle(p.handle)?.used {
            HandleUse::Pipe { addr, .. } => Some(addr),
            HandleUse::Ep0 { .. } | HandleUse::Orphan { .. } => None,
        }
    }

    fn refuse(&mut self, bus: u8, why: Refusal) {
        self.stats.refused += 1;
        self.note(Note::Refused {
            bus: usize::from(bus),
            why,
        });
    }

    /// A message from class driver `bus`.
    pub fn bus_message(&mut self, bus: usize, w: Wire, now: u64) {
        let Some(b) = self.buses.get(bus).copied().flatten() else {
            return;
        };
        let bi = bus as u8;
        let addr = match b.state {
            BusState::Bound { addr } => Some(addr),
            _ => None,
        };
        match w {
            Wire::Bus(BusMsg::SetConfiguration { config }) => {
                // After a detach (crossing the notice): no answer.
                let Some(addr) = addr else { return };
                let Some(d) = self.device(addr) else { return };
                if Self::config_of(&d, config).is_none() {
                    self.refuse(bi, Refusal::NoSuchConfiguration(config));
                    self.send_bus(
                        bi,
                        Wire::Bus(BusMsg::ConfigFailed {
                            config,
                            error: u32::from(status::FAILED),
                        }),
                    );
                    return;
                }
                let Some(id) = self.start_xfer(XferUse::Configure { bus: bi, config }, None) else {
                    self.refuse(bi, Refusal::Busy);
                    self.send_bus(
                        bi,
                        Wire::Bus(BusMsg::ConfigFailed {
                            config,
                            error: u32::from(status::FAILED),
                        }),
                    );
                    return;
                };
                if let Some(b) = self.buses[bus].as_mut() {
                    b.configuring = true;
                }
                self.send_hc(HcMsg::Submit {
                    xfer: id,
                    ep: d.ep0,
                    setup: Setup::set_configuration(config).to_u64(),
                    buf: 0,
                    len: 0,
                });
            }
            Wire::Bus(BusMsg::OpenPipe {
                pipe,
                endpoint,
                kind: k,
                max_packet,
                interval,
            }) => self.open_pipe(bi, addr, pipe, endpoint, k, max_packet, interval),
            Wire::Bus(BusMsg::Release) => {
                if let Some(addr) = addr
                    && let Some(d) = self.device_mut(addr)
                {
                    // The driver let a present device go: it is not offered
                    // to this driver again, and `detached` answers.
                    d.bus = None;
                    d.released_by |= 1 << bus;
                    self.send_bus(bi, Wire::Bus(BusMsg::Detached));
                }
                // The driver closes its pipes before it releases; any left
                // are closed quietly.
                let pipes = b.pipes;
                for p in pipes.iter().flatten() {
                    if p.state != PipeState::Dead {
                        self.close_handle(p.handle);
                    }
                }
                if let Some(b) = self.buses[bus].as_mut() {
                    b.pipes = [None; MAX_PIPES];
                    b.state = BusState::Idle;
                    b.configuring = false;
                }
                // A device waiting for a driver may take this one now.
                self.rebind();
            }
            Wire::Pipe { pipe, msg } => self.pipe_message(bi, addr, pipe, msg, now),
            // The hub's own messages; a driver never sends them (its
            // observer rejects them before they get here).
            Wire::Bus(_) => {}
        }
    }

    /// Class driver `bus` was restarted: its port has a new session with a
    /// fresh instance that knows nothing of the old one's. What the old
    /// instance had open is closed as after an unplug, but quietly (the
    /// controller closes each pipe's endpoint, which completes its pending
    /// transfers ABORTED; those answers go nowhere), what the hub still
    /// had to send it is dropped, and the device, which stays addressed
    /// (its configuration is the new instance's to set again), is offered
    /// to the new instance as if it had just been plugged in.
    pub fn bus_restarted(&mut self, bus: usize, _now: u64) {
        let Some(b) = self.buses.get(bus).copied().flatten() else {
            return;
        };
        let bi = bus as u8;
        self.stats.driver_restarts += 1;
        self.bus_out[bus].clear();
        let pipes = b.pipes.iter().flatten().count() as u8;
        for i in 0..MAX_HANDLES {
            let Some(h) = self.handles[i].as_mut() else {
                continue;
            };
            if let HandleUse::Pipe { bus: hb, addr, .. } = h.used
                && hb == bi
            {
                h.used = HandleUse::Orphan { addr };
                // Closed only once (a pipe of an unplugged device is
                // closing already).
                self.close_handle(i as u16 + 1);
            }
        }
        let mut transfers = 0u8;
        for x in self.xfers.iter_mut().flatten() {
            if matches!(x.used, XferUse::Pipe { bus: xb, .. } | XferUse::Configure { bus: xb, .. } if xb == bi)
            {
                x.used = XferUse::Orphan;
                transfers += 1;
            }
        }
        let addr = match b.state {
            BusState::Bound { addr } => Some(addr),
            _ => None,
        };
        for d in self.devices.iter_mut().flatten() {
            if d.bus == Some(bi) {
                d.bus = None;
            }
            // The old instance let it go; the new one is asked again.
            d.released_by &= !(1 << bus);
        }
        if let Some(b) = self.buses[bus].as_mut() {
            b.pipes = [None; MAX_PIPES];
            b.state = BusState::Idle;
            b.configuring = false;
        }
        self.note(Note::DriverRestarted {
            bus,
            name: b.cfg.name,
            pipes,
            transfers,
            addr,
        });
        self.rebind();
    }

    /// Devices without a driver try the idle drivers again.
    fn rebind(&mut self) {
        for i in 0..MAX_DEVICES {
            let Some(d) = self.devices[i] else { continue };
            if d.bus.is_none()
                && !d.gone
                && self.port[usize::from(d.port)] == (PortState::Device { addr: d.addr })
            {
                self.bind(d.addr);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open_pipe(
        &mut self,
        bus: u8,
        addr: Option<u8>,
        pipe: u32,
        endpoint: u8,
        k: u8,
        max_packet: u16,
        interval: u8,
    ) {
        let fail = |me: &mut Self, error: u8| {
            me.send_bus(
                bus,
                Wire::Pipe {
                    pipe,
                    msg: PipeMsg::OpenFailed {
                        error: u32::from(error),
                    },
                },
            )
        };
        // Crossing a detach: the pipe fails.
        let Some(d) = addr.and_then(|a| self.device(a)).filter(|d| !d.gone) else {
            return fail(self, status::UNPLUGGED);
        };
        // Endpoint 0 is the device's, at its bMaxPacketSize0 whatever the
        // driver asks (it may not have read the descriptor).
        let max_packet = if endpoint & 0x0f == 0 {
            u16::from(d.desc.max_packet0)
        } else {
            max_packet
        };
        let ok = if endpoint & 0x0f == 0 {
            k == kind::CONTROL && endpoint == 0
        } else {
            d.active
                .and_then(|a| Self::config_of(&d, a))
                .is_some_and(|(bytes, _)| {
                    Config::parse(bytes).is_ok_and(|c| {
                        c.endpoint(endpoint).is_some_and(|e| {
                            e.kind == k && max_packet <= e.max_packet && max_packet > 0
                        })
                    })
                })
        };
        if !ok {
            self.refuse(
                bus,
                Refusal::NoSuchEndpoint {
                    endpoint,
                    kind: k,
                    max_packet,
                },
            );
            return fail(self, status::FAILED);
        }
        let Some(slot) = self.buses[usize::from(bus)]
            .as_ref()
            .and_then(|b| b.pipes.iter().position(Option::is_none))
        else {
            self.refuse(bus, Refusal::Busy);
            return fail(self, status::FAILED);
        };
        let Some(handle) = self.alloc_handle(HandleUse::Pipe {
            bus,
            pipe,
            addr: d.addr,
        }) else {
            self.refuse(bus, Refusal::NoHandle);
            return fail(self, status::FAILED);
        };
        if let Some(b) = self.buses[usize::from(bus)].as_mut() {
            b.pipes[slot] = Some(Pipe {
                key: pipe,
                handle,
                endpoint,
                kind: k,
                state: PipeState::Opening,
                client_closed: false,
                hc_closed: false,
            });
        }
        self.send_hc(HcMsg::OpenEndpoint {
            ep: handle,
            addr: d.addr,
            endpoint: endpoint & 0x0f,
            kind: k,
            dir_in: endpoint & 0x80 != 0,
            max_packet,
            interval,
            low_speed: d.speed == speed::LOW,
        });
    }

    fn pipe_message(&mut self, bus: u8, addr: Option<u8>, pipe: u32, msg: PipeMsg, _now: u64) {
        let Some(p) = self.pipe(bus, pipe) else {
            // A pipe already closed (or never opened): transfers that
            // crossed the close are answered, the rest dropped.
            if let PipeMsg::Submit { xfer, .. } = msg {
                self.refuse(bus, Refusal::UnknownPipe { pipe });
                let _ = (xfer, addr);
            }
            return;
        };
        match msg {
            PipeMsg::Submit {
                xfer,
                setup,
                buf,
                len,
            } => {
                let complete = |me: &mut Self, st: u8| {
                    me.send_bus(
                        bus,
                        Wire::Pipe {
                            pipe,
                            msg: PipeMsg::Complete {
                                xfer,
                                status: st,
                                actual: 0,
                            },
                        },
                    )
                };
                if p.state == PipeState::Dead {
                    return complete(self, status::UNPLUGGED);
                }
                let mut after = After::Nothing;
                if p.kind == kind::CONTROL {
                    let s = Setup::from_u64(setup);
                    if s.is_standard() {
                        match s.request {
                            request::SET_ADDRESS | request::SET_CONFIGURATION
                                if s.recipient() == request_type::DEVICE =>
                            {
                                self.refuse(bus, Refusal::Request { request: s.request });
                                return complete(self, status::FAILED);
                            }
                            request::CLEAR_FEATURE
                                if s.recipient() == request_type::ENDPOINT
                                    && s.value == usb_core::setup::ENDPOINT_HALT =>
                            {
                                after = After::ClearHalt(s.index as u8);
                            }
                            request::SET_INTERFACE => after = After::SetInterface(s.index as u8),
                            _ => {}
                        }
                    }
                }
                let window = self.buses[usize::from(bus)].map_or(0, |b| b.cfg.window);
                let hc_buf = if len == 0 {
                    Some(0)
                } else {
                    window::address(window, buf)
                        .filter(|_| buf.checked_add(len).is_some_and(|e| e <= window::MAX_SIZE))
                };
                let Some(hc_buf) = hc_buf else {
                    self.refuse(bus, Refusal::Buffer { buf });
                    return complete(self, status::FAILED);
                };
                let Some(id) = self.start_xfer(
                    XferUse::Pipe {
                        bus,
                        pipe,
                        xfer,
                        after,
                    },
                    None,
                ) else {
                    self.refuse(bus, Refusal::Busy);
                    return complete(self, status::FAILED);
                };
                self.send_hc(HcMsg::Submit {
                    xfer: id,
                    ep: p.handle,
                    setup,
                    buf: hc_buf,
                    len,
                });
            }
            PipeMsg::Abort if p.state == PipeState::Open => {
                if let Some(q) = self.pipe_mut(bus, pipe) {
                    q.state = PipeState::Aborting;
                }
                self.send_hc(HcMsg::AbortEndpoint { ep: p.handle });
            }
            PipeMsg::Close => {
                let mut close = false;
                if let Some(q) = self.pipe_mut(bus, pipe) {
                    q.client_closed = true;
                    if matches!(q.state, PipeState::Open | PipeState::Aborting) {
                        q.state = PipeState::Closing;
                        close = true;
                    }
                }
                if close {
                    self.close_handle(p.handle);
                }
                self.maybe_closed(bus, pipe);
            }
            // The hub's own messages.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;

/// The names of [`Hub::counters`], in order (the stats page's layout).
pub const COUNTERS: [&str; 11] = [
    "addresses",
    "handles",
    "transfers",
    "pipes",
    "enumerated",
    "attached",
    "detached",
    "failed",
    "refused",
    "controller_resets",
    "driver_restarts",
];

impl<M: HubMemory> Hub<M> {
    /// What is in use and what was counted, as [`COUNTERS`] names them.
    pub fn counters(&self) -> [u64; COUNTERS.len()] {
        let u = self.usage();
        let s = self.stats;
        [
            u.addresses as u64,
            u.handles as u64,
            u.transfers as u64,
            u.pipes as u64,
            s.enumerated,
            s.attached,
            s.detached,
            s.failed,
            s.refused,
            s.controller_resets,
            s.driver_restarts,
        ]
    }
}
