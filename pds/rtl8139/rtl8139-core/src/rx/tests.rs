use dma::AddressWidth;
use dma::host::HostDma;

use super::*;

const BASE: u64 = 0x100_0000;

fn ring(len: usize) -> (RxRing, HostDma) {
    let host = HostDma::new(len + SLACK, BASE);
    let mut region = host.region("ring", AddressWidth::BITS32).unwrap();
    let buf = region.alloc("rx ring", len + SLACK, 16).unwrap();
    (RxRing::new(buf, len).unwrap(), host)
}

/// Writes a record the way the device does (header, frame, CRC), wrapping
/// at the ring's end; returns the write offset after it.
fn put(host: &HostDma, len: usize, at: usize, status: u16, claimed: u16, frame: &[u8]) -> usize {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(u32::from(status) | u32::from(claimed) << 16).to_le_bytes());
    bytes.extend_from_slice(frame);
    bytes.extend_from_slice(&[0xcc; 4]);
    for (i, b) in bytes.iter().enumerate() {
        host.device_write(BASE + ((at + i) % len) as u64, &[*b])
            .unwrap();
    }
    (at + bytes.len()).next_multiple_of(4) % len
}

/// The frame as `copy_frame` puts it into a client's buffer (another DMA
/// buffer, at an offset).
fn copied(ring: &RxRing, f: &Frame) -> Vec<u8> {
    let host = HostDma::new(0x1000 + f.len, 0x800_0000);
    let mut region = host.region("frames", AddressWidth::BITS32).unwrap();
    let mut lent = region.alloc("lent", 0x1000 + f.len, 1).unwrap();
    ring.copy_frame(f, &mut lent, 0x1000);
    let mut out = vec![0; f.len];
    lent.copy_out(0x1000, &mut out);
    out
}

fn frame(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[test]
fn a_good_record_is_a_frame_and_advances_to_the_next() {
    let (mut ring, host) = ring(8192);
    let f = frame(60, 1);
    let cbr = put(&host, 8192, 0, rx_status::ROK, 64, &f);
    let Rx::Frame(got) = ring.next(cbr as u16) else {
        panic!("expected a frame")
    };
    assert_eq!((got.start, got.len, got.record), (4, 60, 68));
    assert_eq!(copied(&ring, &got), f);
    ring.advance(got.record);
    assert_eq!(ring.offset(), 68);
    assert_eq!(ring.capr(), 68 - 16);
    assert_eq!(ring.next(cbr as u16), Rx::Empty);
}

#[test]
fn a_frame_straddling_the_end_is_copied_in_two_pieces() {
    let (mut ring, host) = ring(8192);
    // Put the read offset 40 bytes before the end.
    ring.offset = 8192 - 40;
    let f = frame(1514, 9);
    let cbr = put(&host, 8192, 8192 - 40, rx_status::ROK, 1518, &f);
    let Rx::Frame(got) = ring.next(cbr as u16) else {
        panic!("expected a frame")
    };
    assert_eq!(got.start, 8192 - 36);
    assert_eq!(copied(&ring, &got), f);
    ring.advance(got.record);
    assert_eq!(ring.offset(), cbr);
}

#[test]
fn error_status_runts_and_long_frames_are_dropped_with_the_ring_intact() {
    let (ring, host) = ring(8192);
    for (status, claimed, len, want) in [
        (
            rx_status::ROK | rx_status::CRC,
            64,
            60,
            DropReason::BadStatus { status: 5 },
        ),
        (0, 64, 60, DropReason::BadStatus { status: 0 }),
        (rx_status::ROK, 24, 20, DropReason::Runt { len: 20 }),
        (
            rx_status::ROK,
            4004,
            4000,
            DropReason::TooLong { len: 4000 },
        ),
    ] {
        let cbr = put(&host, 8192, 0, status, claimed, &frame(len, 0));
        assert_eq!(
            ring.next(cbr as u16),
            Rx::Drop {
                reason: want,
                record: (4 + claimed as usize).next_multiple_of(4)
            }
        );
    }
}

#[test]
fn impossible_values_put_the_ring_in_doubt() {
    let (ring, host) = ring(8192);
    let cbr = put(&host, 8192, 0, rx_status::ROK, 64, &frame(60, 0));
    // A write offset outside the ring or misaligned.
    assert_eq!(
        ring.next(8192),
        Rx::Doubt(DoubtReason::BadWriteOffset { cbr: 8192 })
    );
    assert_eq!(
        ring.next(6),
        Rx::Doubt(DoubtReason::BadWriteOffset { cbr: 6 })
    );
    // A length longer than what the device wrote.
    assert_eq!(
        ring.next(cbr as u16 - 8),
        Rx::Doubt(DoubtReason::BadLength {
            len: 64,
            unread: 60
        })
    );
    // No room for the CRC.
    put(&host, 8192, 0, rx_status::ROK, 2, &[]);
    assert_eq!(
        ring.next(64),
        Rx::Doubt(DoubtReason::BadLength { len: 2, unread: 64 })
    );
    put(&host, 8192, 0, rx_status::ROK, rx_status::EARLY_RX_LEN, &[]);
    assert_eq!(ring.next(64), Rx::Doubt(DoubtReason::EarlyRx));
}

#[test]
fn garbage_never_yields_a_read_outside_the_ring_or_a_bad_frame() {
    let (mut ring, host) = ring(8192);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut junk = vec![0u8; 8192];
    for _ in 0..2000 {
        for b in junk.iter_mut() {
            *b = rnd() as u8;
        }
        // Plausible headers now and then, so that frames come out too.
        if rnd() % 2 == 0 {
            let len = 64 + (rnd() % 1500) as u16;
            let at = ring.offset();
            junk[at..at + 4].copy_from_slice(&(1u32 | u32::from(len) << 16).to_le_bytes());
        }
        host.device_write(BASE, &junk).unwrap();
        let cbr = rnd() as u16;
        for _ in 0..16 {
            match ring.next(cbr) {
                Rx::Empty => break,
                Rx::Frame(f) => {
                    assert!((MIN_FRAME..=MAX_FRAME).contains(&f.len));
                    let unread = (usize::from(cbr) + 8192 - ring.offset()) % 8192;
                    assert!(f.record <= unread);
                    copied(&ring, &f);
                    ring.advance(f.record);
                }
                Rx::Drop { record, .. } => ring.advance(record),
                Rx::Doubt(_) => {
                    ring.reset();
                    break;
                }
            }
            assert!(ring.offset() < 8192 && ring.offset() % 4 == 0);
        }
    }
}

#[test]
fn rings_the_device_cannot_use_are_refused() {
    let host = HostDma::new(0x20000, BASE);
    let mut region = host.region("ring", AddressWidth::BITS32).unwrap();
    let buf = region.alloc("rx ring", 0x2000, 16).unwrap();
    assert!(matches!(
        RxRing::new(buf, 4096),
        Err(RingError::BadLength { len: 4096 })
    ));
    let buf = region.alloc("rx ring", 0x2000, 16).unwrap();
    assert!(matches!(
        RxRing::new(buf, 8192),
        Err(RingError::BufferTooSmall { .. })
    ));
    let high = HostDma::new(8192 + SLACK, 0x1_0000_0000);
    let mut region = high.region("ring", AddressWidth::BITS64).unwrap();
    let buf = region.alloc("rx ring", 8192 + SLACK, 16).unwrap();
    assert!(matches!(RxRing::new(buf, 8192), Err(RingError::Dma(_))));
}
