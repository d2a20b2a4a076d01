use std::rc::Rc;

use dma::AddressWidth;
use dma::host::HostDma;

use super::*;

const BASE: u64 = 0x3000_0000;

/// Ring memory the test plays the device on.
struct Mem {
    host: Rc<HostDma>,
    region: dma::DmaRegion,
}

fn mem() -> Mem {
    let host = Rc::new(HostDma::new(0x10000, BASE));
    let region = host.region("rings", AddressWidth::BITS32).unwrap();
    Mem { host, region }
}

impl Mem {
    fn ring(&mut self, descs: usize) -> DmaBuf {
        self.region
            .alloc("ring", descs * DESC_BYTES, RING_ALIGN)
            .unwrap()
    }
    fn word(&self, paddr: u64) -> u32 {
        self.host.device_read_u32(paddr).unwrap()
    }
    fn set(&self, paddr: u64, v: u32) {
        self.host.device_write_u32(paddr, v).unwrap();
    }
}

fn buf(i: u32) -> Buf {
    Buf {
        offset: i * 2048,
        paddr: 0x5000_0000 + u64::from(i) * 2048,
        len: 2048,
    }
}

const OWN: u32 = 1 << 31;
const EOR: u32 = 1 << 30;
const FS_LS: u32 = (1 << 29) | (1 << 28);

#[test]
fn armed_descriptors_name_the_buffer_and_only_the_last_ends_the_ring() {
    let mut m = mem();
    let mut rx = RxDescs::new(m.ring(RX_DESCS)).unwrap();
    let base = rx.paddr();
    for i in 0..RX_DESCS as u32 {
        rx.arm(buf(i));
    }
    assert!(rx.is_full());
    let first = m.word(base);
    assert_eq!(first, OWN | 2048);
    assert_eq!(m.word(base + 8), 0x5000_0000);
    assert_eq!(m.word(base + 12), 0);
    let last = base + (RX_DESCS as u64 - 1) * DESC_BYTES as u64;
    assert_eq!(m.word(last), OWN | EOR | 2048);
    assert_eq!(rx.take_head(), RxDesc::Empty);
}

#[test]
fn a_frame_the_device_gave_back_comes_out_in_order_without_its_crc() {
    let mut m = mem();
    let mut rx = RxDescs::new(m.ring(RX_DESCS)).unwrap();
    let base = rx.paddr();
    rx.arm(buf(0));
    rx.arm(buf(1));
    m.set(base, FS_LS | (1 << 25) | (1514 + 4));
    assert_eq!(
        rx.take_head(),
        RxDesc::Frame {
            buf: buf(0),
            len: 1514
        }
    );
    assert_eq!(rx.take_head(), RxDesc::Empty);
    m.set(base + 16, FS_LS | 64);
    assert_eq!(
        rx.take_head(),
        RxDesc::Frame {
            buf: buf(1),
            len: 60
        }
    );
    assert_eq!(rx.armed(), 0);
}

#[test]
fn bad_descriptors_drop_their_frame_and_give_the_buffer_back() {
    let mut m = mem();
    let mut rx = RxDescs::new(m.ring(RX_DESCS)).unwrap();
    let base = rx.paddr();
    let cases = [
        (FS_LS | (1 << 18) | 100, "CRC error"),
        ((1 << 29) | 100, "first segment only"),
        (FS_LS | 2, "shorter than its CRC"),
        (FS_LS | 4000, "beyond the buffer"),
        (FS_LS | 40, "runt"),
        (FS_LS | 2040, "too long"),
    ];
    for (i, (word, what)) in cases.iter().enumerate() {
        rx.arm(buf(i as u32));
        m.set(base + (i * DESC_BYTES) as u64, *word);
        match rx.take_head() {
            RxDesc::Drop { buf: b, .. } => assert_eq!(b, buf(i as u32), "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// Whatever a device writes into a descriptor's first word, a forwarded
/// frame fits the buffer the driver gave and is a legal frame.
#[test]
fn garbage_in_descriptors_never_forwards_a_frame_that_does_not_fit() {
    let mut m = mem();
    let mut rx = RxDescs::new(m.ring(RX_DESCS)).unwrap();
    let base = rx.paddr();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut forwarded = 0;
    for n in 0..20_000u32 {
        let small = Buf {
            len: 1600 + (n % 7) as u16 * 64,
            ..buf(n % 256)
        };
        rx.arm(small);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (n as usize) % RX_DESCS;
        m.set(base + (i * DESC_BYTES) as u64, (x as u32) & !OWN);
        match rx.take_head() {
            RxDesc::Frame { buf: b, len } => {
                assert_eq!(b, small);
                assert!((60..=1518).contains(&len), "length {len}");
                assert!(usize::from(len) + 4 <= usize::from(small.len));
                forwarded += 1;
            }
            RxDesc::Drop { buf: b, .. } => assert_eq!(b, small),
            RxDesc::Empty => panic!("a descriptor given back reads as empty"),
        }
    }
    assert!(forwarded > 0, "no random word ever passed");
}

#[test]
fn a_device_running_ahead_is_noticed_and_drain_starts_over_at_zero() {
    let mut m = mem();
    let mut rx = RxDescs::new(m.ring(RX_DESCS)).unwrap();
    let base = rx.paddr();
    for i in 0..4 {
        rx.arm(buf(i));
    }
    assert!(!rx.ran_ahead());
    m.set(base + 2 * DESC_BYTES as u64, FS_LS | 100);
    assert!(rx.ran_ahead());
    let mut back = Vec::new();
    rx.drain(|b| back.push(b));
    assert_eq!(back, [buf(0), buf(1), buf(2), buf(3)]);
    assert_eq!(rx.armed(), 0);
    rx.arm(buf(9));
    assert_eq!(m.word(base), OWN | 2048, "armed again from descriptor 0");
}

#[test]
fn transmits_complete_in_order_and_short_frames_are_bounced_and_padded() {
    let mut m = mem();
    let ring = m.ring(TX_DESCS);
    let bounce = m.region.alloc("bounce", TX_DESCS * 64, 64).unwrap();
    let bounce_at = bounce.paddr();
    let mut tx: TxDescs<u32> = TxDescs::new(ring, bounce).unwrap();
    let base = tx.paddr();
    let long = Buf {
        len: 1514,
        ..buf(0)
    };
    let short = Buf { len: 20, ..buf(1) };
    assert!(!tx.submit(long, |_| panic!("not read"), 10, 0));
    assert!(tx.submit(short, |dst| dst.fill(0xab), 11, 0));
    assert!(tx.poll_needed());
    assert!(!tx.poll_needed());
    assert_eq!(m.word(base), OWN | FS_LS | 1514);
    assert_eq!(m.word(base + 8), 0x5000_0000);
    assert_eq!(m.word(base + 16), OWN | FS_LS | 60);
    assert_eq!(u64::from(m.word(base + 24)), bounce_at + 64);
    let mut padded = [0u8; 60];
    m.host.device_read(bounce_at + 64, &mut padded).unwrap();
    assert_eq!(padded[..20], [0xab; 20]);
    assert_eq!(padded[20..], [0; 40]);
    // The second is done first: nothing completes out of order.
    m.set(base + 16, FS_LS | 60);
    let mut done = Vec::new();
    tx.reap(|t, e| done.push((t, e)));
    assert!(done.is_empty());
    m.set(base, FS_LS | (1 << 23) | 1514);
    tx.reap(|t, e| done.push((t, e)));
    assert_eq!(
        done,
        [
            (
                10,
                TxEnd::Failed {
                    word: FS_LS | (1 << 23) | 1514
                }
            ),
            (11, TxEnd::Sent)
        ]
    );
    assert_eq!(tx.busy(), 0);
}

#[test]
fn the_last_transmit_descriptor_ends_the_ring() {
    let mut m = mem();
    let ring = m.ring(TX_DESCS);
    let bounce = m.region.alloc("bounce", TX_DESCS * 64, 64).unwrap();
    let mut tx: TxDescs<usize> = TxDescs::new(ring, bounce).unwrap();
    let base = tx.paddr();
    for i in 0..TX_DESCS {
        tx.submit(Buf { len: 100, ..buf(0) }, |_| {}, i, 0);
    }
    assert!(tx.is_full());
    let last = base + ((TX_DESCS - 1) * DESC_BYTES) as u64;
    assert_eq!(m.word(last) & EOR, EOR);
    assert_eq!(m.word(base) & EOR, 0);
    let mut gone = Vec::new();
    tx.abandon(|t| gone.push(t));
    assert_eq!(gone, (0..TX_DESCS).collect::<Vec<_>>());
}

#[test]
fn rings_the_device_cannot_use_are_refused() {
    let mut m = mem();
    let short = m.region.alloc("short", 512, RING_ALIGN).unwrap();
    assert!(matches!(
        RxDescs::new(short),
        Err(RingError::BadRing { .. })
    ));
    let _pad = m.region.alloc("pad", 16, 16).unwrap();
    let odd = m.region.alloc("odd", RX_DESCS * DESC_BYTES, 16).unwrap();
    assert!(matches!(RxDescs::new(odd), Err(RingError::BadRing { .. })));
}
