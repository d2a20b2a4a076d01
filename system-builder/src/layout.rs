// Plain comments, not `//!`: an inner doc comment would stop this file
// from being `include!`d inside another module.

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
