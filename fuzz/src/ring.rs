//! The dingo-rt ring under a hostile peer: the input is a script of
//! pushes, pops, sleep preparations, re-attachments and scribbles over
//! any byte of the shared region. Checked after every step: no write
//! lands outside the region, and while the peer has left the indices
//! alone the ring behaves exactly like a bounded FIFO of the messages
//! pushed (contents too, while the slots were left alone), and a side
//! that armed its "wake me" flag is told to be woken by the next step of
//! the other side (no lost wake-up).

use std::collections::VecDeque;

use dingo_rt::ring::{Arm, Consumer, HEADER_BYTES, NotifyPeer, Producer, RingError};

const SLOT: usize = 64;
const GUARD_BYTES: usize = 256;
const GUARD: u8 = 0xa5;

/// Header words the fuzzer scribbles on: producer index, consumer index,
/// the two flags, and a padding word that nothing reads.
const WORDS: [usize; 5] = [0, 64, 128, 132, 4];

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// A cache-line-aligned region followed by a guard zone, reached only
/// through raw pointers once made (like memory another PD maps too).
struct Region {
    _storage: Vec<Line>,
    base: *mut u8,
    len: usize,
}

impl Region {
    fn new(len: usize) -> Self {
        let mut storage = vec![Line([0; 64]); (len + GUARD_BYTES).div_ceil(64)];
        let base = storage.as_mut_ptr().cast::<u8>();
        for i in len..len + GUARD_BYTES {
            // SAFETY: i < storage.len() * 64, inside the allocation.
            unsafe { base.add(i).write(GUARD) };
        }
        Region {
            _storage: storage,
            base,
            len,
        }
    }

    fn guard_intact(&self) -> bool {
        // SAFETY: the guard zone lies inside the allocation.
        (self.len..self.len + GUARD_BYTES)
            .all(|i| unsafe { self.base.add(i).read_volatile() } == GUARD)
    }

    /// The hostile peer writes `value` at `offset`.
    fn scribble(&self, offset: usize, value: &[u8]) {
        for (i, &b) in value.iter().enumerate() {
            if offset + i < self.len {
                // SAFETY: inside the region; the handles read shared
                // memory only through atomics and volatile copies.
                unsafe { self.base.add(offset + i).write_volatile(b) };
            }
        }
    }
}

struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.data.split_first().unwrap_or((&0, &[]));
        self.data = rest;
        b
    }

    fn word(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

/// The FIFO the ring must behave like: `None` for a message whose bytes
/// the peer may have changed.
struct Model {
    msgs: VecDeque<Option<[u8; SLOT]>>,
    /// The peer has not touched the indices since both handles attached.
    trusted: bool,
    consumer_armed: bool,
    producer_armed: bool,
}

/// Runs one script.
pub fn run(data: &[u8]) {
    let mut s = Script { data };
    let slots = 1 + usize::from(s.byte() % 20);
    let len = HEADER_BYTES + slots * SLOT + usize::from(s.byte() % 64);
    let region = Region::new(len);

    // Regions that cannot hold a ring are refused, not used.
    // SAFETY (all `new` calls): the region outlives the handles and is
    // touched otherwise only by `scribble`, which plays the peer PD.
    let small = unsafe { Producer::<SLOT>::new(region.base, HEADER_BYTES + SLOT - 1) };
    assert!(matches!(small, Err(RingError::TooSmall { .. })));
    let skewed = unsafe { Consumer::<SLOT>::new(region.base.add(8), len - 8) };
    assert!(matches!(skewed, Err(RingError::Misaligned { .. })));

    let mut producer = unsafe { Producer::<SLOT>::new(region.base, len) }.ok();
    let mut consumer = unsafe { Consumer::<SLOT>::new(region.base, len) }.ok();
    let capacity = producer.as_ref().map_or(0, |p| p.capacity()) as usize;
    assert_eq!(
        capacity,
        1 << slots.ilog2(),
        "the largest power of two that fits"
    );
    let mut m = Model {
        msgs: VecDeque::new(),
        trusted: true,
        consumer_armed: false,
        producer_armed: false,
    };
    let mut serial: u8 = 0;

    while !s.data.is_empty() {
        match s.byte() % 9 {
            0 => {
                let Some(p) = producer.as_mut() else { continue };
                serial = serial.wrapping_add(1);
                let msg = [serial ^ s.byte(); SLOT];
                match p.push(&msg) {
                    Ok(notify) => {
                        if m.trusted {
                            assert!(m.msgs.len() < capacity, "pushed into a full ring");
                            if m.consumer_armed {
                                assert_eq!(notify, NotifyPeer::Yes, "lost wake-up of the consumer");
                            }
                            m.msgs.push_back(Some(msg));
                        }
                        m.consumer_armed = false;
                    }
                    Err(RingError::Full) => {
                        assert!(!m.trusted || m.msgs.len() == capacity, "full too early")
                    }
                    Err(e) => assert!(!m.trusted, "{e} with an honest peer"),
                }
            }
            1 => {
                let Some(c) = consumer.as_mut() else { continue };
                match c.pop() {
                    Ok(Some((msg, notify))) => {
                        if m.trusted {
                            let expected = m.msgs.pop_front().expect("popped from an empty ring");
                            if let Some(expected) = expected {
                                assert_eq!(msg, expected, "message changed in the ring");
                            }
                            if m.producer_armed {
                                assert_eq!(notify, NotifyPeer::Yes, "lost wake-up of the producer");
                            }
                        }
                        m.producer_armed = false;
                    }
                    Ok(None) => assert!(!m.trusted || m.msgs.is_empty(), "lost messages"),
                    Err(e) => assert!(!m.trusted, "{e} with an honest peer"),
                }
            }
            2 => {
                let Some(c) = consumer.as_mut() else { continue };
                match c.prepare_sleep() {
                    Ok(Arm::Sleep) => {
                        assert!(!m.trusted || m.msgs.is_empty(), "sleeps on messages");
                        m.consumer_armed = m.trusted;
                    }
                    Ok(Arm::Retry) => assert!(!m.trusted || !m.msgs.is_empty()),
                    Err(e) => assert!(!m.trusted, "{e} with an honest peer"),
                }
            }
            3 => {
                let Some(p) = producer.as_mut() else { continue };
                match p.prepare_sleep() {
                    Ok(Arm::Sleep) => {
                        assert!(!m.trusted || m.msgs.len() == capacity);
                        m.producer_armed = m.trusted;
                    }
                    Ok(Arm::Retry) => assert!(!m.trusted || m.msgs.len() < capacity),
                    Err(e) => assert!(!m.trusted, "{e} with an honest peer"),
                }
            }
            4 => {
                // The peer scribbles on a header word.
                let word = WORDS[usize::from(s.byte()) % WORDS.len()];
                let value = s.word();
                region.scribble(word, &value.to_le_bytes());
                match word {
                    0 | 64 => m.trusted = false,
                    128 => m.consumer_armed = false,
                    132 => m.producer_armed = false,
                    _ => {}
                }
            }
            5 => {
                // The peer scribbles inside the slots.
                let at = HEADER_BYTES + usize::from(s.byte()) * 4 % (len - HEADER_BYTES);
                region.scribble(at, &[s.byte()]);
                m.msgs.iter_mut().for_each(|msg| *msg = None);
            }
            6 => {
                // Both sides re-attach (a restarted PD pair): they take over
                // whatever indices they find, or refuse them.
                producer = unsafe { Producer::<SLOT>::new(region.base, len) }.ok();
                consumer = unsafe { Consumer::<SLOT>::new(region.base, len) }.ok();
                if let (Some(p), Some(_)) = (producer.as_mut(), consumer.as_ref()) {
                    let n = p.len().expect("a fresh handle over a valid ring") as usize;
                    assert!(n <= capacity);
                    m.msgs = std::iter::repeat_n(None, n).collect();
                    m.trusted = true;
                } else {
                    m.trusted = false;
                }
                m.consumer_armed = false;
                m.producer_armed = false;
            }
            7 => {
                if let (Some(p), Some(c)) = (producer.as_mut(), consumer.as_mut())
                    && m.trusted
                {
                    assert_eq!(p.len().ok(), Some(m.msgs.len() as u32));
                    assert_eq!(c.len().ok(), Some(m.msgs.len() as u32));
                    assert_eq!(c.is_empty().ok(), Some(m.msgs.is_empty()));
                }
            }
            _ => {
                // A poisoned handle stays poisoned.
                if let Some(p) = producer.as_mut()
                    && p.is_poisoned()
                {
                    assert!(p.push(&[0; SLOT]).is_err());
                }
                if let Some(c) = consumer.as_mut()
                    && c.is_poisoned()
                {
                    assert!(c.pop().is_err());
                }
            }
        }
        assert!(region.guard_intact(), "a write past the region");
    }
}
