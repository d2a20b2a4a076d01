//! The message info word that accompanies every IPC and invocation.

use crate::consts;

const LENGTH_BITS: u32 = consts::MsgLengthBits as u32;
const EXTRA_CAPS_BITS: u32 = consts::MsgExtraCapBits as u32;
/// One bit per possible extra cap (`seL4_MsgMaxExtraCaps` of them).
const UNWRAPPED_BITS: u32 = consts::MsgMaxExtraCaps as u32;
const EXTRA_CAPS_SHIFT: u32 = LENGTH_BITS;
const UNWRAPPED_SHIFT: u32 = EXTRA_CAPS_SHIFT + EXTRA_CAPS_BITS;
const LABEL_SHIFT: u32 = UNWRAPPED_SHIFT + UNWRAPPED_BITS;
/// The label takes the rest of the word.
const LABEL_BITS: u32 = consts::WordBits as u32 - LABEL_SHIFT;

const fn mask(bits: u32) -> u64 {
    (1 << bits) - 1
}

/// `seL4_MessageInfo`: label, unwrapped-caps mask, extra cap count and
/// length, in one machine word (held as a `u64` on every target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageInfo(u64);

impl MessageInfo {
    /// Fields wider than their slot are truncated, as the kernel would.
    pub const fn new(label: u64, caps_unwrapped: u64, extra_caps: u64, length: u64) -> Self {
        Self(
            (label & mask(LABEL_BITS)) << LABEL_SHIFT
                | (caps_unwrapped & mask(UNWRAPPED_BITS)) << UNWRAPPED_SHIFT
                | (extra_caps & mask(EXTRA_CAPS_BITS)) << EXTRA_CAPS_SHIFT
                | (length & mask(LENGTH_BITS)),
        )
    }
    pub const fn from_word(w: u64) -> Self {
        Self(w)
    }
    pub const fn word(self) -> u64 {
        self.0
    }
    pub const fn label(self) -> u64 {
        self.0 >> LABEL_SHIFT
    }
    pub const fn caps_unwrapped(self) -> u64 {
        (self.0 >> UNWRAPPED_SHIFT) & mask(UNWRAPPED_BITS)
    }
    pub const fn extra_caps(self) -> u64 {
        (self.0 >> EXTRA_CAPS_SHIFT) & mask(EXTRA_CAPS_BITS)
    }
    pub const fn length(self) -> u64 {
        self.0 & mask(LENGTH_BITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_abi() {
        // DESIGN §3: label<<12 | capsUnwrapped<<9 | extraCaps<<7 | length.
        let mi = MessageInfo::new(0x1234, 0b101, 2, 5);
        assert_eq!(mi.word(), 0x1234 << 12 | 0b101 << 9 | 2 << 7 | 5);
        assert_eq!(
            (
                mi.label(),
                mi.caps_unwrapped(),
                mi.extra_caps(),
                mi.length()
            ),
            (0x1234, 0b101, 2, 5)
        );
    }

    #[test]
    fn oversized_fields_do_not_spill_into_neighbours() {
        let mi = MessageInfo::new(0, 0, 0, 200);
        assert_eq!(mi.length(), 200 & 0x7f);
        assert_eq!(mi.extra_caps(), 0);
        let mi = MessageInfo::new(7, 0, 9, 0);
        assert_eq!((mi.label(), mi.extra_caps()), (7, 1));
    }

    #[test]
    fn round_trips_through_the_word() {
        for w in [0u64, 1, 0xfff, 0xdead_beef_0000_1fff, u64::MAX] {
            let mi = MessageInfo::from_word(w);
            let back = MessageInfo::new(
                mi.label(),
                mi.caps_unwrapped(),
                mi.extra_caps(),
                mi.length(),
            );
            assert_eq!(back, mi);
        }
    }
}
