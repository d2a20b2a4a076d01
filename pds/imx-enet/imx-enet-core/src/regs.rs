//! The ENET registers the driver uses, with their fields, named as in the
//! i.MX6 reference manual (chapter "10/100/1000-Mbps Ethernet MAC") and
//! Linux's fec.h. Every register is 32 bits wide and QEMU's model
//! (hw/net/imx_fec.c) accepts 32-bit accesses only.
//!
//! The PHY's registers, reached over MDIO, are in [`mii`]; the buffer
//! descriptors' status bits in [`RxStatus`] and [`TxStatus`].

use hwio::{ReadOnly, ReadWrite, Register, register_bitfields};

register_bitfields![u32,
    /// Interrupt events (EIR, write 1 to clear) and their mask (EIMR)
    /// share this layout.
    pub Interrupt [
        /// Transmit FIFO underrun.
        UN OFFSET(19) NUMBITS(1) [],
        /// Collision retry limit reached (half duplex).
        RL OFFSET(20) NUMBITS(1) [],
        /// Late collision (half duplex).
        LC OFFSET(21) NUMBITS(1) [],
        /// A DMA access failed: the controller stopped.
        EBERR OFFSET(22) NUMBITS(1) [],
        /// An MDIO transaction finished.
        MII OFFSET(23) NUMBITS(1) [],
        /// A receive buffer (not the frame's last) was filled.
        RXB OFFSET(24) NUMBITS(1) [],
        /// A frame was received (its last descriptor was written).
        RXF OFFSET(25) NUMBITS(1) [],
        /// A transmit buffer was sent.
        TXB OFFSET(26) NUMBITS(1) [],
        /// A frame was sent (its last descriptor was released).
        TXF OFFSET(27) NUMBITS(1) [],
        /// Graceful transmit stop completed.
        GRA OFFSET(28) NUMBITS(1) [],
        /// Babbling transmit: a frame longer than RCR.MAX_FL was sent.
        BABT OFFSET(29) NUMBITS(1) [],
        /// Babbling receive: a frame longer than RCR.MAX_FL arrived.
        BABR OFFSET(30) NUMBITS(1) [],
        /// Heartbeat error.
        HBERR OFFSET(31) NUMBITS(1) [],
    ],
    /// Ethernet control (ECR).
    pub Control [
        /// Resets the controller; reads 1 until done.
        RESET OFFSET(0) NUMBITS(1) [],
        /// Enables the MAC and its DMA; clearing it resets the descriptor
        /// pointers to RDSR and TDSR.
        ETHEREN OFFSET(1) NUMBITS(1) [],
        /// Enhanced (32-byte) descriptors and the 1588 timer; left clear:
        /// this driver uses the legacy 8-byte descriptors.
        EN1588 OFFSET(4) NUMBITS(1) [],
        /// 1000 Mb/s.
        SPEED OFFSET(5) NUMBITS(1) [],
        /// Descriptors in little-endian byte order (the CPU's); QEMU's
        /// model always reads them so.
        DBSWP OFFSET(8) NUMBITS(1) [],
    ],
    /// MII management frame (MMFR): writing it starts a clause-22 MDIO
    /// transaction; a read's data lands in DATA when EIR.MII is set.
    pub MiiFrame [
        DATA OFFSET(0) NUMBITS(16) [],
        /// Turnaround, always 0b10.
        TA OFFSET(16) NUMBITS(2) [Turnaround = 2],
        /// The PHY's register.
        RA OFFSET(18) NUMBITS(5) [],
        /// The PHY's address.
        PA OFFSET(23) NUMBITS(5) [],
        OP OFFSET(28) NUMBITS(2) [Write = 1, Read = 2],
        /// Start of frame, 0b01 for clause 22.
        ST OFFSET(30) NUMBITS(2) [Clause22 = 1],
    ],
    /// MII speed control (MSCR): the MDC clock.
    pub MiiSpeed [
        /// MDC = internal bus clock / ((MII_SPEED + 1) * 2).
        MII_SPEED OFFSET(1) NUMBITS(6) [],
        /// Cycles MDIO is held after MDC's edge, minus one.
        HOLDTIME OFFSET(8) NUMBITS(3) [],
    ],
    /// MIB control (MIBC): the statistics counters.
    pub MibControl [
        /// Clears the counters while set.
        MIB_CLEAR OFFSET(29) NUMBITS(1) [],
        /// The counters are idle (read only).
        MIB_IDLE OFFSET(30) NUMBITS(1) [],
        /// Counting is off (the reset state).
        MIB_DIS OFFSET(31) NUMBITS(1) [],
    ],
    /// Receive control (RCR).
    pub RxControl [
        /// Internal loopback (set after reset).
        LOOP OFFSET(0) NUMBITS(1) [],
        /// Disable receive on transmit: half duplex.
        DRT OFFSET(1) NUMBITS(1) [],
        /// MII or RMII/RGMII mode; must be set.
        MII_MODE OFFSET(2) NUMBITS(1) [],
        /// Promiscuous.
        PROM OFFSET(3) NUMBITS(1) [],
        /// Reject broadcast frames.
        BC_REJ OFFSET(4) NUMBITS(1) [],
        /// Flow control (pause frames) enable.
        FCE OFFSET(5) NUMBITS(1) [],
        /// The PHY interface is RGMII (the Sabre Lite's).
        RGMII_EN OFFSET(6) NUMBITS(1) [],
        /// 10 Mb/s (else 100 or 1000, see ECR.SPEED).
        RMII_10T OFFSET(9) NUMBITS(1) [],
        /// Remove the padding of short frames (and the CRC with it).
        PADEN OFFSET(12) NUMBITS(1) [],
        /// Strip the CRC. Left clear: the length includes the 4 CRC
        /// bytes, as QEMU's model always writes them.
        CRCFWD OFFSET(14) NUMBITS(1) [],
        /// Longest frame accepted without LG, CRC included.
        MAX_FL OFFSET(16) NUMBITS(14) [],
    ],
    /// Transmit control (TCR).
    pub TxControl [
        /// Graceful transmit stop.
        GTS OFFSET(0) NUMBITS(1) [],
        /// Full duplex.
        FDEN OFFSET(2) NUMBITS(1) [],
    ],
    /// Transmit FIFO watermark (TFWR).
    pub TxWatermark [
        /// Store and forward: a frame is sent once it is whole in the FIFO
        /// (no underruns at 1000 Mb/s).
        STRFWD OFFSET(8) NUMBITS(1) [],
    ],
    /// Upper MAC address (PAUR): octets 4 and 5, and the pause frames'
    /// type field.
    pub AddressUpper [
        TYPE OFFSET(0) NUMBITS(16) [Pause = 0x8808],
        PADDR2 OFFSET(16) NUMBITS(16) [],
    ],
    /// Receive or transmit descriptor active (RDAR, TDAR): a write tells
    /// the controller that descriptors are ready.
    pub DescriptorActive [
        ACTIVE OFFSET(24) NUMBITS(1) [],
    ],
];

register_bitfields![u16,
    /// A receive descriptor's status (the device clears E and sets the
    /// rest when it hands the descriptor back).
    pub RxStatus [
        /// Truncated: longer than the truncation length (FTRL).
        TR OFFSET(0) NUMBITS(1) [],
        /// Receive FIFO overrun.
        OV OFFSET(1) NUMBITS(1) [],
        /// CRC error.
        CR OFFSET(2) NUMBITS(1) [],
        /// Not a whole number of octets.
        NO OFFSET(4) NUMBITS(1) [],
        /// Longer than RCR.MAX_FL.
        LG OFFSET(5) NUMBITS(1) [],
        /// Multicast.
        MC OFFSET(6) NUMBITS(1) [],
        /// Broadcast.
        BC OFFSET(7) NUMBITS(1) [],
        /// Accepted only because the MAC is promiscuous.
        M OFFSET(8) NUMBITS(1) [],
        /// The frame's last descriptor.
        L OFFSET(11) NUMBITS(1) [],
        /// The last descriptor of the ring: the next is the first.
        W OFFSET(13) NUMBITS(1) [],
        /// Empty: the device may fill it.
        E OFFSET(15) NUMBITS(1) [],
    ],
    /// A transmit descriptor's status.
    pub TxStatus [
        /// Append a bad CRC.
        ABC OFFSET(9) NUMBITS(1) [],
        /// Append the CRC.
        TC OFFSET(10) NUMBITS(1) [],
        /// The frame's last descriptor.
        L OFFSET(11) NUMBITS(1) [],
        /// The last descriptor of the ring.
        W OFFSET(13) NUMBITS(1) [],
        /// Ready: the device may send it; cleared when it is done.
        R OFFSET(15) NUMBITS(1) [],
    ],
];

pub const EIR: Register<u32, Interrupt::Register, ReadWrite> = Register::new(0x004);
pub const EIMR: Register<u32, Interrupt::Register, ReadWrite> = Register::new(0x008);
pub const RDAR: Register<u32, DescriptorActive::Register, ReadWrite> = Register::new(0x010);
pub const TDAR: Register<u32, DescriptorActive::Register, ReadWrite> = Register::new(0x014);
pub const ECR: Register<u32, Control::Register, ReadWrite> = Register::new(0x024);
pub const MMFR: Register<u32, MiiFrame::Register, ReadWrite> = Register::new(0x040);
pub const MSCR: Register<u32, MiiSpeed::Register, ReadWrite> = Register::new(0x044);
pub const MIBC: Register<u32, MibControl::Register, ReadWrite> = Register::new(0x064);
pub const RCR: Register<u32, RxControl::Register, ReadWrite> = Register::new(0x084);
pub const TCR: Register<u32, TxControl::Register, ReadWrite> = Register::new(0x0c4);
/// Lower MAC address: octets 0 to 3, octet 0 in the top byte.
pub const PALR: Register<u32, (), ReadWrite> = Register::new(0x0e4);
pub const PAUR: Register<u32, AddressUpper::Register, ReadWrite> = Register::new(0x0e8);
/// Individual (unicast) and group (multicast) hash filters.
pub const IAUR: Register<u32, (), ReadWrite> = Register::new(0x118);
pub const IALR: Register<u32, (), ReadWrite> = Register::new(0x11c);
pub const GAUR: Register<u32, (), ReadWrite> = Register::new(0x120);
pub const GALR: Register<u32, (), ReadWrite> = Register::new(0x124);
pub const TFWR: Register<u32, TxWatermark::Register, ReadWrite> = Register::new(0x144);
/// Receive descriptor ring start (physical, 8-byte aligned).
pub const RDSR: Register<u32, (), ReadWrite> = Register::new(0x180);
/// Transmit descriptor ring start.
pub const TDSR: Register<u32, (), ReadWrite> = Register::new(0x184);
/// Most bytes the device writes into one receive buffer (a multiple of
/// 16); a longer frame continues in the next descriptor.
pub const MRBR: Register<u32, (), ReadWrite> = Register::new(0x188);
/// MIB counter: frames dropped because the receive FIFO overflowed (no
/// descriptor was free for them). QEMU does not model the MIB counters
/// and reads them as 0.
pub const IEEE_R_MACERR: Register<u32, (), ReadOnly> = Register::new(0x2d8);

/// The register block (QEMU maps 16 KiB; everything used lies in the first
/// page).
pub const REGISTER_BYTES: usize = 0x1000;

/// RCR after reset on the i.MX6 and in QEMU: MAX_FL 1518, LOOP. A device
/// that reads back otherwise after a reset is not an ENET.
pub const RCR_RESET: u32 = 0x05ee_0001;

/// The PHY's clause-22 registers (IEEE 802.3 22.2.4), reached over MDIO.
pub mod mii {
    use hwio::register_bitfields;

    /// Basic mode control.
    pub const BMCR: u8 = 0;
    /// Basic mode status.
    pub const BMSR: u8 = 1;
    /// PHY identifier, high and low half.
    pub const PHYSID1: u8 = 2;
    pub const PHYSID2: u8 = 3;
    /// Auto-negotiation advertisement.
    pub const ADVERTISE: u8 = 4;
    /// The link partner's abilities.
    pub const LPA: u8 = 5;
    /// 1000BASE-T control and status.
    pub const CTRL1000: u8 = 9;
    pub const STAT1000: u8 = 10;

    register_bitfields![u16,
        pub Bmcr [
            RESTART_AN OFFSET(9) NUMBITS(1) [],
            AN_ENABLE OFFSET(12) NUMBITS(1) [],
            RESET OFFSET(15) NUMBITS(1) [],
        ],
        pub Bmsr [
            /// Link up (latched low: a drop shows on the next read).
            LINK OFFSET(2) NUMBITS(1) [],
            AN_COMPLETE OFFSET(5) NUMBITS(1) [],
            /// 1000BASE-T status registers exist.
            EXTENDED_STATUS OFFSET(8) NUMBITS(1) [],
        ],
        /// ADVERTISE and LPA share this layout.
        pub Ability [
            /// IEEE 802.3.
            SELECTOR OFFSET(0) NUMBITS(5) [Csma = 1],
            HALF_10 OFFSET(5) NUMBITS(1) [],
            FULL_10 OFFSET(6) NUMBITS(1) [],
            HALF_100 OFFSET(7) NUMBITS(1) [],
            FULL_100 OFFSET(8) NUMBITS(1) [],
        ],
        pub Ctrl1000 [
            FULL_1000 OFFSET(9) NUMBITS(1) [],
        ],
        pub Stat1000 [
            /// The link partner does 1000BASE-T full duplex.
            PARTNER_FULL_1000 OFFSET(11) NUMBITS(1) [],
        ],
    ];
}
