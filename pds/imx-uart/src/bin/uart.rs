//! The UART PD: console input and output on one i.MX6 UART.
//!
//! It turns the UART on (keeping the baud rate the bootloader set), takes
//! an interrupt for every received byte, echoes what is typed with
//! backspace editing, and hands each finished line on: for now to the
//! system log, as `uart: line '...'`, which is where a console command
//! interpreter would sit. Bytes with receive errors are counted and
//! dropped (imx-uart-core), and every line's report says how many there
//! were. It is an async PD on dingo-rt's executor, the one driver shape:
//! one task that awaits the interrupt channel.
//!
//! The kernel's own console is UART2 on the Sabre Lite; this PD takes
//! another UART (tests/systems/sabrelite/uart.xml gives it UART1, QEMU's
//! first serial port), so the two never interleave.
#![no_std]
#![no_main]

use core::fmt::Write;
use dingo_pd::MicrokitPlatform;
use dingo_pd::dingo_rt::executor::Executor;
use dingo_pd::microkit::{Channel, debug_println};
use imx_uart_core::Uart;

pd_config::program!("uart");

/// The longest line kept; the rest of a longer one is dropped (and said).
const LINE: usize = 120;
const BACKSPACE: u8 = 0x08;
const DELETE: u8 = 0x7f;

/// Nothing here sleeps, so the executor's clock never has to move.
fn clock() -> u64 {
    0
}

async fn main(ex: &Executor<'_, MicrokitPlatform, 0>) {
    let cfg = config::load();
    let mut uart = Uart::new(cfg.regions.uart.mmio("uart"));
    let irq = Channel::from(cfg.irqs.uart);
    uart.enable();
    uart.set_rx_interrupt(true);
    let _ = write!(uart, "\ndingo console> ");
    debug_println!(
        "uart: console on the UART at {:#x} (channel {}); ready",
        cfg.regions.uart.paddr,
        irq.index()
    );
    let mut line = [0u8; LINE];
    let (mut len, mut long) = (0, false);
    loop {
        while let Some(b) = uart.get() {
            match b {
                b'\r' | b'\n' => {
                    let _ = writeln!(uart);
                    let text = core::str::from_utf8(&line[..len]).unwrap_or("(not UTF-8)");
                    let c = uart.counters();
                    debug_println!(
                        "uart: line '{text}'{} ({} bytes received, {} with errors)",
                        if long { " (cut at 120 bytes)" } else { "" },
                        c.received,
                        c.rx_errors
                    );
                    (len, long) = (0, false);
                    let _ = write!(uart, "dingo console> ");
                }
                BACKSPACE | DELETE if len > 0 => {
                    len -= 1;
                    uart.write(b"\x08 \x08");
                }
                0x20..0x7f if len < LINE => {
                    line[len] = b;
                    len += 1;
                    uart.put(b);
                }
                0x20..0x7f => long = true,
                _ => {}
            }
        }
        ex.channel(irq.index()).await;
        if let Err(e) = irq.irq_ack() {
            panic!("uart: IRQ ack refused: {e:?}");
        }
    }
}

dingo_pd::async_protection_domain!(main, clock = clock);
