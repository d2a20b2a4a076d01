//! The core against the fake device: frames in place both ways, frames
//! too long, notification suppression, link changes, and impossible used
//! entries survived.

use dma::AddressWidth;
use dma::host::HostDma;
use virtio_kit::hal::{HalSlot, HalState, KitHal, Window};

use crate::fake::{Fake, MAC};
use crate::used::{Fault, NegotiateError};
use crate::*;
use eth_driver::TX_BACKLOG;

const FRAMES_PADDR: u64 = 0x2_0000_0000;
const BUF: u16 = 2048;

macro_rules! slot {
    ($name:ident) => {
        struct $name;
        impl HalSlot for $name {
            fn state() -> &'static HalState {
                static S: HalState = HalState::new();
                &S
            }
        }
    };
}

struct Rig<S: HalSlot> {
    nic: Nic<KitHal<S>, Fake>,
    dev: Fake,
    frames: &'static HostDma,
    events: Vec<Event>,
}

fn rig<S: HalSlot>(lend: u32) -> Rig<S> {
    let dma: &'static HostDma = Box::leak(Box::new(HostDma::new(0x20000, 0x1_0000_0000)));
    let frames: &'static HostDma = Box::leak(Box::new(HostDma::new(0x40000, FRAMES_PADDR)));
    let mut r = dma.region("dma", AddressWidth::BITS64).unwrap();
    let pool = r.alloc("rings", 0x18000, 0x1000).unwrap();
    let hdrs = r.alloc("headers", HDRS_LEN, 16).unwrap();
    let fr = frames
        .region("frames", AddressWidth::BITS64)
        .unwrap()
        .alloc("frames", 0x40000, 0x1000)
        .unwrap();
    S::state()
        .install(
            Window::of(&pool),
            &[Window::of(&hdrs), Window::of(&fr)],
            Window::of(&pool),
        )
        .unwrap();
    let mem: &'static [&'static HostDma] = Box::leak(Box::new([dma, frames]));
    let dev = Fake::new(mem);
    let mut nic = Nic::new(dev.clone(), S::state(), hdrs, fr).unwrap();
    for i in 0..lend {
        nic.lend(i * u32::from(BUF), BUF).unwrap();
    }
    nic.enable().unwrap();
    Rig {
        nic,
        dev,
        frames,
        events: vec![],
    }
}

impl<S: HalSlot> Rig<S> {
    fn service(&mut self) -> Serviced {
        let ev = &mut self.events;
        self.nic.service(64, &mut |e| ev.push(e))
    }
    fn transmit(&mut self, buf: u32, len: u16) {
        let ev = &mut self.events;
        self.nic.transmit(buf, len, &mut |e| ev.push(e));
        self.nic.flush_tx(&mut |e| ev.push(e));
    }
    fn put(&self, buf: u32, bytes: &[u8]) {
        self.frames
            .device_write(FRAMES_PADDR + u64::from(buf), bytes)
            .unwrap();
    }
    fn get(&self, buf: u32, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.frames
            .device_read(FRAMES_PADDR + u64::from(buf), &mut b)
            .unwrap();
        b
    }
    fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

#[test]
fn frames_land_in_the_lent_buffer_and_leave_from_the_clients() {
    slot!(S);
    let mut r = rig::<S>(8);
    assert_eq!(r.nic.mac(), MAC);
    assert!(r.nic.link_up());
    assert_eq!(r.nic.lent(), 8);
    let f = frame(1514, 3);
    assert!(r.dev.0.borrow_mut().receive(&f));
    r.service();
    let ev = r.take();
    assert_eq!(ev, [Event::Rx { buf: 0, len: 1514 }]);
    // The device wrote the frame straight into buffer 0: no copy.
    assert_eq!(r.get(0, 1514), f);

    let out = frame(60, 9);
    r.put(0x20000, &out);
    r.transmit(0x20000, 60);
    assert_eq!(r.dev.0.borrow_mut().transmit(), [out]);
    r.service();
    assert_eq!(r.take(), [Event::TxDone { buf: 0x20000 }]);
    assert_eq!(r.nic.counters().tx_frames, 1);
    assert_eq!(r.nic.counters().rx_frames, 1);
}

#[test]
fn a_frame_longer_than_a_buffer_is_dropped_and_counted_and_its_buffers_reused() {
    slot!(S);
    let mut r = rig::<S>(8);
    // 4000 bytes take two chains (mergeable buffers); 1600 fits one
    // buffer but is longer than any frame forwarded.
    assert!(r.dev.0.borrow_mut().receive(&frame(4000, 1)));
    assert!(r.dev.0.borrow_mut().receive(&frame(1600, 2)));
    assert!(r.dev.0.borrow_mut().receive(&frame(10, 2)));
    assert!(r.dev.0.borrow_mut().receive(&frame(100, 4)));
    r.service();
    assert_eq!(
        r.take(),
        [Event::Rx {
            buf: 4 * 2048,
            len: 100
        }]
    );
    let c = r.nic.counters();
    assert_eq!((c.rx_too_long, c.rx_runt, c.rx_frames), (2, 1, 1));
    // Every dropped buffer went back to the device.
    assert_eq!(r.nic.lent(), 7);
}

#[test]
fn receive_notifications_are_batched_and_suppressed_by_the_device() {
    slot!(S);
    let mut r = rig::<S>(0);
    for i in 0..16 {
        r.nic.lend(i * 2048, BUF).unwrap();
    }
    r.nic.kick();
    // 16 adds, one notification (the device waited at avail_event 0).
    assert_eq!(r.dev.0.borrow().notified[0], 1);
    // The device says: notify me after entry 99.
    r.dev.0.borrow().set_avail_event(0, 99);
    r.nic.lend(16 * 2048, BUF).unwrap();
    r.nic.kick();
    assert_eq!(r.dev.0.borrow().notified[0], 1);
}

#[test]
fn transmit_completions_interrupt_once_per_batch() {
    slot!(S);
    let mut r = rig::<S>(0);
    for i in 0..5u32 {
        r.put(0x20000 + i * 2048, &frame(64, i as u8));
        r.transmit(0x20000 + i * 2048, 64);
    }
    // Five in flight: the interrupt comes when the fifth (index 4) is used.
    assert_eq!(r.dev.0.borrow().used_event(1), 4);
    assert_eq!(r.dev.0.borrow_mut().transmit().len(), 5);
    r.service();
    assert_eq!(r.take().len(), 5);
    assert_eq!(r.nic.tx_outstanding(), 0);
}

#[test]
fn a_few_transmits_in_flight_ask_for_no_interrupt() {
    slot!(S);
    let mut r = rig::<S>(4);
    r.put(0x20000, &frame(64, 1));
    r.transmit(0x20000, 64);
    // One in flight: the event index lies half the ring space ahead, so
    // using the chain raises no interrupt.
    assert_eq!(r.dev.0.borrow().used_event(1), 0x8000);
    assert_eq!(r.dev.0.borrow_mut().transmit().len(), 1);
    assert!(r.take().is_empty());
    assert_eq!(r.nic.tx_outstanding(), 1);
    // The next transmit reaps it...
    r.transmit(0x20000 + 2048, 64);
    assert_eq!(r.take(), [Event::TxDone { buf: 0x20000 }]);
    assert_eq!(r.dev.0.borrow_mut().transmit().len(), 1);
    // ...and so does the next interrupt (a received frame's).
    assert!(r.dev.0.borrow_mut().receive(&frame(100, 2)));
    r.service();
    assert_eq!(
        r.take(),
        [
            Event::TxDone {
                buf: 0x20000 + 2048
            },
            Event::Rx { buf: 0, len: 100 }
        ]
    );
    assert_eq!(r.nic.tx_outstanding(), 0);
}

/// Requests queue until the next poll, which adds them all with one
/// notification; many waiting go to the device at once.
#[test]
fn transmits_are_added_in_batches() {
    slot!(S);
    let mut r = rig::<S>(0);
    let mut ev = Vec::new();
    for i in 0..3u32 {
        r.put(0x20000 + i * 2048, &frame(64, i as u8));
        r.nic.transmit(0x20000 + i * 2048, 64, &mut |e| ev.push(e));
    }
    assert!(r.dev.0.borrow_mut().transmit().is_empty(), "queued only");
    assert_eq!(r.nic.tx_outstanding(), 3);
    r.nic.poll(32, &mut |e| ev.push(e));
    assert_eq!(r.dev.0.borrow_mut().transmit().len(), 3);
    assert_eq!(r.nic.counters().tx_notifies, 1);
    // The device used those three; half a queue's worth of requests is
    // added without waiting for a poll, and reaps them on the way.
    for i in 0..TX_BACKLOG as u32 / 2 {
        r.nic.transmit(0x20000 + i * 2048, 64, &mut |e| ev.push(e));
    }
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert!(ev.iter().all(|e| matches!(e, Event::TxDone { .. })));
    assert_eq!(r.dev.0.borrow_mut().transmit().len(), TX_BACKLOG / 2);
}

#[test]
fn a_link_change_is_a_configuration_interrupt() {
    slot!(S);
    let mut r = rig::<S>(4);
    r.dev.0.borrow_mut().set_link(false);
    r.service();
    assert_eq!(r.take(), [Event::Link { up: false }]);
    r.dev.0.borrow_mut().set_link(true);
    r.service();
    assert_eq!(r.take(), [Event::Link { up: true }]);
    assert_eq!(r.nic.counters().config_changes, 2);
}

/// Puts two frames in flight and a transmit, then lets `garbage` write an
/// impossible used entry: the driver must give the device up, abort the
/// transmit, keep every lent buffer, and come back after disable/enable.
fn survives<S: HalSlot>(garbage: impl FnOnce(&Fake), fault: fn(Fault) -> bool) {
    let mut r = rig::<S>(4);
    r.put(0x20000, &frame(64, 0));
    r.transmit(0x20000, 64);
    garbage(&r.dev);
    let s = r.service();
    assert!(s.faulted);
    let f = r.nic.fault().expect("a fault");
    assert!(fault(f), "{f:?}");
    let ev = r.take();
    assert!(
        ev.contains(&Event::TxAbort {
            buf: 0x20000,
            error: eth::RESET
        }),
        "{ev:?}"
    );
    assert!(ev.contains(&Event::Link { up: false }));
    assert!(!ev.iter().any(|e| matches!(e, Event::Rx { .. })), "{ev:?}");
    assert_eq!(r.nic.counters().device_faults, 1);
    assert!(r.dev.0.borrow().resets >= 2, "the device was reset");
    assert_eq!(r.nic.lent(), 4, "lent buffers are kept");
    // Transmits now fail at once.
    r.transmit(0x20800, 64);
    assert_eq!(
        r.take(),
        [Event::TxAbort {
            buf: 0x20800,
            error: eth::GONE
        }]
    );

    let ev = &mut r.events;
    r.nic.disable(&mut |e| ev.push(e));
    let back: Vec<_> = r
        .take()
        .into_iter()
        .filter(|e| matches!(e, Event::RxReturn { .. }))
        .collect();
    assert_eq!(back.len(), 4);
    for i in 0..4 {
        r.nic.lend(i * 2048, BUF).unwrap();
    }
    r.nic.enable().unwrap();
    assert!(r.nic.fault().is_none());
    assert!(r.dev.0.borrow_mut().receive(&frame(200, 5)));
    r.service();
    assert_eq!(r.take(), [Event::Rx { buf: 0, len: 200 }]);
}

#[test]
fn an_id_beyond_the_queue_is_a_fault() {
    slot!(S);
    // 0x10000 truncated to 16 bits is descriptor 0, which is in flight.
    survives::<S>(
        |d| d.0.borrow_mut().push_used(0, 0x1_0000, 100),
        |f| f == Fault::BadId { id: 0x1_0000 },
    );
}

#[test]
fn an_id_not_in_flight_is_a_fault() {
    slot!(S);
    // Descriptor 1 is the second of chain 0, no chain's head.
    survives::<S>(
        |d| d.0.borrow_mut().push_used(0, 1, 100),
        |f| f == Fault::NotInFlight { id: 1 },
    );
}

#[test]
fn a_used_index_ahead_of_the_chains_in_flight_is_a_fault() {
    slot!(S);
    survives::<S>(
        |d| d.0.borrow_mut().bump_used(0, 200),
        |f| {
            matches!(
                f,
                Fault::RanAhead {
                    pending: 200,
                    in_flight: 4
                }
            )
        },
    );
}

#[test]
fn a_completed_transmit_named_twice_is_a_fault() {
    slot!(S);
    survives::<S>(
        |d| {
            let mut d = d.0.borrow_mut();
            d.transmit();
            d.push_used(1, 0, 0);
        },
        |f| matches!(f, Fault::RanAhead { .. } | Fault::NotInFlight { .. }),
    );
}

#[test]
fn a_length_past_the_chain_or_a_bad_buffer_count_drops_the_frame_only() {
    slot!(S);
    let mut r = rig::<S>(4);
    // Chain 0 (head 0) holds 12 + 2048 bytes; the device claims 9000.
    r.dev.0.borrow_mut().push_used(0, 0, 9000);
    r.service();
    assert!(r.nic.fault().is_none());
    assert_eq!(r.nic.counters().rx_bad_header, 1);
    // A header that says 0 buffers: chain 1 (head 2).
    r.dev.0.borrow_mut().push_used(0, 2, 100);
    r.service();
    assert_eq!(r.nic.counters().rx_bad_header, 2);
    assert!(r.take().is_empty());
    assert_eq!(r.nic.lent(), 4);
    // The queue still works.
    assert!(r.dev.0.borrow_mut().receive(&frame(300, 1)));
    r.service();
    assert_eq!(r.take().len(), 1);
}

#[test]
fn lends_outside_the_data_area_or_too_short_are_refused() {
    slot!(S);
    let mut r = rig::<S>(0);
    assert_eq!(r.nic.lend(0x3f900, BUF), Err(LendError::OutOfRange));
    assert_eq!(r.nic.lend(0, 1000), Err(LendError::TooShort));
    r.transmit(0x3ffff, 64);
    r.transmit(0, 0);
    r.transmit(0, 1519);
    assert_eq!(r.take().len(), 3);
    assert_eq!(r.nic.counters().tx_bad_request, 3);
    assert_eq!(r.nic.counters().rx_bad_lend, 2);
}

#[test]
fn a_device_without_version_1_or_refusing_features_is_named() {
    slot!(S);
    let dma: &'static HostDma = Box::leak(Box::new(HostDma::new(0x20000, 0x1_0000_0000)));
    let mut reg = dma.region("dma", AddressWidth::BITS64).unwrap();
    let pool = reg.alloc("rings", 0x10000, 0x1000).unwrap();
    S::state()
        .install(Window::of(&pool), &[], Window::of(&pool))
        .unwrap();
    let mem: &'static [&'static HostDma] = Box::leak(Box::new([dma]));
    let dev = Fake::new(mem);
    dev.0.borrow_mut().offered &= !feature::VERSION_1;
    let h = reg.alloc("h", HDRS_LEN, 16).unwrap();
    let f = reg.alloc("f", 0x1000, 16).unwrap();
    let e = Nic::<KitHal<S>, _>::new(dev.clone(), S::state(), h, f)
        .err()
        .unwrap();
    assert!(
        matches!(e, InitError::Negotiate(NegotiateError::Missing { .. })),
        "{e}"
    );
    dev.0.borrow_mut().offered |= feature::VERSION_1;
    dev.0.borrow_mut().refuse_features = true;
    let h = reg.alloc("h", HDRS_LEN, 16).unwrap();
    let f = reg.alloc("f", 0x1000, 16).unwrap();
    let e = Nic::<KitHal<S>, _>::new(dev, S::state(), h, f)
        .err()
        .unwrap();
    assert!(
        matches!(e, InitError::Negotiate(NegotiateError::Refused { .. })),
        "{e}"
    );
}
