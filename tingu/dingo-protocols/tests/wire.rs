//! Wire encoding of every message of every protocol: round trips, and
//! decoding of garbage never panics.

use dingo_protocols::*;
use tingu_rt::{Message, SLOT, WireError};

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn round_trips<M: Message + PartialEq + std::fmt::Debug>(
    count: u16,
    sample: fn(u16, u64) -> Option<M>,
) -> usize {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    // Ports copy only WIRE_BYTES of a slot: every message must decode from
    // them, with zeros after, and the longest must need all of them.
    let mut longest_needs_all = false;
    for id in 1..=count {
        for _ in 0..200 {
            let m = sample(id, rng.next()).expect("every id up to COUNT has a message");
            let mut slot = [0xa5; SLOT];
            m.encode(&mut slot);
            assert_eq!(u16::from_le_bytes([slot[0], slot[1]]), id);
            assert_eq!(m.id(), id);
            assert_eq!(M::decode(&slot), Ok(m));
            assert_eq!(M::decode(&slot[..M::WIRE_BYTES]), Ok(m));
            assert!(
                slot[M::WIRE_BYTES..].iter().all(|&b| b == 0),
                "{m}: bytes past WIRE_BYTES"
            );
            longest_needs_all |= M::decode(&slot[..M::WIRE_BYTES - 1]).is_err();
            assert!(m.to_string().starts_with(m.name()));
            checked += 1;
        }
    }
    assert!(
        longest_needs_all,
        "{}: WIRE_BYTES {} is more than any message needs",
        M::PROTOCOL,
        M::WIRE_BYTES
    );
    assert!(sample(count + 1, 0).is_none());
    assert_eq!(M::decode(&[0; SLOT]), Err(WireError::UnknownId(0)));
    let mut slot = [0; SLOT];
    slot[..2].copy_from_slice(&(count + 1).to_le_bytes());
    assert_eq!(M::decode(&slot), Err(WireError::UnknownId(count + 1)));
    checked
}

fn garbage<M: Message + PartialEq + std::fmt::Debug>(count: u16) {
    let mut rng = Rng(42);
    let mut decoded = 0;
    for i in 0..20_000 {
        let mut buf = [0u8; SLOT];
        buf.iter_mut().for_each(|b| *b = rng.next() as u8);
        // Bias the id towards valid ones so the field decoders get exercised.
        if i % 2 == 0 {
            let id = (rng.next() % u64::from(count + 1)) as u16;
            buf[..2].copy_from_slice(&id.to_le_bytes());
        }
        let len = (rng.next() % (SLOT as u64 + 1)) as usize;
        if let Ok(m) = M::decode(&buf[..len]) {
            decoded += 1;
            let mut again = [0; SLOT];
            m.encode(&mut again);
            assert_eq!(M::decode(&again), Ok(m));
        }
    }
    assert!(decoded > 0, "some random slots must decode");
}

macro_rules! wire_tests {
    ($($module:ident),*) => {
        #[test]
        fn every_message_round_trips() {
            let mut total = 0;
            $( total += round_trips::<$module::Msg>($module::Msg::COUNT, $module::Msg::sample); )*
            assert!(total > 1000);
        }

        #[test]
        fn garbage_never_panics() {
            $( garbage::<$module::Msg>($module::Msg::COUNT); )*
        }
    };
}

wire_tests!(
    lifecycle,
    power_management,
    timer,
    ethernet_controller,
    usb_host_controller,
    usb_root_ports,
    usb_bus,
    usb_pipe,
    block_device,
    keyboard
);

#[test]
fn truncated_and_malformed_slots_are_errors() {
    use usb_root_ports::Msg;
    let m = Msg::PortStatus {
        port: 1,
        connected: true,
        enabled: false,
        low_speed: true,
    };
    let mut slot = [0; SLOT];
    m.encode(&mut slot);
    assert_eq!(Msg::decode(&slot[..6]), Ok(m));
    assert_eq!(
        Msg::decode(&slot[..5]),
        Err(WireError::Truncated { needed: 6, got: 5 })
    );
    assert_eq!(
        Msg::decode(&slot[..1]),
        Err(WireError::Truncated { needed: 2, got: 1 })
    );
    slot[3] = 2;
    assert_eq!(
        Msg::decode(&slot),
        Err(WireError::BadBool {
            offset: 3,
            value: 2
        })
    );
    // Fields are little-endian after the id.
    let mut slot = [0; SLOT];
    timer::Msg::Request {
        id: 0x0102_0304,
        deadline_ns: 5,
    }
    .encode(&mut slot);
    assert_eq!(&slot[..7], &[1, 0, 4, 3, 2, 1, 5]);
    assert!(slot[14..].iter().all(|b| *b == 0));
}
