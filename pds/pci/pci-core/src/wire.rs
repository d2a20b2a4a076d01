//! The pci PD's protected procedure calls: a driver calls with a label
//! naming the request and message registers carrying its arguments, the
//! first always the function it means; the reply's label is a [`Status`]
//! and its registers the results. Both sides decode what they receive and
//! refuse what does not fit.
//!
//! | request          | label | MR0  | MR1    | MR2   | MR3   | reply MRs |
//! |------------------|-------|------|--------|-------|-------|-----------|
//! | [`Request::Info`]      | 1 | bdf |        |       |       | ids, layout |
//! | [`Request::Read`]      | 2 | bdf | offset | width |       | value |
//! | [`Request::Write`]     | 3 | bdf | offset | width | value | |
//! | [`Request::Bar`]       | 4 | bdf | index  |       |       | kind, address, size |
//! | [`Request::Interrupt`] | 5 | bdf |        |       |       | line \| pin << 8 |
//! | [`Request::Command`]   | 6 | bdf | set    | clear |       | the command register after |
//!
//! The monitor has one call of its own, on the channel id no driver has
//! (`pd_layout::cspace::MONITOR_CALLER`): [`QUIESCE`] with MR0 the channel
//! of a driver it is about to restart or give up on; the reply's MR0 is
//! how many functions were quiesced.

use pd_config::Bdf;

use crate::probe::{Bar, Info, Interrupt};

/// Message registers a call or reply uses.
pub const MRS: usize = 4;

/// The monitor's request: bus mastering off for every function of the
/// driver on channel MR0, before the driver's memory is reused.
pub use pd_layout::monitor_call::QUIESCE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Info,
    Read {
        offset: u8,
        width: u8,
    },
    Write {
        offset: u8,
        width: u8,
        value: u32,
    },
    Bar {
        index: u8,
    },
    Interrupt,
    /// Sets and clears command register bits (decoding, bus mastering,
    /// the INTx mask; others are refused).
    Command {
        set: u16,
        clear: u16,
    },
}

impl Request {
    /// The call's label.
    pub const fn label(&self) -> u64 {
        match self {
            Request::Info => 1,
            Request::Read { .. } => 2,
            Request::Write { .. } => 3,
            Request::Bar { .. } => 4,
            Request::Interrupt => 5,
            Request::Command { .. } => 6,
        }
    }
}

/// A request for one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    pub bdf: Bdf,
    pub request: Request,
}

/// What a call came back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// The function is not the caller's.
    NotYours = 1,
    /// A register drivers may not write (BARs, the ROM BAR, the header).
    Forbidden = 2,
    /// A request that does not decode (label, offset, width, index).
    BadRequest = 3,
    /// No device answers at the caller's function.
    Absent = 4,
}

impl Status {
    pub fn from_label(label: u64) -> Option<Status> {
        Some(match label {
            0 => Status::Ok,
            1 => Status::NotYours,
            2 => Status::Forbidden,
            3 => Status::BadRequest,
            4 => Status::Absent,
            _ => return None,
        })
    }
}

fn width_ok(offset: u64, width: u64) -> bool {
    matches!(width, 1 | 2 | 4)
        && offset < 256
        && offset.is_multiple_of(width)
        && offset + width <= 256
}

impl Call {
    pub fn encode(&self) -> (u64, [u64; MRS]) {
        let bdf = u64::from(self.bdf.packed());
        match self.request {
            Request::Info => (1, [bdf, 0, 0, 0]),
            Request::Read { offset, width } => (2, [bdf, offset.into(), width.into(), 0]),
            Request::Write {
                offset,
                width,
                value,
            } => (3, [bdf, offset.into(), width.into(), value.into()]),
            Request::Bar { index } => (4, [bdf, index.into(), 0, 0]),
            Request::Interrupt => (5, [bdf, 0, 0, 0]),
            Request::Command { set, clear } => (6, [bdf, set.into(), clear.into(), 0]),
        }
    }

    /// Decodes a call as the pci PD received it.
    pub fn decode(label: u64, mr: &[u64; MRS]) -> Option<Call> {
        let bdf = Bdf::from_packed(u16::try_from(mr[0]).ok()?);
        let request = match label {
            1 => Request::Info,
            2 | 3 => {
                if !width_ok(mr[1], mr[2]) {
                    return None;
                }
                let (offset, width) = (mr[1] as u8, mr[2] as u8);
                if label == 2 {
                    Request::Read { offset, width }
                } else {
                    let max = if width == 4 {
                        u64::from(u32::MAX)
                    } else {
                        (1 << (8 * width)) - 1
                    };
                    if mr[3] > max {
                        return None;
                    }
                    Request::Write {
                        offset,
                        width,
                        value: mr[3] as u32,
                    }
                }
            }
            4 => Request::Bar {
                index: u8::try_from(mr[1]).ok().filter(|&i| i < 6)?,
            },
            5 => Request::Interrupt,
            6 => Request::Command {
                set: u16::try_from(mr[1]).ok()?,
                clear: u16::try_from(mr[2]).ok()?,
            },
            _ => return None,
        };
        Some(Call { bdf, request })
    }
}

/// Reply registers for each answer.
pub fn encode_info(i: &Info) -> [u64; MRS] {
    let ids = u64::from(i.vendor)
        | u64::from(i.device) << 16
        | u64::from(i.revision) << 32
        | u64::from(i.prog_if) << 40
        | u64::from(i.subclass) << 48
        | u64::from(i.class) << 56;
    [ids, i.layout.into(), 0, 0]
}

pub fn decode_info(mr: &[u64; MRS]) -> Info {
    let b = |shift: u32| (mr[0] >> shift) as u8;
    Info {
        vendor: mr[0] as u16,
        device: (mr[0] >> 16) as u16,
        revision: b(32),
        prog_if: b(40),
        subclass: b(48),
        class: b(56),
        layout: mr[1] as u8,
    }
}

const BAR_NONE: u64 = 0;
const BAR_IO: u64 = 1;
const BAR_MEM: u64 = 2;
const BAR_64: u64 = 1 << 8;
const BAR_PREFETCH: u64 = 1 << 9;

pub fn encode_bar(bar: Option<Bar>) -> [u64; MRS] {
    match bar {
        None => [BAR_NONE, 0, 0, 0],
        Some(Bar::Io { port, size }) => [BAR_IO, port.into(), size.into(), 0],
        Some(Bar::Mem {
            addr,
            size,
            prefetchable,
            is64,
        }) => {
            let mut kind = BAR_MEM;
            if is64 {
                kind |= BAR_64;
            }
            if prefetchable {
                kind |= BAR_PREFETCH;
            }
            [kind, addr, size, 0]
        }
    }
}

/// A BAR reply that holds nothing the pci PD would send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadBar;

/// A BAR as a driver received it.
pub fn decode_bar(mr: &[u64; MRS]) -> Result<Option<Bar>, BadBar> {
    match mr[0] & 0xff {
        BAR_NONE => Ok(None),
        BAR_IO => Ok(Some(Bar::Io {
            port: u16::try_from(mr[1]).map_err(|_| BadBar)?,
            size: u16::try_from(mr[2]).map_err(|_| BadBar)?,
        })),
        BAR_MEM => Ok(Some(Bar::Mem {
            addr: mr[1],
            size: mr[2],
            prefetchable: mr[0] & BAR_PREFETCH != 0,
            is64: mr[0] & BAR_64 != 0,
        })),
        _ => Err(BadBar),
    }
}

pub fn encode_interrupt(i: &Interrupt) -> [u64; MRS] {
    [
        u64::from(i.line) | u64::from(i.pin.unwrap_or(0)) << 8,
        0,
        0,
        0,
    ]
}

pub fn decode_interrupt(mr: &[u64; MRS]) -> Interrupt {
    let pin = (mr[0] >> 8) as u8;
    Interrupt {
        line: mr[0] as u8,
        pin: (1..=4).contains(&pin).then_some(pin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bdf() -> Bdf {
        Bdf {
            bus: 0,
            dev: 3,
            func: 0,
        }
    }

    #[test]
    fn every_request_round_trips() {
        for request in [
            Request::Info,
            Request::Read {
                offset: 0x3c,
                width: 1,
            },
            Request::Write {
                offset: 0x04,
                width: 2,
                value: 0x7,
            },
            Request::Bar { index: 5 },
            Request::Interrupt,
            Request::Command { set: 4, clear: 1 },
        ] {
            let call = Call {
                bdf: bdf(),
                request,
            };
            let (label, mr) = call.encode();
            assert_eq!(Call::decode(label, &mr), Some(call));
        }
    }

    #[test]
    fn malformed_calls_do_not_decode() {
        let b = u64::from(bdf().packed());
        for (label, mr) in [
            (9, [b, 0, 0, 0]),           // no such request
            (2, [b, 0x3e, 4, 0]),        // unaligned
            (2, [b, 0xfe, 4, 0]),        // past the space
            (2, [b, 0x10, 3, 0]),        // no such width
            (3, [b, 0x04, 2, 0x1_0000]), // value wider than the access
            (4, [b, 6, 0, 0]),           // BAR 6
            (1, [0x1_0000, 0, 0, 0]),    // not a PCI address
            (6, [b, 0x1_0000, 0, 0]),    // command bits past 16
        ] {
            assert_eq!(Call::decode(label, &mr), None, "{label} {mr:x?}");
        }
    }

    #[test]
    fn answers_round_trip() {
        let info = Info {
            vendor: 0x10ec,
            device: 0x8139,
            class: 2,
            subclass: 0,
            prog_if: 0,
            revision: 0x20,
            layout: 0,
        };
        assert_eq!(decode_info(&encode_info(&info)), info);
        let bar = Some(Bar::Mem {
            addr: 0xfebf_1000,
            size: 0x100,
            prefetchable: false,
            is64: true,
        });
        assert_eq!(decode_bar(&encode_bar(bar)), Ok(bar));
        assert_eq!(decode_bar(&[7, 0, 0, 0]), Err(BadBar));
        let irq = Interrupt {
            line: 11,
            pin: Some(1),
        };
        assert_eq!(decode_interrupt(&encode_interrupt(&irq)), irq);
    }
}
