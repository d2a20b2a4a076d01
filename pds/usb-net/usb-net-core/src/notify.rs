//! CDC notifications (CDC 1.2 §6.3, CDC-ECM 1.2 §6.3) from the control
//! interface's interrupt IN endpoint: an 8-byte header like a SETUP packet
//! (bmRequestType 0xA1, the notification code, wValue, wIndex = the
//! control interface, wLength) and wLength bytes of data. Untrusted: a
//! header that is short, of the wrong type, for an interface outside the
//! function or with a length the code does not have is malformed.
//!
//! wIndex may also name the function's data interface: QEMU 7.2's usb-net
//! answers every poll of its status endpoint (each 32 ms) with
//! NetworkConnection for interface 1, its data interface. Linux's
//! cdc_ether does not look at wIndex at all; this driver takes either
//! interface of the function it drives and nothing else.

/// bmRequestType of a notification: device to host, class, interface.
pub const REQUEST_TYPE: u8 = 0xa1;
pub const NETWORK_CONNECTION: u8 = 0x00;
pub const RESPONSE_AVAILABLE: u8 = 0x01;
pub const CONNECTION_SPEED_CHANGE: u8 = 0x2a;
/// Header bytes.
pub const HEADER_LEN: usize = 8;
/// The longest notification this driver reads (ConnectionSpeedChange).
pub const MAX_LEN: usize = HEADER_LEN + 8;

/// A notification, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notification {
    /// NetworkConnection: the cable (or the far end) is connected or not.
    Connection { up: bool },
    /// ConnectionSpeedChange: downstream and upstream bit rates.
    Speed { down: u32, up: u32 },
    /// A valid header with a code ECM does not act on (RESPONSE_AVAILABLE
    /// and others).
    Other { code: u8 },
}

/// Why a notification was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    Short(usize),
    RequestType(u8),
    Interface(u16),
    Length { code: u8, length: u16 },
    Value { code: u8, value: u16 },
}

/// The interfaces of the function a notification may name.
#[derive(Clone, Copy, Debug)]
pub struct Function {
    pub control: u8,
    pub data: u8,
}

/// Decodes the `actual` bytes one interrupt transfer brought for the
/// function `f`.
pub fn parse(b: &[u8], f: Function) -> Result<Notification, Malformed> {
    if b.len() < HEADER_LEN {
        return Err(Malformed::Short(b.len()));
    }
    let word = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let (kind, code, value, index, length) = (b[0], b[1], word(2), word(4), word(6));
    if kind != REQUEST_TYPE {
        return Err(Malformed::RequestType(kind));
    }
    if index != u16::from(f.control) && index != u16::from(f.data) {
        return Err(Malformed::Interface(index));
    }
    let data = &b[HEADER_LEN..];
    match code {
        NETWORK_CONNECTION if length != 0 => Err(Malformed::Length { code, length }),
        NETWORK_CONNECTION if value > 1 => Err(Malformed::Value { code, value }),
        NETWORK_CONNECTION => Ok(Notification::Connection { up: value == 1 }),
        CONNECTION_SPEED_CHANGE if length != 8 || data.len() < 8 => {
            Err(Malformed::Length { code, length })
        }
        CONNECTION_SPEED_CHANGE => {
            let rate =
                |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            Ok(Notification::Speed {
                down: rate(0),
                up: rate(4),
            })
        }
        _ if usize::from(length) > data.len() => Err(Malformed::Length { code, length }),
        _ => Ok(Notification::Other { code }),
    }
}
