//! A Timer port: one shared region per client (both rings, no data area)
//! and one channel. The timer PD holds side A with the provider's observer,
//! the client side B with the client's (mirror) observer, so each end checks
//! every message it sends and receives against `tingu/dingo-protocols/timer.tingu`.

use dingo_protocols::timer::{Msg, Observer};
use dingo_rt::port::{Port, PortError, Side};
use dingo_rt::typed::{Protocol, Supervisor, TypedPort};

/// Size of a Timer port region in system.xml (`size="0x1000"`).
pub const PORT_SIZE: usize = 0x1000;
/// Slots per ring; both ends must agree, so it is fixed here.
pub const PORT_SLOTS: u32 = 16;

/// One end of a Timer port.
pub type TimerPort<'r> = TypedPort<'r, Protocol<Observer>>;

/// Which end of the port this PD holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The timer PD.
    Provider,
    /// A PD that sets timeouts.
    Client,
}

/// Attaches to the Timer port region at `base` (mapped read-write) on
/// `channel`; `now_ns` starts the observer's clock, `name` labels reports.
///
/// # Safety
///
/// `base` must stay mapped readable and writable for [`PORT_SIZE`] bytes
/// while the port is used, and this PD must hold no other handle on it;
/// the peer holds the other end.
pub unsafe fn attach<'r>(
    base: *mut u8,
    channel: u8,
    end: End,
    supervisor: Supervisor<'r>,
    component: &'static str,
    name: &'static str,
    now_ns: u64,
) -> Result<TimerPort<'r>, PortError> {
    let (side, observer) = match end {
        End::Provider => (Side::A, Protocol::provider(Observer::new(now_ns))),
        End::Client => (Side::B, Protocol::client(Observer::new(now_ns))),
    };
    // SAFETY: the caller's contract is Port::new's.
    let port = unsafe { Port::new(base, PORT_SIZE, PORT_SLOTS, side, channel) }?;
    Ok(TypedPort::new(port, observer, supervisor, component, name))
}

/// Convenience for the answers a client waits for.
pub fn answer_id(msg: &Msg) -> Option<u32> {
    match *msg {
        Msg::Fired { id } | Msg::Cancelled { id } | Msg::Rejected { id, .. } => Some(id),
        Msg::Request { .. } | Msg::Cancel { .. } => None,
    }
}
