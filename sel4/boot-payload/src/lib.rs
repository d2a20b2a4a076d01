//! The payload of an ARM board's boot image: what system-builder tells the
//! loader (`sel4/loader`) to do before it enters the kernel. system-builder
//! writes it (`system_builder::boot_image`); the loader reads it with
//! [`Payload::parse`], which checks every field it relies on, so a
//! truncated or foreign image stops the loader with a reason instead of
//! copying garbage over memory.
//!
//! Layout (little-endian 32-bit words from the payload's start):
//!
//! | word | meaning |
//! |------|---------|
//! | 0, 1 | [`MAGIC`] |
//! | 2    | the kernel's entry (virtual) |
//! | 3    | the kernel window's virtual base (the kernel's link address) |
//! | 4    | the physical address the kernel window starts at |
//! | 5..9 | `init_kernel`'s arguments: `ui_p_reg_start`, `ui_p_reg_end`, `pv_offset`, `v_entry` |
//! | 9    | the number of copies |
//! | 10.. | per copy: destination (physical), source offset in the payload, bytes to copy, bytes in all (the rest is zeroed) |
#![no_std]

/// `b"DINGOBT1"`: a payload of this format.
pub const MAGIC: [u8; 8] = *b"DINGOBT1";
/// Words before the copy table.
pub const HEADER_WORDS: usize = 10;
/// Words per copy.
pub const COPY_WORDS: usize = 4;
/// More copies than any kernel and system image need (a handful of
/// segments each): a larger count means a damaged payload.
pub const MAX_COPIES: u32 = 64;

/// What seL4 5.0.0's ARM `init_kernel` takes, in register order r0..r3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelArgs {
    /// Physical start of the root task's image: the kernel's `ki_end`.
    pub ui_p_reg_start: u32,
    pub ui_p_reg_end: u32,
    /// Physical minus virtual address of the root task's image.
    pub pv_offset: u32,
    /// The root task's entry (virtual).
    pub v_entry: u32,
}

/// One copy: `len` bytes from the payload to `dest`, then zeros up to
/// `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy<'a> {
    pub dest: u32,
    pub bytes: &'a [u8],
    pub size: u32,
}

/// A checked payload.
#[derive(Clone, Copy, Debug)]
pub struct Payload<'a> {
    bytes: &'a [u8],
    pub kernel_entry: u32,
    pub kernel_vbase: u32,
    pub kernel_pbase: u32,
    pub args: KernelArgs,
    copies: u32,
}

/// Why bytes are not a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    BadMagic,
    Truncated {
        need: usize,
        have: usize,
    },
    TooManyCopies(u32),
    /// Copy `index`'s bytes lie outside the payload, or it copies more than
    /// its size.
    BadCopy {
        index: u32,
    },
    /// The root task's range is empty or reversed.
    BadUserRange {
        start: u32,
        end: u32,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Error::BadMagic => write!(f, "not a boot payload (bad magic)"),
            Error::Truncated { need, have } => {
                write!(f, "payload truncated: {have} bytes, need {need}")
            }
            Error::TooManyCopies(n) => write!(f, "payload lists {n} copies, at most {MAX_COPIES}"),
            Error::BadCopy { index } => {
                write!(f, "copy {index} reaches outside the payload or its size")
            }
            Error::BadUserRange { start, end } => {
                write!(f, "root task range {start:#x}..{end:#x} is empty")
            }
        }
    }
}

fn word(bytes: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"))
}

impl<'a> Payload<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let need = 4 * HEADER_WORDS;
        if bytes.len() < need {
            return Err(Error::Truncated {
                need,
                have: bytes.len(),
            });
        }
        if bytes[..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        let copies = word(bytes, 9);
        if copies > MAX_COPIES {
            return Err(Error::TooManyCopies(copies));
        }
        let need = 4 * (HEADER_WORDS + COPY_WORDS * copies as usize);
        if bytes.len() < need {
            return Err(Error::Truncated {
                need,
                have: bytes.len(),
            });
        }
        let args = KernelArgs {
            ui_p_reg_start: word(bytes, 5),
            ui_p_reg_end: word(bytes, 6),
            pv_offset: word(bytes, 7),
            v_entry: word(bytes, 8),
        };
        if args.ui_p_reg_end <= args.ui_p_reg_start {
            return Err(Error::BadUserRange {
                start: args.ui_p_reg_start,
                end: args.ui_p_reg_end,
            });
        }
        let p = Payload {
            bytes,
            kernel_entry: word(bytes, 2),
            kernel_vbase: word(bytes, 3),
            kernel_pbase: word(bytes, 4),
            args,
            copies,
        };
        for index in 0..copies {
            p.copy(index)?;
        }
        Ok(p)
    }

    fn copy(&self, index: u32) -> Result<Copy<'a>, Error> {
        let at = HEADER_WORDS + COPY_WORDS * index as usize;
        let [dest, src, len, size] = [0, 1, 2, 3].map(|k| word(self.bytes, at + k));
        let bytes = (src as usize)
            .checked_add(len as usize)
            .filter(|_| len <= size)
            .and_then(|end| self.bytes.get(src as usize..end))
            .ok_or(Error::BadCopy { index })?;
        Ok(Copy { dest, bytes, size })
    }

    /// The copies, in order (each checked by `parse`).
    pub fn copies(&self) -> impl Iterator<Item = Copy<'a>> + '_ {
        (0..self.copies).filter_map(move |i| self.copy(i).ok())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn payload(words: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = Vec::from(MAGIC);
        for w in words {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    /// Header words 2..10, one copy of 3 bytes at offset 56 (10 + 4 words).
    fn sample() -> Vec<u8> {
        payload(
            &[
                0xe000_0000,
                0xe000_0000,
                0x1000_0000,
                0x1003_8000,
                0x1010_0000,
                0x0fe3_8000,
                0x0020_1000,
                1,
                0x1000_0000,
                56,
                3,
                0x1000,
            ],
            b"abc",
        )
    }

    #[test]
    fn a_payload_gives_its_arguments_and_copies() {
        let bytes = sample();
        let p = Payload::parse(&bytes).unwrap();
        assert_eq!(p.kernel_entry, 0xe000_0000);
        assert_eq!(
            p.args,
            KernelArgs {
                ui_p_reg_start: 0x1003_8000,
                ui_p_reg_end: 0x1010_0000,
                pv_offset: 0x0fe3_8000,
                v_entry: 0x0020_1000
            }
        );
        let copies: Vec<_> = p.copies().collect();
        assert_eq!(
            copies,
            [Copy {
                dest: 0x1000_0000,
                bytes: b"abc",
                size: 0x1000
            }]
        );
    }

    #[test]
    fn every_truncation_and_damage_is_an_error() {
        let good = sample();
        for cut in 0..good.len() {
            assert!(Payload::parse(&good[..cut]).is_err(), "prefix of {cut}");
        }
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(Payload::parse(&b).unwrap_err(), Error::BadMagic);
        // The copy claims more bytes than its size.
        let mut b = good.clone();
        b[4 * 12..4 * 13].copy_from_slice(&0x2000u32.to_le_bytes());
        assert_eq!(Payload::parse(&b).unwrap_err(), Error::BadCopy { index: 0 });
        // A huge copy count.
        let mut b = good.clone();
        b[4 * 9..4 * 10].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Payload::parse(&b).unwrap_err(),
            Error::TooManyCopies(u32::MAX)
        );
        // An empty root task range.
        let mut b = good;
        b[4 * 6..4 * 7].copy_from_slice(&0x1003_8000u32.to_le_bytes());
        assert!(matches!(
            Payload::parse(&b),
            Err(Error::BadUserRange { .. })
        ));
    }
}
