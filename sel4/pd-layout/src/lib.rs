//! Where things are in every PD, and the limits the system builder checks:
//! the address-space layout the monitor builds, and the CSpace slots of
//! libmicrokit, so that PD source carries over to the official Microkit.
#![no_std]

/// Smallest page on x86_64; every map, region and stack is a multiple of it.
pub const PAGE_SIZE_4K: u64 = 0x1000;
/// The large page x86_64 seL4 offers for memory regions.
pub const PAGE_SIZE_2M: u64 = 0x20_0000;

/// The per-PD IPC buffer: one 4 KiB page that the monitor maps here.
pub const IPC_BUFFER_VADDR: u64 = 0x0000_0100_0000_0000;
/// Size of the IPC buffer area.
pub const IPC_BUFFER_SIZE: u64 = PAGE_SIZE_4K;
/// The stack occupies `stack_size` bytes ending (exclusive) here.
pub const STACK_TOP: u64 = 0x0000_0080_0000_0000;
/// The unmapped page directly below every stack, so an overflow faults.
pub const STACK_GUARD_SIZE: u64 = PAGE_SIZE_4K;
/// First virtual address that user mappings may not reach (the canonical
/// lower half of x86_64).
pub const USER_VADDR_LIMIT: u64 = 0x0000_8000_0000_0000;

/// Microkit's default PD stack (8 KiB).
pub const DEFAULT_STACK_SIZE: u64 = 0x2000;
pub const MIN_STACK_SIZE: u64 = PAGE_SIZE_4K;
pub const MAX_STACK_SIZE: u64 = 16 * 1024 * 1024;
/// Highest PD priority; 255 belongs to the monitor.
pub const MAX_PRIORITY: u8 = 254;
/// Badge bits 63 (PPC) and 62 (fault) are taken, leaving ids 0..=61.
pub const MAX_CHANNEL_ID: u64 = 61;
/// Highest `ioport` id (libmicrokit slots 394 + id).
pub const MAX_IOPORT_ID: u64 = 61;
/// Microkit's default budget and period, in microseconds. Only an MCS kernel
/// would use them; seL4 5.0.0 here has none.
pub const DEFAULT_BUDGET_US: u64 = 1000;
/// Longest PD name Microkit accepts.
pub const MAX_PD_NAME_LEN: usize = 64;
/// seL4 x86 IRQ "vector" argument range (irq_user_max - irq_user_min).
pub const MAX_IRQ_VECTOR: u64 = 107;
/// Pins per IOAPIC (seL4 IOAPIC_IRQ_LINES).
pub const IOAPIC_PINS: u64 = 24;
/// Size of the x86 I/O port space.
pub const IOPORT_SPACE: u64 = 0x1_0000;

/// A PD that defines a word-sized variable of this name gets the kernel's
/// TSC frequency in MHz (from bootinfo) written into it before it starts,
/// as libmicrokit's implicit symbols are filled in. The timer PD uses it to
/// cross-check its own calibration.
pub const IMPLICIT_TSC_MHZ_SYMBOL: &str = "dingo_bootinfo_tsc_mhz";

/// libmicrokit's CSpace layout: the slot of each capability in a PD's CSpace.
pub mod cspace {
    /// What the PD's event loop waits on: its endpoint if it receives
    /// protected procedure calls, otherwise its notification.
    pub const INPUT: u64 = 1;
    /// Reply object slot (MCS only; unused on seL4 5.0.0).
    pub const REPLY: u64 = 4;
    /// Badged endpoint to the monitor; also the TCB's fault endpoint.
    pub const MONITOR_EP: u64 = 5;
    /// The PD's own TCB.
    pub const TCB: u64 = 6;
    /// Notification caps to the peer of channel `ch`: `NOTIFY_BASE + ch`.
    pub const NOTIFY_BASE: u64 = 10;
    /// Endpoint caps for protected procedure calls on channel `ch`.
    pub const PPC_BASE: u64 = 74;
    /// IRQ handler caps for the irq with id `ch`.
    pub const IRQ_BASE: u64 = 138;
    /// TCBs of child PDs (not supported by this builder).
    pub const CHILD_TCB_BASE: u64 = 202;
    /// I/O port caps for the ioport with id `id`.
    pub const IOPORT_BASE: u64 = 394;
    /// The PD's CNode has 2^SIZE_BITS slots, enough for every range above.
    pub const SIZE_BITS: u8 = 9;

    /// Badge bit of a protected procedure call on the PD's endpoint.
    /// libmicrokit uses bit 63, but seL4 5.0.0 endpoint badges are 28 bits
    /// wide (notification badges keep all 64), so the top endpoint bit
    /// stands in; the channel id is in the low bits.
    pub const BADGE_PPC: u64 = 1 << 27;
    /// Badge bit of a fault of a child PD.
    pub const BADGE_FAULT: u64 = 1 << 62;
}
