//! The crate's PCI transport through the pci PD.
//!
//! virtio-drivers' [`PciTransport::new`] reads the function's capability
//! list through a [`ConfigurationAccess`] and sizes each BAR a capability
//! names the usual way: it writes all ones to the BAR, reads the size
//! mask, writes the old value back (and would turn decoding off around
//! it if it was on). The pci PD never lets a driver write a BAR, and has
//! sized every BAR itself: [`ClientCam`] therefore answers the sizing
//! dance from the pci PD's sizes (a write of all ones latches the BAR, the
//! next read returns its mask, any other write unlatches it) and reads
//! everything else from the function's real configuration space. A
//! command register write may turn decoding and bus mastering on (through
//! the pci PD's command call) but never off: nothing is really sized, so
//! no decoder needs silencing. Other writes go to the pci PD, which
//! refuses what a driver may not change.
//!
//! Before the crate sees the device, [`check_capabilities`] reads the same
//! list as untrusted input (pci-client's walk: bounded, every offset inside
//! the device area; each virtio structure's 16 bytes inside it too) and
//! checks that each virtio structure lies inside its memory BAR and the BAR
//! inside the device region system.xml mapped: the crate's own bound check
//! adds two `u32`s that a device can make wrap, and its HAL call for an
//! address outside the region can only panic.

use core::cell::{Cell, RefCell};
use core::fmt;

use hwio::{Mmio, Window};
use pci_client::{
    Bar, CapListError, Decode, Device, Info, Mismatch, MsixError, Transport as PciCall,
};
use pd_config::{Bdf, DeviceRegion, Irq, IrqSource};
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::bus::{
    ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType, PciRoot,
};
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};

use crate::hal::{self, HalSlot};
use crate::vectors::{COMMON_CFG_LEN, KitTransport, Vectors};

/// The vendor-specific capability virtio uses for its structures.
pub const CAP_VENDOR: u8 = 0x09;
/// virtio_pci_cap.cfg_type values (virtio 1.1, 4.1.4).
pub const CFG_COMMON: u8 = 1;
pub const CFG_NOTIFY: u8 = 2;
pub const CFG_ISR: u8 = 3;
pub const CFG_DEVICE: u8 = 4;

const COMMAND: u8 = 0x04;
const BAR0: u8 = 0x10;

/// A [`ConfigurationAccess`] over the driver's own function, through
/// pci-client; see the module doc.
pub struct ClientCam<'d, T: PciCall> {
    dev: &'d RefCell<Device<T>>,
    /// BARs whose next read returns the size mask (bit i: BAR i).
    sizing: Cell<u8>,
    /// Accesses the pci PD refused, or to another function.
    refused: &'d Cell<u32>,
}

impl<'d, T: PciCall> ClientCam<'d, T> {
    pub fn new(dev: &'d RefCell<Device<T>>, refused: &'d Cell<u32>) -> Self {
        ClientCam {
            dev,
            sizing: Cell::new(0),
            refused,
        }
    }

    fn mine(&self, f: DeviceFunction) -> bool {
        let b = self.dev.borrow().bdf();
        let ok = (f.bus, f.device, f.function) == (b.bus, b.dev, b.func);
        if !ok {
            self.refused.set(self.refused.get() + 1);
        }
        ok
    }

    /// The size mask BAR `i` reads while latched, from the pci PD's sizes.
    fn mask(&self, i: usize) -> u32 {
        let dev = self.dev.borrow();
        match dev.bar(i) {
            Some(Bar::Io { size, .. }) => !(u32::from(size).wrapping_sub(1)) & !0b11 | 1,
            Some(Bar::Mem {
                size,
                prefetchable,
                is64,
                ..
            }) => {
                let m = !(size.wrapping_sub(1)) as u32 & !0xf;
                m | if prefetchable { 1 << 3 } else { 0 } | if is64 { 0b100 } else { 0 }
            }
            // The upper half of a 64-bit BAR.
            None => match i.checked_sub(1).and_then(|j| dev.bar(j)) {
                Some(Bar::Mem {
                    size, is64: true, ..
                }) => (!(size.wrapping_sub(1)) >> 32) as u32,
                _ => 0,
            },
        }
    }
}

impl<T: PciCall> ConfigurationAccess for ClientCam<'_, T> {
    fn read_word(&self, f: DeviceFunction, offset: u8) -> u32 {
        if !self.mine(f) {
            return !0;
        }
        let bar = offset.wrapping_sub(BAR0) / 4;
        if (BAR0..BAR0 + 24).contains(&offset) && self.sizing.get() & (1 << bar) != 0 {
            return self.mask(usize::from(bar));
        }
        match self.dev.borrow_mut().read_config32(offset & !3) {
            Ok(v) => v,
            Err(_) => {
                self.refused.set(self.refused.get() + 1);
                !0
            }
        }
    }

    fn write_word(&mut self, f: DeviceFunction, offset: u8, data: u32) {
        if !self.mine(f) {
            return;
        }
        if (BAR0..BAR0 + 24).contains(&offset) {
            let bit = 1 << ((offset - BAR0) / 4);
            let s = self.sizing.get();
            self.sizing.set(if data == !0 { s | bit } else { s & !bit });
            return;
        }
        let r = if offset == COMMAND {
            let d = pci_client::Decode {
                io: data & 1 != 0,
                memory: data & 2 != 0,
                bus_master: data & 4 != 0,
            };
            self.dev.borrow_mut().enable(d).map(drop)
        } else {
            self.dev.borrow_mut().write_config32(offset, data)
        };
        if r.is_err() {
            self.refused.set(self.refused.get() + 1);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        ClientCam {
            dev: self.dev,
            sizing: Cell::new(self.sizing.get()),
            refused: self.refused,
        }
    }
}

/// One virtio structure a capability names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Structure {
    pub cfg_type: u8,
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
}

/// What is wrong with the device's capabilities, for the PD's one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapError {
    /// The pci PD did not answer a read.
    Pci(pci_client::PciError),
    /// No capability list, or no common/notify/ISR structure in it.
    Missing { cfg_type: u8 },
    /// The list points outside configuration space or loops.
    BadList { at: u8 },
    /// A structure names a BAR that is not memory.
    NotMemory { cfg_type: u8, bar: u8 },
    /// A structure reaches past its BAR.
    OutsideBar { s: Structure, bar_size: u64 },
    /// The BAR is not inside the device region system.xml mapped.
    OutsideRegion {
        bar: u8,
        addr: u64,
        size: u64,
        paddr: u64,
        region_size: usize,
    },
}

impl fmt::Display for CapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = |t: u8| match t {
            CFG_COMMON => "common",
            CFG_NOTIFY => "notify",
            CFG_ISR => "ISR",
            CFG_DEVICE => "device",
            _ => "unknown",
        };
        match *self {
            CapError::Pci(e) => write!(f, "{e}"),
            CapError::Missing { cfg_type } => write!(
                f,
                "the device has no virtio {} configuration capability (not a modern virtio device?)",
                kind(cfg_type)
            ),
            CapError::BadList { at } => write!(
                f,
                "the capability list is malformed at offset {at:#04x} (outside the device area or a loop)"
            ),
            CapError::NotMemory { cfg_type, bar } => write!(
                f,
                "the virtio {} structure names BAR{bar}, which is not a memory BAR",
                kind(cfg_type)
            ),
            CapError::OutsideBar { s, bar_size } => write!(
                f,
                "the virtio {} structure at BAR{} offset {:#x}, {:#x} bytes, reaches past the BAR's {bar_size:#x} bytes",
                kind(s.cfg_type),
                s.bar,
                s.offset,
                s.length
            ),
            CapError::OutsideRegion {
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
                    "BAR{bar} is memory at {addr:#x}, {size:#x} bytes, which the device region at paddr {paddr:#x} ({region_size:#x} bytes) does not cover; expected <memory_region phys_addr=\"{page:#x}\" size=\"{span:#x}\" .../> mapped uncached"
                )
            }
        }
    }
}

/// Walks the capability list (see the module doc) and returns the
/// structures found, after checking that the common, notify and ISR ones
/// exist and that every structure lies in its memory BAR inside `region`.
pub fn check_capabilities<T: PciCall>(
    dev: &mut Device<T>,
    region: &DeviceRegion,
) -> Result<heapless::Vec<Structure, 8>, CapError> {
    let mut found = heapless::Vec::new();
    let caps = dev.capabilities().map_err(|e| match e {
        CapListError::Pci(e) => CapError::Pci(e),
        CapListError::BadList { at } => CapError::BadList { at },
    })?;
    for (_, at) in caps.iter().filter(|&(id, _)| id == CAP_VENDOR) {
        // A virtio capability is 16 bytes at least.
        if at > 0xf0 {
            return Err(CapError::BadList { at });
        }
        let head = dev.read_config32(at).map_err(CapError::Pci)?;
        let (len, cfg_type) = ((head >> 16) as u8, (head >> 24) as u8);
        if len >= 16 && (CFG_COMMON..=CFG_DEVICE).contains(&cfg_type) {
            let s = Structure {
                cfg_type,
                bar: dev.read_config8(at + 4).map_err(CapError::Pci)?,
                offset: dev.read_config32(at + 8).map_err(CapError::Pci)?,
                length: dev.read_config32(at + 12).map_err(CapError::Pci)?,
            };
            // The crate takes the first of each kind; so does this check.
            if !found.iter().any(|f: &Structure| f.cfg_type == cfg_type) {
                check_structure(dev, region, s)?;
                let _ = found.push(s);
            }
        }
    }
    for t in [CFG_COMMON, CFG_NOTIFY, CFG_ISR] {
        if !found.iter().any(|s| s.cfg_type == t) {
            return Err(CapError::Missing { cfg_type: t });
        }
    }
    Ok(found)
}

fn check_structure<T: PciCall>(
    dev: &Device<T>,
    region: &DeviceRegion,
    s: Structure,
) -> Result<(), CapError> {
    let Some(Bar::Mem { addr, size, .. }) = dev.bar(usize::from(s.bar)) else {
        return Err(CapError::NotMemory {
            cfg_type: s.cfg_type,
            bar: s.bar,
        });
    };
    if u64::from(s.offset) + u64::from(s.length) > size {
        return Err(CapError::OutsideBar { s, bar_size: size });
    }
    let end = region.paddr + region.size as u64;
    if addr < region.paddr || addr.checked_add(size).is_none_or(|e| e > end) {
        return Err(CapError::OutsideRegion {
            bar: s.bar,
            addr,
            size,
            paddr: region.paddr,
            region_size: region.size,
        });
    }
    Ok(())
}

/// Why [`check_device`] refused a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The function is not a virtio device of the type the driver drives.
    NotA {
        bdf: Bdf,
        info: Info,
        want: DeviceType,
    },
    /// The IRQ system.xml gave the driver is not the function's.
    Irq(Mismatch),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::NotA { bdf, info, want } => {
                let name = match want {
                    DeviceType::Network => "virtio-net",
                    DeviceType::Block => "virtio-blk",
                    _ => "virtio",
                };
                write!(f, "{bdf} is {info}, not a {name} device")
            }
            DeviceError::Irq(e) => write!(f, "{e}"),
        }
    }
}

/// What a virtio PD checks before it touches its function: that it is a
/// virtio device of type `want` (its PCI ids, transitional or modern, as
/// virtio-drivers reads them: virtio 1.1, 4.1.2.1) and that `irq` is the
/// interrupt it raises.
pub fn check_device<T: PciCall>(
    dev: &Device<T>,
    want: DeviceType,
    irq: &Irq,
) -> Result<(), DeviceError> {
    let info = dev.info();
    let ids = DeviceFunctionInfo {
        vendor_id: info.vendor,
        device_id: info.device,
        class: info.class,
        subclass: info.subclass,
        prog_if: info.prog_if,
        revision: info.revision,
        header_type: HeaderType::from(info.layout),
    };
    if virtio_device_type(&ids) != Some(want) {
        return Err(DeviceError::NotA {
            bdf: dev.bdf(),
            info,
            want,
        });
    }
    dev.check_irq(irq).map_err(DeviceError::Irq)
}

/// Why [`transport`] failed.
#[derive(Debug)]
pub enum OpenError {
    Caps(CapError),
    Crate(virtio_drivers::transport::pci::VirtioPciError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Caps(e) => write!(f, "{e}"),
            OpenError::Crate(e) => write!(f, "virtio-drivers: {e}"),
        }
    }
}

/// The crate's transport for the driver's function: capabilities checked
/// against `region` first, then [`PciTransport::new`] over a [`ClientCam`].
/// The HAL `S` must be installed with `region` as its MMIO window.
pub fn transport<S: HalSlot, T: PciCall>(
    dev: &RefCell<Device<T>>,
    region: &DeviceRegion,
    refused: &Cell<u32>,
) -> Result<(PciTransport, Structure), OpenError> {
    let caps = check_capabilities(&mut dev.borrow_mut(), region).map_err(OpenError::Caps)?;
    let Bdf { bus, dev: d, func } = dev.borrow().bdf();
    let mut root = PciRoot::new(ClientCam::new(dev, refused));
    let transport = PciTransport::new::<crate::hal::KitHal<S>, _>(
        &mut root,
        DeviceFunction {
            bus,
            device: d,
            function: func,
        },
    )
    .map_err(OpenError::Crate)?;
    // check_capabilities fails without a common structure.
    let common = caps
        .into_iter()
        .find(|s| s.cfg_type == CFG_COMMON)
        .ok_or(OpenError::Caps(CapError::Missing {
            cfg_type: CFG_COMMON,
        }))?;
    Ok((transport, common))
}

/// What system.xml gave the driver for its device: the region over the
/// virtio structures' BAR, its IRQ, and for an MSI the region over the
/// MSI-X table's BAR.
#[derive(Clone, Copy)]
pub struct Resources<'a> {
    pub regs: &'a DeviceRegion,
    pub irq: &'a Irq,
    pub msix: Option<&'a DeviceRegion>,
}

/// What [`set_up`] hands a virtio driver core: the crate's transport, the
/// header slots (for the core's per-request headers) and the port's data
/// area, all inside the HAL's windows.
pub struct Parts {
    pub transport: KitTransport<Mmio>,
    pub hdrs: dma::DmaBuf,
    pub data: dma::DmaBuf,
}

/// Why [`set_up`] failed.
#[derive(Debug)]
pub enum SetUpError {
    Dma(dma::DmaError),
    Install(crate::hal::InstallError),
    Open(OpenError),
    Enable(pci_client::PciError),
    Msix(MsixError),
    /// The IRQ is an MSI but no region maps the MSI-X table's BAR.
    NoTable {
        bar: u8,
    },
}

impl fmt::Display for SetUpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetUpError::Dma(e) => write!(f, "{e}"),
            SetUpError::Install(e) => write!(f, "{e}"),
            SetUpError::Open(e) => write!(f, "{e}"),
            SetUpError::Enable(e) => write!(f, "enabling decoding and bus mastering: {e}"),
            SetUpError::Msix(e) => write!(f, "MSI-X: {e}"),
            SetUpError::NoTable { bar } => write!(
                f,
                "its IRQ is an MSI, and the MSI-X table is in BAR{bar}, which no region maps: expected a `msix` device region over it"
            ),
        }
    }
}

/// What every virtio PD does before its core runs: takes `pool` bytes of
/// ring memory (page-aligned) and `hdrs` bytes of header slots from `dma`,
/// the whole of `data` for the port's data area, installs them and the
/// device's `regs` as the HAL `S`'s windows, opens the crate's transport
/// (see [`transport`]) and turns on memory decoding and bus mastering, in
/// that order: the device may reach memory only once the HAL knows it.
/// If `irq` is an MSI, the function's MSI-X table (in the BAR `msix` maps)
/// gets entry 0 aimed at it and the transport puts every source on that
/// entry ([`KitTransport`]); on an IOAPIC line the device stays on INTx.
pub fn set_up<S: HalSlot, T: PciCall>(
    dev: &RefCell<Device<T>>,
    mut dma: dma::DmaRegion,
    pool: usize,
    hdrs: usize,
    mut data: dma::DmaRegion,
    res: Resources<'_>,
    refused: &Cell<u32>,
) -> Result<Parts, SetUpError> {
    let Resources { regs, irq, msix } = res;
    let rings = dma
        .alloc("rings", pool, dma::PAGE_SIZE)
        .map_err(SetUpError::Dma)?;
    let hdrs = dma.alloc("headers", hdrs, 16).map_err(SetUpError::Dma)?;
    let size = data.size();
    let data = data
        .alloc("data", size, dma::PAGE_SIZE)
        .map_err(SetUpError::Dma)?;
    let mmio = hal::Window {
        name: "regs",
        vaddr: regs.vaddr,
        paddr: regs.paddr,
        len: regs.size,
    };
    S::state()
        .install(
            hal::Window::of(&rings),
            &[hal::Window::of(&hdrs), hal::Window::of(&data)],
            mmio,
        )
        .map_err(SetUpError::Install)?;
    let (inner, common) = transport::<S, T>(dev, regs, refused).map_err(SetUpError::Open)?;
    let decode = Decode {
        io: false,
        memory: true,
        bus_master: true,
    };
    let mut d = dev.borrow_mut();
    d.enable(decode).map_err(SetUpError::Enable)?;
    let vectors = match irq.source {
        IrqSource::Msi { .. } => {
            let m = d.msix().map_err(SetUpError::Msix)?;
            let table = msix.ok_or(SetUpError::NoTable { bar: m.bar })?;
            d.enable_msix(&m, table, table.mmio("msix"), 0, irq)
                .map_err(SetUpError::Msix)?;
            // check_capabilities put the structure inside `regs`. The
            // crate's transport reaches the same registers; this window
            // only between its calls (queue_set, single-threaded).
            let at = d
                .check_mmio(common.bar, regs)
                .map_err(|e| SetUpError::Msix(MsixError::Region(e)))?
                + common.offset as usize;
            Some(Vectors {
                common: Window::new(
                    regs.mmio("virtio common"),
                    "virtio common",
                    at,
                    COMMON_CFG_LEN,
                ),
                entry: 0,
            })
        }
        _ => None,
    };
    Ok(Parts {
        transport: KitTransport::new(inner, vectors),
        hdrs,
        data,
    })
}

/// How the device signals, for a PD's start-up line: `IRQ pin 11` on an
/// IOAPIC line (the firmware's INTx line), `MSI-X vector 42` on an MSI.
pub struct Signal {
    pub irq: Irq,
    /// The function's interrupt line, from its configuration space.
    pub line: u8,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.irq.source {
            IrqSource::Msi { vector, .. } => write!(f, "MSI-X vector {vector}"),
            _ => write!(f, "IRQ pin {}", self.line),
        }
    }
}
