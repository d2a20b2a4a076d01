use std::rc::Rc;

use dma::AddressWidth;
use dma::host::HostDma;
use hwio::fake::FakeBus;

use super::*;
use crate::fake::{BD_CR, BD_E, BD_L, BD_OV, BD_W, FakeEnet, INT_EBERR, MAC, PHY_ADDR, PHY_ID};
use crate::phy::Speed;
use crate::regs::{RxStatus, TxStatus};
use eth_driver::{TX_BACKLOG, TX_STOP_AT};

const DMA_BASE: u64 = 0x1000_0000;
const FRAMES_BASE: u64 = 0x2000_0000;
const FRAMES: usize = 0x80000;
const BUF: u32 = 2048;

struct Rig {
    nic: Nic<FakeBus>,
    dev: FakeEnet,
    frames: Rc<HostDma>,
    events: std::vec::Vec<Event>,
    now: u64,
}

fn parts() -> (FakeEnet, DmaRegion, DmaBuf, Rc<HostDma>) {
    let dma = Rc::new(HostDma::new(0x20000, DMA_BASE));
    let frames = Rc::new(HostDma::new(FRAMES, FRAMES_BASE));
    let region = dma.region("enet", AddressWidth::BITS32).unwrap();
    let mut data = frames.region("frames", AddressWidth::BITS32).unwrap();
    let frames_buf = data.alloc("frames", FRAMES, 4096).unwrap();
    let dev = FakeEnet::new(vec![dma.clone(), frames.clone()]);
    (dev, region, frames_buf, frames)
}

fn rig() -> Rig {
    let (dev, mut region, frames_buf, frames) = parts();
    let mut nic = Nic::new(dev.bus.clone(), &mut region, frames_buf, None).unwrap();
    nic.enable();
    Rig {
        nic,
        dev,
        frames,
        events: std::vec::Vec::new(),
        now: 0,
    }
}

impl Rig {
    /// Lends buffers `first..first + n` (2 KiB each) and arms them.
    fn lend(&mut self, first: u32, n: u32) {
        for i in first..first + n {
            self.nic.lend(i * BUF, BUF as u16).unwrap();
        }
        self.nic.refill();
    }

    /// Runs the interrupt handler while the line is asserted or work is
    /// left, as the PD does.
    fn irq(&mut self) {
        let mut events = std::vec::Vec::new();
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

    /// The frames delivered so far, read from the data area, in order;
    /// with `give_back` each buffer is lent again, as the net PD does.
    fn received(&mut self, give_back: bool) -> std::vec::Vec<std::vec::Vec<u8>> {
        let mut out = std::vec::Vec::new();
        let mut again = std::vec::Vec::new();
        self.events.retain(|e| match *e {
            Event::Rx { buf, len } => {
                let mut f = vec![0; usize::from(len)];
                self.frames
                    .device_read(FRAMES_BASE + u64::from(buf), &mut f)
                    .unwrap();
                out.push(f);
                again.push(buf);
                false
            }
            _ => true,
        });
        if give_back {
            for buf in again {
                self.nic.lend(buf, BUF as u16).unwrap();
            }
            self.nic.refill();
        }
        out
    }

    /// Interrupts and lends the buffers back until `n` frames arrived or
    /// nothing moves.
    fn drain(&mut self, n: usize) -> std::vec::Vec<std::vec::Vec<u8>> {
        let mut got = std::vec::Vec::new();
        for _ in 0..100 {
            self.irq();
            let more = self.received(true);
            if more.is_empty() && got.len() >= n {
                break;
            }
            got.extend(more);
        }
        got
    }

    fn write_frame(&self, buf: u32, frame: &[u8]) {
        self.frames
            .device_write(FRAMES_BASE + u64::from(buf), frame)
            .unwrap();
    }

    fn transmit(&mut self, buf: u32, len: u16) {
        let mut events = std::vec::Vec::new();
        self.nic
            .transmit(buf, len, self.now, &mut |e| events.push(e));
        self.events.extend(events);
    }

    fn take(&mut self) -> std::vec::Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

fn frame(len: usize, seed: u32) -> std::vec::Vec<u8> {
    let mut f: std::vec::Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed) as u8)
        .collect();
    f[..6].copy_from_slice(&MAC);
    f
}

#[test]
fn bring_up_finds_the_phy_and_programs_the_controller() {
    let mut r = rig();
    assert_eq!(r.nic.mac(), MAC);
    assert_eq!(r.nic.phy().addr, PHY_ADDR);
    assert_eq!(r.nic.phy().id, PHY_ID);
    assert!(r.nic.link_up());
    assert_eq!(r.nic.mode(), LinkMode::DEFAULT);
    let bus = r.nic.bus();
    let ecr = bus.read(ECR);
    assert!(ecr.is_set(Control::ETHEREN) && ecr.is_set(Control::DBSWP));
    assert!(!ecr.is_set(Control::EN1588), "legacy descriptors");
    assert_eq!(bus.writes(MRBR).last(), Some(&(RX_BUF_BYTES as u32)));
    let rcr =
        hwio::LocalRegisterCopy::<u32, RxControl::Register>::new(*bus.writes(RCR).last().unwrap());
    assert_eq!(rcr.read(RxControl::MAX_FL), 1522);
    assert!(rcr.is_set(RxControl::MII_MODE) && !rcr.is_set(RxControl::CRCFWD));
    assert!(!rcr.is_set(RxControl::LOOP) && !rcr.is_set(RxControl::DRT));
    let mask = bus.read(EIMR);
    assert!(mask.is_set(Interrupt::RXF) && mask.is_set(Interrupt::EBERR));
    assert!(!mask.is_set(Interrupt::TXF), "no transmit in flight");
    assert!(!mask.is_set(Interrupt::MII), "MDIO is polled");
    // The PHY was asked to negotiate.
    assert_eq!(r.dev.model.borrow().phy.control & 0x1000, 0x1000);
}

#[test]
fn a_device_that_is_not_an_enet_is_refused() {
    let (dev, mut region, frames, _) = parts();
    dev.model.borrow_mut().rcr_lies = Some(0xdead_beef);
    let e = Nic::new(dev.bus.clone(), &mut region, frames, None).err();
    assert_eq!(e, Some(InitError::NotEnet { rcr: 0xdead_beef }));
    assert!(e.unwrap().to_string().contains("expected 0x05ee0001"));
}

#[test]
fn a_reset_that_never_ends_is_reported() {
    let (dev, mut region, frames, _) = parts();
    dev.model.borrow_mut().reset_stuck = true;
    let e = Nic::new(dev.bus.clone(), &mut region, frames, None).err();
    assert_eq!(e, Some(InitError::ResetStuck));
}

#[test]
fn no_phy_is_reported() {
    let (dev, mut region, frames, _) = parts();
    dev.model.borrow_mut().no_phy = true;
    let e = Nic::new(dev.bus.clone(), &mut region, frames, None).err();
    assert_eq!(e, Some(InitError::Phy(PhyError::NotFound)));
}

#[test]
fn the_mac_comes_from_the_config_or_the_controller() {
    let (dev, mut region, frames, _) = parts();
    let ours = [0x02, 0, 0, 0, 0, 7];
    let nic = Nic::new(dev.bus.clone(), &mut region, frames, Some(ours)).unwrap();
    assert_eq!(nic.mac(), ours);
    assert_eq!(dev.bus.writes(PALR).last(), Some(&0x0200_0000));

    // A controller nobody gave an address: zero in PALR/PAUR.
    let (dev, mut region, frames, _) = parts();
    let mut bus = dev.bus.clone();
    bus.set(PALR, 0);
    bus.set(PAUR, 0);
    let e = Nic::new(dev.bus.clone(), &mut region, frames, None).err();
    assert_eq!(e, Some(InitError::NoMac { mac: [0; 6] }));
}

#[test]
fn frames_land_in_the_lent_buffers_byte_exact() {
    let mut r = rig();
    r.lend(0, 8);
    let sizes = [14usize, 42, 60, 61, 100, 1000, 1514, 1518];
    for (i, &n) in sizes.iter().enumerate() {
        r.dev.receive(&frame(n, i as u32));
    }
    r.irq();
    let got = r.received(true);
    assert_eq!(got.len(), sizes.len());
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(got[i], frame(n, i as u32), "frame {i} of {n} bytes");
    }
    let c = r.nic.counters();
    assert_eq!(c.rx_frames, sizes.len() as u64);
    assert_eq!(c.rx_bytes, sizes.iter().sum::<usize>() as u64);
}

#[test]
fn the_ring_wraps_and_keeps_the_order() {
    let mut r = rig();
    r.lend(0, 96);
    let mut n = 0u32;
    for round in 0..20 {
        for _ in 0..50 {
            r.dev.receive(&frame(60 + (n as usize * 37) % 1400, n));
            n += 1;
        }
        r.irq();
        let got = r.received(true);
        assert_eq!(got.len(), 50, "round {round}");
        for (k, f) in got.iter().enumerate() {
            let seq = n - 50 + k as u32;
            assert_eq!(*f, frame(60 + (seq as usize * 37) % 1400, seq));
        }
    }
    assert_eq!(r.nic.counters().rx_frames, 1000);
    assert_eq!(r.dev.model.borrow().lost_ends, 0);
}

#[test]
fn without_buffers_the_device_holds_frames_until_some_are_lent() {
    let mut r = rig();
    r.lend(0, 2);
    for i in 0..6 {
        r.dev.receive(&frame(100, i));
    }
    r.irq();
    assert_eq!(r.received(false).len(), 2);
    assert_eq!(r.dev.held(), 4, "QEMU holds the rest");
    let s = r.nic.poll_rx(32, &mut |_| {});
    assert!(s.starved);
    r.lend(2, 8);
    r.irq();
    let got = r.received(false);
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], frame(100, 2));
    assert_eq!(r.dev.held(), 0);
}

#[test]
fn a_frame_longer_than_a_buffer_is_dropped_once_and_its_buffers_rearmed() {
    let mut r = rig();
    r.lend(0, 16);
    // 9000 bytes: six descriptors of 1536, the last with LG.
    let mut big = frame(9000, 1);
    big.resize(9000, 0xee);
    r.dev.receive(&big);
    r.dev.receive(&frame(4000, 2));
    r.dev.receive(&frame(300, 3));
    r.irq();
    let got = r.received(false);
    assert_eq!(got, vec![frame(300, 3)]);
    assert_eq!(r.nic.counters().rx_too_long, 2);
    assert_eq!(
        r.nic.lent(),
        15,
        "only the delivered buffer left the driver"
    );
}

#[test]
fn malformed_descriptors_are_counted_and_survived() {
    let mut r = rig();
    r.lend(0, 32);
    // Frame k gets the k-th kind of damage; frames 8 and up are sound.
    r.dev.corrupt(|k, d| match k {
        0 => d.len = 0xffff,                    // more than the buffer
        1 => d.len = 0,                         // nothing
        2 => d.len = 7,                         // under a header
        3 => d.flags |= BD_CR,                  // CRC error
        4 => d.flags |= BD_OV,                  // overrun
        5 => d.data = 0xdead_0000,              // the address rewritten: ignored
        6 => d.len = 1536 + 4,                  // the CRC past the buffer's end
        7 => d.flags |= 0x0fff & !BD_L & !BD_W, // every status bit but L
        _ => {}
    });
    for k in 0..10u32 {
        r.dev.receive(&frame(200 + k as usize, k));
    }
    r.irq();
    let got = r.received(false);
    // Frame 5 is sound but for the address, which the driver never reads.
    assert_eq!(got, vec![frame(205, 5), frame(208, 8), frame(209, 9)]);
    let c = *r.nic.counters();
    assert_eq!(c.rx_bad_length, 3, "0xffff, 0 and 1540 bytes");
    assert_eq!(c.rx_runt, 1);
    assert_eq!(c.rx_bad_status, 2, "CR and OV");
    assert_eq!(c.rx_too_long, 1, "every status bit: LG and TR among them");
    assert_eq!(c.rx_frames, 3);
    assert_eq!(r.nic.lent(), 29, "dropped buffers stay lent and armed");
    // And the ring goes on.
    r.dev.stop_corrupting();
    for k in 0..40 {
        r.dev.receive(&frame(90, 100 + k));
    }
    assert_eq!(r.drain(40).len(), 40);
}

#[test]
fn a_lost_end_of_frame_takes_the_next_frame_with_it_and_is_counted_once() {
    let mut r = rig();
    // Two buffers: a 4000-byte frame needs three.
    r.lend(0, 2);
    r.dev.receive(&frame(4000, 1));
    assert_eq!(r.dev.model.borrow().lost_ends, 1);
    // Only RXB was raised, which is masked: no interrupt yet.
    assert!(!r.dev.irq());
    r.lend(2, 4);
    r.dev.receive(&frame(100, 2));
    r.dev.receive(&frame(100, 3));
    r.irq();
    // The first frame after the lost end closes it (no L came), the
    // second is delivered.
    assert_eq!(r.received(false), vec![frame(100, 3)]);
    assert_eq!(r.nic.counters().rx_too_long, 1);
}

#[test]
fn a_device_that_skips_a_descriptor_gets_the_ring_restarted() {
    let mut r = rig();
    r.lend(0, 8);
    r.dev.receive(&frame(100, 1));
    r.irq();
    assert_eq!(r.received(false).len(), 1);
    r.dev.model.borrow_mut().skip_next = true;
    r.dev.receive(&frame(100, 2));
    r.irq();
    assert!(
        r.received(false).is_empty(),
        "the frame sits past the oldest descriptor"
    );
    let c = *r.nic.counters();
    assert_eq!(c.rx_ring_resets, 1);
    assert_eq!(c.chip_resets, 1);
    assert_eq!(r.nic.lent(), 7, "every buffer armed again");
    for k in 0..20 {
        r.dev.receive(&frame(100, 10 + k));
    }
    let got = r.drain(20);
    assert_eq!(got.len(), 20);
    assert_eq!(got[0], frame(100, 10));
}

#[test]
fn a_device_writing_the_wrap_bit_early_is_caught() {
    let mut r = rig();
    r.lend(0, 8);
    // The second descriptor comes back with W: the device goes back to
    // descriptor 0, which the driver has re-armed with another buffer.
    r.dev.corrupt(|k, d| {
        if k == 1 {
            d.flags |= BD_W;
        }
    });
    for k in 0..4 {
        r.dev.receive(&frame(100, k));
    }
    r.irq();
    let got = r.received(false);
    assert!(
        got.len() >= 2,
        "frames before the jump arrive: {}",
        got.len()
    );
    assert_eq!(got[0], frame(100, 0));
    assert_eq!(got[1], frame(100, 1));
    assert_eq!(r.nic.counters().rx_ring_resets, 1);
    r.dev.stop_corrupting();
    r.dev.receive(&frame(100, 50));
    r.irq();
    assert_eq!(r.received(false), vec![frame(100, 50)]);
}

#[test]
fn random_descriptor_garbage_never_breaks_the_accounting() {
    let mut r = rig();
    r.lend(0, 64);
    let mut x = 0x1234_5678u32;
    r.dev.corrupt(move |_, d| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if x.is_multiple_of(3) {
            d.len = (x >> 8) as u16;
        }
        if x.is_multiple_of(5) {
            // Anything but the ownership bit; a W sends the device back to
            // the ring's start, out of step with the driver.
            d.flags = (x >> 16) as u16 & !BD_E;
        }
    });
    let mut delivered = 0;
    for round in 0..50u32 {
        for k in 0..20 {
            r.dev
                .receive(&frame(60 + (k * 71) % 1450, round * 100 + k as u32));
        }
        r.irq();
        let got = r.received(true);
        for f in &got {
            assert!(f.len() >= 14 && f.len() <= MAX_FRAME);
        }
        delivered += got.len();
    }
    let c = *r.nic.counters();
    let dropped = c.rx_bad_length + c.rx_runt + c.rx_bad_status + c.rx_too_long;
    // About 40% survive this much damage (and the restarts it causes).
    assert!(
        delivered > 300 && dropped > 300,
        "{delivered} delivered, {c:?}"
    );
    assert!(
        c.rx_ring_resets > 0,
        "an early W put the device out of step"
    );
    assert_eq!(c.rx_frames, delivered as u64);
    assert_eq!(r.nic.lent(), 64, "every buffer is still the driver's");
    let mut returned = 0;
    r.nic.disable(&mut |e| {
        if let Event::RxReturn { .. } = e {
            returned += 1
        }
    });
    assert_eq!(returned, 64);
}

#[test]
fn transmits_go_out_byte_exact_and_short_ones_padded() {
    let mut r = rig();
    for (i, len) in [60usize, 1514, 1518, 42, 17].into_iter().enumerate() {
        let f = frame(len, i as u32);
        r.write_frame(i as u32 * BUF, &f);
        r.transmit(i as u32 * BUF, len as u16);
    }
    let sent = r.dev.sent();
    assert_eq!(sent.len(), 5);
    assert_eq!(sent[0], frame(60, 0));
    assert_eq!(sent[1], frame(1514, 1));
    assert_eq!(sent[2], frame(1518, 2));
    let mut padded = frame(42, 3);
    padded.resize(60, 0);
    assert_eq!(sent[3], padded);
    assert_eq!(sent[4].len(), 60);
    let done: std::vec::Vec<_> = r.take();
    assert_eq!(
        done,
        (0..5)
            .map(|i| Event::TxDone { buf: i * BUF })
            .collect::<std::vec::Vec<_>>()
    );
    let c = r.nic.counters();
    assert_eq!((c.tx_frames, c.tx_bounced), (5, 2));
    assert!(
        !r.dev.irq(),
        "completions were reaped inline, TXF stays masked"
    );
}

#[test]
fn a_misaligned_transmit_goes_through_a_bounce_buffer() {
    let mut r = rig();
    let f = frame(300, 9);
    r.write_frame(4 * BUF + 6, &f);
    r.transmit(4 * BUF + 6, 300);
    assert_eq!(r.dev.sent(), vec![f]);
    assert_eq!(r.nic.counters().tx_bounced, 1);
}

#[test]
fn bad_transmit_requests_are_aborted() {
    let mut r = rig();
    r.transmit(FRAMES as u32 - 10, 60);
    r.transmit(0, 0);
    r.transmit(0, 1519);
    assert_eq!(
        r.take(),
        vec![
            Event::TxAbort {
                buf: FRAMES as u32 - 10,
                error: eth::BAD_REQUEST
            },
            Event::TxAbort {
                buf: 0,
                error: eth::BAD_REQUEST
            },
            Event::TxAbort {
                buf: 0,
                error: eth::BAD_REQUEST
            },
        ]
    );
    assert_eq!(r.nic.counters().tx_bad_request, 3);
    assert!(r.dev.sent().is_empty());
}

#[test]
fn a_stuck_transmitter_unmasks_txf_then_the_watchdog_restarts_it() {
    let mut r = rig();
    r.dev.model.borrow_mut().stuck_tx = true;
    for i in 0..(TX_SLOTS as u32 + TX_STOP_AT as u32) {
        r.transmit(i * 64, 60);
    }
    assert!(r.take().contains(&Event::StopQueue));
    assert!(r.nic.bus().read(EIMR).is_set(Interrupt::TXF));
    assert_eq!(r.nic.tx_outstanding(), TX_SLOTS + TX_STOP_AT);
    r.now = TX_TIMEOUT_NS - 1;
    assert!(!r.nic.check_watchdog(r.now, &mut |_| {}));
    r.dev.model.borrow_mut().stuck_tx = false;
    r.now = TX_TIMEOUT_NS + 1;
    let mut events = std::vec::Vec::new();
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
    assert_eq!(aborted, TX_SLOTS, "the frames in flight");
    let done = events
        .iter()
        .filter(|e| matches!(e, Event::TxDone { .. }))
        .count();
    assert_eq!(done, TX_STOP_AT, "the queue went out after the restart");
    assert!(events.contains(&Event::StartQueue));
    assert_eq!(r.nic.counters().chip_resets, 1);
    assert!(!r.nic.bus().read(EIMR).is_set(Interrupt::TXF));
}

#[test]
fn a_transmit_queue_overflow_is_aborted_not_lost() {
    let mut r = rig();
    r.dev.model.borrow_mut().stuck_tx = true;
    for i in 0..(TX_SLOTS + TX_BACKLOG + 3) as u32 {
        r.transmit(i * 64, 60);
    }
    let full = r
        .take()
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::TxAbort {
                    error: eth::QUEUE_FULL,
                    ..
                }
            )
        })
        .count();
    assert_eq!(full, 3);
    assert_eq!(r.nic.counters().tx_queue_full, 3);
}

#[test]
fn a_completion_that_arrives_later_interrupts() {
    let mut r = rig();
    r.dev.model.borrow_mut().stuck_tx = true;
    r.transmit(0, 60);
    assert!(r.take().is_empty());
    // The device sends it later, as a real one does.
    r.dev.model.borrow_mut().stuck_tx = false;
    r.nic.bus().write(TDAR, DescriptorActive::ACTIVE::SET);
    assert!(r.dev.irq());
    r.irq();
    assert_eq!(r.take(), vec![Event::TxDone { buf: 0 }]);
    assert!(!r.nic.bus().read(EIMR).is_set(Interrupt::TXF));
}

#[test]
fn link_changes_are_polled_and_reported() {
    let mut r = rig();
    assert_eq!(r.nic.poll_link(&mut |_| {}), None);
    r.dev.set_link(false);
    let mut events = std::vec::Vec::new();
    assert_eq!(r.nic.poll_link(&mut |e| events.push(e)), Some(false));
    assert_eq!(r.nic.poll_link(&mut |e| events.push(e)), None);
    r.dev.set_link(true);
    assert_eq!(r.nic.poll_link(&mut |e| events.push(e)), Some(true));
    assert_eq!(
        events,
        vec![Event::Link { up: false }, Event::Link { up: true }]
    );
    assert_eq!(r.nic.counters().chip_resets, 0, "same mode: no restart");
    // Disabled: nothing is polled or said.
    r.nic.disable(&mut |_| {});
    r.dev.set_link(false);
    assert_eq!(
        r.nic.poll_link(&mut |_| panic!("no events while disabled")),
        None
    );
}

#[test]
fn a_link_in_another_mode_reconfigures_the_mac() {
    let mut r = rig();
    r.lend(0, 4);
    r.dev.set_link(false);
    r.nic.poll_link(&mut |_| {});
    // The partner now only does 10 Mb/s half duplex.
    r.dev.model.borrow_mut().phy.partner = 0x0021;
    r.dev.set_link(true);
    let mut events = std::vec::Vec::new();
    assert_eq!(r.nic.poll_link(&mut |e| events.push(e)), Some(true));
    assert_eq!(events, vec![Event::Link { up: true }]);
    assert_eq!(
        r.nic.mode(),
        LinkMode {
            speed: Speed::M10,
            full_duplex: false
        }
    );
    let bus = r.nic.bus();
    let rcr =
        hwio::LocalRegisterCopy::<u32, RxControl::Register>::new(*bus.writes(RCR).last().unwrap());
    assert!(rcr.is_set(RxControl::RMII_10T) && rcr.is_set(RxControl::DRT));
    let tcr =
        hwio::LocalRegisterCopy::<u32, TxControl::Register>::new(*bus.writes(TCR).last().unwrap());
    assert!(!tcr.is_set(TxControl::FDEN));
    assert_eq!(r.nic.counters().chip_resets, 1);
    // Receive still works, with the same buffers.
    r.dev.receive(&frame(80, 1));
    r.irq();
    assert_eq!(r.received(false), vec![frame(80, 1)]);
}

#[test]
fn disable_hands_back_every_buffer_and_aborts_every_transmit() {
    let mut r = rig();
    // Armed, waiting for a descriptor, and refused.
    r.lend(0, RX_SLOTS as u32 + 10);
    assert_eq!(r.nic.lend(7, 2048), Err(LendError::Misaligned));
    assert_eq!(r.nic.lend(FRAMES as u32, 2048), Err(LendError::OutOfRange));
    assert_eq!(r.nic.lend(0x70000, 100), Err(LendError::TooShort));
    r.dev.model.borrow_mut().stuck_tx = true;
    r.transmit(0x78000, 60);
    r.transmit(0x78800, 60);
    let mut events = std::vec::Vec::new();
    r.nic.disable(&mut |e| events.push(e));
    let returned: std::vec::Vec<u32> = events
        .iter()
        .filter_map(|e| match *e {
            Event::RxReturn { buf } => Some(buf),
            _ => None,
        })
        .collect();
    assert_eq!(returned.len(), RX_SLOTS + 10 + 3);
    assert!(returned.contains(&7) && returned.contains(&(FRAMES as u32)));
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
    assert_eq!(aborted, 2);
    assert_eq!(r.nic.lent(), 0);
    assert!(!r.nic.bus().read(ECR).is_set(Control::ETHEREN));
    assert_eq!(r.nic.counters().rx_bad_lend, 3);
    // Sending while disabled is answered at once.
    r.transmit(0, 60);
    assert_eq!(
        r.take(),
        vec![Event::TxAbort {
            buf: 0,
            error: eth::RESET
        }]
    );
}

#[test]
fn too_many_buffers_are_refused() {
    let mut r = rig();
    for i in 0..MAX_LENT as u32 {
        r.nic.lend(i * 2048 % FRAMES as u32, 2048).unwrap();
    }
    assert_eq!(r.nic.lend(0, 2048), Err(LendError::TooMany));
}

#[test]
fn a_bus_error_restarts_the_controller() {
    let mut r = rig();
    r.lend(0, 4);
    r.dev.model.borrow_mut().eir |= INT_EBERR;
    r.irq();
    let c = *r.nic.counters();
    assert_eq!((c.bus_errors, c.chip_resets), (1, 1));
    r.dev.receive(&frame(100, 4));
    r.irq();
    assert_eq!(r.received(false), vec![frame(100, 4)]);
}

#[test]
fn missed_frames_come_from_the_mib_counter() {
    let mut r = rig();
    r.dev.model.borrow_mut().macerr = 5;
    r.dev.model.borrow_mut().eir |= 1 << 25;
    r.irq();
    assert_eq!(r.nic.counters().rx_missed, 5);
}

#[test]
fn an_interrupt_without_events_is_spurious() {
    let mut r = rig();
    r.nic.service(32, 0, &mut |_| panic!("no events"));
    assert_eq!(r.nic.counters().spurious, 1);
}

#[test]
fn descriptor_status_layout_matches_the_device() {
    // The bits the fake model (and QEMU's) uses are the ones the typed
    // definitions name.
    assert_eq!(RxStatus::E::SET.value, BD_E);
    assert_eq!(RxStatus::L::SET.value, BD_L);
    assert_eq!(RxStatus::W::SET.value, BD_W);
    assert_eq!(TxStatus::R::SET.value, BD_E);
}
