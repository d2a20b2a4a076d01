//! The console PD: shows the system log on the PC's screen, so that a PC
//! without a serial port shows what is happening.
//!
//! The log is the system log ring (crate `log-ring`): every PD whose
//! system.xml maps the ring at `dingo_log_vaddr` mirrors its prints into it
//! (the `microkit` runtime does it), whole lines at a time. The kernel
//! prints only on COM1 and offers no way to read its console back, so the
//! ring is the one place the log exists in memory; a ring in shared memory
//! also costs a printing PD no IPC and no waiting on the console. The
//! console reads the ring every [`POLL_MS`] ms (its clock and sleeps go
//! through the timer PD), draws new lines into the VGA text buffer at
//! 0xB8000 below a status row, and scrolls. It writes nothing into the
//! ring but its own prints.
//!
//! The screen must be in colour text mode: what a BIOS PC has and GRUB
//! keeps (`gfxpayload=text`). On a UEFI PC the display is the firmware's
//! framebuffer, and a PC may have no VGA at all; the console checks the VGA
//! registers first and, if it cannot draw, says so in one line and stops.
//! Its roles are in `pds/console/pd.toml`.
#![no_std]
#![no_main]

use console_core::screen::{COLS, ROWS, Screen, StatusText};
use console_core::vga::{self, TEXT_BUFFER};
use core::fmt::Write;
use dingo_pd::TimedExecutor;
use dingo_pd::dingo_rt::executor::Millis;
use dingo_pd::microkit::hwio::{Bus, Mmio};
use dingo_pd::microkit::{IoPort, debug_println};
use log_ring::Region;

pd_config::program!("console");

/// How often the ring is read: new lines show within this time.
const POLL_MS: u64 = 20;

type Ex<'a> = TimedExecutor<'a>;

/// Draws a row of cells into the text buffer.
fn draw(vga: &mut Mmio, row: usize, cells: &[u16; COLS]) {
    for (col, &cell) in cells.iter().enumerate() {
        vga.write16((row * COLS + col) * 2, cell);
    }
}

async fn main(ex: &Ex<'_>) {
    let cfg = config::load();
    if cfg.regions.vga.paddr != TEXT_BUFFER {
        debug_println!(
            "console: region vga is at paddr {:#x}, not the text buffer at {TEXT_BUFFER:#x}; nothing to draw on",
            cfg.regions.vga.paddr
        );
        return;
    }
    if let Err(why) = vga::probe(&mut IoPort::bus(cfg.ioports.vga, "vga")) {
        debug_println!("console: no VGA text screen: {why}; the log stays on the serial port");
        return;
    }
    vga::hide_cursor(&mut IoPort::bus(cfg.ioports.vga, "vga"));
    // SAFETY: system-builder checked that the log region is mapped
    // read-write here, REGION_SIZE bytes at least; writers elsewhere are
    // survived, not trusted (see log_ring).
    let ring = unsafe { Region::at(cfg.regions.log.vaddr) };
    let mut text = cfg.regions.vga.mmio("vga");
    debug_println!(
        "console: mirroring the system log onto the VGA text screen ({COLS}x{ROWS}), every {POLL_MS} ms"
    );

    let mut screen = Screen::new();
    let mut reader = log_ring::Reader::new();
    let start = ex.now_ns();
    loop {
        reader.poll(ring, |b| screen.put(b));
        let losses = reader.losses();
        let mut status = StatusText::new();
        let _ = write!(
            status,
            " Dingo on seL4: system log | up {} s",
            (ex.now_ns() - start) / 1_000_000_000
        );
        if losses.gaps != 0 {
            let _ = write!(
                status,
                " | skipped: {} lost, {} torn, {} corrupt",
                losses.lost, losses.torn, losses.corrupt
            );
        }
        screen.set_status(status.as_bytes());
        screen.flush(|row, cells| draw(&mut text, row, cells));
        ex.sleep(POLL_MS.ms()).await;
    }
}

dingo_pd::async_protection_domain!(main, timer);
