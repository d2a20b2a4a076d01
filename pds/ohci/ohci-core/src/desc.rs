//! The descriptors the controller reads from memory (OHCI 1.0a §4): the
//! endpoint descriptor (ED), the general transfer descriptor (TD) and the
//! host controller communications area (HCCA). Fields are typed with
//! tock-registers; the structs are plain words for `DmaBuf::read`/`write`.

use dma::{Pod, Zeroable};
use hwio::register_bitfields;

register_bitfields![u32,
    /// ED word 0.
    pub EdFlags [
        /// Function (device) address.
        FA OFFSET(0) NUMBITS(7) [],
        /// Endpoint number.
        EN OFFSET(7) NUMBITS(4) [],
        /// Direction; `FromTd` for control endpoints.
        D OFFSET(11) NUMBITS(2) [FromTd = 0, Out = 1, In = 2],
        /// Low speed.
        S OFFSET(13) NUMBITS(1) [],
        /// Skip: the controller passes this ED by.
        K OFFSET(14) NUMBITS(1) [],
        /// Isochronous TD format.
        F OFFSET(15) NUMBITS(1) [],
        /// Maximum packet size.
        MPS OFFSET(16) NUMBITS(11) [],
    ],
    /// ED word 2: the TD queue head and two flags in its low bits.
    pub EdHead [
        /// Halted: the controller stopped on an error in this queue.
        H OFFSET(0) NUMBITS(1) [],
        /// Toggle carry: the data toggle of the next packet.
        C OFFSET(1) NUMBITS(1) [],
    ],
    /// TD word 0.
    pub TdFlags [
        /// Buffer rounding: a short last packet is not an error.
        R OFFSET(18) NUMBITS(1) [],
        /// Direction/PID (ignored unless the ED's direction is FromTd).
        DP OFFSET(19) NUMBITS(2) [Setup = 0, Out = 1, In = 2],
        /// Delay interrupt: frames before the done queue must be written
        /// (7: no interrupt for this TD).
        DI OFFSET(21) NUMBITS(3) [],
        /// Data toggle: from the ED's carry, or DATA0/DATA1 explicitly.
        T OFFSET(24) NUMBITS(2) [Carry = 0, Data0 = 2, Data1 = 3],
        /// Error count.
        EC OFFSET(26) NUMBITS(2) [],
        /// Condition code; 0xF (not accessed) until the controller retires it.
        CC OFFSET(28) NUMBITS(4) [],
    ],
];

/// The low 4 bits of ED and TD pointers are flags or zero.
pub const POINTER_MASK: u32 = !0xf;

/// An endpoint descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[bytemuck(crate = "dma::bytemuck")]
#[repr(C)]
pub struct Ed {
    pub flags: u32,
    /// Physical address of the TD that ends the queue (never processed).
    pub tail: u32,
    /// Physical address of the next TD to process, with H and C.
    pub head: u32,
    /// Physical address of the next ED in its list.
    pub next: u32,
}

/// A general transfer descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[bytemuck(crate = "dma::bytemuck")]
#[repr(C)]
pub struct Td {
    pub flags: u32,
    /// Current buffer pointer: the next byte to move, 0 when all moved.
    pub cbp: u32,
    pub next: u32,
    /// Buffer end: the last byte.
    pub be: u32,
}

/// Both are 16 bytes, the alignment the controller requires of them.
pub const DESC_SIZE: usize = 16;
const _: () = assert!(core::mem::size_of::<Ed>() == DESC_SIZE);
const _: () = assert!(core::mem::size_of::<Td>() == DESC_SIZE);

/// The HCCA: 256 bytes, 256-aligned.
pub mod hcca {
    pub const SIZE: usize = 256;
    pub const ALIGN: usize = 256;
    /// 32 interrupt list heads, one per frame number modulo 32.
    pub const INTERRUPT_TABLE: usize = 0x00;
    pub const SLOTS: usize = 32;
    /// The frame number the controller wrote last (16 bits).
    pub const FRAME_NUMBER: usize = 0x80;
    /// The done queue head the controller wrote; bit 0 says other
    /// interrupts are pending too.
    pub const DONE_HEAD: usize = 0x84;
}

/// Condition codes (§4.3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    NoError,
    Crc,
    BitStuffing,
    DataToggleMismatch,
    Stall,
    DeviceNotResponding,
    PidCheckFailure,
    UnexpectedPid,
    DataOverrun,
    DataUnderrun,
    BufferOverrun,
    BufferUnderrun,
    NotAccessed,
    Reserved(u8),
}

impl Condition {
    pub const fn from_code(cc: u32) -> Self {
        match cc {
            0 => Condition::NoError,
            1 => Condition::Crc,
            2 => Condition::BitStuffing,
            3 => Condition::DataToggleMismatch,
            4 => Condition::Stall,
            5 => Condition::DeviceNotResponding,
            6 => Condition::PidCheckFailure,
            7 => Condition::UnexpectedPid,
            8 => Condition::DataOverrun,
            9 => Condition::DataUnderrun,
            12 => Condition::BufferOverrun,
            13 => Condition::BufferUnderrun,
            14 | 15 => Condition::NotAccessed,
            c => Condition::Reserved(c as u8),
        }
    }
}
