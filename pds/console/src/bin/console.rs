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
//! 0xB8000 below a status row, and scrolls. It never writes to the ring
//! except its own prints.
//!
//! The screen must be in colour text mode: what a BIOS PC has and GRUB
//! keeps (`gfxpayload=text`). On a UEFI PC the display is the firmware's
//! framebuffer, and a PC may have no VGA at all; the console checks the VGA
//! registers first and, if it cannot draw, says so in one line and stops.
//!
//! # system.xml contract
//!
//! - `log`: the log ring region (`log_ring::REGION_SIZE` bytes, rw) at
//!   `dingo_log_vaddr`, as in every PD that logs;
//! - `vga`: the text buffer (0xb8000, 0x1000 bytes, rw, uncached) at
//!   `vga_vaddr`;
//! - `<ioport id="0" addr="0x3c0" size="0x20"/>`: the VGA registers;
//! - a Timer port (0x1000 bytes, rw) at `timer_port_vaddr` on channel 0,
//!   and the time page (read-only) at `time_page_vaddr`;
//! - a low priority: it only shows what others did.
#![no_std]
#![no_main]

use console_core::screen::{COLS, Screen, StatusText};
use console_core::vga::{self, Ports};
use core::fmt::Write;
use dingo_pd::dingo_rt::executor::{Executor, Millis};
use dingo_pd::dingo_rt::typed::Supervisor;
use dingo_pd::microkit::{self, IoPort, debug_println, setvar};
use dingo_pd::{ConsoleReporter, MicrokitPlatform};
use log_ring::{Reader, Region};
use timer_client::clock::TimeReader;
use timer_client::platform::TimerPlatform;
use timer_client::port::{End, attach};

setvar!(vga_vaddr, time_page_vaddr, timer_port_vaddr);

/// How often the ring is read: new lines show within this time.
const POLL_MS: u64 = 20;
const VGA_PORTS: IoPort = IoPort::new(0);
const TIMER_CHANNEL: u8 = 0;

static REPORTER: ConsoleReporter = ConsoleReporter;

type Ex<'a> = Executor<'a, TimerPlatform<'static, MicrokitPlatform>>;

fn clock() -> u64 {
    // SAFETY: system.xml maps the time page read-only at time_page_vaddr.
    unsafe { TimeReader::new(time_page_vaddr.get() as *const u8) }.now_ns()
}

fn platform() -> TimerPlatform<'static, MicrokitPlatform> {
    // SAFETY: system.xml maps this PD's Timer port region read-write at
    // timer_port_vaddr; the timer PD holds the other side.
    let port = unsafe {
        attach(
            timer_port_vaddr.get() as *mut u8,
            TIMER_CHANNEL,
            End::Client,
            Supervisor::fatal(&REPORTER),
            "console",
            "timer",
            clock(),
        )
    };
    match port {
        Ok(port) => TimerPlatform::new(MicrokitPlatform::new(clock), port),
        Err(e) => panic!(
            "console: bad Timer port at {:#x}: {e:?}",
            timer_port_vaddr.get()
        ),
    }
}

/// The VGA registers through the PD's I/O port capability. A refused
/// access reads as 0xFF, as an absent device does.
struct VgaPorts;

impl Ports for VgaPorts {
    fn inb(&mut self, port: u16) -> u8 {
        VGA_PORTS.in8(port).unwrap_or(0xFF)
    }
    fn outb(&mut self, port: u16, value: u8) {
        let _ = VGA_PORTS.out8(port, value);
    }
}

/// Draws a row of cells into the text buffer.
fn draw(base: usize, row: usize, cells: &[u16; COLS]) {
    for (col, &cell) in cells.iter().enumerate() {
        let offset = (row * COLS + col) * 2;
        // SAFETY: system.xml maps the text buffer's page (0x1000 bytes)
        // uncached at vga_vaddr; offset < 25 * 80 * 2 = 4000.
        unsafe { ((base + offset) as *mut u16).write_volatile(cell) };
    }
}

async fn main(ex: &Ex<'_>) {
    let Some(ring) = microkit::log::ring_vaddr() else {
        debug_println!("console: no log ring mapped at dingo_log_vaddr; nothing to show");
        return;
    };
    // SAFETY: system.xml maps the log region (REGION_SIZE bytes, rw) there.
    let ring = unsafe { Region::at(ring as usize) };
    if let Err(why) = vga::probe(&mut VgaPorts) {
        debug_println!("console: no VGA text screen: {why}; the log stays on the serial port");
        return;
    }
    vga::hide_cursor(&mut VgaPorts);
    debug_println!(
        "console: mirroring the system log onto the VGA text screen ({}x{}), every {POLL_MS} ms",
        COLS,
        console_core::screen::ROWS
    );

    let base = vga_vaddr.get() as usize;
    let mut screen = Screen::new();
    let mut reader = Reader::new();
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
        screen.flush(|row, cells| draw(base, row, cells));
        ex.sleep(POLL_MS.ms()).await;
    }
}

dingo_pd::async_protection_domain!(main, platform = platform());
