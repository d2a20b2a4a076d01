//! The shared runtime pieces: wire helpers, history ring, directions, timeouts.

use tingu_rt::*;

#[test]
fn writer_and_reader_agree_and_reader_never_overruns() {
    let mut slot = [0xff; SLOT];
    let mut w = Writer::new(&mut slot, 0x0203);
    w.u8(1);
    w.i16(-2);
    w.u64(u64::MAX - 1);
    w.bool(true);
    assert_eq!(&slot[..5], &[3, 2, 1, 0xfe, 0xff]);
    assert!(
        slot[14..].iter().all(|b| *b == 0),
        "the rest of the slot is cleared"
    );
    let mut r = Reader::new(&slot);
    assert_eq!(r.u16(), Ok(0x0203));
    assert_eq!(r.u8(), Ok(1));
    assert_eq!(r.i16(), Ok(-2));
    assert_eq!(r.u64(), Ok(u64::MAX - 1));
    assert_eq!(r.bool(), Ok(true));
    let mut r = Reader::new(&slot[..3]);
    r.u16().unwrap();
    assert_eq!(r.u32(), Err(WireError::Truncated { needed: 6, got: 3 }));
    assert_eq!(
        read_id(&[7]),
        Err(WireError::Truncated { needed: 2, got: 1 })
    );
    let mut r = Reader::new(&[2]);
    assert_eq!(
        r.bool(),
        Err(WireError::BadBool {
            offset: 0,
            value: 2
        })
    );
}

#[test]
fn history_wraps_oldest_first() {
    let mut h: History<u32, 4> = History::new();
    assert_eq!(h.iter().count(), 0);
    for i in 0..3 {
        h.push(i);
    }
    assert_eq!(h.iter().collect::<Vec<_>>(), [0, 1, 2]);
    for i in 3..6 {
        h.push(i);
    }
    assert_eq!(h.iter().collect::<Vec<_>>(), [2, 3, 4, 5]);
}

#[test]
fn flow_flips_for_mirror_ports() {
    assert_eq!(Flow::Received.direction(false), Direction::In);
    assert_eq!(Flow::Sent.direction(false), Direction::Out);
    assert_eq!(Flow::Received.direction(true), Direction::Out);
    assert_eq!(Flow::Sent.direction(true), Direction::In);
    assert_eq!((Direction::In.sigil(), Direction::Out.sigil()), ('?', '!'));
}

#[test]
fn deadlines_are_computed_on_entry_and_overruns_measured_from_it() {
    assert_eq!(deadline(None, 5), u64::MAX);
    assert_eq!(deadline(Some(5), 100), 100 + 5_000_000);
    // A deadline past the clock's range is never.
    assert_eq!(deadline(Some(u64::MAX), 1), u64::MAX);
    assert_eq!(
        overrun(5, 100 + 5_000_000, 100 + 5_000_001),
        ViolationKind::TimeoutOverrun {
            limit_ms: 5,
            elapsed_ns: 5_000_001
        }
    );
}

#[test]
fn protocol_hash_function_is_fnv1a() {
    // The published FNV-1a 64 test vectors.
    assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn fit_checks_the_variable_range() {
    assert_eq!(fit::<u8>(255, "v"), Ok(255));
    assert_eq!(
        fit::<u8>(-1, "v"),
        Err(ViolationKind::VariableOverflow { variable: "v" })
    );
    assert_eq!(fit::<i8>(-128, "v"), Ok(-128));
}
