use super::*;
use crate::ring::{HEADER_BYTES, NotifyPeer};
use crate::test_util::{Region, Rng};

fn msg(tag: u8) -> [u8; 64] {
    let mut m = [tag; 64];
    m[0] = !tag;
    m
}

/// Both ends of one port over one region, as the two PDs would see it.
fn both_sides(region: &Region, slots: u32) -> (Port, Port) {
    // SAFETY: the region outlives the ports, one port per side, and the
    // test touches it otherwise only as "the peer".
    unsafe {
        (
            Port::new(region.base(), region.len(), slots, Side::A, 3).unwrap(),
            Port::new(region.base(), region.len(), slots, Side::B, 5).unwrap(),
        )
    }
}

#[test]
fn layout_pins_ring_and_data_offsets() {
    let l = PortLayout::new::<64>(4096, 4).unwrap();
    assert_eq!(l.ring_bytes, HEADER_BYTES + 4 * 64);
    assert_eq!(l.rings, [0, 448]);
    assert_eq!((l.data_offset, l.data_len), (896, 4096 - 896));

    // Rings whose size is not a cache-line multiple are padded apart.
    let l = PortLayout::new::<16>(1000, 2).unwrap();
    assert_eq!(l.ring_bytes, 224);
    assert_eq!(l.rings, [0, 256]);
    assert_eq!((l.data_offset, l.data_len), (512, 488));

    // Exactly two rings: legal, with an empty data area.
    assert_eq!(PortLayout::new::<16>(512, 2).unwrap().data_len, 0);
}

#[test]
fn layout_rejects_bad_parameters() {
    assert_eq!(
        PortLayout::new::<64>(4096, 0),
        Err(PortError::BadSlotCount { slots: 0 })
    );
    assert_eq!(
        PortLayout::new::<64>(4096, 6),
        Err(PortError::BadSlotCount { slots: 6 })
    );
    assert_eq!(
        PortLayout::new::<16>(511, 2),
        Err(PortError::TooSmall {
            len: 511,
            need: 512
        })
    );
    assert!(matches!(
        PortLayout::new::<{ usize::MAX / 4 }>(4096, 8),
        Err(PortError::TooSmall { len: 4096, .. })
    ));
    let region = Region::new(4096);
    // SAFETY: construction is rejected before any access.
    let bad = unsafe { Port::<64>::new(region.base(), 4096, 4, Side::A, 62) };
    assert_eq!(bad.err(), Some(PortError::BadChannel { channel: 62 }));
    // SAFETY: as above; the ring constructor rejects the alignment.
    let misaligned = unsafe { Port::<64>::new(region.base().add(8), 4000, 4, Side::A, 1) };
    assert!(matches!(
        misaligned.err(),
        Some(PortError::Ring(RingError::Misaligned { .. }))
    ));
}

#[test]
fn sides_talk_through_swapped_rings() {
    let region = Region::new(4096);
    let (mut a, mut b) = both_sides(&region, 4);
    assert_eq!(a.tx.push(&msg(1)), Ok(NotifyPeer::No));
    assert_eq!(b.tx.push(&msg(2)), Ok(NotifyPeer::No));
    assert_eq!(b.rx.pop().unwrap().map(|(m, _)| m), Some(msg(1)));
    assert_eq!(a.rx.pop().unwrap().map(|(m, _)| m), Some(msg(2)));
    assert_eq!(a.rx.pop(), Ok(None), "a message must not loop back");
    assert_eq!(b.rx.pop(), Ok(None));
    assert_eq!(a.data.len(), b.data.len());
    assert_eq!(a.layout, b.layout);
    assert!(region.guard_intact());
}

#[test]
fn bulk_data_crosses_by_offset() {
    let region = Region::new(4096);
    let (a, b) = both_sides(&region, 4);
    let payload = *b"ping over a dingo port";
    a.data.write(100, &payload).unwrap();
    let bulk = b.data.check(100, payload.len() as u64).unwrap();
    assert_eq!((bulk.offset(), bulk.len()), (100, payload.len()));
    let mut got = [0u8; 22];
    b.data.read(100, &mut got).unwrap();
    assert_eq!(got, payload);
    // SAFETY: the checked range is inside the mapped data area.
    let first = unsafe { b.data.ptr(&bulk).read_volatile() };
    assert_eq!(first, b'p');
}

#[test]
fn bulk_references_are_bounds_checked() {
    let region = Region::new(4096);
    let (a, _b) = both_sides(&region, 4);
    let area = a.data.len();
    let area64 = area as u64;
    assert!(a.data.check(0, area64).is_ok());
    assert!(a.data.check(area64, 0).unwrap().is_empty());
    assert_eq!(
        a.data.check(area64 - 3, 4),
        Err(DataError::OutOfRange {
            offset: area64 - 3,
            len: 4,
            area
        })
    );
    assert_eq!(
        a.data.check(u64::MAX, 2),
        Err(DataError::Overflow {
            offset: u64::MAX,
            len: 2
        })
    );
    assert_eq!(
        a.data.check(8, u64::MAX - 4),
        Err(DataError::Overflow {
            offset: 8,
            len: u64::MAX - 4
        })
    );
    assert!(a.data.write(area64 - 1, &[1, 2]).is_err());
    assert!(a.data.read(area64, &mut [0u8; 1]).is_err());
    assert!(region.guard_intact(), "a rejected write must not write");
}

#[test]
fn random_bulk_references_match_exact_arithmetic() {
    let region = Region::new(2048);
    let (a, _b) = both_sides(&region, 2);
    let area = a.data.len() as u128;
    let mut rng = Rng::new(7);
    for _ in 0..100_000 {
        // Mix small values near the area's end with arbitrary 64-bit ones.
        let pick = |rng: &mut Rng| match rng.below(3) {
            0 => rng.below(area as u64 + 16),
            1 => u64::MAX - rng.below(16),
            _ => rng.next_u64(),
        };
        let (offset, len) = (pick(&mut rng), pick(&mut rng));
        let exact_end = u128::from(offset) + u128::from(len);
        match a.data.check(offset, len) {
            Ok(bulk) => {
                assert!(exact_end <= area);
                assert_eq!(bulk.offset() as u64, offset);
                assert_eq!(bulk.len() as u64, len);
            }
            Err(DataError::Overflow { .. }) => assert!(exact_end > u128::from(u64::MAX)),
            Err(DataError::OutOfRange { .. }) => {
                assert!(exact_end > area && exact_end <= u128::from(u64::MAX))
            }
        }
    }
}
