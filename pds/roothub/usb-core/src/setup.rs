//! SETUP packets and the standard requests (USB 2.0 §9.3, §9.4).

use core::fmt;

/// `bmRequestType`: direction, type and recipient.
pub mod request_type {
    /// Data stage from device to host.
    pub const IN: u8 = 0x80;
    pub const STANDARD: u8 = 0x00;
    pub const CLASS: u8 = 0x20;
    pub const VENDOR: u8 = 0x40;
    pub const DEVICE: u8 = 0x00;
    pub const INTERFACE: u8 = 0x01;
    pub const ENDPOINT: u8 = 0x02;
    pub const TYPE_MASK: u8 = 0x60;
    pub const RECIPIENT_MASK: u8 = 0x1f;
}

/// Standard `bRequest` codes.
pub mod request {
    pub const GET_STATUS: u8 = 0;
    pub const CLEAR_FEATURE: u8 = 1;
    pub const SET_FEATURE: u8 = 3;
    pub const SET_ADDRESS: u8 = 5;
    pub const GET_DESCRIPTOR: u8 = 6;
    pub const SET_DESCRIPTOR: u8 = 7;
    pub const GET_CONFIGURATION: u8 = 8;
    pub const SET_CONFIGURATION: u8 = 9;
    pub const GET_INTERFACE: u8 = 10;
    pub const SET_INTERFACE: u8 = 11;
}

/// Feature selectors.
pub const ENDPOINT_HALT: u16 = 0;

/// Descriptor types (`wValue` high byte of GET_DESCRIPTOR).
pub mod descriptor {
    pub const DEVICE: u8 = 1;
    pub const CONFIGURATION: u8 = 2;
    pub const STRING: u8 = 3;
    pub const INTERFACE: u8 = 4;
    pub const ENDPOINT: u8 = 5;
    /// Class-specific interface descriptor (CDC functional descriptors).
    pub const CS_INTERFACE: u8 = 0x24;
}

/// An 8-byte SETUP packet. On the USB protocols it travels as a `u64`
/// holding the 8 bytes in wire order, little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    pub request_type: u8,
    pub request: u8,
    pub value: u16,
    pub index: u16,
    pub length: u16,
}

impl Setup {
    pub const fn new(request_type: u8, request: u8, value: u16, index: u16, length: u16) -> Self {
        Setup {
            request_type,
            request,
            value,
            index,
            length,
        }
    }

    pub const fn get_descriptor(kind: u8, index: u8, length: u16) -> Self {
        Setup::new(
            request_type::IN,
            request::GET_DESCRIPTOR,
            (kind as u16) << 8 | index as u16,
            0,
            length,
        )
    }

    /// A string descriptor in US English.
    pub const fn get_string(index: u8, length: u16) -> Self {
        Setup::new(
            request_type::IN,
            request::GET_DESCRIPTOR,
            (descriptor::STRING as u16) << 8 | index as u16,
            0x0409,
            length,
        )
    }

    pub const fn set_address(addr: u8) -> Self {
        Setup::new(0, request::SET_ADDRESS, addr as u16, 0, 0)
    }

    pub const fn set_configuration(value: u8) -> Self {
        Setup::new(0, request::SET_CONFIGURATION, value as u16, 0, 0)
    }

    pub const fn set_interface(interface: u8, alternate: u8) -> Self {
        Setup::new(
            request_type::INTERFACE,
            request::SET_INTERFACE,
            alternate as u16,
            interface as u16,
            0,
        )
    }

    /// CLEAR_FEATURE(ENDPOINT_HALT) for endpoint address `endpoint`.
    pub const fn clear_halt(endpoint: u8) -> Self {
        Setup::new(
            request_type::ENDPOINT,
            request::CLEAR_FEATURE,
            ENDPOINT_HALT,
            endpoint as u16,
            0,
        )
    }

    /// Whether the data stage (if any) moves device to host.
    pub const fn is_in(&self) -> bool {
        self.request_type & request_type::IN != 0
    }

    pub const fn is_standard(&self) -> bool {
        self.request_type & request_type::TYPE_MASK == request_type::STANDARD
    }

    pub const fn recipient(&self) -> u8 {
        self.request_type & request_type::RECIPIENT_MASK
    }

    pub const fn to_bytes(self) -> [u8; 8] {
        let v = self.value.to_le_bytes();
        let i = self.index.to_le_bytes();
        let l = self.length.to_le_bytes();
        [
            self.request_type,
            self.request,
            v[0],
            v[1],
            i[0],
            i[1],
            l[0],
            l[1],
        ]
    }

    pub const fn from_bytes(b: [u8; 8]) -> Self {
        Setup {
            request_type: b[0],
            request: b[1],
            value: u16::from_le_bytes([b[2], b[3]]),
            index: u16::from_le_bytes([b[4], b[5]]),
            length: u16::from_le_bytes([b[6], b[7]]),
        }
    }

    /// The packet as it travels in a message.
    pub const fn to_u64(self) -> u64 {
        u64::from_le_bytes(self.to_bytes())
    }

    pub const fn from_u64(v: u64) -> Self {
        Setup::from_bytes(v.to_le_bytes())
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SETUP {:02x} {:02x} value {:#06x} index {:#06x} length {}",
            self.request_type, self.request, self.value, self.index, self.length
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_travel_as_little_endian_words() {
        let s = Setup::get_descriptor(descriptor::DEVICE, 0, 18);
        assert_eq!(s.to_bytes(), [0x80, 6, 0, 1, 0, 0, 18, 0]);
        assert_eq!(Setup::from_u64(s.to_u64()), s);
        assert_eq!(s.to_u64() & 0xff, 0x80);
        assert!(s.is_in() && s.is_standard());
        let c = Setup::clear_halt(0x81);
        assert_eq!(c.to_bytes(), [0x02, 1, 0, 0, 0x81, 0, 0, 0]);
        assert!(!c.is_in());
        assert_eq!(c.recipient(), request_type::ENDPOINT);
    }
}
