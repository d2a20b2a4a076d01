//! The type 0 configuration header's registers (PCI Local Bus 3.0 §6.1),
//! as typed descriptors on a function's configuration space.

use hwio::{ReadOnly, ReadWrite, Register, RegisterArray, register_bitfields};

register_bitfields![u16,
    /// Command register (offset 0x04).
    pub Command [
        IO_SPACE OFFSET(0) NUMBITS(1) [],
        MEMORY_SPACE OFFSET(1) NUMBITS(1) [],
        BUS_MASTER OFFSET(2) NUMBITS(1) [],
        SPECIAL_CYCLES OFFSET(3) NUMBITS(1) [],
        MWI OFFSET(4) NUMBITS(1) [],
        VGA_SNOOP OFFSET(5) NUMBITS(1) [],
        PARITY_ERROR_RESPONSE OFFSET(6) NUMBITS(1) [],
        SERR OFFSET(8) NUMBITS(1) [],
        FAST_BACK_TO_BACK OFFSET(9) NUMBITS(1) [],
        INTX_DISABLE OFFSET(10) NUMBITS(1) [],
    ],
    /// Status register (offset 0x06); the error bits are write-1-to-clear.
    pub Status [
        INTX_STATUS OFFSET(3) NUMBITS(1) [],
        CAPABILITIES_LIST OFFSET(4) NUMBITS(1) [],
        MASTER_DATA_PARITY_ERROR OFFSET(8) NUMBITS(1) [],
        SIGNALED_TARGET_ABORT OFFSET(11) NUMBITS(1) [],
        RECEIVED_TARGET_ABORT OFFSET(12) NUMBITS(1) [],
        RECEIVED_MASTER_ABORT OFFSET(13) NUMBITS(1) [],
        SIGNALED_SYSTEM_ERROR OFFSET(14) NUMBITS(1) [],
        DETECTED_PARITY_ERROR OFFSET(15) NUMBITS(1) [],
    ],
];

register_bitfields![u8,
    /// Header type (offset 0x0E).
    pub HeaderType [
        LAYOUT OFFSET(0) NUMBITS(7) [General = 0, PciBridge = 1, CardBus = 2],
        MULTIFUNCTION OFFSET(7) NUMBITS(1) [],
    ],
];

register_bitfields![u32,
    /// A base address register (offsets 0x10..0x24).
    pub Bar [
        IO OFFSET(0) NUMBITS(1) [],
        /// Memory BARs: where the decoder may be placed.
        MEM_TYPE OFFSET(1) NUMBITS(2) [Below4G = 0, Below1M = 1, Anywhere64 = 2],
        PREFETCHABLE OFFSET(3) NUMBITS(1) [],
    ],
];

pub const VENDOR_ID: Register<u16, (), ReadOnly> = Register::new(0x00);
pub const DEVICE_ID: Register<u16, (), ReadOnly> = Register::new(0x02);
pub const COMMAND: Register<u16, Command::Register, ReadWrite> = Register::new(0x04);
pub const STATUS: Register<u16, Status::Register, ReadWrite> = Register::new(0x06);
pub const REVISION: Register<u8, (), ReadOnly> = Register::new(0x08);
pub const PROG_IF: Register<u8, (), ReadOnly> = Register::new(0x09);
pub const SUBCLASS: Register<u8, (), ReadOnly> = Register::new(0x0a);
pub const CLASS: Register<u8, (), ReadOnly> = Register::new(0x0b);
pub const CACHE_LINE_SIZE: Register<u8, (), ReadWrite> = Register::new(0x0c);
pub const LATENCY_TIMER: Register<u8, (), ReadWrite> = Register::new(0x0d);
pub const HEADER_TYPE: Register<u8, HeaderType::Register, ReadOnly> = Register::new(0x0e);
pub const BARS: RegisterArray<u32, Bar::Register, ReadWrite> = RegisterArray::new(0x10, 4, 6);
pub const EXPANSION_ROM: Register<u32, (), ReadWrite> = Register::new(0x30);
pub const CAPABILITIES: Register<u8, (), ReadOnly> = Register::new(0x34);
pub const INTERRUPT_LINE: Register<u8, (), ReadWrite> = Register::new(0x3c);
pub const INTERRUPT_PIN: Register<u8, (), ReadOnly> = Register::new(0x3d);

/// Where the device-specific part (and the capability structures) begin.
pub const DEVICE_SPECIFIC: usize = 0x40;
/// Size of a function's conventional configuration space.
pub const SPACE: usize = 256;
/// Vendor ID read from a slot with no device behind it.
pub const NO_DEVICE: u16 = 0xffff;
/// Interrupt line value meaning "not connected" (PCI firmware spec).
pub const LINE_NONE: u8 = 0xff;

/// Command bits a driver may change through the pci PD: decoding, bus
/// mastering and the INTx mask. The rest stay as firmware left them.
pub const DRIVER_COMMAND_BITS: u16 = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 10);
/// Status bits a write clears (write 1 to clear).
pub const STATUS_CLEAR_BITS: u16 = 0xf900;
