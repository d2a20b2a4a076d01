//! Descriptors (USB 2.0 §9.5, §9.6), parsed as untrusted input.
//!
//! A device hands its descriptors to the host as bytes it chooses. Every
//! parser here first checks the lengths it is about to rely on (a
//! descriptor's own `bLength`, a configuration's `wTotalLength` against
//! the bytes actually read, counts against what follows) and refuses a
//! descriptor with a [`DescError`] naming the descriptor, the offset, the
//! field and the value. A configuration that passes [`Config::parse`] is
//! walked afterwards without further checks.

use core::fmt;

use crate::setup::{Setup, descriptor};

/// Why a descriptor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescError {
    /// Which descriptor ("device", "configuration", "interface", ...).
    pub descriptor: &'static str,
    /// Byte offset of that descriptor in what was read.
    pub offset: usize,
    /// The field that does not hold ("bLength", "wTotalLength", ...).
    pub field: &'static str,
    pub value: u32,
    /// What the field should have held.
    pub expected: &'static str,
}

impl fmt::Display for DescError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} descriptor at offset {}: {} is {} (expected {})",
            self.descriptor, self.offset, self.field, self.value, self.expected
        )
    }
}

impl core::error::Error for DescError {}

fn err(
    descriptor: &'static str,
    offset: usize,
    field: &'static str,
    value: impl Into<u32>,
    expected: &'static str,
) -> DescError {
    DescError {
        descriptor,
        offset,
        field,
        value: value.into(),
        expected,
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Whether `v` is a control endpoint's legal max packet size at full or
/// low speed.
pub const fn is_ep0_max_packet(v: u8) -> bool {
    matches!(v, 8 | 16 | 32 | 64)
}

/// The first 8 bytes of the device descriptor: all a host needs before it
/// knows endpoint 0's max packet size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevicePrefix {
    pub max_packet0: u8,
}

impl DevicePrefix {
    pub const LEN: usize = 8;

    pub fn parse(b: &[u8]) -> Result<Self, DescError> {
        let d = "device";
        if b.len() < Self::LEN {
            return Err(err(d, 0, "length read", b.len() as u32, "8 bytes"));
        }
        if b[0] as usize != DeviceDescriptor::LEN {
            return Err(err(d, 0, "bLength", b[0], "18"));
        }
        if b[1] != descriptor::DEVICE {
            return Err(err(d, 0, "bDescriptorType", b[1], "1"));
        }
        if !is_ep0_max_packet(b[7]) {
            return Err(err(d, 0, "bMaxPacketSize0", b[7], "8, 16, 32 or 64"));
        }
        Ok(DevicePrefix { max_packet0: b[7] })
    }
}

/// A device descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceDescriptor {
    pub usb_version: u16,
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
    pub max_packet0: u8,
    pub vendor: u16,
    pub product: u16,
    pub device_version: u16,
    pub manufacturer: u8,
    pub product_string: u8,
    pub serial: u8,
    pub configurations: u8,
}

impl DeviceDescriptor {
    pub const LEN: usize = 18;

    pub fn parse(b: &[u8]) -> Result<Self, DescError> {
        let prefix = DevicePrefix::parse(b)?;
        if b.len() < Self::LEN {
            return Err(err("device", 0, "length read", b.len() as u32, "18 bytes"));
        }
        if b[17] == 0 {
            return Err(err("device", 0, "bNumConfigurations", b[17], "at least 1"));
        }
        Ok(DeviceDescriptor {
            usb_version: le16(b, 2),
            class: b[4],
            subclass: b[5],
            protocol: b[6],
            max_packet0: prefix.max_packet0,
            vendor: le16(b, 8),
            product: le16(b, 10),
            device_version: le16(b, 12),
            manufacturer: b[14],
            product_string: b[15],
            serial: b[16],
            configurations: b[17],
        })
    }
}

/// An interface descriptor (one alternate setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interface {
    pub number: u8,
    pub alternate: u8,
    pub endpoints: u8,
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
    pub string: u8,
    /// Offset of the descriptor in the configuration.
    pub offset: usize,
}

/// An endpoint descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Number and direction (bit 7: IN).
    pub address: u8,
    /// Transfer type (`crate::kind`).
    pub kind: u8,
    pub max_packet: u16,
    pub interval: u8,
}

impl Endpoint {
    pub const fn is_in(&self) -> bool {
        self.address & 0x80 != 0
    }
    pub const fn number(&self) -> u8 {
        self.address & 0x0f
    }
}

/// One descriptor inside a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Descriptor<'a> {
    Interface(Interface),
    Endpoint(Endpoint),
    /// Anything else (class-specific, HID, ...): its type and its bytes,
    /// `bLength` long.
    Other {
        kind: u8,
        bytes: &'a [u8],
    },
}

/// A configuration descriptor and everything `wTotalLength` covers,
/// checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config<'a> {
    bytes: &'a [u8],
    pub value: u8,
    pub interfaces: u8,
    pub attributes: u8,
    /// In 2 mA units.
    pub max_power: u8,
}

/// The configuration header's size.
pub const CONFIG_HEADER_LEN: usize = 9;

/// The `wTotalLength` of a configuration header (the first 9 bytes), after
/// checking the header itself: what to read next.
pub fn config_total_length(b: &[u8]) -> Result<u16, DescError> {
    let d = "configuration";
    if b.len() < CONFIG_HEADER_LEN {
        return Err(err(d, 0, "length read", b.len() as u32, "9 bytes"));
    }
    if (b[0] as usize) < CONFIG_HEADER_LEN {
        return Err(err(d, 0, "bLength", b[0], "9"));
    }
    if b[1] != descriptor::CONFIGURATION {
        return Err(err(d, 0, "bDescriptorType", b[1], "2"));
    }
    let total = le16(b, 2);
    if (total as usize) < b[0] as usize {
        return Err(err(d, 0, "wTotalLength", total, "at least bLength"));
    }
    Ok(total)
}

/// A configuration descriptor is read in two GET_DESCRIPTOR requests: its
/// header, whose `wTotalLength` says how much to ask for, then the whole of
/// it. Where such a read stands; [`next`](Self::next) judges what each
/// request returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigRead {
    /// Reading the header of configuration `index`.
    Header { index: u8 },
    /// Reading all `len` bytes of it.
    Whole { index: u8, len: u16 },
}

/// What a [`ConfigRead`]'s request led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigNext<'a> {
    /// The next read.
    Read(ConfigRead),
    /// The configuration, checked whole.
    Done(Config<'a>),
}

impl ConfigRead {
    /// The request this read sends on endpoint 0.
    pub const fn setup(self) -> Setup {
        let (index, len) = match self {
            ConfigRead::Header { index } => (index, CONFIG_HEADER_LEN as u16),
            ConfigRead::Whole { index, len } => (index, len),
        };
        Setup::get_descriptor(descriptor::CONFIGURATION, index, len)
    }

    pub const fn index(self) -> u8 {
        match self {
            ConfigRead::Header { index } | ConfigRead::Whole { index, .. } => index,
        }
    }

    /// Judges `got`, the bytes the request returned (no more than
    /// arrived), for a reader whose buffer holds `room` bytes: after the
    /// header, the whole read, if `wTotalLength` fits; after the whole,
    /// the configuration.
    pub fn next(self, got: &[u8], room: u16) -> Result<ConfigNext<'_>, DescError> {
        match self {
            ConfigRead::Header { index } => {
                let len = config_total_length(got)?;
                if len > room {
                    return Err(err(
                        "configuration",
                        0,
                        "wTotalLength",
                        len,
                        "no more than the driver's buffer",
                    ));
                }
                Ok(ConfigNext::Read(ConfigRead::Whole { index, len }))
            }
            ConfigRead::Whole { .. } => Config::parse(got).map(ConfigNext::Done),
        }
    }
}

impl<'a> Config<'a> {
    /// Checks a whole configuration as read (`b` may be longer than
    /// `wTotalLength`, never shorter).
    pub fn parse(b: &'a [u8]) -> Result<Self, DescError> {
        let total = config_total_length(b)? as usize;
        if total > b.len() {
            return Err(err(
                "configuration",
                0,
                "wTotalLength",
                total as u32,
                "no more than the bytes read",
            ));
        }
        let bytes = &b[..total];
        let header_len = bytes[0] as usize;
        let mut at = header_len;
        // Endpoints still owed by the latest interface descriptor.
        let mut owed: Option<(usize, u8)> = None;
        // Interface numbers with an alternate setting 0 (a bitmap of 256).
        let mut numbers = [0u64; 4];
        while at < total {
            let len = bytes[at] as usize;
            if len < 2 {
                return Err(err("descriptor", at, "bLength", len as u32, "at least 2"));
            }
            if at + len > total {
                return Err(err(
                    "descriptor",
                    at,
                    "bLength",
                    len as u32,
                    "within wTotalLength",
                ));
            }
            match bytes[at + 1] {
                descriptor::INTERFACE => {
                    if let Some((o, n)) = owed.filter(|(_, n)| *n > 0) {
                        return Err(err(
                            "interface",
                            o,
                            "bNumEndpoints",
                            u32::from(n),
                            "as many endpoint descriptors as follow it",
                        ));
                    }
                    if len < 9 {
                        return Err(err("interface", at, "bLength", len as u32, "9"));
                    }
                    if bytes[at + 4] > 15 {
                        return Err(err(
                            "interface",
                            at,
                            "bNumEndpoints",
                            bytes[at + 4],
                            "at most 15",
                        ));
                    }
                    if bytes[at + 3] == 0 {
                        let n = bytes[at + 2];
                        numbers[usize::from(n / 64)] |= 1 << (n % 64);
                    }
                    owed = Some((at, bytes[at + 4]));
                }
                descriptor::ENDPOINT => {
                    if len < 7 {
                        return Err(err("endpoint", at, "bLength", len as u32, "7"));
                    }
                    let Some((o, n)) = owed else {
                        return Err(err(
                            "endpoint",
                            at,
                            "position",
                            at as u32,
                            "after an interface descriptor",
                        ));
                    };
                    if n == 0 {
                        return Err(err(
                            "interface",
                            o,
                            "bNumEndpoints",
                            u32::from(bytes[o + 4]),
                            "as many endpoint descriptors as follow it",
                        ));
                    }
                    owed = Some((o, n - 1));
                    let ep = endpoint_at(bytes, at);
                    if ep.number() == 0 {
                        return Err(err(
                            "endpoint",
                            at,
                            "bEndpointAddress",
                            ep.address,
                            "an endpoint number 1..15",
                        ));
                    }
                    if ep.max_packet == 0 && ep.kind != crate::kind::ISOCHRONOUS {
                        return Err(err("endpoint", at, "wMaxPacketSize", 0u32, "1..1023"));
                    }
                    if ep.max_packet > 1023 {
                        return Err(err(
                            "endpoint",
                            at,
                            "wMaxPacketSize",
                            ep.max_packet,
                            "1..1023",
                        ));
                    }
                    if ep.kind == crate::kind::INTERRUPT && ep.interval == 0 {
                        return Err(err("endpoint", at, "bInterval", 0u32, "1..255"));
                    }
                }
                _ => {}
            }
            at += len;
        }
        if let Some((o, n)) = owed.filter(|(_, n)| *n > 0) {
            return Err(err(
                "interface",
                o,
                "bNumEndpoints",
                u32::from(n),
                "as many endpoint descriptors as follow it",
            ));
        }
        let found: u32 = numbers.iter().map(|w| w.count_ones()).sum();
        if found != u32::from(bytes[4]) || found == 0 {
            return Err(err(
                "configuration",
                0,
                "bNumInterfaces",
                bytes[4],
                "the number of interfaces described (at least 1)",
            ));
        }
        Ok(Config {
            bytes,
            value: bytes[5],
            interfaces: bytes[4],
            attributes: bytes[7],
            max_power: bytes[8],
        })
    }

    /// The checked bytes (`wTotalLength` of them).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Every descriptor after the header, in order.
    pub fn descriptors(&self) -> impl Iterator<Item = Descriptor<'a>> + 'a {
        let bytes = self.bytes;
        let mut at = bytes[0] as usize;
        core::iter::from_fn(move || {
            if at >= bytes.len() {
                return None;
            }
            let len = bytes[at] as usize;
            let d = match bytes[at + 1] {
                descriptor::INTERFACE => Descriptor::Interface(Interface {
                    number: bytes[at + 2],
                    alternate: bytes[at + 3],
                    endpoints: bytes[at + 4],
                    class: bytes[at + 5],
                    subclass: bytes[at + 6],
                    protocol: bytes[at + 7],
                    string: bytes[at + 8],
                    offset: at,
                }),
                descriptor::ENDPOINT => Descriptor::Endpoint(endpoint_at(bytes, at)),
                kind => Descriptor::Other {
                    kind,
                    bytes: &bytes[at..at + len],
                },
            };
            at += len;
            Some(d)
        })
    }

    /// Every interface descriptor (all alternate settings).
    pub fn interfaces(&self) -> impl Iterator<Item = Interface> + 'a {
        self.descriptors().filter_map(|d| match d {
            Descriptor::Interface(i) => Some(i),
            _ => None,
        })
    }

    /// The interface descriptor of `number`, alternate `alternate`.
    pub fn interface(&self, number: u8, alternate: u8) -> Option<Interface> {
        self.interfaces()
            .find(|i| i.number == number && i.alternate == alternate)
    }

    /// The descriptors that follow interface `iface` up to the next
    /// interface: its endpoints and class-specific descriptors.
    pub fn within(&self, iface: &Interface) -> impl Iterator<Item = Descriptor<'a>> + 'a {
        let start = iface.offset;
        let mut seen_self = false;
        self.descriptors()
            .skip_while(move |d| match d {
                Descriptor::Interface(i) => i.offset != start,
                _ => true,
            })
            .take_while(move |d| match d {
                Descriptor::Interface(_) if !seen_self => {
                    seen_self = true;
                    true
                }
                Descriptor::Interface(_) => false,
                _ => true,
            })
            .skip(1)
    }

    /// The endpoints of one alternate setting.
    pub fn endpoints(&self, iface: &Interface) -> impl Iterator<Item = Endpoint> + 'a {
        self.within(iface).filter_map(|d| match d {
            Descriptor::Endpoint(e) => Some(e),
            _ => None,
        })
    }

    /// An endpoint descriptor with this address in any alternate setting.
    pub fn endpoint(&self, address: u8) -> Option<Endpoint> {
        self.descriptors().find_map(|d| match d {
            Descriptor::Endpoint(e) if e.address == address => Some(e),
            _ => None,
        })
    }
}

fn endpoint_at(b: &[u8], at: usize) -> Endpoint {
    Endpoint {
        address: b[at + 2],
        kind: b[at + 3] & 3,
        max_packet: le16(b, at + 4) & 0x7ff,
        interval: b[at + 6],
    }
}

/// The text of a string descriptor as ASCII into `out` (other characters
/// become `?`); returns the bytes written.
pub fn string_ascii(b: &[u8], out: &mut [u8]) -> Result<usize, DescError> {
    let d = "string";
    if b.len() < 2 {
        return Err(err(d, 0, "length read", b.len() as u32, "at least 2 bytes"));
    }
    let len = b[0] as usize;
    if len < 2 || !len.is_multiple_of(2) || len > b.len() {
        return Err(err(
            d,
            0,
            "bLength",
            len as u32,
            "even, at least 2, within the bytes read",
        ));
    }
    if b[1] != descriptor::STRING {
        return Err(err(d, 0, "bDescriptorType", b[1], "3"));
    }
    let mut n = 0;
    for unit in b[2..len].chunks_exact(2) {
        if n == out.len() {
            break;
        }
        let c = u16::from_le_bytes([unit[0], unit[1]]);
        out[n] = if (0x20..0x7f).contains(&c) {
            c as u8
        } else {
            b'?'
        };
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
