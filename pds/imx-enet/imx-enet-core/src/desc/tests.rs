//! The rings alone, with the test playing the device through the host
//! DMA block.

use dma::AddressWidth;
use dma::host::HostDma;

use super::*;

const BASE: u64 = 0x3000_0000;

fn ring() -> (HostDma, RxRing) {
    let mem = HostDma::new(0x1000, BASE);
    let mut region = mem.region("ring", AddressWidth::BITS32).unwrap();
    let ring = RxRing::new(&mut region).unwrap();
    (mem, ring)
}

fn lent(i: u32) -> Lent {
    Lent {
        buf: i * 2048,
        len: 2048,
        paddr: 0x4000_0000 + i * 2048,
    }
}

/// The device hands descriptor `i` back with `len` and `status`.
fn complete(mem: &HostDma, i: usize, len: u16, status: u16) {
    let at = BASE + (i * DESC_BYTES) as u64;
    mem.device_write(at, &len.to_le_bytes()).unwrap();
    mem.device_write(at + 2, &status.to_le_bytes()).unwrap();
}

fn desc(mem: &HostDma, i: usize) -> (u16, u16, u32) {
    let mut b = [0u8; 8];
    mem.device_read(BASE + (i * DESC_BYTES) as u64, &mut b)
        .unwrap();
    (
        u16::from_le_bytes([b[0], b[1]]),
        u16::from_le_bytes([b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

const L: u16 = 1 << 11;
const E: u16 = 1 << 15;
const W: u16 = 1 << 13;

#[test]
fn arming_gives_the_device_address_then_ownership_and_wraps_at_the_end() {
    let (mem, mut rx) = ring();
    for i in 0..RX_SLOTS as u32 {
        rx.arm(lent(i));
    }
    assert!(rx.is_full());
    assert_eq!(desc(&mem, 0), (0, E, 0x4000_0000));
    assert_eq!(
        desc(&mem, RX_SLOTS - 1).1,
        E | W,
        "the last descriptor wraps"
    );
    assert_eq!(rx.take(), Rx::Empty);
}

#[test]
fn a_completed_descriptor_yields_the_drivers_own_record() {
    let (mem, mut rx) = ring();
    rx.arm(lent(3));
    // The device writes an address of its own choosing: not believed.
    mem.device_write(BASE + 4, &0xdead_beefu32.to_le_bytes())
        .unwrap();
    complete(&mem, 0, 64, L);
    assert_eq!(
        rx.take(),
        Rx::Frame {
            lent: lent(3),
            len: 60
        }
    );
    assert_eq!(rx.armed(), 0);
    // A descriptor the driver did not arm is never looked at.
    complete(&mem, 1, 64, L);
    assert_eq!(rx.take(), Rx::Empty);
}

#[test]
fn lengths_are_judged() {
    let cases = [
        (0u16, L, Some(DropReason::BadLength { len: 0 })),
        (17, L, Some(DropReason::Runt { len: 17 })),
        (18, L, None),
        (1522, L, None),
        (1523, L, Some(DropReason::TooLong)),
        (1537, L, Some(DropReason::BadLength { len: 1537 })),
        (100, L | 1 << 5, Some(DropReason::TooLong)),
        (100, L | 1, Some(DropReason::TooLong)),
        (
            100,
            L | 1 << 2,
            Some(DropReason::BadStatus { status: L | 1 << 2 }),
        ),
    ];
    for (len, status, want) in cases {
        let (mem, mut rx) = ring();
        rx.arm(lent(0));
        complete(&mem, 0, len, status);
        let got = rx.take();
        match want {
            None => assert_eq!(
                got,
                Rx::Frame {
                    lent: lent(0),
                    len: usize::from(len) - CRC_BYTES
                },
                "len {len} status {status:#x}"
            ),
            Some(reason) => assert_eq!(
                got,
                Rx::Drop {
                    lent: lent(0),
                    reason,
                    first: true
                },
                "len {len} status {status:#x}"
            ),
        }
    }
}

#[test]
fn a_spread_frame_is_one_drop_over_its_descriptors() {
    let (mem, mut rx) = ring();
    for i in 0..4 {
        rx.arm(lent(i));
    }
    complete(&mem, 0, 1536, 0);
    complete(&mem, 1, 1536, 0);
    complete(&mem, 2, 100, L);
    complete(&mem, 3, 100, L);
    let firsts: Vec<bool> = (0..3)
        .map(|_| match rx.take() {
            Rx::Drop {
                reason: DropReason::TooLong,
                first,
                ..
            } => first,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(firsts, [true, false, false]);
    assert!(matches!(rx.take(), Rx::Frame { len: 96, .. }));
}

#[test]
fn a_skip_is_seen_and_reset_takes_everything_back_in_order() {
    let (mem, mut rx) = ring();
    for i in 0..5 {
        rx.arm(lent(i));
    }
    assert!(!rx.skipped());
    complete(&mem, 2, 100, L);
    assert!(rx.skipped());
    assert_eq!(rx.take(), Rx::Empty, "the oldest is still the device's");
    let mut back = Vec::new();
    rx.reset(|l| back.push(l.buf));
    assert_eq!(back, [0, 2048, 4096, 6144, 8192]);
    assert_eq!(rx.armed(), 0);
    rx.arm(lent(9));
    assert_eq!(desc(&mem, 0), (0, E, 0x4000_0000 + 9 * 2048));
}

#[test]
fn the_transmit_ring_releases_in_order_only() {
    let mem = HostDma::new(0x1000, BASE);
    let mut region = mem.region("ring", AddressWidth::BITS32).unwrap();
    let mut tx: TxRing<u32> = TxRing::new(&mut region).unwrap();
    for i in 0..3 {
        tx.submit(0x5000_0000 + i * 64, 60, i, u64::from(i));
    }
    let (len, status, addr) = desc(&mem, 1);
    assert_eq!((len, addr), (60, 0x5000_0040));
    assert_eq!(status, 1 << 15 | 1 << 11 | 1 << 10, "R, L, TC");
    // The device releases the second first: nothing is reaped.
    mem.device_write(BASE + 8 + 2, &0u16.to_le_bytes()).unwrap();
    let mut done = Vec::new();
    tx.reap(|t| done.push(t));
    assert!(done.is_empty());
    mem.device_write(BASE + 2, &0u16.to_le_bytes()).unwrap();
    tx.reap(|t| done.push(t));
    assert_eq!(done, [0, 1]);
    assert_eq!(tx.oldest_since(), Some(2));
    let mut gone = Vec::new();
    tx.reset(|t| gone.push(t));
    assert_eq!(gone, [2]);
    assert_eq!(tx.next_index(), 0);
}

#[test]
fn frames_that_arrive_in_order_while_the_ring_is_read_are_no_skip() {
    let (mem, mut rx) = ring();
    for i in 0..5 {
        rx.arm(lent(i));
    }
    // The driver found the oldest empty; the device then filled it and
    // the next one before the driver looked for a skip.
    assert_eq!(rx.take(), Rx::Empty);
    complete(&mem, 0, 100, L);
    complete(&mem, 1, 100, L);
    assert!(!rx.skipped());
    assert!(matches!(rx.take(), Rx::Frame { .. }));
}
