//! The i.MX6 UART (i.MX 6Dual/6Quad reference manual, chapter 64): typed
//! registers and a driver core over any hwio [`Bus`]. The loader prints
//! through it before the kernel runs; the UART PD serves console input and
//! output with it; host tests run it on hwio's fake device.
//!
//! # What QEMU's model does (hw/char/imx_serial.c, 7.2)
//!
//! - Reset leaves the transmitter and receiver off (`UCR1.UARTEN`,
//!   `UCR2.TXEN`/`RXEN` clear): a bootloader normally turns them on, QEMU's
//!   `-kernel` does not, so whatever prints first must ([`Uart::enable`]).
//! - A byte written to `UTXD` goes out at once; the FIFO never fills.
//! - One received byte is held at a time: `URXD` with `CHARRDY` and
//!   `USR2.RDR` until it is read; `USR1.RRDY` raises the interrupt when
//!   `UCR1.RRDYEN` is set. Baud rate registers are stored and ignored.
//!
//! Received words carry error flags (overrun, frame, parity, break); a
//! byte with any of them is counted and dropped, never handed on.

#![cfg_attr(not(test), no_std)]

use hwio::{Bus, Registers};

pub mod regs {
    use hwio::{ReadOnly, ReadWrite, Register, WriteOnly, register_bitfields};

    register_bitfields![u32,
        pub Rx [
            DATA OFFSET(0) NUMBITS(8) [],
            PRERR OFFSET(10) NUMBITS(1) [],
            BRK OFFSET(11) NUMBITS(1) [],
            FRMERR OFFSET(12) NUMBITS(1) [],
            OVRRUN OFFSET(13) NUMBITS(1) [],
            /// Any of the four errors above.
            ERR OFFSET(14) NUMBITS(1) [],
            /// The word holds a received byte.
            CHARRDY OFFSET(15) NUMBITS(1) [],
        ],
        pub Tx [
            DATA OFFSET(0) NUMBITS(8) [],
        ],
        pub Ucr1 [
            UARTEN OFFSET(0) NUMBITS(1) [],
            /// Receiver-ready interrupt.
            RRDYEN OFFSET(9) NUMBITS(1) [],
            /// Transmitter-ready interrupt.
            TRDYEN OFFSET(13) NUMBITS(1) [],
        ],
        pub Ucr2 [
            /// Software reset, active low: keep it 1.
            SRST OFFSET(0) NUMBITS(1) [],
            RXEN OFFSET(1) NUMBITS(1) [],
            TXEN OFFSET(2) NUMBITS(1) [],
            /// 8-bit words.
            WS OFFSET(5) NUMBITS(1) [],
            /// Ignore the RTS pin.
            IRTS OFFSET(14) NUMBITS(1) [],
        ],
        pub Ufcr [
            /// Receiver interrupt after this many bytes.
            RXTL OFFSET(0) NUMBITS(6) [],
            TXTL OFFSET(10) NUMBITS(6) [],
        ],
        pub Usr1 [
            /// Receiver ready (at least RXTL bytes).
            RRDY OFFSET(9) NUMBITS(1) [],
            TRDY OFFSET(13) NUMBITS(1) [],
        ],
        pub Usr2 [
            /// Receive data ready.
            RDR OFFSET(0) NUMBITS(1) [],
            /// Transmitter empty.
            TXDC OFFSET(3) NUMBITS(1) [],
        ],
        pub Uts [
            /// The transmit FIFO is full.
            TXFULL OFFSET(4) NUMBITS(1) [],
            RXEMPTY OFFSET(5) NUMBITS(1) [],
        ],
    ];

    pub const URXD: Register<u32, Rx::Register, ReadOnly> = Register::new(0x00);
    pub const UTXD: Register<u32, Tx::Register, WriteOnly> = Register::new(0x40);
    pub const UCR1: Register<u32, Ucr1::Register, ReadWrite> = Register::new(0x80);
    pub const UCR2: Register<u32, Ucr2::Register, ReadWrite> = Register::new(0x84);
    pub const UFCR: Register<u32, Ufcr::Register, ReadWrite> = Register::new(0x90);
    pub const USR1: Register<u32, Usr1::Register, ReadWrite> = Register::new(0x94);
    pub const USR2: Register<u32, Usr2::Register, ReadWrite> = Register::new(0x98);
    pub const UTS: Register<u32, Uts::Register, ReadWrite> = Register::new(0xb4);

    /// Bytes of register space (one 16 KiB block per UART; the registers
    /// end at 0xb8).
    pub const MMIO_SIZE: usize = 0xb8;
}

use regs::*;

/// UART2, the Sabre Lite's console (the kernel prints there too).
pub const UART2_PADDR: usize = 0x021e_8000;
/// Its interrupt (GIC interrupt ID: SPI 27).
pub const UART2_IRQ: u32 = 59;
/// UART1, the first port of QEMU's machine.
pub const UART1_PADDR: usize = 0x0202_0000;
pub const UART1_IRQ: u32 = 58;

/// How long [`Uart::put`] waits for room before it drops a byte: a stuck
/// or absent UART must not hang its caller.
pub const TX_SPINS: u32 = 100_000;

/// Bytes the driver did not pass on, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub received: u64,
    /// Received with an error flag (overrun, frame, parity, break).
    pub rx_errors: u64,
    /// `USR2.RDR` said data but the word had no `CHARRDY`.
    pub rx_spurious: u64,
    pub sent: u64,
    /// Dropped because the transmitter stayed full.
    pub tx_dropped: u64,
}

/// One i.MX UART on a bus over its registers.
pub struct Uart<B: Bus> {
    bus: B,
    counters: Counters,
}

impl<B: Bus> Uart<B> {
    pub fn new(bus: B) -> Self {
        Uart {
            bus,
            counters: Counters::default(),
        }
    }

    /// Turns the UART, its transmitter and its receiver on for 8-bit words,
    /// keeping the baud rate a bootloader set.
    pub fn enable(&mut self) {
        self.bus.modify(UCR1, Ucr1::UARTEN::SET);
        self.bus.modify(
            UCR2,
            Ucr2::SRST::SET + Ucr2::RXEN::SET + Ucr2::TXEN::SET + Ucr2::WS::SET + Ucr2::IRTS::SET,
        );
    }

    /// Interrupts for each received byte (threshold 1), or none.
    pub fn set_rx_interrupt(&mut self, on: bool) {
        if on {
            self.bus.modify(UFCR, Ufcr::RXTL.val(1));
            self.bus.modify(UCR1, Ucr1::RRDYEN::SET);
        } else {
            self.bus.modify(UCR1, Ucr1::RRDYEN::CLEAR);
        }
    }

    /// Sends one byte, waiting (boundedly) for room.
    pub fn put(&mut self, byte: u8) {
        for _ in 0..TX_SPINS {
            if !self.bus.is_set(UTS, Uts::TXFULL) {
                self.bus.write(UTXD, Tx::DATA.val(byte.into()));
                self.counters.sent += 1;
                return;
            }
            core::hint::spin_loop();
        }
        self.counters.tx_dropped += 1;
    }

    pub fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.put(b));
    }

    /// The next received byte, if one is there. Bytes with error flags are
    /// counted and skipped.
    pub fn get(&mut self) -> Option<u8> {
        while self.bus.is_set(USR2, Usr2::RDR) {
            let word = self.bus.read(URXD);
            if !word.is_set(Rx::CHARRDY) {
                self.counters.rx_spurious += 1;
                return None;
            }
            if word.is_set(Rx::ERR)
                || word.is_set(Rx::OVRRUN)
                || word.is_set(Rx::FRMERR)
                || word.is_set(Rx::PRERR)
                || word.is_set(Rx::BRK)
            {
                self.counters.rx_errors += 1;
                continue;
            }
            self.counters.received += 1;
            return Some(word.read(Rx::DATA) as u8);
        }
        None
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }
}

impl<B: Bus> core::fmt::Write for Uart<B> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
