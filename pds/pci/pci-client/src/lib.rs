//! A driver's view of its PCI function: `open` asks the pci PD (through a
//! protected procedure call on the channel the config names) what the
//! device is, its BARs and its interrupt, once; then the driver enables
//! decoding and bus mastering, reads and writes what the pci PD lets it,
//! and checks that the resources system.xml gave it match the device. A
//! mismatch is an error that says what system.xml should have said.
//!
//! ```text
//! let mut dev = pci_client::open(cfg.pci.nic)?;   // Err(Absent) if no device
//! let offset = dev.check_mmio(1, &cfg.regions.regs)?;
//! dev.check_irq(&cfg.irqs.device)?;
//! dev.enable(Decode { memory: true, bus_master: true, io: false })?;
//! ```
//!
//! A driver given an MSI instead of an IOAPIC line aims its function's
//! MSI-X table at it ([`Device::msix`], [`Device::enable_msix`]).
//!
//! Everything the pci PD answers is decoded and checked like any other
//! untrusted input.
#![cfg_attr(not(test), no_std)]

use core::fmt;

use pci_core::wire::{self, Call, MRS, Request, Status};
use pd_config::{Bdf, DeviceRegion, IoPorts, Irq, IrqSource};

pub use caps::{CapListError, Capabilities, MAX_CAPS};
pub use msix::{CAP_MSIX, Msix, MsixError, SEL4_IDT_BASE};
pub use pci_core::probe::{Bar, Info, Interrupt};

mod caps;
mod msix;

/// How a call reaches the pci PD.
pub trait Transport {
    /// Sends `label` and `mr`; returns the reply's label and registers.
    fn call(&mut self, label: u64, mr: [u64; MRS]) -> (u64, [u64; MRS]);
}

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// No device answers at the function.
    Absent { bdf: Bdf },
    /// The pci PD refused the call.
    Refused { bdf: Bdf, status: Status },
    /// The pci PD answered something no pci PD sends.
    Garbage { bdf: Bdf, label: u64 },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PciError::Absent { bdf } => write!(f, "no PCI device at {bdf}"),
            PciError::Refused { bdf, status } => {
                write!(f, "the pci PD refused a call for {bdf}: {status:?}")
            }
            PciError::Garbage { bdf, label } => {
                write!(f, "the pci PD answered a call for {bdf} with label {label}")
            }
        }
    }
}

/// Command register bits to turn on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decode {
    pub io: bool,
    pub memory: bool,
    pub bus_master: bool,
}

impl Decode {
    fn bits(self) -> u16 {
        u16::from(self.io) | u16::from(self.memory) << 1 | u16::from(self.bus_master) << 2
    }
}

/// A resource system.xml gave the driver that the device does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub bdf: Bdf,
    pub kind: MismatchKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MismatchKind {
    /// BAR `bar` is not what the resource needs (absent, or the other kind).
    NoSuchBar {
        bar: u8,
        found: Option<Bar>,
        want_memory: bool,
    },
    /// The device region does not cover the memory BAR.
    Mmio {
        bar: u8,
        addr: u64,
        size: u64,
        paddr: u64,
        region_size: usize,
    },
    /// The ioport range is not the I/O BAR.
    Ports {
        bar: u8,
        port: u16,
        size: u16,
        base: u16,
        given: u16,
    },
    /// The IRQ is not the one the function raises.
    Irq {
        line: u8,
        pin: Option<u8>,
        given: IrqSource,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bdf = self.bdf;
        match self.kind {
            MismatchKind::NoSuchBar {
                bar,
                found,
                want_memory,
            } => {
                let want = if want_memory { "memory" } else { "I/O" };
                match found {
                    None => write!(
                        f,
                        "PCI {bdf} has no BAR{bar}; expected a driver configured for the BARs it has"
                    ),
                    Some(b) => write!(
                        f,
                        "PCI {bdf} BAR{bar} is {b}, not {want}; expected the resource for the BAR of that kind"
                    ),
                }
            }
            MismatchKind::Mmio {
                bar,
                addr,
                size,
                paddr,
                region_size,
            } => {
                let page = addr & !0xfff;
                let span = (addr + size).next_multiple_of(0x1000) - page;
                write!(
                    f,
                    "PCI {bdf} BAR{bar} is memory at {addr:#x}, {size:#x} bytes, which the device region at paddr {paddr:#x} ({region_size:#x} bytes) does not cover; expected <memory_region phys_addr=\"{page:#x}\" size=\"{span:#x}\" .../> mapped uncached"
                )
            }
            MismatchKind::Ports {
                bar,
                port,
                size,
                base,
                given,
            } => write!(
                f,
                "PCI {bdf} BAR{bar} is I/O ports {port:#x}, {size:#x} ports, but the ioport range is {base:#x}, {given:#x} ports; expected <ioport addr=\"{port:#x}\" size=\"{size:#x}\" .../>"
            ),
            MismatchKind::Irq { line, pin, given } => {
                let pin = match pin {
                    Some(p @ 1..=4) => ["INTA", "INTB", "INTC", "INTD"][usize::from(p - 1)],
                    _ => "no INTx pin",
                };
                write!(
                    f,
                    "PCI {bdf} raises interrupt line {line} ({pin}), but the irq is "
                )?;
                match given {
                    IrqSource::Ioapic { pin, level, .. } => write!(
                        f,
                        "IOAPIC pin {pin}, {}-triggered",
                        if level { "level" } else { "edge" }
                    )?,
                    IrqSource::Msi { bdf: from, .. } if from == bdf => {
                        write!(f, "an MSI, and the function has no MSI-X capability")?
                    }
                    IrqSource::Msi { bdf, .. } => write!(f, "an MSI from {bdf}")?,
                    IrqSource::Gic { irq } => write!(f, "GIC interrupt {irq}")?,
                }
                write!(
                    f,
                    "; expected <irq pin=\"{line}\" trigger=\"level\" .../> (PCI INTx is level-triggered)"
                )
            }
        }
    }
}

/// A driver's PCI function, as the pci PD describes it.
pub struct Device<T: Transport> {
    transport: T,
    bdf: Bdf,
    info: Info,
    bars: [Option<Bar>; 6],
    interrupt: Interrupt,
    /// The capability list, read once at open (config space does not
    /// change it).
    caps: Result<Capabilities, CapListError>,
}

impl<T: Transport> Device<T> {
    /// Asks the pci PD about function `bdf`: identity, BARs, interrupt.
    pub fn with(transport: T, bdf: Bdf) -> Result<Self, PciError> {
        let mut dev = Device {
            transport,
            bdf,
            info: Info {
                vendor: 0,
                device: 0,
                class: 0,
                subclass: 0,
                prog_if: 0,
                revision: 0,
                layout: 0,
            },
            bars: [None; 6],
            interrupt: Interrupt { line: 0, pin: None },
            caps: Ok(Capabilities::EMPTY),
        };
        dev.info = wire::decode_info(&dev.call(Request::Info)?);
        for i in 0..6u8 {
            let mr = dev.call(Request::Bar { index: i })?;
            dev.bars[usize::from(i)] = wire::decode_bar(&mr).map_err(|_| PciError::Garbage {
                bdf,
                label: Request::Bar { index: i }.label(),
            })?;
        }
        dev.interrupt = wire::decode_interrupt(&dev.call(Request::Interrupt)?);
        // A malformed list is said where a driver asks for it.
        dev.caps = dev.read_capabilities();
        Ok(dev)
    }

    fn call(&mut self, request: Request) -> Result<[u64; MRS], PciError> {
        let (label, mr) = Call {
            bdf: self.bdf,
            request,
        }
        .encode();
        let (status, out) = self.transport.call(label, mr);
        match Status::from_label(status) {
            Some(Status::Ok) => Ok(out),
            Some(Status::Absent) => Err(PciError::Absent { bdf: self.bdf }),
            Some(status) => Err(PciError::Refused {
                bdf: self.bdf,
                status,
            }),
            None => Err(PciError::Garbage {
                bdf: self.bdf,
                label: status,
            }),
        }
    }

    pub fn bdf(&self) -> Bdf {
        self.bdf
    }
    pub fn info(&self) -> Info {
        self.info
    }
    /// BAR `i` (0..6), as the pci PD sized it.
    pub fn bar(&self, i: usize) -> Option<Bar> {
        self.bars.get(i).copied().flatten()
    }
    pub fn interrupt(&self) -> Interrupt {
        self.interrupt
    }

    /// Turns on what `decode` names; returns the command register after.
    pub fn enable(&mut self, decode: Decode) -> Result<u16, PciError> {
        let mr = self.call(Request::Command {
            set: decode.bits(),
            clear: 0,
        })?;
        Ok(mr[0] as u16)
    }

    /// Turns off what `decode` names (bus mastering before memory the
    /// device writes to is handed back, for one).
    pub fn disable(&mut self, decode: Decode) -> Result<u16, PciError> {
        let mr = self.call(Request::Command {
            set: 0,
            clear: decode.bits(),
        })?;
        Ok(mr[0] as u16)
    }

    pub fn read_config8(&mut self, offset: u8) -> Result<u8, PciError> {
        Ok(self.call(Request::Read { offset, width: 1 })?[0] as u8)
    }
    pub fn read_config16(&mut self, offset: u8) -> Result<u16, PciError> {
        Ok(self.call(Request::Read { offset, width: 2 })?[0] as u16)
    }
    pub fn read_config32(&mut self, offset: u8) -> Result<u32, PciError> {
        Ok(self.call(Request::Read { offset, width: 4 })?[0] as u32)
    }
    pub fn write_config16(&mut self, offset: u8, value: u16) -> Result<(), PciError> {
        self.call(Request::Write {
            offset,
            width: 2,
            value: value.into(),
        })
        .map(drop)
    }
    pub fn write_config32(&mut self, offset: u8, value: u32) -> Result<(), PciError> {
        self.call(Request::Write {
            offset,
            width: 4,
            value,
        })
        .map(drop)
    }

    /// Asks for a function that is not this driver's (tests use it to see
    /// the pci PD refuse).
    pub fn read_other(&mut self, other: Bdf, offset: u8) -> Result<u32, PciError> {
        let (label, mr) = Call {
            bdf: other,
            request: Request::Read { offset, width: 4 },
        }
        .encode();
        let (status, out) = self.transport.call(label, mr);
        match Status::from_label(status) {
            Some(Status::Ok) => Ok(out[0] as u32),
            Some(status) => Err(PciError::Refused { bdf: other, status }),
            None => Err(PciError::Garbage {
                bdf: other,
                label: status,
            }),
        }
    }

    fn mismatch(&self, kind: MismatchKind) -> Mismatch {
        Mismatch {
            bdf: self.bdf,
            kind,
        }
    }

    /// Checks that `region` covers memory BAR `bar`; returns the BAR's
    /// offset in the region (a BAR smaller than a page need not start it).
    pub fn check_mmio(&self, bar: u8, region: &DeviceRegion) -> Result<usize, Mismatch> {
        match self.bar(usize::from(bar)) {
            Some(Bar::Mem { addr, size, .. }) => {
                let end = region.paddr + region.size as u64;
                if region.paddr <= addr && addr.checked_add(size).is_some_and(|e| e <= end) {
                    Ok((addr - region.paddr) as usize)
                } else {
                    Err(self.mismatch(MismatchKind::Mmio {
                        bar,
                        addr,
                        size,
                        paddr: region.paddr,
                        region_size: region.size,
                    }))
                }
            }
            found => Err(self.mismatch(MismatchKind::NoSuchBar {
                bar,
                found,
                want_memory: true,
            })),
        }
    }

    /// Checks that `ports` is I/O BAR `bar`.
    pub fn check_ioports(&self, bar: u8, ports: &IoPorts) -> Result<(), Mismatch> {
        match self.bar(usize::from(bar)) {
            Some(Bar::Io { port, size }) if port == ports.base && size == ports.size => Ok(()),
            Some(Bar::Io { port, size }) => Err(self.mismatch(MismatchKind::Ports {
                bar,
                port,
                size,
                base: ports.base,
                given: ports.size,
            })),
            found => Err(self.mismatch(MismatchKind::NoSuchBar {
                bar,
                found,
                want_memory: false,
            })),
        }
    }

    /// Checks that `irq` is the function's: an IOAPIC line on the pin the
    /// firmware routed INTx to, level-triggered (PCI INTx is shared and
    /// level-triggered), or an MSI from this function, if it has MSI-X. The polarity is not
    /// checked: firmware routes INTx through its own inverters.
    pub fn check_irq(&self, irq: &Irq) -> Result<(), Mismatch> {
        let Interrupt { line, pin } = self.interrupt;
        let ok = match irq.source {
            IrqSource::Ioapic { pin: p, level, .. } => {
                pin.is_some() && line != pci_core::regs::LINE_NONE && p == line && level
            }
            // An MSI is of use only with MSI-X.
            IrqSource::Msi { bdf, .. } => {
                bdf == self.bdf
                    && self
                        .caps
                        .as_ref()
                        .is_ok_and(|c| c.find(msix::CAP_MSIX).is_some())
            }
            // PCI interrupts on x86 only.
            IrqSource::Gic { .. } => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.mismatch(MismatchKind::Irq {
                line,
                pin,
                given: irq.source,
            }))
        }
    }
}

/// The transport on seL4: a protected procedure call on the channel to
/// the pci PD.
#[cfg(feature = "sel4")]
pub struct Ppc(microkit::Channel);

#[cfg(feature = "sel4")]
impl Transport for Ppc {
    fn call(&mut self, label: u64, mr: [u64; MRS]) -> (u64, [u64; MRS]) {
        use microkit::sel4::MessageInfo;
        for (i, v) in mr.iter().enumerate() {
            microkit::set_mr(i, *v);
        }
        let reply = self.0.pp_call(MessageInfo::new(label, 0, 0, MRS as u64));
        let n = (reply.length() as usize).min(MRS);
        let out = core::array::from_fn(|i| if i < n { microkit::mr(i) } else { 0 });
        (reply.label(), out)
    }
}

/// Opens the PCI function of a `pci` role of the driver's config.
#[cfg(feature = "sel4")]
pub fn open(func: pd_config::PciFunction) -> Result<Device<Ppc>, PciError> {
    Device::with(Ppc(microkit::Channel::new(func.channel)), func.bdf)
}

#[cfg(test)]
mod tests;
