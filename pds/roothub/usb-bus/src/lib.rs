//! The UsbBus port: the hub and one class driver talk UsbBus and, for each
//! pipe the driver opens, UsbPipe (the subports `openPipe` spawns, see
//! components.tingu). All of it travels on one Dingo port, so that a
//! pipe's messages stay in order with the bus's (a `detached` can never
//! overtake the completions before it, nor be overtaken by them).
//!
//! [`Wire`] is one slot's message: byte 0 says which protocol (0 UsbBus,
//! 1 UsbPipe), bytes 4..8 carry the pipe's key (little-endian), bytes
//! 8..64 the protocol's own encoding (every USB message fits 56 bytes; a
//! test checks). [`BusObserver`] checks every message with the component
//! observer of its end (`RootHub` in the hub, `UsbKeyboard`, `UsbStorage`,
//! `UsbEthernet` in the drivers), so that subports are spawned, checked
//! and closed by the generated code and dependencies between the bus and
//! the driver's other ports hold. A [`BusPort`] is dingo-rt's typed port
//! over these two: the rings, signalling, counters, violation reports and
//! the protocol-version check are the ones every port has.

#![cfg_attr(not(test), no_std)]

use core::cell::RefCell;
use core::fmt;

use dingo_protocols::{usb_bus, usb_pipe};
use dingo_rt::typed::{PortObserver, TypedPort};
use tingu_rt::shadow::{NoShadow, Shadowed};
use tingu_rt::{Direction, Flow, Message, SLOT, Violation, ViolationKind, WireError};

pub use usb_bus::Msg as BusMsg;
pub use usb_pipe::Msg as PipeMsg;

/// Bytes before a message's own encoding.
const HEADER: usize = 8;
const TAG_BUS: u8 = 0;
const TAG_PIPE: u8 = 1;

/// One message on a UsbBus port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Bus(usb_bus::Msg),
    Pipe { pipe: u32, msg: usb_pipe::Msg },
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wire::Bus(m) => write!(f, "{m}"),
            Wire::Pipe { pipe, msg } => write!(f, "pipe {pipe}: {msg}"),
        }
    }
}

/// Nothing of a UsbBus port is replayed to a restarted hub: its class
/// drivers are told, and start over as after an unplug.
impl Shadowed for Wire {
    type Shadow = NoShadow;
}

impl Message for Wire {
    const PROTOCOL: &'static str = "UsbBus+UsbPipe";
    // Both protocols' hashes: a peer built from another version of either
    // is refused.
    const HASH: u64 = usb_bus::HASH ^ usb_pipe::HASH.rotate_left(17) | 1;
    // The header, then the longer of the two protocols' messages (cut at
    // the slot, as encode cuts it).
    const WIRE_BYTES: usize = {
        let inner = if usb_bus::WIRE_BYTES > usb_pipe::WIRE_BYTES {
            usb_bus::WIRE_BYTES
        } else {
            usb_pipe::WIRE_BYTES
        };
        if HEADER + inner < SLOT {
            HEADER + inner
        } else {
            SLOT
        }
    };

    fn id(&self) -> u16 {
        match self {
            Wire::Bus(m) => m.id(),
            Wire::Pipe { msg, .. } => 0x100 | msg.id(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Wire::Bus(m) => m.name(),
            Wire::Pipe { msg, .. } => msg.name(),
        }
    }

    fn direction(&self) -> Direction {
        match self {
            Wire::Bus(m) => m.direction(),
            Wire::Pipe { msg, .. } => msg.direction(),
        }
    }

    fn encode(&self, slot: &mut [u8; SLOT]) {
        let mut inner = [0u8; SLOT];
        let (tag, key) = match self {
            Wire::Bus(m) => {
                m.encode(&mut inner);
                (TAG_BUS, 0)
            }
            Wire::Pipe { pipe, msg } => {
                msg.encode(&mut inner);
                (TAG_PIPE, *pipe)
            }
        };
        *slot = [0; SLOT];
        slot[0] = tag;
        slot[4..HEADER].copy_from_slice(&key.to_le_bytes());
        slot[HEADER..].copy_from_slice(&inner[..SLOT - HEADER]);
    }

    fn decode(slot: &[u8]) -> Result<Self, WireError> {
        if slot.len() < HEADER {
            return Err(WireError::Truncated {
                needed: HEADER,
                got: slot.len(),
            });
        }
        let key = u32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]);
        match slot[0] {
            TAG_BUS if key == 0 => usb_bus::Msg::decode(&slot[HEADER..]).map(Wire::Bus),
            TAG_PIPE => {
                usb_pipe::Msg::decode(&slot[HEADER..]).map(|msg| Wire::Pipe { pipe: key, msg })
            }
            // Neither protocol (or a bus message with a key): not ours.
            t => Err(WireError::UnknownId(u16::from(t) << 8 | 0xff)),
        }
    }
}

/// A generated component observer's `observe_<port>` method.
pub type ObserveFn<C, M> = for<'a> fn(&'a mut C, &'a M, Flow, u64) -> Result<(), Violation<'a>>;

/// A generated component observer's `observe_<subport>` method.
pub type ObserveSubportFn<C, M> =
    for<'a> fn(&'a mut C, u64, &'a M, Flow, u64) -> Result<(), Violation<'a>>;

/// Where a [`BusObserver`] finds its port and subport in the component.
pub struct BusParts<C> {
    pub bus: ObserveFn<C, usb_bus::Msg>,
    pub pipes: ObserveSubportFn<C, usb_pipe::Msg>,
    /// Timeouts of the whole component (its `check_timeouts`).
    pub timeouts: for<'a> fn(&'a mut C, u64) -> Result<(), Violation<'a>>,
    pub deadline: fn(&C) -> Option<u64>,
}

/// The [`BusParts`] of a class driver's component observer `$c`: its
/// UsbBus port is `usb` and the pipes it opens the subport `pipes`, as
/// every class driver's component in components.tingu names them.
#[macro_export]
macro_rules! class_driver_parts {
    ($c:ty) => {
        $crate::BusParts::<$c> {
            bus: <$c>::observe_usb,
            pipes: <$c>::observe_pipes,
            timeouts: <$c>::check_timeouts,
            deadline: <$c>::deadline_ns,
        }
    };
}

impl<C> Clone for BusParts<C> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C> Copy for BusParts<C> {}

/// The component observer `C` (shared by the PD's ports through a
/// `RefCell`) as the observer of a UsbBus port.
pub struct BusObserver<'c, C> {
    component: &'c RefCell<C>,
    parts: BusParts<C>,
    restart: Option<RestartFn<C>>,
}

/// A generated component observer's `restart_<port>` method.
pub type RestartFn<C> = fn(&mut C, u64);

impl<'c, C> BusObserver<'c, C> {
    pub const fn new(component: &'c RefCell<C>, parts: BusParts<C>) -> Self {
        BusObserver {
            component,
            parts,
            restart: None,
        }
    }

    /// On the hub's end of a class driver that the monitor may restart:
    /// when the driver's new instance appears, `restart` puts the port and
    /// the pipes it spawned back to the start (the generated
    /// `restart_<port>`), so the observer follows the new session.
    pub const fn restartable(mut self, restart: RestartFn<C>) -> Self {
        self.restart = Some(restart);
        self
    }

    pub fn component(&self) -> &'c RefCell<C> {
        self.component
    }
}

impl<C> PortObserver for BusObserver<'_, C> {
    type Msg = Wire;

    fn observe(
        &mut self,
        msg: &Wire,
        flow: Flow,
        now_ns: u64,
        show: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind> {
        let mut c = self.component.borrow_mut();
        let checked = match msg {
            Wire::Bus(m) => (self.parts.bus)(&mut c, m, flow, now_ns),
            Wire::Pipe { pipe, msg } => {
                (self.parts.pipes)(&mut c, u64::from(*pipe), msg, flow, now_ns)
            }
        };
        checked.map_err(|v| {
            show(&v);
            v.kind
        })
    }

    fn check_timeouts(
        &mut self,
        now_ns: u64,
        show: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind> {
        let mut c = self.component.borrow_mut();
        (self.parts.timeouts)(&mut c, now_ns).map_err(|v| {
            show(&v);
            v.kind
        })
    }

    fn deadline_ns(&self) -> Option<u64> {
        (self.parts.deadline)(&self.component.borrow())
    }

    fn restart(&mut self, now_ns: u64) {
        if let Some(restart) = self.restart {
            restart(&mut self.component.borrow_mut(), now_ns);
        }
    }
}

/// One end of a UsbBus port.
pub type BusPort<'r, 'c, C> = TypedPort<'r, BusObserver<'c, C>>;

#[cfg(test)]
mod tests;

pub mod session;
