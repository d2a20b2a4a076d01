//! A function's capability list, walked as untrusted input: a device (or
//! a garbage read) can point anywhere or loop, so every pointer must be
//! dword-aligned inside the device area and at most [`MAX_CAPS`] are
//! followed.

use core::fmt;

use crate::{Device, PciError, Transport};

/// Capabilities followed at most: 48 fit in the 192 bytes after the header.
pub const MAX_CAPS: usize = 48;
const STATUS: u8 = 0x06;
const STATUS_CAP_LIST: u16 = 1 << 4;
const CAP_POINTER: u8 = 0x34;
/// The device area, where capabilities live.
const FIRST: u8 = 0x40;
const LAST: u8 = 0xfc;

/// The capabilities found, in list order: each one's id and offset.
#[derive(Clone, Copy, Debug)]
pub struct Capabilities {
    found: [(u8, u8); MAX_CAPS],
    len: usize,
}

impl Capabilities {
    pub(crate) const EMPTY: Capabilities = Capabilities {
        found: [(0, 0); MAX_CAPS],
        len: 0,
    };

    /// `(id, offset)` of each capability.
    pub fn iter(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.found[..self.len].iter().copied()
    }

    /// Where the first capability `id` is.
    pub fn find(&self, id: u8) -> Option<u8> {
        self.iter().find(|&(i, _)| i == id).map(|(_, at)| at)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapListError {
    Pci(PciError),
    /// A pointer outside the device area, or a list that loops.
    BadList {
        at: u8,
    },
}

impl fmt::Display for CapListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CapListError::Pci(e) => write!(f, "{e}"),
            CapListError::BadList { at } => write!(
                f,
                "the capability list is malformed at offset {at:#04x} (outside the device area or a loop)"
            ),
        }
    }
}

impl<T: Transport> Device<T> {
    /// The function's capability list (empty if its status says it has
    /// none), as read when the device was opened.
    pub fn capabilities(&self) -> Result<Capabilities, CapListError> {
        self.caps
    }

    pub(crate) fn read_capabilities(&mut self) -> Result<Capabilities, CapListError> {
        let mut caps = Capabilities::EMPTY;
        if self.read_config16(STATUS).map_err(CapListError::Pci)? & STATUS_CAP_LIST == 0 {
            return Ok(caps);
        }
        let mut at = self.read_config8(CAP_POINTER).map_err(CapListError::Pci)? & !3;
        while at != 0 {
            if !(FIRST..=LAST).contains(&at) || caps.len == MAX_CAPS {
                return Err(CapListError::BadList { at });
            }
            let head = self.read_config16(at).map_err(CapListError::Pci)?;
            caps.found[caps.len] = (head as u8, at);
            caps.len += 1;
            at = (head >> 8) as u8 & !3;
        }
        Ok(caps)
    }
}
