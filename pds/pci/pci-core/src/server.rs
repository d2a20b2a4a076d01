//! The pci PD's service: every driver reaches its own function's
//! configuration space and nothing else. A call naming another function is
//! refused and reported; writes are limited to what a driver needs
//! (decoding, bus mastering and the INTx mask in the command register, the
//! status register's write-1-to-clear bits, the cache line size and
//! latency timer, and the device-specific area with the capabilities),
//! never the BARs, the ROM BAR or the header, which would let a driver move
//! its device over another's memory.

use core::fmt;

use hwio::{Bus, Registers};
use pd_config::{Bdf, PciClient};

use crate::config::{ConfigSpace, Function};
use crate::probe::{self, Bar, Info, MalformedBar};
use crate::regs::{self, DRIVER_COMMAND_BITS, STATUS_CLEAR_BITS};
use crate::wire::{self, Call, MRS, Request, Status};

/// Most drivers one pci PD serves (its manifest's list role).
pub const MAX_CLIENTS: usize = 32;

/// What the pci PD knows of a driver and its function.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub channel: u8,
    pub bdf: Bdf,
    pub pd: &'static str,
    /// `None` when no device answers at the function.
    pub info: Option<Info>,
    pub bars: [Option<Bar>; 6],
    /// Calls refused (another's function, a forbidden register, garbage).
    pub refused: u32,
}

/// Something the pci PD reports on its console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Found {
        pd: &'static str,
        bdf: Bdf,
        info: Info,
    },
    Absent {
        pd: &'static str,
        bdf: Bdf,
    },
    MalformedBar {
        pd: &'static str,
        bdf: Bdf,
        bar: MalformedBar,
    },
    /// `owns` is the caller's first function, `more` how many others it has.
    NotYours {
        pd: &'static str,
        owns: Bdf,
        more: u8,
        asked: Bdf,
    },
    Forbidden {
        pd: &'static str,
        bdf: Bdf,
        offset: u8,
        width: u8,
    },
    BadRequest {
        pd: &'static str,
        label: u64,
    },
    /// A memory BAR moved to where the system description places it.
    Placed {
        pd: &'static str,
        bdf: Bdf,
        bar: u8,
        from: u64,
        to: u64,
    },
    /// A placement that cannot be made: the BAR is not a memory BAR of at
    /// most the region's size, aligned there.
    CannotPlace {
        pd: &'static str,
        bdf: Bdf,
        bar: u8,
        found: Option<Bar>,
        paddr: u64,
        size: u64,
    },
    /// A placement over another function's BAR: both would decode there.
    Occupied {
        pd: &'static str,
        bdf: Bdf,
        bar: u8,
        paddr: u64,
        size: u64,
        other: Bdf,
        other_bar: u8,
        at: u64,
    },
    UnknownCaller {
        channel: u8,
    },
    /// On the monitor's request: the function's bus mastering is off (it
    /// was `was_on` before), its driver being restarted.
    Quiesced {
        pd: &'static str,
        bdf: Bdf,
        was_on: bool,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Found { pd, bdf, info } => write!(f, "{bdf} {info} for {pd}"),
            Event::Absent { pd, bdf } => write!(f, "{bdf}: no device there (for {pd})"),
            Event::MalformedBar { pd, bdf, bar } => write!(
                f,
                "{bdf} (for {pd}): BAR{} reads {:#010x} with size mask {:#010x}, which no decoder has; ignored",
                bar.index, bar.value, bar.mask
            ),
            Event::NotYours {
                pd,
                owns,
                more: 0,
                asked,
            } => write!(f, "refused {pd}'s access to {asked}: it owns {owns} only"),
            Event::NotYours {
                pd,
                owns,
                more,
                asked,
            } => write!(
                f,
                "refused {pd}'s access to {asked}: it owns {owns} and {more} other function(s)"
            ),
            Event::Forbidden {
                pd,
                bdf,
                offset,
                width,
            } => write!(
                f,
                "refused {pd}'s {width}-byte write at {offset:#04x} of {bdf}: drivers may not change that register"
            ),
            Event::BadRequest { pd, label } => {
                write!(f, "refused a malformed call (label {label}) from {pd}")
            }
            Event::Placed {
                pd,
                bdf,
                bar,
                from,
                to,
            } => write!(
                f,
                "{bdf} BAR{bar} placed at {to:#x} for {pd}, where system.xml puts its registers (the firmware had {from:#x})"
            ),
            Event::CannotPlace {
                pd,
                bdf,
                bar,
                found,
                paddr,
                size,
            } => {
                write!(
                    f,
                    "{bdf} BAR{bar} for {pd} cannot go at {paddr:#x} ({size:#x} bytes): it is "
                )?;
                match found {
                    None => write!(f, "not implemented"),
                    Some(b) => write!(f, "{b}"),
                }
            }
            Event::Occupied {
                pd,
                bdf,
                bar,
                paddr,
                size,
                other,
                other_bar,
                at,
            } => write!(
                f,
                "{bdf} BAR{bar} for {pd} cannot go at {paddr:#x} ({size:#x} bytes): {other} BAR{other_bar} decodes {at:#x} there; expected a memory_region phys_addr clear of the other devices' BARs"
            ),
            Event::UnknownCaller { channel } => {
                write!(f, "a call on channel {channel}, which serves no driver")
            }
            Event::Quiesced { pd, bdf, was_on } => write!(
                f,
                "quiesced {bdf} for {pd}'s restart: bus mastering off (it was {})",
                if was_on { "on" } else { "off already" }
            ),
        }
    }
}

/// The pci PD's state: the bus, and each driver with its function.
pub struct Server<C: ConfigSpace> {
    space: C,
    clients: heapless::Vec<Client, MAX_CLIENTS>,
}

impl<C: ConfigSpace> Server<C> {
    /// Probes each driver's function (identity and BARs) once; reports
    /// what it finds through `report`.
    pub fn new(
        mut space: C,
        drivers: impl IntoIterator<Item = PciClient>,
        mut report: impl FnMut(Event),
    ) -> Self {
        let drivers: heapless::Vec<PciClient, MAX_CLIENTS> = drivers.into_iter().collect();
        let taken = occupied(&mut space, &drivers);
        let mut clients = heapless::Vec::new();
        for d in drivers {
            let mut f = Function::new(&mut space, d.bdf);
            let info = probe::info(&mut f).filter(|i| i.layout == 0);
            let mut bars = [None; 6];
            match info {
                Some(info) => {
                    report(Event::Found {
                        pd: d.pd,
                        bdf: d.bdf,
                        info,
                    });
                    bars = probe::bars(&mut f, &mut |bar| {
                        report(Event::MalformedBar {
                            pd: d.pd,
                            bdf: d.bdf,
                            bar,
                        })
                    });
                    if place(&mut f, &bars, &d, &taken, &mut report) {
                        bars = probe::bars(&mut f, &mut |_| {});
                    }
                }
                None => report(Event::Absent {
                    pd: d.pd,
                    bdf: d.bdf,
                }),
            }
            let client = Client {
                channel: d.channel,
                bdf: d.bdf,
                pd: d.pd,
                info,
                bars,
                refused: 0,
            };
            if clients.push(client).is_err() {
                panic!("pci: more than {MAX_CLIENTS} drivers");
            }
        }
        Server { space, clients }
    }

    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The monitor's request: turns bus mastering off for every function
    /// of the driver on `channel`, so the device writes no more into
    /// memory the monitor is about to hand back. Memory and I/O decoding
    /// stay (the registers are harmless; the fresh driver resets the
    /// device). Reports each function; returns how many there were.
    pub fn quiesce(&mut self, channel: u8, mut report: impl FnMut(Event)) -> usize {
        let mut n = 0;
        for c in self.clients.iter().filter(|c| c.channel == channel) {
            if c.info.is_none() {
                continue;
            }
            let mut f = Function::new(&mut self.space, c.bdf);
            let command = f.read(regs::COMMAND);
            let was_on = command.is_set(regs::Command::BUS_MASTER);
            f.modify(regs::COMMAND, regs::Command::BUS_MASTER::CLEAR);
            report(Event::Quiesced {
                pd: c.pd,
                bdf: c.bdf,
                was_on,
            });
            n += 1;
        }
        n
    }

    /// Answers one call on `channel`: the reply's label (a [`Status`]) and
    /// registers, and what to report, if anything.
    pub fn handle(
        &mut self,
        channel: u8,
        label: u64,
        mr: &[u64; MRS],
    ) -> (Status, [u64; MRS], Option<Event>) {
        let none = [0; MRS];
        // A driver may own several functions, all on its one channel.
        let mine = |c: &&Client| c.channel == channel;
        let Some(first) = self.clients.iter().position(|c| mine(&c)) else {
            return (
                Status::BadRequest,
                none,
                Some(Event::UnknownCaller { channel }),
            );
        };
        let call = Call::decode(label, mr);
        let i = call
            .and_then(|c| self.clients.iter().position(|x| mine(&x) && x.bdf == c.bdf))
            .unwrap_or(first);
        let client = self.clients[i];
        let (status, out, event) = match call {
            None => (
                Status::BadRequest,
                none,
                Some(Event::BadRequest {
                    pd: client.pd,
                    label,
                }),
            ),
            Some(call) if call.bdf != client.bdf => (
                Status::NotYours,
                none,
                Some(Event::NotYours {
                    pd: client.pd,
                    owns: client.bdf,
                    more: (self.clients.iter().filter(|c| mine(c)).count() - 1) as u8,
                    asked: call.bdf,
                }),
            ),
            Some(_) if client.info.is_none() => (Status::Absent, none, None),
            Some(call) => self.serve(&client, call.request),
        };
        if status != Status::Ok && status != Status::Absent {
            self.clients[i].refused += 1;
        }
        (status, out, event)
    }

    fn serve(&mut self, client: &Client, request: Request) -> (Status, [u64; MRS], Option<Event>) {
        let ok = |mr| (Status::Ok, mr, None);
        let mut f = Function::new(&mut self.space, client.bdf);
        match request {
            Request::Info => ok(wire::encode_info(&client.info.expect("present"))),
            Request::Bar { index } => ok(wire::encode_bar(client.bars[usize::from(index)])),
            Request::Interrupt => ok(wire::encode_interrupt(&probe::interrupt(&mut f))),
            Request::Read { offset, width } => {
                let o = usize::from(offset);
                let v = match width {
                    1 => u32::from(f.read8(o)),
                    2 => u32::from(f.read16(o)),
                    _ => f.read32(o),
                };
                ok([v.into(), 0, 0, 0])
            }
            Request::Command { set, clear } => {
                if (set | clear) & !DRIVER_COMMAND_BITS != 0 {
                    return forbidden(client, regs::COMMAND.offset() as u8, 2);
                }
                let old = f.get(regs::COMMAND);
                let new = (old | set) & !clear;
                f.set(regs::COMMAND, new);
                ok([f.get(regs::COMMAND).into(), 0, 0, 0])
            }
            Request::Write {
                offset,
                width,
                value,
            } => match writable(offset, width, value, &mut f) {
                Some(v) => {
                    let o = usize::from(offset);
                    match width {
                        1 => f.write8(o, v as u8),
                        2 => f.write16(o, v as u16),
                        _ => f.write32(o, v),
                    }
                    ok([0; MRS])
                }
                None => forbidden(client, offset, width),
            },
        }
    }
}

/// A memory BAR that stays where it decodes.
struct Taken {
    bdf: Bdf,
    bar: u8,
    at: u64,
}

/// Most BARs [`occupied`] keeps.
const MAX_TAKEN: usize = 64;

/// Where the memory BARs that no placement moves decode, on every bus a
/// driver's function is on: a BAR is placed only where none of them
/// starts. Base addresses are read, not sized (a device no driver owns is
/// not touched), so a BAR that starts below the place and reaches into it
/// goes unseen; firmware aligns a BAR to its size, which keeps that to
/// BARs larger than the place's alignment.
fn occupied<C: ConfigSpace + ?Sized>(
    space: &mut C,
    drivers: &[PciClient],
) -> heapless::Vec<Taken, MAX_TAKEN> {
    let mut taken = heapless::Vec::new();
    let mut buses: heapless::Vec<u8, MAX_CLIENTS> = heapless::Vec::new();
    for d in drivers {
        if !buses.contains(&d.bdf.bus) {
            let _ = buses.push(d.bdf.bus);
        }
    }
    for &bus in &buses {
        for dev in 0..32 {
            for func in 0..8 {
                let bdf = Bdf { bus, dev, func };
                let mut f = Function::new(space, bdf);
                let Some(info) = probe::info(&mut f) else {
                    if func == 0 {
                        break;
                    }
                    continue;
                };
                let more = func == 0 && probe::multifunction(&mut f);
                for (bar, at) in probe::memory_bases(&mut f, info.layout) {
                    let moves = drivers
                        .iter()
                        .any(|d| d.bdf == bdf && d.bars[usize::from(bar)].is_some());
                    if !moves {
                        let _ = taken.push(Taken { bdf, bar, at });
                    }
                }
                if func == 0 && !more {
                    break;
                }
            }
        }
    }
    taken
}

/// Moves the driver's memory BARs to where the system description puts
/// its device regions (firmware picks addresses of its own: SeaBIOS and
/// OVMF differ, and so do PCs), decoding off meanwhile. Returns whether
/// anything moved.
fn place<C: ConfigSpace + ?Sized>(
    f: &mut Function<'_, C>,
    bars: &[Option<Bar>; 6],
    d: &PciClient,
    taken: &[Taken],
    report: &mut impl FnMut(Event),
) -> bool {
    let mut moved = false;
    for (i, want) in d.bars.iter().enumerate() {
        let Some(want) = want else {
            continue;
        };
        match bars[i] {
            Some(Bar::Mem {
                addr, size, is64, ..
            }) if size <= want.size
                && want.paddr.is_multiple_of(size)
                && (is64 || want.paddr >> 32 == 0) =>
            {
                if addr == want.paddr {
                    continue;
                }
                let span = want.paddr..want.paddr + want.size;
                if let Some(t) = taken.iter().find(|t| span.contains(&t.at)) {
                    report(Event::Occupied {
                        pd: d.pd,
                        bdf: d.bdf,
                        bar: i as u8,
                        paddr: want.paddr,
                        size: want.size,
                        other: t.bdf,
                        other_bar: t.bar,
                        at: t.at,
                    });
                    continue;
                }
                let command = f.get(regs::COMMAND);
                f.set(regs::COMMAND, command & !(1 << 1));
                let low = regs::BARS.at(i);
                let flags = f.get(low) & 0xf;
                f.set(low, (want.paddr as u32 & !0xf) | flags);
                if is64 {
                    f.set(regs::BARS.at(i + 1), (want.paddr >> 32) as u32);
                }
                f.set(regs::COMMAND, command);
                moved = true;
                report(Event::Placed {
                    pd: d.pd,
                    bdf: d.bdf,
                    bar: i as u8,
                    from: addr,
                    to: want.paddr,
                });
            }
            found => report(Event::CannotPlace {
                pd: d.pd,
                bdf: d.bdf,
                bar: i as u8,
                found,
                paddr: want.paddr,
                size: want.size,
            }),
        }
    }
    moved
}

fn forbidden(client: &Client, offset: u8, width: u8) -> (Status, [u64; MRS], Option<Event>) {
    (
        Status::Forbidden,
        [0; MRS],
        Some(Event::Forbidden {
            pd: client.pd,
            bdf: client.bdf,
            offset,
            width,
        }),
    )
}

/// The value to write if a driver may write `width` bytes at `offset`:
/// command and status writes are narrowed to the bits drivers own (the
/// others keep their value, status bits not written stay set).
fn writable<C: ConfigSpace + ?Sized>(
    offset: u8,
    width: u8,
    value: u32,
    f: &mut Function<'_, C>,
) -> Option<u32> {
    let command = |v: u16, old: u16| (old & !DRIVER_COMMAND_BITS) | (v & DRIVER_COMMAND_BITS);
    match (offset, width) {
        (0x04, 2) => Some(command(value as u16, f.get(regs::COMMAND)).into()),
        (0x06, 2) => Some(u32::from(value as u16 & STATUS_CLEAR_BITS)),
        (0x04, 4) => {
            let cmd = command(value as u16, f.get(regs::COMMAND));
            let status = (value >> 16) as u16 & STATUS_CLEAR_BITS;
            Some(u32::from(cmd) | u32::from(status) << 16)
        }
        (0x0c | 0x0d, 1) => Some(value),
        (o, _) if usize::from(o) >= regs::DEVICE_SPECIFIC => Some(value),
        _ => None,
    }
}
