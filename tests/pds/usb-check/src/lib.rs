//! What the USB test PD shares with the build and its host tests: the
//! pattern the build writes on the USB disk image (the Makefile's $(DISK)
//! rule writes the same words; the boot test fails if they disagree) and
//! the keys the host types through QMP.
#![no_std]

/// Block 0 starts with this label.
pub const LABEL: &[u8; 16] = b"DINGO USB DISK 1";

/// Word `w` (8 bytes, little-endian) of block `b` (512 bytes): the disk
/// image's pattern, except the label at the start of block 0.
pub const fn pattern(b: u64, w: u64) -> u64 {
    0x5a5a_0000_0000_0000 | b << 16 | w
}

/// Checks one 512-byte block; the first wrong word's index.
pub fn check_block(block: u64, bytes: &[u8]) -> Result<(), usize> {
    for (w, word) in bytes.chunks_exact(8).enumerate() {
        if block == 0 && w < LABEL.len() / 8 {
            if word != &LABEL[w * 8..w * 8 + 8] {
                return Err(w);
            }
            continue;
        }
        let v = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        if v != pattern(block, w as u64) {
            return Err(w);
        }
    }
    Ok(())
}

/// The keys the host types, in order (their QMP qcodes are these
/// characters): the i-th key is `KEYS[i % KEYS.len()]`.
pub const KEYS: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz1234567890";

/// The HID usage of a key in [`KEYS`].
pub const fn usage(c: u8) -> u8 {
    match c {
        b'a'..=b'z' => 0x04 + (c - b'a'),
        b'1'..=b'9' => 0x1e + (c - b'1'),
        _ => 0x27,
    }
}

/// The seven keys held at once: QMP sends them as one chord.
pub const CHORD: &[u8; 7] = b"qwertyu";
