use std::cell::Cell;
use std::rc::Rc;

use dma::AddressWidth;
use dma::host::HostDma;
use hwio::fake::FakeBus;

use super::*;
use crate::cplus::TX_DESCS;
use crate::fake::{FakeNic, MAC};
use crate::regs::{CBR, ISR};
use eth_driver::TX_STOP_AT;

const DMA_BASE: u64 = 0x1000_0000;
const FRAMES_BASE: u64 = 0x2000_0000;
const FRAMES: usize = 0x80000;
const BUF: u32 = 2048;

struct Rig {
    nic: Nic<FakeBus>,
    dev: FakeNic,
    frames: Rc<HostDma>,
    events: Vec<Event>,
    now: u64,
}

const NORMAL: Mode = Mode::Normal { ring_len: 32 << 10 };
/// Both modes, for the tests whose behaviour must not depend on the mode.
const MODES: [Mode; 2] = [NORMAL, Mode::CPlus];

fn rig(mode: Mode) -> Rig {
    let dma = Rc::new(HostDma::new(0x40000, DMA_BASE));
    let frames = Rc::new(HostDma::new(FRAMES, FRAMES_BASE));
    let mut region = dma.region("rtl8139", AddressWidth::BITS32).unwrap();
    let mut data = frames.region("frames", AddressWidth::BITS32).unwrap();
    let frames_buf = data.alloc("frames", FRAMES, 4096).unwrap();
    let dev = FakeNic::new(vec![dma.clone(), frames.clone()]);
    let mut nic = Nic::new(dev.bus.clone(), &mut region, frames_buf, mode).unwrap();
    nic.enable();
    Rig {
        nic,
        dev,
        frames,
        events: Vec::new(),
        now: 0,
    }
}

impl Rig {
    /// Lends buffers `first..first + n` (2 KiB each).
    fn lend(&mut self, first: u32, n: u32) {
        for i in first..first + n {
            self.nic.lend(i * BUF, BUF as u16).unwrap();
        }
    }

    /// Runs the interrupt handler while the line is asserted or work is
    /// left, as the PD does.
    fn irq(&mut self) {
        let mut events = Vec::new();
        let mut rounds = 0;
        while self.dev.irq() {
            let s = self.nic.service(32, self.now, &mut |e| events.push(e));
            let mut more = s.more;
            while more {
                more = self.nic.poll_rx(32, &mut |e| events.push(e)).more;
            }
            rounds += 1;
            assert!(rounds < 10_000, "interrupt storm");
        }
        self.events.extend(events);
    }

    fn poll(&mut self) {
        let mut events = Vec::new();
        while self.nic.poll_rx(32, &mut |e| events.push(e)).more {}
        self.events.extend(events);
    }

    /// The frames delivered so far, read from the data area, in order.
    fn received(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.events.retain(|e| match *e {
            Event::Rx { buf, len } => {
                let mut f = vec![0; usize::from(len)];
                self.frames
                    .device_read(FRAMES_BASE + u64::from(buf), &mut f)
                    .unwrap();
                out.push(f);
                false
            }
            _ => true,
        });
        out
    }

    fn write_frame(&self, buf: u32, frame: &[u8]) {
        self.frames
            .device_write(FRAMES_BASE + u64::from(buf), frame)
            .unwrap();
    }

    /// Hands one frame over and starts it, as the PD does after a batch.
    fn transmit(&mut self, buf: u32, len: u16) {
        let mut events = Vec::new();
        self.nic
            .transmit(buf, len, self.now, &mut |e| events.push(e));
        self.nic.flush_tx(self.now, &mut |e| events.push(e));
        self.events.extend(events);
    }
}

fn frame(len: usize, seed: u32) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed) as u8)
        .collect();
    f[..6].copy_from_slice(&MAC);
    f
}

#[test]
fn bring_up_reads_the_mac_and_programs_the_chip() {
    let mut r = rig(NORMAL);
    assert_eq!(r.nic.mac(), MAC);
    assert!(r.nic.link_up());
    let bus = r.nic.bus();
    assert_eq!(bus.peek(IMR) & (1 << 4), 0, "RxOverflow stays masked");
    assert_eq!(bus.peek(IMR) & (1 << 2), 0, "TOK stays masked");
    let (base, len, _) = r.dev.ring();
    assert_eq!(len, 32 << 10);
    assert_eq!(base, DMA_BASE);
}

#[test]
fn cplus_bring_up_enters_cplus_mode_with_both_rings() {
    let r = rig(Mode::CPlus);
    assert_eq!(r.nic.mode(), Mode::CPlus);
    let m = r.dev.model.borrow();
    assert_eq!(m.cpcmd & 0b11, 0b11, "C+ receive and transmit on");
    assert!(m.cplus);
    assert_eq!(m.cur_rx_desc, 0);
    let rdsar = m.rdsar;
    assert!((DMA_BASE..DMA_BASE + 0x40000).contains(&rdsar));
    assert_eq!(rdsar % 256, 0);
}

#[test]
fn frames_of_60_1514_and_1518_bytes_arrive_byte_exact() {
    for mode in MODES {
        frames_arrive_byte_exact(mode);
    }
}

fn frames_arrive_byte_exact(mode: Mode) {
    let mut r = rig(mode);
    r.lend(0, 8);
    let sent = [frame(60, 1), frame(1514, 2), frame(1518, 3), frame(20, 4)];
    for f in &sent {
        r.dev.receive(f);
    }
    r.irq();
    let got = r.received();
    assert_eq!(got.len(), 4);
    assert_eq!(got[..3], sent[..3]);
    // QEMU pads a short frame to 60 bytes.
    assert_eq!(got[3][..20], sent[3][..]);
    assert_eq!(got[3].len(), 60);
    assert_eq!(r.nic.counters().rx_frames, 4);
}

#[test]
fn frames_straddling_the_ring_end_arrive_in_order() {
    let mut r = rig(Mode::Normal { ring_len: 8 << 10 });
    let (mut sent, mut got) = (Vec::new(), Vec::new());
    for i in 0..200u32 {
        r.lend(i % 64, 1);
        let f = frame(60 + (i as usize * 37) % 1459, i);
        r.dev.receive(&f);
        sent.push(f);
        r.irq();
        got.extend(r.received());
    }
    assert_eq!(got, sent);
    assert!(r.dev.ring().2 < r.nic.ring().offset() + 8192);
    assert_eq!(r.nic.counters().rx_ring_resets, 0);
}

#[test]
fn oversized_frames_are_counted_and_the_next_frames_still_arrive() {
    let mut r = rig(NORMAL);
    r.lend(0, 16);
    r.dev.receive(&frame(4000, 1));
    r.dev.receive(&frame(9000, 2));
    r.dev.receive(&frame(100, 3));
    r.irq();
    assert_eq!(r.nic.counters().rx_too_long, 2);
    assert_eq!(r.received(), vec![frame(100, 3)]);
    // A frame longer than the ring, into an empty ring: the device writes
    // past the ring's end (into the slack) and its length field wraps.
    r.dev.receive(&frame(69_000, 4));
    r.irq();
    r.dev.receive(&frame(200, 5));
    r.irq();
    let got = r.received();
    assert_eq!(got.last(), Some(&frame(200, 5)));
    let c = r.nic.counters();
    assert!(
        c.rx_ring_resets + c.rx_too_long + c.rx_bad_status >= 3,
        "{c:?}"
    );
}

/// Normal mode: 32 buffers lent, QEMU holds back what the ring cannot
/// take. C+ mode has no flow control: every frame of the burst needs a
/// descriptor, so the client has lent 256.
#[test]
fn a_burst_of_256_full_frames_into_an_idle_driver_is_received_whole() {
    burst_received_whole(NORMAL, 32);
    burst_received_whole(Mode::CPlus, 256);
}

fn burst_received_whole(mode: Mode, lent: u32) {
    let mut r = rig(mode);
    r.lend(0, lent);
    let sent: Vec<_> = (0..256).map(|i| frame(1518, i)).collect();
    for f in &sent {
        r.dev.receive(f);
    }
    let mut got = Vec::new();
    let mut next = lent;
    for _ in 0..100 {
        r.irq();
        r.poll();
        let batch = r.received();
        // The client hands the buffers back, as the net PD does.
        for _ in 0..batch.len() {
            r.lend(next % 256, 1);
            next += 1;
        }
        got.extend(batch);
        if got.len() == 256 {
            break;
        }
    }
    assert_eq!(got.len(), 256);
    assert!(got == sent, "frames differ or arrived out of order");
    assert_eq!(r.dev.model.borrow().dropped, 0);
}

#[test]
fn transmits_go_out_in_order_and_short_ones_are_padded() {
    for mode in MODES {
        transmits_in_order(mode);
    }
}

fn tx_done(events: &[Event]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TxDone { buf } => Some(*buf),
            _ => None,
        })
        .collect()
}

/// A completion found right after its start waits, up to REAP_LATER in
/// flight, for the driver's next interrupt or transmit; beyond that it is
/// reported at once.
#[test]
fn a_few_completions_wait_for_the_next_interrupt_or_transmit() {
    for mode in MODES {
        let mut r = rig(mode);
        r.write_frame(0, &frame(100, 1));
        r.transmit(0, 100);
        assert_eq!(r.dev.sent().len(), 1);
        assert!(tx_done(&r.events).is_empty(), "{mode:?}: reported at once");
        assert_eq!(r.nic.tx_outstanding(), 1);
        // The next transmit reaps it.
        r.transmit(0, 100);
        assert_eq!(tx_done(&r.events), [0], "{mode:?}");
        // So does an interrupt.
        r.lend(8, 1);
        r.dev.receive(&frame(80, 2));
        r.irq();
        assert_eq!(tx_done(&r.events), [0, 0], "{mode:?}");
        assert_eq!(r.nic.tx_outstanding(), 0);
        if mode == Mode::CPlus {
            // A batch beyond REAP_LATER (one TxPoll) is reported at once.
            r.events.clear();
            for _ in 0..=REAP_LATER {
                r.nic.transmit(0, 100, 0, &mut |e| r.events.push(e));
            }
            r.nic.flush_tx(0, &mut |e| r.events.push(e));
            assert_eq!(tx_done(&r.events).len(), REAP_LATER + 1);
            assert_eq!(r.nic.tx_outstanding(), 0);
        }
    }
}

fn transmits_in_order(mode: Mode) {
    let mut r = rig(mode);
    let frames = [frame(1514, 1), frame(60, 2), frame(20, 3), frame(1518, 4)];
    for (i, f) in frames.iter().enumerate() {
        r.write_frame(i as u32 * BUF, f);
    }
    // One misaligned buffer goes through a bounce buffer too.
    r.write_frame(5 * BUF + 2, &frames[1]);
    for (i, f) in frames.iter().enumerate() {
        r.transmit(i as u32 * BUF, f.len() as u16);
    }
    r.transmit(5 * BUF + 2, 60);
    let sent = r.dev.sent();
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[0], frames[0]);
    assert_eq!(sent[1], frames[1]);
    assert_eq!(&sent[2][..20], &frames[2][..]);
    assert_eq!(sent[2][20..], [0; 40]);
    assert_eq!(sent[3], frames[3]);
    assert_eq!(sent[4], frames[1]);
    // The last one's completion waits for the next interrupt.
    assert_eq!(tx_done(&r.events), [0, BUF, 2 * BUF, 3 * BUF]);
    r.lend(8, 1);
    r.dev.receive(&frame(80, 9));
    r.irq();
    assert_eq!(tx_done(&r.events), [0, BUF, 2 * BUF, 3 * BUF, 5 * BUF + 2]);
    // Normal mode also bounces the misaligned buffer; C+ takes any.
    let bounced = if mode == NORMAL { 2 } else { 1 };
    assert_eq!(r.nic.counters().tx_bounced, bounced);
}

/// C+: the frames of one batch go out with one TxPoll, all at once.
#[test]
fn cplus_sends_a_batch_with_one_poll() {
    let mut r = rig(Mode::CPlus);
    for i in 0..40u32 {
        r.write_frame(i * BUF, &frame(100, i));
    }
    let mut events = Vec::new();
    for i in 0..40u32 {
        r.nic.transmit(i * BUF, 100, 0, &mut |e| events.push(e));
    }
    assert!(r.dev.sent().is_empty(), "nothing before the poll");
    assert!(events.is_empty());
    r.nic.flush_tx(0, &mut |e| events.push(e));
    let sent = r.dev.sent();
    assert_eq!(sent, (0..40).map(|i| frame(100, i)).collect::<Vec<_>>());
    assert_eq!(events.len(), 40);
    assert!(events.iter().all(|e| matches!(e, Event::TxDone { .. })));
}

#[test]
fn bad_transmit_requests_are_aborted_never_given_to_the_device() {
    for mode in MODES {
        bad_transmit_requests_are_aborted_never_given_to_the_device_in(mode);
    }
}

fn bad_transmit_requests_are_aborted_never_given_to_the_device_in(mode: Mode) {
    let mut r = rig(mode);
    r.transmit(FRAMES as u32 - 10, 60);
    r.transmit(0, 0);
    r.transmit(0, 1519);
    r.transmit(u32::MAX, 100);
    assert!(r.dev.sent().is_empty());
    assert_eq!(r.nic.counters().tx_bad_request, 4);
    assert!(r.events.iter().all(|e| matches!(
        e,
        Event::TxAbort {
            error: eth::BAD_REQUEST,
            ..
        }
    )));
}

#[test]
fn lent_buffers_outside_the_data_area_are_refused() {
    for mode in MODES {
        lent_buffers_outside_the_data_area_are_refused_in(mode);
    }
}

fn lent_buffers_outside_the_data_area_are_refused_in(mode: Mode) {
    let mut r = rig(mode);
    assert_eq!(
        r.nic.lend(FRAMES as u32 - 100, 2048),
        Err(LendError::OutOfRange)
    );
    assert_eq!(r.nic.lend(0, 100), Err(LendError::TooShort));
    assert_eq!(r.nic.counters().rx_bad_lend, 2);
}

#[test]
fn a_link_change_becomes_an_event() {
    for mode in MODES {
        a_link_change_becomes_an_event_in(mode);
    }
}

fn a_link_change_becomes_an_event_in(mode: Mode) {
    let mut r = rig(mode);
    r.dev.set_link(false);
    r.irq();
    r.dev.set_link(true);
    r.irq();
    assert_eq!(
        r.events,
        [Event::Link { up: false }, Event::Link { up: true }]
    );
}

#[test]
fn a_stuck_transmitter_is_reset_by_the_watchdog_and_the_queue_stops_and_restarts() {
    stuck_transmitter(NORMAL, SLOTS);
    stuck_transmitter(Mode::CPlus, TX_DESCS);
}

fn stuck_transmitter(mode: Mode, in_flight: usize) {
    let mut r = rig(mode);
    r.write_frame(0, &frame(100, 1));
    r.dev.model.borrow_mut().stuck_tx = true;
    for _ in 0..TX_STOP_AT + in_flight {
        r.transmit(0, 100);
    }
    assert!(r.events.contains(&Event::StopQueue));
    r.now = TX_TIMEOUT_NS / 2;
    assert!(!r.nic.check_watchdog(r.now, &mut |_| {}));
    r.dev.model.borrow_mut().stuck_tx = false;
    r.now = TX_TIMEOUT_NS + 1;
    let mut events = Vec::new();
    assert!(r.nic.check_watchdog(r.now, &mut |e| events.push(e)));
    let aborted = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TxAbort {
                    error: eth::RESET,
                    ..
                }
            )
        })
        .count();
    assert_eq!(aborted, in_flight);
    let done = events
        .iter()
        .filter(|e| matches!(e, Event::TxDone { .. }))
        .count();
    assert_eq!(done, TX_STOP_AT);
    assert!(events.contains(&Event::StartQueue));
    assert_eq!(r.nic.counters().chip_resets, 1);
    assert_eq!(r.nic.tx_outstanding(), 0);
    // The chip works again, receive included.
    r.lend(0, 1);
    r.dev.receive(&frame(80, 7));
    r.irq();
    assert_eq!(r.received(), vec![frame(80, 7)]);
}

#[test]
fn an_all_ones_status_means_the_device_is_gone() {
    for mode in MODES {
        an_all_ones_status_means_the_device_is_gone_in(mode);
    }
}

fn an_all_ones_status_means_the_device_is_gone_in(mode: Mode) {
    let mut r = rig(mode);
    r.write_frame(0, &frame(100, 1));
    r.dev.model.borrow_mut().stuck_tx = true;
    r.transmit(0, 100);
    r.dev
        .bus
        .corrupt_reads(|a| (a.offset == ISR.offset()).then_some(0xffff));
    let mut events = Vec::new();
    let s = r.nic.service(32, 0, &mut |e| events.push(e));
    assert!(s.gone && r.nic.is_gone());
    assert_eq!(r.nic.counters().device_gone, 1);
    assert!(events.contains(&Event::TxAbort {
        buf: 0,
        error: eth::GONE
    }));
    assert!(events.contains(&Event::Link { up: false }));
}

#[test]
fn disable_returns_lent_buffers_and_aborts_transmits() {
    for mode in MODES {
        disable_returns_lent_buffers_and_aborts_transmits_in(mode);
    }
}

fn disable_returns_lent_buffers_and_aborts_transmits_in(mode: Mode) {
    let mut r = rig(mode);
    r.lend(0, 3);
    r.write_frame(3 * BUF, &frame(100, 1));
    r.dev.model.borrow_mut().stuck_tx = true;
    r.transmit(3 * BUF, 100);
    let mut events = Vec::new();
    r.nic.disable(&mut |e| events.push(e));
    assert_eq!(
        events,
        [
            Event::TxAbort {
                buf: 3 * BUF,
                error: eth::RESET
            },
            Event::RxReturn { buf: 0 },
            Event::RxReturn { buf: BUF },
            Event::RxReturn { buf: 2 * BUF },
        ]
    );
}

/// The device's write offset and interrupt status read as garbage half
/// the time: the driver resets its receiver as often as it must, never
/// reads outside the ring (that would panic), and every frame it forwards
/// is one the device really received, in order.
#[test]
fn a_device_reporting_garbage_never_gets_a_bad_frame_forwarded() {
    let mut r = rig(Mode::Normal { ring_len: 8 << 10 });
    let seed = Rc::new(Cell::new(0x2545_f491_4f6c_dd1du64));
    let s = seed.clone();
    r.dev.bus.corrupt_reads(move |a| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        let hit = a.offset == CBR.offset() || a.offset == ISR.offset();
        (hit && x.is_multiple_of(2)).then_some((x >> 8) as u32 & 0xfffe)
    });
    let (mut sent, mut got) = (Vec::new(), Vec::new());
    for i in 0..2000u32 {
        if r.nic.lent() < 64 {
            r.lend(i % 128, 1);
        }
        let f = frame(60 + (i as usize * 53) % 1459, i);
        r.dev.receive(&f);
        sent.push(f);
        for _ in 0..3 {
            let mut events = Vec::new();
            let _ = r.nic.service(8, 0, &mut |e| events.push(e));
            r.events.extend(events);
        }
        got.extend(r.received());
    }
    r.dev.bus.stop_corrupting();
    let mut it = sent.iter();
    for f in &got {
        assert!(
            it.any(|s| s == f),
            "forwarded a frame out of order or never received"
        );
    }
    assert!(r.nic.counters().rx_ring_resets > 0);
    // With an honest device again it keeps receiving.
    r.lend(0, 4);
    let mut events = Vec::new();
    let _ = r.nic.service(64, 0, &mut |e| events.push(e));
    r.dev.receive(&frame(300, 77));
    r.irq();
    assert_eq!(r.received().last(), Some(&frame(300, 77)));
}

/// C+ has no flow control: a frame for which no descriptor holds a buffer
/// is dropped by the device and counted as missed; frames too long for
/// the buffer too. Lending again brings reception back.
#[test]
fn cplus_without_a_buffer_the_device_drops_and_the_driver_counts_it() {
    let mut r = rig(Mode::CPlus);
    r.lend(0, 2);
    for i in 0..5 {
        r.dev.receive(&frame(100, i));
    }
    r.dev.receive(&frame(4000, 9));
    r.irq();
    assert_eq!(r.received(), vec![frame(100, 0), frame(100, 1)]);
    assert_eq!(r.nic.counters().rx_missed, 4);
    assert!(r.nic.counters().rx_overflows > 0);
    r.lend(2, 1);
    r.dev.receive(&frame(200, 7));
    r.irq();
    assert_eq!(r.received(), vec![frame(200, 7)]);
}

/// C+ receive is zero-copy: the device writes the frame into the lent
/// buffer itself, and the driver forwards that buffer.
#[test]
fn cplus_frames_land_in_the_lent_buffer_itself() {
    let mut r = rig(Mode::CPlus);
    r.nic.lend(7 * BUF, BUF as u16).unwrap();
    let (base, _, _) = r.dev.ring();
    assert_eq!(base, 0, "no normal-mode ring is programmed");
    r.dev.receive(&frame(300, 3));
    r.irq();
    assert_eq!(
        r.events,
        [Event::Rx {
            buf: 7 * BUF,
            len: 300
        }]
    );
    let mut crc = [0u8; 4];
    r.frames
        .device_read(FRAMES_BASE + u64::from(7 * BUF) + 300, &mut crc)
        .unwrap();
    assert_ne!(crc, [0; 4], "the device wrote its CRC after the frame");
}

#[test]
fn cplus_refuses_buffers_without_room_for_the_crc() {
    let mut r = rig(Mode::CPlus);
    assert_eq!(r.nic.lend(0, 1518), Err(LendError::TooShort));
    assert_eq!(r.nic.lend(0, 1522), Ok(()));
    for i in 1..MAX_LENT as u32 {
        r.nic.lend(i * BUF, BUF as u16).unwrap();
    }
    assert_eq!(r.nic.lend(0, 2048), Err(LendError::TooMany));
    assert_eq!(r.nic.lent(), MAX_LENT);
}

/// A device that skips descriptors now and then and whose interrupt
/// status reads as garbage half the time: the driver resets its receiver
/// whenever the device ran ahead, keeps its lent buffers, and forwards
/// only frames the device really received, in order.
#[test]
fn cplus_a_device_skipping_descriptors_gets_its_receiver_reset() {
    let mut r = rig(Mode::CPlus);
    let seed = Rc::new(Cell::new(0x2545_f491_4f6c_dd1du64));
    let s = seed.clone();
    r.dev.bus.corrupt_reads(move |a| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (a.offset == ISR.offset() && x.is_multiple_of(2)).then_some((x >> 8) as u32 & 0xfffe)
    });
    r.lend(0, 64);
    let (mut sent, mut got) = (Vec::new(), Vec::new());
    for i in 0..2000u32 {
        if i % 97 == 5 {
            r.dev.model.borrow_mut().skip_rx_desc = true;
        }
        let f = frame(60 + (i as usize * 53) % 1459, i);
        r.dev.receive(&f);
        sent.push(f);
        let mut events = Vec::new();
        let _ = r.nic.service(8, 0, &mut |e| events.push(e));
        // Every buffer that came back is lent again, as the net PD does.
        let back: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                Event::Rx { buf, .. } => Some(*buf),
                _ => None,
            })
            .collect();
        r.events.extend(events);
        got.extend(r.received());
        for buf in back {
            r.nic.lend(buf, BUF as u16).unwrap();
        }
    }
    r.dev.bus.stop_corrupting();
    let mut it = sent.iter();
    for f in &got {
        assert!(
            it.any(|s| s == f),
            "forwarded a frame out of order or never received"
        );
    }
    assert!(r.nic.counters().rx_ring_resets > 0);
    assert!(got.len() > 1000, "only {} of 2000 arrived", got.len());
    r.dev.receive(&frame(300, 77));
    r.irq();
    assert_eq!(r.received().last(), Some(&frame(300, 77)));
}

/// Status bits the chip never sets: the read is garbage, so nothing is
/// acted on or acknowledged; the true status keeps the line asserted and
/// the next service handles it.
#[test]
fn an_impossible_status_is_ignored_and_the_true_one_serviced_next() {
    let mut r = rig(NORMAL);
    r.lend(0, 2);
    r.dev.receive(&frame(100, 3));
    r.dev
        .bus
        .corrupt_reads(|a| (a.offset == ISR.offset()).then_some(0x1f01));
    let mut events = Vec::new();
    let s = r.nic.service(32, 0, &mut |e| events.push(e));
    assert_eq!((s, events.len()), (Serviced::default(), 0));
    assert_eq!(r.nic.counters().isr_impossible, 1);
    assert!(r.dev.irq(), "the receive status was not acknowledged");
    r.dev.bus.stop_corrupting();
    r.irq();
    assert_eq!(r.received(), vec![frame(100, 3)]);
    assert_eq!(r.nic.counters().spurious, 0);
}

/// A write offset outside the ring is counted by its reason and answered
/// with a receiver reset, after which frames arrive again.
#[test]
fn a_write_offset_outside_the_ring_resets_the_receiver_by_reason() {
    let mut r = rig(NORMAL);
    r.lend(0, 4);
    r.dev.receive(&frame(100, 1));
    r.dev
        .bus
        .corrupt_reads(|a| (a.offset == CBR.offset()).then_some(0xfff1));
    let mut events = Vec::new();
    let _ = r.nic.service(32, 0, &mut |e| events.push(e));
    r.dev.bus.stop_corrupting();
    let c = *r.nic.counters();
    assert_eq!((c.rx_ring_resets, c.rx_reset_bad_cbr), (1, 1));
    assert_eq!(
        (c.rx_reset_bad_length, c.rx_reset_other, c.rx_frames),
        (0, 0, 0)
    );
    r.irq();
    r.dev.receive(&frame(200, 2));
    r.irq();
    assert_eq!(r.received().last(), Some(&frame(200, 2)));
}
