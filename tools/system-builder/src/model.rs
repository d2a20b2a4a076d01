//! The validated system: what the plan encoder, the image packer and the
//! report writer consume. Every reference is resolved to an index into the
//! owning `System` vector, every size and address is a `u64`, and every item
//! keeps the place in system.xml it came from so that later checks can still
//! point at it.

use std::fmt;
use std::path::PathBuf;

pub use boot_plan::layout::*;

/// The board a system is built for. It decides the architecture: the
/// address-space layout and limits ([`Layout`]), the program format, and
/// which interrupt sources, I/O ports and page sizes system.xml may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Board {
    /// x86_64 PCs and QEMU's `pc` machine.
    #[default]
    Pc,
    /// The i.MX6 Sabre Lite (32-bit ARM, Cortex-A9), and QEMU's `sabrelite`.
    Sabrelite,
}

impl Board {
    pub const ALL: [Board; 2] = [Board::Pc, Board::Sabrelite];

    /// The name `--board` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Board::Pc => "pc",
            Board::Sabrelite => "sabrelite",
        }
    }

    pub fn from_name(name: &str) -> Option<Board> {
        Board::ALL.into_iter().find(|b| b.name() == name)
    }

    pub const fn layout(self) -> Layout {
        match self {
            Board::Pc => Layout::X86_64,
            Board::Sabrelite => Layout::AARCH32,
        }
    }

    /// Whether the board is 32-bit ARM (GIC interrupts, no I/O ports).
    pub const fn is_arm(self) -> bool {
        matches!(self, Board::Sabrelite)
    }

    /// The large page memory regions may use.
    pub const fn large_page(self) -> PageSize {
        match self {
            Board::Pc => PageSize::Large,
            Board::Sabrelite => PageSize::Section,
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A 1-based line and column in system.xml (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourcePos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Access rights of a map or an ELF segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Perms {
    pub const fn new(read: bool, write: bool, execute: bool) -> Perms {
        Perms {
            read,
            write,
            execute,
        }
    }
}

impl fmt::Display for Perms {
    /// `rw-` style, as the report prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = |on: bool, c: char| if on { c } else { '-' };
        write!(
            f,
            "{}{}{}",
            flag(self.read, 'r'),
            flag(self.write, 'w'),
            flag(self.execute, 'x')
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageSize {
    /// 4 KiB
    Small,
    /// 2 MiB (x86_64)
    Large,
    /// 1 MiB, an ARM section
    Section,
}

impl PageSize {
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Small => PAGE_SIZE_4K,
            PageSize::Large => x86_64::PAGE_SIZE_LARGE,
            PageSize::Section => aarch32::PAGE_SIZE_LARGE,
        }
    }

    /// Log2 of the size.
    pub const fn bits(self) -> u8 {
        self.bytes().trailing_zeros() as u8
    }

    /// The page size of `bytes` that `board` has.
    pub(crate) fn from_bytes(board: Board, bytes: u64) -> Option<PageSize> {
        [PageSize::Small, board.large_page()]
            .into_iter()
            .find(|p| p.bytes() == bytes)
    }
}

/// A `memory_region`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRegion {
    pub name: String,
    pub size: u64,
    pub page_size: PageSize,
    /// Set for device memory (or RAM at a fixed address); `None` means the
    /// monitor allocates the region from RAM.
    pub phys_addr: Option<u64>,
    pub pos: SourcePos,
}

impl MemoryRegion {
    pub fn page_count(&self) -> u64 {
        self.size / self.page_size.bytes()
    }
}

/// One PT_LOAD segment of a program image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub filesz: u64,
    /// Offset of the segment's file bytes in the ELF.
    pub offset: u64,
    pub perms: Perms,
}

impl Segment {
    /// The whole pages this segment occupies once mapped.
    pub fn page_range(&self) -> (u64, u64) {
        (
            align_down(self.vaddr, PAGE_SIZE_4K),
            align_up(self.vaddr + self.memsz, PAGE_SIZE_4K),
        )
    }
}

/// A PD's `program_image`, already read: no second ELF parse is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramImage {
    /// The `path` attribute as written.
    pub declared_path: String,
    /// Where it was found through the search directories.
    pub path: PathBuf,
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// The manifest and config block of a program built with a `pd.toml`.
    pub embedded: Option<EmbeddedConfig>,
    pub pos: SourcePos,
}

/// What a program built with a `pd.toml` carries: its manifest (as
/// `pd_manifest::codegen::embedded` wrote it) and the block of words its
/// config is filled into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedConfig {
    pub manifest: Vec<u8>,
    pub block_vaddr: u64,
    pub block_size: u64,
}

/// A PD's config: the program's manifest, the values bound to its roles,
/// and the words that carry them into the config block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdConfig {
    pub program: pd_manifest::Program,
    pub block_vaddr: u64,
    pub words: Vec<pd_manifest::encode::Word>,
    /// One line per role for the report: the role and what it is bound to.
    pub bindings: Vec<String>,
}

/// A `map` of a region into a PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// Index into `System::memory_regions`.
    pub mr: usize,
    pub vaddr: u64,
    pub perms: Perms,
    pub cached: bool,
    pub pos: SourcePos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IrqTrigger {
    Level,
    Edge,
}

impl IrqTrigger {
    /// The `level` argument of seL4_IRQControl_GetIOAPIC.
    pub const fn sel4_level(self) -> u64 {
        match self {
            IrqTrigger::Level => 1,
            IrqTrigger::Edge => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IrqPolarity {
    ActiveHigh,
    ActiveLow,
}

impl IrqPolarity {
    /// The `polarity` argument of seL4_IRQControl_GetIOAPIC (the kernel
    /// writes it into the redirection entry's polarity bit: 1 = active low).
    pub const fn sel4_polarity(self) -> u64 {
        match self {
            IrqPolarity::ActiveHigh => 0,
            IrqPolarity::ActiveLow => 1,
        }
    }
}

/// A PCI function address `bus:dev.func`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciAddress {
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{:x}", self.bus, self.dev, self.func)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IrqKind {
    Ioapic {
        ioapic: u64,
        pin: u64,
        trigger: IrqTrigger,
        polarity: IrqPolarity,
        vector: u64,
    },
    Msi {
        pci: PciAddress,
        handle: u64,
        vector: u64,
    },
    /// An ARM GIC interrupt (`<irq irq="...">`), level-triggered.
    Gic { irq: u64 },
}

/// An `irq`, delivered on channel `id` of its PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irq {
    pub id: u64,
    pub kind: IrqKind,
    pub pos: SourcePos,
}

impl Irq {
    /// The x86 vector; 0 for a GIC interrupt, which has none.
    pub fn vector(&self) -> u64 {
        match self.kind {
            IrqKind::Ioapic { vector, .. } | IrqKind::Msi { vector, .. } => vector,
            IrqKind::Gic { .. } => 0,
        }
    }
}

/// An `ioport` range `[addr, addr + size)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoPort {
    pub id: u64,
    pub addr: u64,
    pub size: u64,
    pub pos: SourcePos,
}

/// What a setvar symbol receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetVarValue {
    /// `map setvar_vaddr`: the map's virtual address.
    Vaddr(u64),
    /// `map setvar_size`: the mapped region's size.
    Size(u64),
    /// `setvar region_paddr`: the physical address of region `mr`, known at
    /// build time only if it has a `phys_addr`.
    RegionPaddr { mr: usize },
    /// `setvar_id` on an `irq`, `ioport` or channel `end`.
    Id(u64),
    /// `ioport setvar_addr`: the first port of the range.
    IoPortAddr(u64),
    /// Implicit: the program defines `IMPLICIT_TSC_MHZ_SYMBOL`; the monitor
    /// writes bootinfo's TSC frequency there.
    BootInfoTscMhz,
}

/// A word-sized ELF variable that the builder or monitor patches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetVar {
    pub symbol: String,
    /// Where the 8-byte symbol lives in the PD's address space; it always lies
    /// inside one loadable segment.
    pub symbol_vaddr: u64,
    pub value: SetVarValue,
    pub pos: SourcePos,
}

impl SetVar {
    /// The value, if the build already knows it (everything except the
    /// physical address of a region the monitor allocates).
    pub fn known_value(&self, system: &System) -> Option<u64> {
        match self.value {
            SetVarValue::Vaddr(v)
            | SetVarValue::Size(v)
            | SetVarValue::Id(v)
            | SetVarValue::IoPortAddr(v) => Some(v),
            SetVarValue::RegionPaddr { mr } => system.memory_regions[mr].phys_addr,
            SetVarValue::BootInfoTscMhz => None,
        }
    }
}

/// A virtual range the monitor owns in every PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedArea {
    pub what: &'static str,
    pub start: u64,
    pub end: u64,
}

/// The reserved areas of a PD with the given stack size on `board`: stack,
/// its guard page, and the IPC buffer.
pub fn reserved_areas(board: Board, stack_size: u64) -> [ReservedArea; 4] {
    let layout = board.layout();
    let stack_bottom = layout.stack_top - stack_size;
    [
        ReservedArea {
            what: "stack",
            start: stack_bottom,
            end: layout.stack_top,
        },
        ReservedArea {
            what: "stack guard page",
            start: stack_bottom - STACK_GUARD_SIZE,
            end: stack_bottom,
        },
        ReservedArea {
            what: "IPC buffer",
            start: layout.ipc_buffer_vaddr,
            end: layout.ipc_buffer_vaddr + IPC_BUFFER_SIZE,
        },
        ReservedArea {
            what: "recovery page",
            start: layout.recovery_vaddr,
            end: layout.recovery_vaddr + PAGE_SIZE_4K,
        },
    ]
}

/// How the monitor supervises a PD beyond reporting its faults (the
/// wiring file's `restart` and `budget_ms` of `[pd.<name>]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub restart: Option<boot_plan::Restart>,
    pub budget_ms: Option<u32>,
}

/// A PCI function a driver reaches through the PD that serves PCI: what
/// the monitor quiesces before it reuses the driver's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciLink {
    pub bdf: pd_config::Bdf,
    /// The serving PD's index.
    pub server: usize,
    /// The driver's channel id at the server.
    pub server_channel: u8,
}

/// The monitor's periodic interrupt for budgets and backoff (the wiring
/// file's `[monitor]`): HPET timer 1 under LegacyReplacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorTick {
    /// The HPET's register region.
    pub hpet: usize,
    pub pin: u64,
    pub vector: u64,
    pub period_us: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionDomain {
    pub name: String,
    /// The system's board (for the PD's address-space layout).
    pub board: Board,
    pub priority: u8,
    pub stack_size: u64,
    /// Accepted for Microkit compatibility but unused without MCS; a
    /// non-default value produced a warning.
    pub budget_us: u64,
    pub period_us: u64,
    pub program_image: ProgramImage,
    pub maps: Vec<Map>,
    pub irqs: Vec<Irq>,
    pub ioports: Vec<IoPort>,
    pub setvars: Vec<SetVar>,
    /// Set when the program has a manifest (see [`PdConfig`]).
    pub config: Option<PdConfig>,
    /// From the wiring file; none by default.
    pub recovery: Recovery,
    /// The PCI functions its config reaches (set with the config).
    pub pci: Vec<PciLink>,
    pub pos: SourcePos,
}

impl ProtectionDomain {
    /// Lowest address of the stack (the guard page lies just below).
    pub fn stack_bottom(&self) -> u64 {
        self.board.layout().stack_top - self.stack_size
    }

    pub fn reserved_areas(&self) -> [ReservedArea; 4] {
        reserved_areas(self.board, self.stack_size)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEnd {
    /// Index into `System::protection_domains`.
    pub pd: usize,
    pub id: u64,
    /// This end may call the other end's `protected` (the other end has a
    /// strictly higher priority).
    pub pp: bool,
    /// This end may notify the other end.
    pub notify: bool,
    pub pos: SourcePos,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub ends: [ChannelEnd; 2],
    pub pos: SourcePos,
}

/// A whole validated system description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// The file name diagnostics use.
    pub file: String,
    pub board: Board,
    pub protection_domains: Vec<ProtectionDomain>,
    pub memory_regions: Vec<MemoryRegion>,
    pub channels: Vec<Channel>,
    /// The monitor's tick, when the wiring file gives it one.
    pub tick: Option<MonitorTick>,
}

impl System {
    pub fn pd_index(&self, name: &str) -> Option<usize> {
        self.protection_domains.iter().position(|p| p.name == name)
    }

    pub fn pd(&self, name: &str) -> Option<&ProtectionDomain> {
        self.pd_index(name).map(|i| &self.protection_domains[i])
    }

    pub fn region_index(&self, name: &str) -> Option<usize> {
        self.memory_regions.iter().position(|m| m.name == name)
    }

    pub fn region(&self, name: &str) -> Option<&MemoryRegion> {
        self.region_index(name).map(|i| &self.memory_regions[i])
    }

    /// Whether some channel end calls into PD `pd`, which then needs an
    /// endpoint to receive protected procedure calls on.
    pub fn is_pp_callee(&self, pd: usize) -> bool {
        self.channels.iter().any(|c| {
            let [a, b] = &c.ends;
            (a.pp && b.pd == pd) || (b.pp && a.pd == pd)
        })
    }

    /// The channel ends that belong to PD `pd`, each with its peer end.
    pub fn ends_of(&self, pd: usize) -> impl Iterator<Item = (&ChannelEnd, &ChannelEnd)> {
        self.channels.iter().filter_map(move |c| {
            let [a, b] = &c.ends;
            if a.pd == pd {
                Some((a, b))
            } else if b.pd == pd {
                Some((b, a))
            } else {
                None
            }
        })
    }
}

pub(crate) const fn align_down(v: u64, align: u64) -> u64 {
    v & !(align - 1)
}

pub(crate) const fn align_up(v: u64, align: u64) -> u64 {
    align_down(v.saturating_add(align - 1), align)
}
