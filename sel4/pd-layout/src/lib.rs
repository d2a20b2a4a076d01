//! Where things are in every PD, and the limits the system builder checks:
//! the address-space layout the monitor builds, and the CSpace slots of
//! libmicrokit, so that PD source carries over to the official Microkit.
//!
//! The CSpace layout is the same on every architecture; the address-space
//! layout and the limits are not, so each architecture has its module
//! ([`x86_64`], [`aarch32`]) with the same constant names, and a [`Layout`]
//! value for the host tools that build images for either. The constants
//! at the top level are the compiling target's (x86_64's on the host).
#![no_std]

/// Smallest page on every architecture; every map, region and stack is a
/// multiple of it.
pub const PAGE_SIZE_4K: u64 = 0x1000;

/// The per-PD IPC buffer is one 4 KiB page.
pub const IPC_BUFFER_SIZE: u64 = PAGE_SIZE_4K;
/// The unmapped page directly below every stack, so an overflow faults.
pub const STACK_GUARD_SIZE: u64 = PAGE_SIZE_4K;

/// Microkit's default PD stack (8 KiB).
pub const DEFAULT_STACK_SIZE: u64 = 0x2000;
pub const MIN_STACK_SIZE: u64 = PAGE_SIZE_4K;
pub const MAX_STACK_SIZE: u64 = 16 * 1024 * 1024;
/// Highest PD priority; 255 belongs to the monitor.
pub const MAX_PRIORITY: u8 = 254;
/// Microkit's default budget and period, in microseconds. Only an MCS kernel
/// would use them; seL4 5.0.0 here has none.
pub const DEFAULT_BUDGET_US: u64 = 1000;
/// Longest PD name Microkit accepts.
pub const MAX_PD_NAME_LEN: usize = 64;

/// A PD that defines a word-sized variable of this name gets the kernel's
/// TSC frequency in MHz (from bootinfo) written into it before it starts,
/// as libmicrokit's implicit symbols are filled in. The timer PD uses it to
/// cross-check its own calibration. (0 on ARM, which has no TSC.)
pub const IMPLICIT_TSC_MHZ_SYMBOL: &str = "dingo_bootinfo_tsc_mhz";

/// x86_64 (the `pc` board).
pub mod x86_64 {
    /// The large page x86_64 seL4 offers for memory regions (2 MiB).
    pub const PAGE_SIZE_LARGE: u64 = 0x20_0000;
    /// The same, by its usual name.
    pub const PAGE_SIZE_2M: u64 = PAGE_SIZE_LARGE;
    /// The per-PD IPC buffer: one 4 KiB page that the monitor maps here.
    pub const IPC_BUFFER_VADDR: u64 = 0x0000_0100_0000_0000;
    /// The PD's recovery page (see [`recovery`](crate::recovery)), right
    /// after the IPC buffer.
    pub const RECOVERY_VADDR: u64 = IPC_BUFFER_VADDR + super::PAGE_SIZE_4K;
    /// The stack occupies `stack_size` bytes ending (exclusive) here.
    pub const STACK_TOP: u64 = 0x0000_0080_0000_0000;
    /// First virtual address that user mappings may not reach (the canonical
    /// lower half of x86_64).
    pub const USER_VADDR_LIMIT: u64 = 0x0000_8000_0000_0000;
    /// Badge bits 63 (PPC) and 62 (fault) are taken, leaving ids 0..=61.
    pub const MAX_CHANNEL_ID: u64 = 61;
    /// Highest `ioport` id (libmicrokit slots 394 + id).
    pub const MAX_IOPORT_ID: u64 = 61;
    /// seL4 x86 IRQ "vector" argument range (irq_user_max - irq_user_min).
    pub const MAX_IRQ_VECTOR: u64 = 107;
    /// Pins per IOAPIC (seL4 IOAPIC_IRQ_LINES).
    pub const IOAPIC_PINS: u64 = 24;
    /// Size of the x86 I/O port space.
    pub const IOPORT_SPACE: u64 = 0x1_0000;
}

/// 32-bit ARM, ARMv7-A (the `sabrelite` board, i.MX6).
pub mod aarch32 {
    /// The large page used for memory regions: a 1 MiB section, which the
    /// page directory maps without a page table. (seL4 also has 64 KiB
    /// pages on ARM; sections serve large regions better.)
    pub const PAGE_SIZE_LARGE: u64 = 0x10_0000;
    /// The stack occupies `stack_size` bytes ending (exclusive) here.
    pub const STACK_TOP: u64 = 0xc000_0000;
    /// The per-PD IPC buffer, well above the stack.
    pub const IPC_BUFFER_VADDR: u64 = 0xd000_0000;
    /// The PD's recovery page (see [`recovery`](crate::recovery)), right
    /// after the IPC buffer.
    pub const RECOVERY_VADDR: u64 = IPC_BUFFER_VADDR + super::PAGE_SIZE_4K;
    /// The kernel's window starts here (kernelBase): user mappings stay
    /// below.
    pub const USER_VADDR_LIMIT: u64 = 0xe000_0000;
    /// Badges are 28 bits on 32-bit seL4: one bit per channel leaves ids
    /// 0..=27 (a PPC badge is bit 27 plus the channel id, on the endpoint).
    pub const MAX_CHANNEL_ID: u64 = 27;
    /// The GIC's shared peripheral interrupts that the i.MX6 has, the only
    /// ones a PD may take (0..=31 are the CPU's own, the kernel's timer
    /// among them; the kernel's maxIRQ is 159).
    pub const FIRST_SPI: u64 = 32;
    pub const MAX_IRQ: u64 = 159;
}

#[cfg(target_arch = "arm")]
pub use aarch32::*;
#[cfg(not(target_arch = "arm"))]
pub use x86_64::*;

/// Log2 of the large page size of the compiling target.
pub const LARGE_PAGE_BITS: u8 = PAGE_SIZE_LARGE.trailing_zeros() as u8;

/// An architecture's layout and limits, for tools that build images for
/// either architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The architecture's name as messages say it.
    pub arch: &'static str,
    pub page_size_large: u64,
    pub ipc_buffer_vaddr: u64,
    pub recovery_vaddr: u64,
    pub stack_top: u64,
    pub user_vaddr_limit: u64,
    pub max_channel_id: u64,
}

impl Layout {
    pub const X86_64: Layout = Layout {
        arch: "x86_64",
        page_size_large: x86_64::PAGE_SIZE_LARGE,
        ipc_buffer_vaddr: x86_64::IPC_BUFFER_VADDR,
        recovery_vaddr: x86_64::RECOVERY_VADDR,
        stack_top: x86_64::STACK_TOP,
        user_vaddr_limit: x86_64::USER_VADDR_LIMIT,
        max_channel_id: x86_64::MAX_CHANNEL_ID,
    };
    pub const AARCH32: Layout = Layout {
        arch: "32-bit ARM",
        page_size_large: aarch32::PAGE_SIZE_LARGE,
        ipc_buffer_vaddr: aarch32::IPC_BUFFER_VADDR,
        recovery_vaddr: aarch32::RECOVERY_VADDR,
        stack_top: aarch32::STACK_TOP,
        user_vaddr_limit: aarch32::USER_VADDR_LIMIT,
        max_channel_id: aarch32::MAX_CHANNEL_ID,
    };
}

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
    /// I/O port caps for the ioport with id `id` (x86 only).
    pub const IOPORT_BASE: u64 = 394;
    /// The PD's CNode has 2^SIZE_BITS slots, enough for every range above.
    pub const SIZE_BITS: u8 = 9;

    /// Badge bit of a protected procedure call on the PD's endpoint.
    /// libmicrokit uses bit 63, but seL4 5.0.0 endpoint badges are 28 bits
    /// wide (on x86_64 notification badges keep all 64; on 32-bit ARM they
    /// are 28 bits too), so the top endpoint bit stands in; the channel id
    /// is in the low bits.
    pub const BADGE_PPC: u64 = 1 << 27;

    /// The channel id the monitor's own protected procedure calls arrive
    /// on (a quiesce request to the pci PD). No system.xml channel has it
    /// (ids stop at 61, 27 on ARM), so only the monitor holds an endpoint
    /// cap with this badge.
    pub const MONITOR_CALLER: u8 = 63;
}

/// The monitor's protected procedure calls into PDs (on
/// [`cspace::MONITOR_CALLER`]), by label.
pub mod monitor_call {
    /// To the PD that serves PCI: turn bus mastering off for every
    /// function of the driver on channel MR0 (the caller's end at the
    /// server). The reply's label is 0 and MR0 the number of functions.
    pub const QUIESCE: u64 = 16;
}

/// The recovery page: one 4 KiB page the monitor maps read-write at
/// `RECOVERY_VADDR` in every PD, and reads itself. The PD's runtime counts
/// its progress there; the monitor says which incarnation the PD is and
/// how it is supervised. Words (u64 on every architecture, little-endian
/// like the machines), by index:
pub mod recovery {
    /// Written by the PD's runtime: one more each time it starts handling
    /// an event and each time it goes back to waiting, so odd while it
    /// handles one. The monitor sets it to 1 (busy: starting up) before it
    /// starts the PD, and watches it against the PD's handler budget.
    pub const PROGRESS: usize = 0;
    /// Written by the monitor: 1 for the PD's first instance, one more per
    /// restart.
    pub const INCARNATION: usize = 1;
    /// Written by the monitor: [`RESTARTABLE`] and [`BUDGETED`] bits.
    pub const FLAGS: usize = 2;
    /// Written by the monitor: the handler budget in milliseconds (0: none).
    pub const BUDGET_MS: usize = 3;
    /// Words in use; the rest of the page is zero.
    pub const WORDS: usize = 4;

    /// The monitor restarts the PD when it fails: the PD may make protocol
    /// violations fatal, since a fault costs it only a restart.
    pub const RESTARTABLE: u64 = 1 << 0;
    /// The monitor holds the PD to a handler budget.
    pub const BUDGETED: u64 = 1 << 1;
}
