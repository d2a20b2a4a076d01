//! MSI-X (PCI Local Bus 3.0 §6.8.2) for a driver whose system description
//! gives it an MSI (`<irq pcidev=... handle=... vector=...>`) instead of an
//! IOAPIC line: an MSI is the function's own, so it needs no shared INTx
//! line, of which QEMU's PC firmware routes only two (10 and 11).
//!
//! The capability is found in configuration space like any untrusted input
//! (a bounded walk of the list, every pointer inside the device area), its
//! table is checked against its BAR and the BAR against the device region
//! system.xml maps, and one table entry is aimed at the seL4 MSI. The
//! device could write anywhere by DMA already: aiming its MSI gives it no
//! more reach.

use core::fmt;

use hwio::{Bus, ReadWrite, RegisterArray, Registers, Window, register_bitfields};
use pd_config::{DeviceRegion, Irq, IrqSource};

use crate::caps::CapListError;
use crate::{Bar, Device, Mismatch, PciError, Transport};

/// The MSI-X capability's id.
pub const CAP_MSIX: u8 = 0x11;
/// seL4 5.0.0 on x86 delivers user IRQ `n` (`<irq vector="n">`) at IDT
/// vector `0x30 + n`: IRQ_INT_OFFSET (0x20) plus the 16 ISA IRQs
/// (include/plat/pc99/plat/machine.h). An MSI carries the IDT vector.
pub const SEL4_IDT_BASE: u32 = 0x30;
/// The local APIC's MSI window, destination APIC 0 (the boot CPU, seL4's
/// only one here), physical destination, fixed delivery.
const MSI_ADDRESS: u32 = 0xfee0_0000;

/// The capability's registers, from its start.
const CONTROL: u8 = 2;
const TABLE: u8 = 4;
/// The capability's length: id, next, control, table, PBA.
const CAP_LEN: usize = 12;
const CONTROL_TABLE_SIZE: u16 = 0x7ff;
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
const CONTROL_ENABLE: u16 = 1 << 15;
const TABLE_BIR: u32 = 0x7;
/// One table entry: address (low, high), data, vector control.
const ENTRY_BYTES: usize = 16;

register_bitfields![u32,
    pub VectorControl [
        /// The entry may not send its message.
        MASKED OFFSET(0) NUMBITS(1) [],
    ],
];

/// A function's MSI-X capability, as its configuration space gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msix {
    /// Where the capability is in configuration space.
    pub at: u8,
    pub entries: u16,
    /// The BAR holding the table, and the table's offset in it.
    pub bar: u8,
    pub offset: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixError {
    Pci(PciError),
    /// A capability pointer outside the device area, or a list that loops.
    BadList {
        at: u8,
    },
    Absent,
    /// The IRQ system.xml gave is not an MSI of this function.
    NotMsi {
        given: IrqSource,
    },
    /// The table reaches past its BAR.
    OutsideBar {
        bar: u8,
        offset: u32,
        entries: u16,
        bar_size: u64,
    },
    /// The table's BAR is not in the device region system.xml maps.
    Region(Mismatch),
    NoEntry {
        entry: u16,
        entries: u16,
    },
}

impl fmt::Display for MsixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MsixError::Pci(e) => write!(f, "{e}"),
            MsixError::BadList { at } => write!(f, "{}", CapListError::BadList { at }),
            MsixError::Absent => write!(f, "the function has no MSI-X capability"),
            MsixError::NotMsi { given } => write!(
                f,
                "its IRQ is {given:?}, not an MSI of this function; expected <irq pcidev=\"bus:dev.func\" handle=... vector=...>"
            ),
            MsixError::OutsideBar {
                bar,
                offset,
                entries,
                bar_size,
            } => write!(
                f,
                "the MSI-X table at BAR{bar} offset {offset:#x}, {entries} entries, reaches past the BAR's {bar_size:#x} bytes"
            ),
            MsixError::Region(m) => write!(f, "the MSI-X table's {m}"),
            MsixError::NoEntry { entry, entries } => {
                write!(f, "MSI-X entry {entry} asked for; the table has {entries}")
            }
        }
    }
}

impl From<PciError> for MsixError {
    fn from(e: PciError) -> Self {
        MsixError::Pci(e)
    }
}

impl From<CapListError> for MsixError {
    fn from(e: CapListError) -> Self {
        match e {
            CapListError::Pci(e) => MsixError::Pci(e),
            CapListError::BadList { at } => MsixError::BadList { at },
        }
    }
}

impl<T: Transport> Device<T> {
    /// The function's MSI-X capability.
    pub fn msix(&mut self) -> Result<Msix, MsixError> {
        let at = self
            .capabilities()?
            .find(CAP_MSIX)
            .ok_or(MsixError::Absent)?;
        if usize::from(at) + CAP_LEN > 0x100 {
            return Err(MsixError::BadList { at });
        }
        let control = self.read_config16(at + CONTROL)?;
        let table = self.read_config32(at + TABLE)?;
        Ok(Msix {
            at,
            entries: (control & CONTROL_TABLE_SIZE) + 1,
            bar: (table & TABLE_BIR) as u8,
            offset: table & !TABLE_BIR,
        })
    }

    /// Aims table entry `entry` at `irq` (this function's MSI, from the
    /// config), masks every other entry and enables MSI-X: from then on
    /// the function signals through its table, never on INTx. `bus` is
    /// `region` (the device region mapping the table's BAR) as a bus; the
    /// function's memory decoding must be on for the table to be reached.
    pub fn enable_msix<B: Bus>(
        &mut self,
        msix: &Msix,
        region: &DeviceRegion,
        bus: B,
        entry: u16,
        irq: &Irq,
    ) -> Result<(), MsixError> {
        let vector = match irq.source {
            IrqSource::Msi { bdf, vector, .. } if bdf == self.bdf() => vector,
            given => return Err(MsixError::NotMsi { given }),
        };
        if entry >= msix.entries {
            return Err(MsixError::NoEntry {
                entry,
                entries: msix.entries,
            });
        }
        let base = self
            .check_mmio(msix.bar, region)
            .map_err(MsixError::Region)?;
        let bar_size = match self.bar(usize::from(msix.bar)) {
            Some(Bar::Mem { size, .. }) => size,
            _ => 0,
        };
        let len = usize::from(msix.entries) * ENTRY_BYTES;
        if u64::from(msix.offset) + len as u64 > bar_size {
            return Err(MsixError::OutsideBar {
                bar: msix.bar,
                offset: msix.offset,
                entries: msix.entries,
                bar_size,
            });
        }
        let n = usize::from(msix.entries);
        let addr_lo = RegisterArray::<u32, (), ReadWrite>::new(0x0, ENTRY_BYTES, n);
        let addr_hi = RegisterArray::<u32, (), ReadWrite>::new(0x4, ENTRY_BYTES, n);
        let data = RegisterArray::<u32, (), ReadWrite>::new(0x8, ENTRY_BYTES, n);
        let control =
            RegisterArray::<u32, VectorControl::Register, ReadWrite>::new(0xc, ENTRY_BYTES, n);

        // Enabled with the function masked: no message leaves while the
        // table is half written.
        let cap_control = self.read_config16(msix.at + CONTROL)?;
        let masked = cap_control | CONTROL_ENABLE | CONTROL_FUNCTION_MASK;
        self.write_config16(msix.at + CONTROL, masked)?;
        let mut table = Window::new(bus, "MSI-X table", base + msix.offset as usize, len);
        for i in 0..n {
            table.modify(control.at(i), VectorControl::MASKED::SET);
        }
        let e = usize::from(entry);
        table.set(addr_lo.at(e), MSI_ADDRESS);
        table.set(addr_hi.at(e), 0);
        table.set(data.at(e), SEL4_IDT_BASE + u32::from(vector));
        table.modify(control.at(e), VectorControl::MASKED::CLEAR);
        self.write_config16(msix.at + CONTROL, masked & !CONTROL_FUNCTION_MASK)?;
        Ok(())
    }
}
