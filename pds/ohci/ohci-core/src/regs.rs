//! The operational registers (OHCI 1.0a §7), named as in the
//! specification. Every register is 32 bits. Root hub port registers read
//! as status and write as commands, so each has two descriptors.

use hwio::{ReadOnly, ReadWrite, Register, RegisterArray, WriteOnly, register_bitfields};

register_bitfields![u32,
    pub Revision [
        REV OFFSET(0) NUMBITS(8) [],
    ],
    pub Control [
        /// Control/bulk service ratio.
        CBSR OFFSET(0) NUMBITS(2) [],
        /// Periodic list enable.
        PLE OFFSET(2) NUMBITS(1) [],
        /// Isochronous enable.
        IE OFFSET(3) NUMBITS(1) [],
        /// Control list enable.
        CLE OFFSET(4) NUMBITS(1) [],
        /// Bulk list enable.
        BLE OFFSET(5) NUMBITS(1) [],
        /// Host controller functional state.
        HCFS OFFSET(6) NUMBITS(2) [Reset = 0, Resume = 1, Operational = 2, Suspend = 3],
        /// Interrupt routing (to SMM).
        IR OFFSET(8) NUMBITS(1) [],
        RWC OFFSET(9) NUMBITS(1) [],
        RWE OFFSET(10) NUMBITS(1) [],
    ],
    pub CommandStatus [
        /// Host controller reset (a software reset, into SUSPEND).
        HCR OFFSET(0) NUMBITS(1) [],
        /// Control list filled: there is work on it.
        CLF OFFSET(1) NUMBITS(1) [],
        /// Bulk list filled.
        BLF OFFSET(2) NUMBITS(1) [],
        /// Ownership change request.
        OCR OFFSET(3) NUMBITS(1) [],
        /// Scheduling overrun count.
        SOC OFFSET(16) NUMBITS(2) [],
    ],
    /// HcInterruptStatus, HcInterruptEnable and HcInterruptDisable.
    pub Interrupt [
        /// Scheduling overrun.
        SO OFFSET(0) NUMBITS(1) [],
        /// The done queue was written to the HCCA.
        WDH OFFSET(1) NUMBITS(1) [],
        /// Start of frame.
        SF OFFSET(2) NUMBITS(1) [],
        /// Resume detected.
        RD OFFSET(3) NUMBITS(1) [],
        /// Unrecoverable error: the controller stopped.
        UE OFFSET(4) NUMBITS(1) [],
        /// Frame number overflow.
        FNO OFFSET(5) NUMBITS(1) [],
        /// Root hub status change.
        RHSC OFFSET(6) NUMBITS(1) [],
        /// Ownership change.
        OC OFFSET(30) NUMBITS(1) [],
        /// Master interrupt enable (enable and disable registers only).
        MIE OFFSET(31) NUMBITS(1) [],
    ],
    pub FmInterval [
        /// Bit times per frame, minus one.
        FI OFFSET(0) NUMBITS(14) [],
        /// Largest data packet the controller starts without overrunning.
        FSMPS OFFSET(16) NUMBITS(15) [],
        /// Toggled whenever FI changes.
        FIT OFFSET(31) NUMBITS(1) [],
    ],
    pub FmNumber [
        FN OFFSET(0) NUMBITS(16) [],
    ],
    pub RhDescriptorA [
        /// Number of downstream ports.
        NDP OFFSET(0) NUMBITS(8) [],
        /// Power switching per port.
        PSM OFFSET(8) NUMBITS(1) [],
        /// No power switching: ports are always powered.
        NPS OFFSET(9) NUMBITS(1) [],
        DT OFFSET(10) NUMBITS(1) [],
        OCPM OFFSET(11) NUMBITS(1) [],
        NOCP OFFSET(12) NUMBITS(1) [],
        /// Power-on to power-good time, in 2 ms units.
        POTPGT OFFSET(24) NUMBITS(8) [],
    ],
    pub RhStatus [
        /// Read: local power status; write 1: clear global power.
        LPS OFFSET(0) NUMBITS(1) [],
        OCI OFFSET(1) NUMBITS(1) [],
        DRWE OFFSET(15) NUMBITS(1) [],
        /// Write 1: set global power.
        LPSC OFFSET(16) NUMBITS(1) [],
        OCIC OFFSET(17) NUMBITS(1) [],
        CRWE OFFSET(31) NUMBITS(1) [],
    ],
    /// HcRhPortStatus as read.
    pub PortStatus [
        /// Current connect status.
        CCS OFFSET(0) NUMBITS(1) [],
        /// Port enable status.
        PES OFFSET(1) NUMBITS(1) [],
        /// Port suspend status.
        PSS OFFSET(2) NUMBITS(1) [],
        POCI OFFSET(3) NUMBITS(1) [],
        /// Port reset status.
        PRS OFFSET(4) NUMBITS(1) [],
        /// Port power status.
        PPS OFFSET(8) NUMBITS(1) [],
        /// A low-speed device is attached.
        LSDA OFFSET(9) NUMBITS(1) [],
        /// Connect status change (write 1 to clear, like the others below).
        CSC OFFSET(16) NUMBITS(1) [],
        PESC OFFSET(17) NUMBITS(1) [],
        PSSC OFFSET(18) NUMBITS(1) [],
        OCIC OFFSET(19) NUMBITS(1) [],
        /// Port reset status change: the reset finished.
        PRSC OFFSET(20) NUMBITS(1) [],
    ],
    /// HcRhPortStatus as written: each 1 is a command.
    pub PortCommand [
        CLEAR_PORT_ENABLE OFFSET(0) NUMBITS(1) [],
        SET_PORT_ENABLE OFFSET(1) NUMBITS(1) [],
        SET_PORT_SUSPEND OFFSET(2) NUMBITS(1) [],
        CLEAR_SUSPEND_STATUS OFFSET(3) NUMBITS(1) [],
        SET_PORT_RESET OFFSET(4) NUMBITS(1) [],
        SET_PORT_POWER OFFSET(8) NUMBITS(1) [],
        /// Never used: on QEMU a port powered off loses its device's
        /// connect status for good.
        CLEAR_PORT_POWER OFFSET(9) NUMBITS(1) [],
        CLEAR_CSC OFFSET(16) NUMBITS(1) [],
        CLEAR_PESC OFFSET(17) NUMBITS(1) [],
        CLEAR_PSSC OFFSET(18) NUMBITS(1) [],
        CLEAR_OCIC OFFSET(19) NUMBITS(1) [],
        CLEAR_PRSC OFFSET(20) NUMBITS(1) [],
    ],
];

pub const HC_REVISION: Register<u32, Revision::Register, ReadOnly> = Register::new(0x00);
pub const HC_CONTROL: Register<u32, Control::Register> = Register::new(0x04);
pub const HC_COMMAND_STATUS: Register<u32, CommandStatus::Register> = Register::new(0x08);
pub const HC_INTERRUPT_STATUS: Register<u32, Interrupt::Register> = Register::new(0x0c);
pub const HC_INTERRUPT_ENABLE: Register<u32, Interrupt::Register> = Register::new(0x10);
pub const HC_INTERRUPT_DISABLE: Register<u32, Interrupt::Register, WriteOnly> = Register::new(0x14);
/// Physical address of the HCCA (256-byte aligned).
pub const HC_HCCA: Register<u32, (), ReadWrite> = Register::new(0x18);
pub const HC_PERIOD_CURRENT_ED: Register<u32, (), ReadOnly> = Register::new(0x1c);
pub const HC_CONTROL_HEAD_ED: Register<u32> = Register::new(0x20);
pub const HC_CONTROL_CURRENT_ED: Register<u32> = Register::new(0x24);
pub const HC_BULK_HEAD_ED: Register<u32> = Register::new(0x28);
pub const HC_BULK_CURRENT_ED: Register<u32> = Register::new(0x2c);
/// The controller's own done list (not yet written to the HCCA).
pub const HC_DONE_HEAD: Register<u32, (), ReadOnly> = Register::new(0x30);
pub const HC_FM_INTERVAL: Register<u32, FmInterval::Register> = Register::new(0x34);
pub const HC_FM_REMAINING: Register<u32, (), ReadOnly> = Register::new(0x38);
pub const HC_FM_NUMBER: Register<u32, FmNumber::Register, ReadOnly> = Register::new(0x3c);
pub const HC_PERIODIC_START: Register<u32> = Register::new(0x40);
pub const HC_LS_THRESHOLD: Register<u32> = Register::new(0x44);
pub const HC_RH_DESCRIPTOR_A: Register<u32, RhDescriptorA::Register> = Register::new(0x48);
pub const HC_RH_DESCRIPTOR_B: Register<u32> = Register::new(0x4c);
pub const HC_RH_STATUS: Register<u32, RhStatus::Register> = Register::new(0x50);

/// Most downstream ports OHCI defines.
pub const MAX_PORTS: usize = 15;
pub const HC_RH_PORT_STATUS: RegisterArray<u32, PortStatus::Register, ReadOnly> =
    RegisterArray::new(0x54, 4, MAX_PORTS);
pub const HC_RH_PORT_COMMAND: RegisterArray<u32, PortCommand::Register, WriteOnly> =
    RegisterArray::new(0x54, 4, MAX_PORTS);

/// The register block's size (the BAR is 256 bytes on QEMU).
pub const MMIO_SIZE: usize = 0x100;

/// Frame interval at 12 Mbit/s: 12000 bit times per 1 ms frame.
pub const FRAME_INTERVAL: u32 = 11_999;
/// FSMPS for that interval: (FI - 210) * 6 / 7, as the specification
/// derives it.
pub const FS_LARGEST_PACKET: u32 = (FRAME_INTERVAL - 210) * 6 / 7;
/// Periodic transfers may start until 90% of the frame.
pub const PERIODIC_START: u32 = FRAME_INTERVAL * 9 / 10;
/// The low-speed threshold the specification suggests.
pub const LS_THRESHOLD: u32 = 0x628;
