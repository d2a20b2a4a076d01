//! The RTL8139(C+) registers the driver uses, with their fields, named as
//! in Realtek's datasheet (and QEMU's hw/net/rtl8139.c, which names some of
//! them differently: noted where it matters).

use hwio::{ReadOnly, ReadWrite, Register, RegisterArray, WriteOnly, register_bitfields};

register_bitfields![u8,
    /// Command register.
    pub Command [
        /// Receive buffer empty (read only): the device's write pointer
        /// equals the driver's read pointer.
        BUFE OFFSET(0) NUMBITS(1) [],
        /// Transmitter enable.
        TE OFFSET(2) NUMBITS(1) [],
        /// Receiver enable.
        RE OFFSET(3) NUMBITS(1) [],
        /// Software reset; reads 1 until the reset is done.
        RST OFFSET(4) NUMBITS(1) [],
    ],
    /// Media status.
    pub MediaStatus [
        /// Link down (inverse of the link bit in BMSR).
        LINKB OFFSET(2) NUMBITS(1) [],
    ],
    /// C+ transmit poll.
    pub TxPoll [
        /// Normal-priority queue: the device reads the transmit ring.
        NPQ OFFSET(6) NUMBITS(1) [],
    ],
];

register_bitfields![u16,
    /// Interrupt status (write 1 to clear) and interrupt mask share this
    /// layout.
    pub Interrupt [
        /// A frame was received.
        ROK OFFSET(0) NUMBITS(1) [],
        /// A frame was received with an error.
        RER OFFSET(1) NUMBITS(1) [],
        /// A frame was transmitted.
        TOK OFFSET(2) NUMBITS(1) [],
        /// A transmit was aborted.
        TER OFFSET(3) NUMBITS(1) [],
        /// Receive buffer overflow (normal mode) or receive descriptor
        /// unavailable (C+ mode): the device dropped a frame.
        RXOVW OFFSET(4) NUMBITS(1) [],
        /// Packet underrun or link change (QEMU raises it on `set_link`).
        PUN_LINKCHG OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO overflow.
        FOVW OFFSET(6) NUMBITS(1) [],
        /// C+: transmit descriptor unavailable.
        TDU OFFSET(7) NUMBITS(1) [],
        /// Cable length change.
        LENCHG OFFSET(13) NUMBITS(1) [],
        /// The general-purpose timer expired.
        TIMEOUT OFFSET(14) NUMBITS(1) [],
        /// System error on the PCI bus.
        SERR OFFSET(15) NUMBITS(1) [],
    ],
    /// Basic mode status (the PHY's MII status register).
    pub BasicModeStatus [
        /// Link is up.
        LINK OFFSET(2) NUMBITS(1) [],
    ],
    /// C+ command.
    pub CpCommand [
        /// C+ transmit enable.
        CPTX OFFSET(0) NUMBITS(1) [],
        /// C+ receive enable.
        CPRX OFFSET(1) NUMBITS(1) [],
        /// Receive checksum offload.
        RXCHKSUM OFFSET(5) NUMBITS(1) [],
        /// Receive VLAN de-tagging.
        RXVLAN OFFSET(6) NUMBITS(1) [],
    ],
];

register_bitfields![u32,
    /// Transmit status of descriptor N (normal mode).
    pub TxStatus [
        /// Bytes to send; writing it (with OWN clear) starts the transmit.
        SIZE OFFSET(0) NUMBITS(13) [],
        /// The device is done with the descriptor (set by the device).
        OWN OFFSET(13) NUMBITS(1) [],
        /// Transmit FIFO underrun.
        TUN OFFSET(14) NUMBITS(1) [],
        /// Transmitted.
        TOK OFFSET(15) NUMBITS(1) [],
        /// Early transmit threshold, in units of 32 bytes (0: 8 bytes).
        ERTXTH OFFSET(16) NUMBITS(6) [],
        /// Out of window collision.
        OWC OFFSET(29) NUMBITS(1) [],
        /// Transmit aborted.
        TABT OFFSET(30) NUMBITS(1) [],
        /// Carrier sense lost.
        CRS OFFSET(31) NUMBITS(1) [],
    ],
    /// Transmit configuration. Writes are ignored unless Command.TE is set.
    pub TxConfig [
        CLRABT OFFSET(0) NUMBITS(1) [],
        /// Maximum DMA burst per transfer.
        MXDMA OFFSET(8) NUMBITS(3) [Burst1024 = 6, Burst2048 = 7],
        /// Interframe gap; only 3 (9.6 us at 10 Mb/s) is IEEE 802.3.
        IFG OFFSET(24) NUMBITS(2) [Standard = 3],
    ],
    /// Receive configuration. In QEMU every write resets the ring pointers.
    pub RxConfig [
        /// Accept all physical addresses (promiscuous).
        AAP OFFSET(0) NUMBITS(1) [],
        /// Accept frames to this NIC's address.
        APM OFFSET(1) NUMBITS(1) [],
        /// Accept multicast frames (filtered by MAR0-7).
        AM OFFSET(2) NUMBITS(1) [],
        /// Accept broadcast frames.
        AB OFFSET(3) NUMBITS(1) [],
        /// Accept runts.
        AR OFFSET(4) NUMBITS(1) [],
        /// Accept frames with errors.
        AER OFFSET(5) NUMBITS(1) [],
        /// Do not wrap frames at the ring's end but write past it (QEMU
        /// calls this bit RxWrap). This driver leaves it clear, so that
        /// the device never writes outside the ring.
        WRAP OFFSET(7) NUMBITS(1) [],
        /// Maximum DMA burst.
        MXDMA OFFSET(8) NUMBITS(3) [Unlimited = 7],
        /// Receive ring length: 8 KiB << RBLEN.
        RBLEN OFFSET(11) NUMBITS(2) [K8 = 0, K16 = 1, K32 = 2, K64 = 3],
        /// Receive FIFO threshold.
        RXFTH OFFSET(13) NUMBITS(3) [None = 7],
    ],
];

/// Receive packet header status, the low half of the 4-byte header the
/// device writes before each frame in the normal-mode ring.
pub mod rx_status {
    /// Received OK.
    pub const ROK: u16 = 1 << 0;
    /// Frame alignment error.
    pub const FAE: u16 = 1 << 1;
    /// CRC error.
    pub const CRC: u16 = 1 << 2;
    /// Longer than 4 KiB.
    pub const LONG: u16 = 1 << 3;
    /// Shorter than 64 bytes.
    pub const RUNT: u16 = 1 << 4;
    /// Invalid symbol error.
    pub const ISE: u16 = 1 << 5;
    /// Every error bit.
    pub const ERRORS: u16 = FAE | CRC | LONG | RUNT | ISE;
    /// While the device is still copying a frame, the length reads as this
    /// (early receive); Linux's 8139too waits for it to change.
    pub const EARLY_RX_LEN: u16 = 0xfff0;
}

/// ID registers 0-5: the MAC address (loaded from the EEPROM at reset).
pub const IDR: RegisterArray<u8, (), ReadWrite> = RegisterArray::new(0x00, 1, 6);
/// Transmit status of descriptors 0-3 (normal mode). In C+ mode the first
/// two are the tally-counter dump address instead.
pub const TSD: RegisterArray<u32, TxStatus::Register, ReadWrite> = RegisterArray::new(0x10, 4, 4);
/// Transmit start addresses of descriptors 0-3 (normal mode; 32-bit). In C+
/// mode TSAD0/TSAD1 hold the transmit descriptor ring's 64-bit address.
pub const TSAD: RegisterArray<u32, (), ReadWrite> = RegisterArray::new(0x20, 4, 4);
/// Receive ring start address (normal mode; 32-bit).
pub const RBSTART: Register<u32, (), ReadWrite> = Register::new(0x30);
pub const CR: Register<u8, Command::Register, ReadWrite> = Register::new(0x37);
/// Current address of packet read: the driver's read offset minus 16.
pub const CAPR: Register<u16, (), ReadWrite> = Register::new(0x38);
/// Current buffer address: the device's write offset in the ring.
pub const CBR: Register<u16, (), ReadOnly> = Register::new(0x3a);
pub const IMR: Register<u16, Interrupt::Register, ReadWrite> = Register::new(0x3c);
pub const ISR: Register<u16, Interrupt::Register, ReadWrite> = Register::new(0x3e);
pub const TCR: Register<u32, TxConfig::Register, ReadWrite> = Register::new(0x40);
pub const RCR: Register<u32, RxConfig::Register, ReadWrite> = Register::new(0x44);
/// Missed packet counter (24 bits); any write clears it.
pub const MPC: Register<u32, (), ReadWrite> = Register::new(0x4c);
pub const MSR: Register<u8, MediaStatus::Register, ReadOnly> = Register::new(0x58);
pub const BMSR: Register<u16, BasicModeStatus::Register, ReadOnly> = Register::new(0x64);
/// C+ transmit poll.
pub const TPPOLL: Register<u8, TxPoll::Register, WriteOnly> = Register::new(0xd9);
/// C+ command; the first write puts the device in C+ mode until reset.
pub const CPCR: Register<u16, CpCommand::Register, ReadWrite> = Register::new(0xe0);
/// C+ receive descriptor ring address, low and high halves.
pub const RDSAR_LO: Register<u32, (), ReadWrite> = Register::new(0xe4);
pub const RDSAR_HI: Register<u32, (), ReadWrite> = Register::new(0xe8);

/// The register window of either BAR.
pub const REGISTER_BYTES: usize = 0x100;
