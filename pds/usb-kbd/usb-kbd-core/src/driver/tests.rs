//! The driver against a scripted hub, every message checked by the
//! UsbKeyboard component's observer.

use std::cell::RefCell;
use std::vec::Vec;

use dingo_protocols::{keyboard, usb_keyboard};
use tingu_rt::Flow;
use usb_bus::{BusMsg, PipeMsg, Wire};
use usb_core::fixtures::KBD_CONFIG;

use super::*;

struct Mem(RefCell<Vec<u8>>);

impl Window for Mem {
    fn read(&self, offset: u32, dst: &mut [u8]) {
        let o = offset as usize;
        dst.copy_from_slice(&self.0.borrow()[o..o + dst.len()]);
    }
}

struct Hub {
    mem: Mem,
    config: Vec<u8>,
    /// Report transfers waiting for a report: (pipe, xfer, buf).
    waiting: Vec<(u32, u32, u32)>,
    /// Control requests seen (request codes).
    requests: Vec<u8>,
    obs: usb_keyboard::Observer,
    naks: bool,
    now: u64,
    sent: Vec<Wire>,
    /// The device is unplugged: pending transfers end UNPLUGGED.
    dead: bool,
}

impl Hub {
    fn new(config: &[u8]) -> Self {
        Hub {
            mem: Mem(RefCell::new(vec![0; WINDOW_BYTES as usize])),
            config: config.to_vec(),
            waiting: Vec::new(),
            requests: Vec::new(),
            obs: usb_keyboard::Observer::new(0),
            naks: false,
            now: 0,
            sent: Vec::new(),
            dead: false,
        }
    }

    fn deliver(&mut self, d: &mut Driver, w: Wire) {
        check(&mut self.obs, &w, Flow::Received, self.now);
        d.input(w, self.now, &self.mem);
        self.pump(d);
    }

    /// Answers everything the driver sent, like the hub would.
    fn pump(&mut self, d: &mut Driver) {
        while let Some(o) = d.take_out() {
            let m = match o {
                Out::Connected => keyboard::Msg::Connected,
                Out::Key(k) => keyboard::Msg::Key {
                    usage: k.usage,
                    modifiers: k.modifiers,
                    pressed: k.pressed,
                },
                Out::Rollover => keyboard::Msg::Rollover,
                Out::Disconnected => keyboard::Msg::Disconnected,
            };
            self.obs.observe_kbd(&m, Flow::Sent, self.now).unwrap();
            OUT.with(|v| v.borrow_mut().push(o));
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
                    self.requests.push(s.request);
                    if self.naks {
                        continue;
                    }
                    let n = if s.request == 6 {
                        let n = self.config.len().min(usize::from(s.length));
                        self.mem.0.borrow_mut()[buf as usize..buf as usize + n]
                            .copy_from_slice(&self.config[..n]);
                        n as u32
                    } else {
                        0
                    };
                    replies.push(Wire::Pipe {
                        pipe: 0,
                        msg: PipeMsg::Complete {
                            xfer,
                            status: status::OK,
                            actual: n,
                        },
                    });
                }
                Wire::Pipe {
                    pipe,
                    msg: PipeMsg::Submit { xfer, buf, .. },
                } => self.waiting.push((pipe, xfer, buf)),
                Wire::Pipe {
                    pipe: 0,
                    msg: PipeMsg::Abort,
                } => {
                    // The NAKing request ends ABORTED.
                    replies.push(Wire::Pipe {
                        pipe: 0,
                        msg: PipeMsg::Complete {
                            xfer: 1,
                            status: status::ABORTED,
                            actual: 0,
                        },
                    });
                    replies.push(Wire::Pipe {
                        pipe: 0,
                        msg: PipeMsg::AbortComplete,
                    });
                }
                Wire::Pipe {
                    pipe,
                    msg: PipeMsg::Close,
                } => {
                    let st = if self.dead {
                        status::UNPLUGGED
                    } else {
                        status::ABORTED
                    };
                    let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
                        .into_iter()
                        .partition(|w| w.0 == pipe);
                    self.waiting = keep;
                    for (p, x, _) in gone {
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

    fn report(&mut self, d: &mut Driver, r: [u8; 8]) {
        let (pipe, xfer, buf) = self.waiting.remove(0);
        self.mem.0.borrow_mut()[buf as usize..buf as usize + 8].copy_from_slice(&r);
        self.deliver(
            d,
            Wire::Pipe {
                pipe,
                msg: PipeMsg::Complete {
                    xfer,
                    status: status::OK,
                    actual: 8,
                },
            },
        );
    }

    fn attach(&mut self, d: &mut Driver) {
        self.deliver(d, Wire::Bus(BusMsg::Attached { port: 0, speed: 1 }));
        self.deliver(
            d,
            Wire::Bus(BusMsg::Addressed {
                addr: 1,
                vendor: 0x0627,
                product: 1,
                class: 3,
                subclass: 1,
                protocol: 1,
            }),
        );
    }

    /// Unplugged: detached, each pipe unplugged; the driver's closes are
    /// answered (pending transfers UNPLUGGED, then closed) by `pump`.
    fn unplug(&mut self, d: &mut Driver) {
        self.dead = true;
        self.deliver(d, Wire::Bus(BusMsg::Detached));
        for pipe in [0, 1] {
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
}

thread_local! {
    static OUT: RefCell<Vec<Out>> = const { RefCell::new(Vec::new()) };
}

fn outs() -> Vec<Out> {
    OUT.with(|v| std::mem::take(&mut *v.borrow_mut()))
}

fn check(o: &mut usb_keyboard::Observer, w: &Wire, flow: Flow, now: u64) {
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

fn key(usage: u8, pressed: bool) -> Out {
    Out::Key(KeyEvent {
        usage,
        modifiers: 0,
        pressed,
    })
}

#[test]
fn boot_setup_then_keys_then_unplug_releases_them() {
    outs();
    let mut d = Driver::new();
    let mut h = Hub::new(&KBD_CONFIG);
    h.attach(&mut d);
    // GET_DESCRIPTOR twice, SET_PROTOCOL, SET_IDLE.
    assert_eq!(h.requests, [6, 6, 0x0b, 0x0a]);
    assert_eq!(h.waiting.len(), 2, "two reports in flight");
    assert_eq!(outs(), [Out::Connected]);
    assert!(matches!(
        d.take_note(),
        Some(Note::Ready {
            endpoint: 0x81,
            interval: 10,
            polled: 1,
            ..
        })
    ));
    // The report pipe is polled every frame, not at bInterval's 10 ms.
    assert!(
        h.sent.iter().any(|w| matches!(
            w,
            Wire::Bus(BusMsg::OpenPipe {
                kind: usb_core::kind::INTERRUPT,
                interval: 1,
                ..
            })
        )),
        "{:?}",
        h.sent
    );
    h.report(&mut d, [0, 0, 4, 0, 0, 0, 0, 0]);
    h.report(&mut d, [0, 0, 4, 5, 0, 0, 0, 0]);
    assert_eq!(outs(), [key(4, true), key(5, true)]);
    assert_eq!(h.waiting.len(), 2, "each report is resubmitted");
    h.unplug(&mut d);
    let o = outs();
    assert_eq!(o, [key(4, false), key(5, false), Out::Disconnected]);
    assert_eq!(h.sent.last(), Some(&Wire::Bus(BusMsg::Release)));
    assert_eq!(d.session.pipes(), 0);
    // And again: the same driver takes the next keyboard.
    h.obs = usb_keyboard::Observer::new(0);
    h.requests.clear();
    h.attach(&mut d);
    assert_eq!(outs(), [Out::Connected]);
}

#[test]
fn a_configuration_without_a_boot_keyboard_is_released() {
    let mut d = Driver::new();
    let mut h = Hub::new(&usb_core::fixtures::STORAGE_CONFIG);
    h.attach(&mut d);
    assert_eq!(d.take_note(), Some(Note::Failed(Failure::NoBootInterface)));
    assert_eq!(h.sent.last(), Some(&Wire::Bus(BusMsg::Release)));
    // A malformed configuration (bLength 0 inside) is refused too.
    let mut bad = KBD_CONFIG;
    bad[9] = 0;
    let mut d = Driver::new();
    let mut h = Hub::new(&bad);
    h.attach(&mut d);
    assert!(matches!(
        d.take_note(),
        Some(Note::Failed(Failure::Descriptor(_)))
    ));
    // One longer than the driver's buffer is refused at its header: the
    // whole is never asked for.
    let mut long = KBD_CONFIG;
    long[2..4].copy_from_slice(&(CONTROL_LEN + 1).to_le_bytes());
    let mut d = Driver::new();
    let mut h = Hub::new(&long);
    h.attach(&mut d);
    match d.take_note() {
        Some(Note::Failed(Failure::Descriptor(e))) => {
            assert_eq!((e.field, e.value), ("wTotalLength", 513))
        }
        n => panic!("expected the header refused, got {n:?}"),
    }
    assert_eq!(h.requests, [6], "one GET_DESCRIPTOR, the header's");
}

#[test]
fn a_keyboard_that_never_answers_is_given_up_on() {
    let mut d = Driver::new();
    let mut h = Hub::new(&KBD_CONFIG);
    h.naks = true;
    h.attach(&mut d);
    assert!(d.next_deadline().is_some());
    h.now = usb_bus::session::CONTROL_TIMEOUT_NS + 1;
    d.tick(h.now);
    h.pump(&mut d);
    assert!(matches!(
        d.take_note(),
        Some(Note::Failed(Failure::Transfer {
            status: status::ABORTED,
            ..
        }))
    ));
}
