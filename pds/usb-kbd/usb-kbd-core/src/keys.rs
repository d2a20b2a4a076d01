//! Boot reports to key events.

use heapless::Vec;

/// A boot keyboard report's length.
pub const REPORT: usize = 8;
/// The usage in every key slot of a report when too many keys are held.
pub const ERROR_ROLLOVER: u8 = 0x01;
/// Other error usages a keyboard may report in its key slots.
const POST_FAIL: u8 = 0x02;
const ERROR_UNDEFINED: u8 = 0x03;
/// Usages of the modifier bits (LeftControl = 0xE0 for bit 0, ...).
pub const MODIFIER_BASE: u8 = 0xe0;

/// One press or release; `modifiers` is the modifier byte after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    pub usage: u8,
    pub modifiers: u8,
    pub pressed: bool,
}

/// What a report did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Keys(Vec<KeyEvent, 16>),
    /// The keyboard says it cannot list the keys held (reported once per
    /// stretch of such reports).
    Rollover,
    /// Nothing new (a repeat, or more rollover).
    None,
    /// Too short to be a boot report: ignored.
    Malformed,
}

/// The keys held, as the last good report said.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    modifiers: u8,
    held: Vec<u8, 6>,
    rollover: bool,
    pub malformed: u64,
    pub rollovers: u64,
}

impl Keys {
    pub const fn new() -> Self {
        Keys {
            modifiers: 0,
            held: Vec::new(),
            rollover: false,
            malformed: 0,
            rollovers: 0,
        }
    }

    /// Keys held now (not counting modifiers).
    pub fn held(&self) -> &[u8] {
        &self.held
    }

    pub fn modifiers(&self) -> u8 {
        self.modifiers
    }

    /// Compares a report with the last good one.
    pub fn report(&mut self, r: &[u8]) -> Change {
        if r.len() < 3 {
            self.malformed += 1;
            return Change::Malformed;
        }
        let slots = &r[2..r.len().min(REPORT)];
        if slots
            .iter()
            .any(|&u| matches!(u, ERROR_ROLLOVER | POST_FAIL | ERROR_UNDEFINED))
        {
            if self.rollover {
                return Change::None;
            }
            self.rollover = true;
            self.rollovers += 1;
            return Change::Rollover;
        }
        self.rollover = false;
        let mut now: Vec<u8, 6> = Vec::new();
        for &u in slots {
            if u != 0 && !now.contains(&u) {
                let _ = now.push(u);
            }
        }
        let mut out: Vec<KeyEvent, 16> = Vec::new();
        let mut mods = self.modifiers;
        // Releases first, then presses: a consumer never sees more keys
        // held than the keyboard had.
        for bit in 0..8 {
            let m = 1 << bit;
            if self.modifiers & m != 0 && r[0] & m == 0 {
                mods &= !m;
                let _ = out.push(KeyEvent {
                    usage: MODIFIER_BASE + bit,
                    modifiers: mods,
                    pressed: false,
                });
            }
        }
        for &u in &self.held {
            if !now.contains(&u) {
                let _ = out.push(KeyEvent {
                    usage: u,
                    modifiers: mods,
                    pressed: false,
                });
            }
        }
        for bit in 0..8 {
            let m = 1 << bit;
            if self.modifiers & m == 0 && r[0] & m != 0 {
                mods |= m;
                let _ = out.push(KeyEvent {
                    usage: MODIFIER_BASE + bit,
                    modifiers: mods,
                    pressed: true,
                });
            }
        }
        for &u in &now {
            if !self.held.contains(&u) {
                let _ = out.push(KeyEvent {
                    usage: u,
                    modifiers: mods,
                    pressed: true,
                });
            }
        }
        self.modifiers = r[0];
        self.held = now;
        if out.is_empty() {
            Change::None
        } else {
            Change::Keys(out)
        }
    }

    /// Everything held is released (the keyboard went away).
    pub fn release_all(&mut self) -> Vec<KeyEvent, 16> {
        match self.report(&[0; REPORT]) {
            Change::Keys(v) => v,
            _ => Vec::new(),
        }
    }
}

/// The character a usage types on a US keyboard with `modifiers`, if any.
pub fn ascii(usage: u8, modifiers: u8) -> Option<u8> {
    let shift = modifiers & 0x22 != 0;
    let c = match usage {
        0x04..=0x1d => {
            let c = b'a' + (usage - 0x04);
            if shift { c.to_ascii_uppercase() } else { c }
        }
        0x1e..=0x27 => {
            const PLAIN: &[u8; 10] = b"1234567890";
            const SHIFTED: &[u8; 10] = b"!@#$%^&*()";
            let i = usize::from(usage - 0x1e);
            if shift { SHIFTED[i] } else { PLAIN[i] }
        }
        0x28 => b'\n',
        0x2b => b'\t',
        0x2c => b' ',
        0x2d..=0x38 => {
            const PLAIN: &[u8; 12] = b"-=[]\\#;'`,./";
            const SHIFTED: &[u8; 12] = b"_+{}|~:\"~<>?";
            let i = usize::from(usage - 0x2d);
            if shift { SHIFTED[i] } else { PLAIN[i] }
        }
        _ => return None,
    };
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(c: Change) -> std::vec::Vec<(u8, bool)> {
        match c {
            Change::Keys(v) => v.iter().map(|e| (e.usage, e.pressed)).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn presses_and_releases_by_difference() {
        let mut k = Keys::new();
        assert_eq!(keys(k.report(&[0, 0, 4, 0, 0, 0, 0, 0])), [(4, true)]);
        assert_eq!(k.report(&[0, 0, 4, 0, 0, 0, 0, 0]), Change::None);
        // 'b' pressed while 'a' held, in another slot order.
        assert_eq!(keys(k.report(&[0, 0, 5, 4, 0, 0, 0, 0])), [(5, true)]);
        assert_eq!(keys(k.report(&[0, 0, 5, 0, 0, 0, 0, 0])), [(4, false)]);
        // Left shift: modifier bit 1 is usage 0xE1.
        assert_eq!(keys(k.report(&[2, 0, 5, 0, 0, 0, 0, 0])), [(0xe1, true)]);
        assert_eq!(
            keys(k.report(&[0, 0, 0, 0, 0, 0, 0, 0])),
            [(0xe1, false), (5, false)]
        );
        assert_eq!(k.report(&[0, 0]), Change::Malformed);
    }

    #[test]
    fn seven_keys_held_give_no_phantom_keys() {
        let mut k = Keys::new();
        let mut pressed = 0;
        let mut report = [0u8; 8];
        for (i, u) in [4u8, 5, 6, 7, 8, 9].iter().enumerate() {
            report[2 + i] = *u;
            pressed += keys(k.report(&report)).len();
        }
        assert_eq!(pressed, 6);
        // The seventh key: QEMU reports ErrorRollOver in every slot.
        let rollover = [0, 0, 1, 1, 1, 1, 1, 1];
        assert_eq!(k.report(&rollover), Change::Rollover);
        assert_eq!(k.report(&rollover), Change::None, "reported once");
        assert_eq!(k.held(), [4, 5, 6, 7, 8, 9], "nothing invented or dropped");
        // One of the seven released: six listed, the seventh (10) now shows.
        let six = [0, 0, 4, 5, 6, 7, 8, 10];
        assert_eq!(keys(k.report(&six)), [(9, false), (10, true)]);
        assert_eq!(k.rollovers, 1);
    }

    #[test]
    fn usages_type_us_characters() {
        assert_eq!(ascii(0x04, 0), Some(b'a'));
        assert_eq!(ascii(0x04, 0x02), Some(b'A'));
        assert_eq!(ascii(0x1e, 0x20), Some(b'!'));
        assert_eq!(ascii(0x27, 0), Some(b'0'));
        assert_eq!(ascii(0x2c, 0), Some(b' '));
        assert_eq!(ascii(0xe1, 0), None);
    }
}
