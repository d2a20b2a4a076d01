//! A class driver's side of its UsbBus port, minus the class: which
//! device is there, its configuration, its pipes and their transfers (a
//! control transfer aborted when it takes too long), and
//! the unplug path (detached, each pipe unplugged, its transfers completed
//! UNPLUGGED, closed, then `release` back to the hub, which the session
//! sends by itself once the last pipe closed). The class driver turns the
//! session's [`Event`]s into its own work and asks the session to open
//! pipes and submit transfers; everything the session sends waits in its
//! outbox for the PD to put on the port.

use heapless::{Deque, Vec};

use usb_core::setup::Setup;

use crate::{BusMsg, PipeMsg, Wire};

/// Pipes a session holds (the class components' subport limit).
pub const MAX_PIPES: usize = 4;
/// How long a class driver's control transfer ([`Session::control`]) may
/// take before [`Session::tick`] aborts it: a device that NAKs its
/// default pipe forever must not stall the driver.
pub const CONTROL_TIMEOUT_NS: u64 = 1_000_000_000;
const OUT: usize = 64;

/// What the class driver learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A device was bound to this driver: it is addressed and unconfigured.
    Device(Device),
    Configured(u8),
    ConfigFailed(u8),
    Opened(u32),
    OpenFailed(u32),
    Complete {
        pipe: u32,
        xfer: u32,
        status: u8,
        actual: u32,
    },
    AbortComplete(u32),
    /// The device was unplugged: no more requests succeed; completions of
    /// pending transfers still come (UNPLUGGED).
    Detached,
    /// Every pipe closed and the device released: the next may come.
    Idle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    pub port: u8,
    pub speed: u8,
    pub addr: u8,
    pub vendor: u16,
    pub product: u16,
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PipeState {
    Opening,
    Open,
    Aborting,
    Closing,
    Dead,
}

#[derive(Clone, Copy, Debug)]
struct Pipe {
    key: u32,
    state: PipeState,
    pending: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Empty,
    Attached {
        port: u8,
        speed: u8,
    },
    Present,
    /// Detached: waiting for the pipes to close.
    Gone,
    /// The driver let the device go: waiting for the pipes to close, then
    /// `release`, then the detach (the hub keeps the device addressed).
    Releasing,
    Released,
}

/// The session (see the module doc).
pub struct Session {
    state: State,
    pipes: [Option<Pipe>; MAX_PIPES],
    out: Deque<Wire, OUT>,
    /// The control transfer in flight: its pipe, its id and when it is
    /// given up.
    control: Option<(u32, u32, u64)>,
    /// Unplugs seen (for the counters the tests read).
    pub detaches: u64,
    pub attaches: u64,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub const fn new() -> Self {
        Session {
            state: State::Empty,
            pipes: [None; MAX_PIPES],
            out: Deque::new(),
            control: None,
            detaches: 0,
            attaches: 0,
        }
    }

    /// The next message for the hub.
    pub fn take(&mut self) -> Option<Wire> {
        self.out.pop_front()
    }

    pub fn unget(&mut self, w: Wire) {
        let _ = self.out.push_front(w);
    }

    fn send(&mut self, w: Wire) {
        // At most one message per request the driver makes, and the PD
        // drains the outbox before it takes more input.
        let _ = self.out.push_back(w);
    }

    /// A device is present and not being let go.
    pub fn present(&self) -> bool {
        self.state == State::Present
    }

    /// Pipes open or closing (a leak check once idle).
    pub fn pipes(&self) -> usize {
        self.pipes.iter().flatten().count()
    }

    /// Transfers in flight on all pipes.
    pub fn pending(&self) -> usize {
        self.pipes
            .iter()
            .flatten()
            .map(|p| usize::from(p.pending))
            .sum()
    }

    fn pipe_mut(&mut self, key: u32) -> Option<&mut Pipe> {
        self.pipes.iter_mut().flatten().find(|p| p.key == key)
    }

    fn remove(&mut self, key: u32) {
        for p in self.pipes.iter_mut() {
            if p.is_some_and(|p| p.key == key) {
                *p = None;
            }
        }
    }

    pub fn set_configuration(&mut self, config: u8) -> bool {
        if self.state != State::Present {
            return false;
        }
        self.send(Wire::Bus(BusMsg::SetConfiguration { config }));
        true
    }

    /// Opens a pipe; `Opened` or `OpenFailed` follows.
    pub fn open(
        &mut self,
        key: u32,
        endpoint: u8,
        kind: u8,
        max_packet: u16,
        interval: u8,
    ) -> bool {
        if self.state != State::Present || self.pipe_mut(key).is_some() {
            return false;
        }
        let Some(slot) = self.pipes.iter_mut().find(|p| p.is_none()) else {
            return false;
        };
        *slot = Some(Pipe {
            key,
            state: PipeState::Opening,
            pending: 0,
        });
        self.send(Wire::Bus(BusMsg::OpenPipe {
            pipe: key,
            endpoint,
            kind,
            max_packet,
            interval,
        }));
        true
    }

    /// Queues a transfer on an open pipe; `Complete` follows. `false`: the
    /// pipe is not open (nothing was sent).
    pub fn submit(&mut self, pipe: u32, xfer: u32, setup: u64, buf: u32, len: u32) -> bool {
        match self.pipe_mut(pipe) {
            Some(p) if p.state == PipeState::Open => p.pending += 1,
            _ => return false,
        }
        self.send(Wire::Pipe {
            pipe,
            msg: PipeMsg::Submit {
                xfer,
                setup,
                buf,
                len,
            },
        });
        true
    }

    /// [`submit`](Self::submit) of the control transfer `setup`, its data
    /// stage the setup's `length` bytes at `buf` (no buffer without one),
    /// one at a time: it is aborted (and so completes ABORTED) if it has
    /// not completed [`CONTROL_TIMEOUT_NS`] after `now`; its completion (on
    /// `pipe`, with this `xfer`), a detach or a release forgets the
    /// deadline. Other transfers on the pipe are timed by whoever submitted
    /// them.
    pub fn control(&mut self, pipe: u32, xfer: u32, setup: Setup, buf: u32, now: u64) -> bool {
        let len = u32::from(setup.length);
        // Without a data stage the buffer is not the device's to touch.
        let buf = if len == 0 { 0 } else { buf };
        let sent = self.submit(pipe, xfer, setup.to_u64(), buf, len);
        if sent {
            self.control = Some((pipe, xfer, now + CONTROL_TIMEOUT_NS));
        }
        sent
    }

    /// When the control transfer in flight is given up, if one is.
    pub fn deadline(&self) -> Option<u64> {
        self.control.map(|(_, _, at)| at)
    }

    /// Aborts the control transfer in flight once its deadline passed.
    pub fn tick(&mut self, now: u64) {
        if let Some((pipe, _, at)) = self.control
            && now >= at
        {
            self.control = None;
            self.abort(pipe);
        }
    }

    /// Ends every pending transfer of the pipe; `AbortComplete` follows.
    pub fn abort(&mut self, pipe: u32) -> bool {
        match self.pipe_mut(pipe) {
            Some(p) if p.state == PipeState::Open => p.state = PipeState::Aborting,
            _ => return false,
        }
        self.send(Wire::Pipe {
            pipe,
            msg: PipeMsg::Abort,
        });
        true
    }

    /// Lets the device go (an unsupported one, or a driver giving up):
    /// every pipe is closed, then the device released.
    pub fn release(&mut self) {
        // Whatever the state: a driver giving up waits for no transfer.
        self.control = None;
        if self.state != State::Present {
            return;
        }
        self.state = State::Releasing;
        self.close_all();
        self.maybe_done();
    }

    fn close_all(&mut self) {
        let mut keys: Vec<u32, MAX_PIPES> = Vec::new();
        for p in self.pipes.iter_mut().flatten() {
            if p.state == PipeState::Open {
                p.state = PipeState::Closing;
                let _ = keys.push(p.key);
            }
        }
        for k in keys {
            self.send(Wire::Pipe {
                pipe: k,
                msg: PipeMsg::Close,
            });
        }
    }

    /// Releases once nothing is open any more (after a detach or a
    /// `release`).
    fn maybe_done(&mut self) -> Option<Event> {
        if self.pipes() != 0 {
            return None;
        }
        match self.state {
            State::Gone => {
                self.send(Wire::Bus(BusMsg::Release));
                self.state = State::Empty;
                Some(Event::Idle)
            }
            State::Releasing => {
                self.send(Wire::Bus(BusMsg::Release));
                self.state = State::Released;
                None
            }
            _ => None,
        }
    }

    /// A message from the hub.
    pub fn input(&mut self, w: Wire) -> Option<Event> {
        match w {
            Wire::Bus(BusMsg::Attached { port, speed }) => {
                self.attaches += 1;
                self.state = State::Attached { port, speed };
                None
            }
            Wire::Bus(BusMsg::Addressed {
                addr,
                vendor,
                product,
                class,
                subclass,
                protocol,
            }) => {
                let State::Attached { port, speed } = self.state else {
                    return None;
                };
                self.state = State::Present;
                Some(Event::Device(Device {
                    port,
                    speed,
                    addr,
                    vendor,
                    product,
                    class,
                    subclass,
                    protocol,
                }))
            }
            Wire::Bus(BusMsg::Configured { config }) => Some(Event::Configured(config)),
            Wire::Bus(BusMsg::ConfigFailed { config, .. }) => Some(Event::ConfigFailed(config)),
            Wire::Bus(BusMsg::Detached) => {
                self.detaches += 1;
                self.control = None;
                let released = self.state == State::Released;
                self.state = State::Gone;
                if released {
                    // Already released: the port is empty again at once.
                    self.state = State::Empty;
                    return Some(Event::Idle);
                }
                // Pipes still opening fail; open ones get `unplugged`.
                self.maybe_done().or(Some(Event::Detached))
            }
            Wire::Pipe { pipe, msg } => self.pipe_input(pipe, msg),
            // The driver's own messages never come back.
            Wire::Bus(_) => None,
        }
    }

    fn pipe_input(&mut self, pipe: u32, msg: PipeMsg) -> Option<Event> {
        let gone = matches!(self.state, State::Gone | State::Releasing);
        let p = self.pipe_mut(pipe)?;
        match msg {
            PipeMsg::Opened => {
                p.state = PipeState::Open;
                if gone {
                    // The release crossed the open: close it again.
                    p.state = PipeState::Closing;
                    self.send(Wire::Pipe {
                        pipe,
                        msg: PipeMsg::Close,
                    });
                    return None;
                }
                Some(Event::Opened(pipe))
            }
            PipeMsg::OpenFailed { .. } => {
                self.remove(pipe);
                if gone {
                    return self.maybe_done();
                }
                Some(Event::OpenFailed(pipe))
            }
            PipeMsg::Complete {
                xfer,
                status,
                actual,
            } => {
                p.pending = p.pending.saturating_sub(1);
                if self.control.is_some_and(|(p, x, _)| (p, x) == (pipe, xfer)) {
                    self.control = None;
                }
                Some(Event::Complete {
                    pipe,
                    xfer,
                    status,
                    actual,
                })
            }
            PipeMsg::AbortComplete => {
                if p.state == PipeState::Aborting {
                    p.state = PipeState::Open;
                }
                Some(Event::AbortComplete(pipe))
            }
            PipeMsg::Unplugged => {
                // The close tells the hub no submit of ours is on its way;
                // `closed` follows it (once it was sent, whenever).
                let closing = p.state == PipeState::Closing;
                p.state = PipeState::Dead;
                if !closing {
                    self.send(Wire::Pipe {
                        pipe,
                        msg: PipeMsg::Close,
                    });
                }
                None
            }
            PipeMsg::Closed => {
                self.remove(pipe);
                self.maybe_done()
            }
            // The driver's own messages.
            PipeMsg::Submit { .. } | PipeMsg::Abort | PipeMsg::Close => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attach(s: &mut Session) -> Option<Event> {
        s.input(Wire::Bus(BusMsg::Attached { port: 1, speed: 1 }));
        s.input(Wire::Bus(BusMsg::Addressed {
            addr: 3,
            vendor: 1,
            product: 2,
            class: 3,
            subclass: 1,
            protocol: 1,
        }))
    }

    fn drain(s: &mut Session) -> std::vec::Vec<Wire> {
        std::iter::from_fn(|| s.take()).collect()
    }

    fn with_ep0(s: &mut Session) {
        attach(s);
        s.open(0, 0, 0, 8, 0);
        s.input(Wire::Pipe {
            pipe: 0,
            msg: PipeMsg::Opened,
        });
        drain(s);
    }

    fn complete(s: &mut Session, pipe: u32, xfer: u32) -> Option<Event> {
        s.input(Wire::Pipe {
            pipe,
            msg: PipeMsg::Complete {
                xfer,
                status: 0,
                actual: 0,
            },
        })
    }

    #[test]
    fn a_control_transfer_unanswered_is_aborted_at_its_deadline() {
        let mut s = Session::new();
        with_ep0(&mut s);
        let setup = Setup::get_descriptor(1, 0, 18);
        assert!(s.control(0, 7, setup, 0x40, 1_000));
        assert_eq!(s.deadline(), Some(1_000 + CONTROL_TIMEOUT_NS));
        assert_eq!(
            drain(&mut s),
            [Wire::Pipe {
                pipe: 0,
                msg: PipeMsg::Submit {
                    xfer: 7,
                    setup: setup.to_u64(),
                    buf: 0x40,
                    len: 18
                }
            }],
            "the data stage is the setup's length"
        );
        s.tick(CONTROL_TIMEOUT_NS + 999);
        assert_eq!(drain(&mut s), [], "not yet");
        s.tick(CONTROL_TIMEOUT_NS + 1_000);
        assert_eq!(
            drain(&mut s),
            [Wire::Pipe {
                pipe: 0,
                msg: PipeMsg::Abort
            }]
        );
        assert_eq!(s.deadline(), None);
        s.tick(u64::MAX);
        assert_eq!(drain(&mut s), [], "aborted once");
    }

    #[test]
    fn a_completion_detach_or_release_forgets_the_deadline() {
        let mut s = Session::new();
        with_ep0(&mut s);
        s.control(0, 7, Setup::clear_halt(0x81), 0, 0);
        // Another pipe's completion is not the control transfer's.
        s.open(1, 0x81, 3, 8, 10);
        s.input(Wire::Pipe {
            pipe: 1,
            msg: PipeMsg::Opened,
        });
        s.submit(1, 7, 0, 0, 8);
        complete(&mut s, 1, 7);
        assert!(s.deadline().is_some());
        // Nor is another transfer's on the same pipe.
        s.submit(0, 8, 0, 0, 0);
        complete(&mut s, 0, 8);
        assert!(s.deadline().is_some());
        complete(&mut s, 0, 7);
        assert_eq!(s.deadline(), None);

        s.control(0, 7, Setup::clear_halt(0x81), 0, 0);
        s.input(Wire::Bus(BusMsg::Detached));
        assert_eq!(s.deadline(), None);

        let mut s = Session::new();
        with_ep0(&mut s);
        s.control(0, 7, Setup::clear_halt(0x81), 0, 0);
        s.release();
        assert_eq!(s.deadline(), None);
        drain(&mut s);
        s.tick(u64::MAX);
        assert_eq!(drain(&mut s), []);
    }

    #[test]
    fn a_control_transfer_without_a_data_stage_gives_no_buffer() {
        let mut s = Session::new();
        with_ep0(&mut s);
        let setup = Setup::clear_halt(0x81);
        assert!(s.control(0, 9, setup, 0x40, 0));
        assert_eq!(
            drain(&mut s),
            [Wire::Pipe {
                pipe: 0,
                msg: PipeMsg::Submit {
                    xfer: 9,
                    setup: setup.to_u64(),
                    buf: 0,
                    len: 0
                }
            }]
        );
    }

    #[test]
    fn a_control_transfer_on_a_pipe_not_open_sets_no_deadline() {
        let mut s = Session::new();
        attach(&mut s);
        assert!(!s.control(0, 7, Setup::clear_halt(0x81), 0, 0));
        assert_eq!(s.deadline(), None);
    }

    #[test]
    fn unplug_with_a_pipe_open_ends_in_release() {
        let mut s = Session::new();
        assert!(matches!(
            attach(&mut s),
            Some(Event::Device(Device { addr: 3, .. }))
        ));
        assert!(s.open(1, 0x81, 3, 8, 10));
        s.input(Wire::Pipe {
            pipe: 1,
            msg: PipeMsg::Opened,
        });
        assert!(s.submit(1, 5, 0, 0, 8));
        drain(&mut s);
        assert_eq!(s.input(Wire::Bus(BusMsg::Detached)), Some(Event::Detached));
        s.input(Wire::Pipe {
            pipe: 1,
            msg: PipeMsg::Unplugged,
        });
        assert_eq!(
            drain(&mut s),
            [Wire::Pipe {
                pipe: 1,
                msg: PipeMsg::Close
            }]
        );
        assert!(!s.submit(1, 6, 0, 0, 8), "a dead pipe takes nothing");
        s.input(Wire::Pipe {
            pipe: 1,
            msg: PipeMsg::Complete {
                xfer: 5,
                status: 3,
                actual: 0,
            },
        });
        assert_eq!(
            s.input(Wire::Pipe {
                pipe: 1,
                msg: PipeMsg::Closed
            }),
            Some(Event::Idle)
        );
        assert_eq!(drain(&mut s), [Wire::Bus(BusMsg::Release)]);
        assert_eq!(
            (s.pipes(), s.pending(), s.attaches, s.detaches),
            (0, 0, 1, 1)
        );
    }

    #[test]
    fn a_released_device_closes_its_pipes_first() {
        let mut s = Session::new();
        attach(&mut s);
        s.open(0, 0, 0, 8, 0);
        s.input(Wire::Pipe {
            pipe: 0,
            msg: PipeMsg::Opened,
        });
        drain(&mut s);
        s.release();
        assert_eq!(
            drain(&mut s),
            [Wire::Pipe {
                pipe: 0,
                msg: PipeMsg::Close
            }]
        );
        s.input(Wire::Pipe {
            pipe: 0,
            msg: PipeMsg::Closed,
        });
        assert_eq!(drain(&mut s), [Wire::Bus(BusMsg::Release)]);
        assert_eq!(s.input(Wire::Bus(BusMsg::Detached)), Some(Event::Idle));
        assert!(drain(&mut s).is_empty(), "one release only");
    }
}
