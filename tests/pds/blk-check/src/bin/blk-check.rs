//! A disk driver's in-image test over BlockDevice (any driver: it knows
//! only the protocol and the data region). In order:
//!
//! 1. The disk announces itself (`ready`) with 512-byte blocks.
//! 2. Every block is read (four requests of up to 64 KiB in flight) and
//!    compared with what the build wrote on the image: the pattern disk
//!    (block 0 starts with [`LABEL`], every other word is
//!    [`pattern`]`(block, word)`), or, for a plain image, zeros.
//! 3. 1 MiB in the middle of the disk is written with another pattern and
//!    read back; the blocks on either side still hold what they held.
//! 4. Requests outside the disk are answered BAD_REQUEST.
//! 5. With `passes` > 0 (the bench): that many whole-disk read passes,
//!    then write passes, between a `begin` and an `end` line each, which
//!    the harness times and counts instructions between; the data is not
//!    touched by this PD there (no compare, no refill), so the figure is
//!    the driver's, the device's and the kernel's.
#![no_std]
#![no_main]

use dingo_pd::dingo_rt::executor::Executor;
use dingo_pd::dingo_rt::port::DataArea;
use dingo_pd::dingo_rt::typed::{Fault, Protocol, Supervisor, TypedPort};
use dingo_pd::microkit::{self, debug_println};
use dingo_pd::{ConsoleReporter, MicrokitPlatform};
use dingo_protocols::block_device::{self as blk, Msg};
use pd_config::SharedRegion;
use timer_client::clock::TimeReader;

pd_config::program!("blk-check");

static REPORTER: ConsoleReporter = ConsoleReporter;
static TIME_PAGE: spin::Once<SharedRegion> = spin::Once::new();
static CONSOLE: spin::Once<pd_config::IoPorts> = spin::Once::new();

/// Block 0 of the pattern disk starts with this label.
const LABEL: &[u8; 16] = b"DINGO USB DISK 1";
const BLOCK: u32 = 512;
/// Requests in flight.
const DEPTH: usize = 4;
/// Blocks per request at most (64 KiB).
const CHUNK: u32 = 128;
/// Blocks written and read back in step 3 (1 MiB).
const WRITTEN: u64 = 2048;

/// Word `w` of block `b` on the pattern disk.
const fn pattern(b: u64, w: u64) -> u64 {
    0x5a5a_0000_0000_0000 | b << 16 | w
}

/// Word `w` of block `b` as step 3 writes it.
const fn written(b: u64, w: u64) -> u64 {
    0xa5a5_0000_0000_0000 | b << 16 | w
}

fn clock() -> u64 {
    let page = TIME_PAGE.call_once(|| config::load().regions.time_page);
    // SAFETY: system-builder checked that the time page is mapped readable
    // here, a page at least.
    unsafe { TimeReader::new(page.as_ptr()) }.now_ns()
}

type Port = TypedPort<'static, Protocol<blk::Observer>>;
/// Prepares a write's block.
type Fill<'a> = dyn Fn(u64, &mut [u8]) + 'a;
/// Judges a read block.
type Check<'a> = dyn FnMut(u64, &[u8]) -> bool + 'a;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Content {
    Pattern,
    Zeros,
}

impl Content {
    fn word(self, b: u64, w: u64) -> [u8; 8] {
        match self {
            Content::Zeros => [0; 8],
            Content::Pattern if b == 0 && w < 2 => {
                let mut x = [0; 8];
                x.copy_from_slice(&LABEL[w as usize * 8..w as usize * 8 + 8]);
                x
            }
            Content::Pattern => pattern(b, w).to_le_bytes(),
        }
    }
}

struct Failed;

struct Disk {
    port: Port,
    area: DataArea,
    blocks: u64,
    next_req: u32,
}

impl Disk {
    /// Reads or writes `count` blocks from `first` through the data
    /// region, DEPTH requests at a time; `fill(block, bytes)` prepares a
    /// write's buffer, `check(block, bytes)` judges a read's. Without them
    /// (the bench) the data is not touched here.
    async fn run(
        &mut self,
        ex: &Executor<'_, MicrokitPlatform>,
        write: bool,
        first: u64,
        count: u64,
        fill: Option<&Fill<'_>>,
        mut check: Option<&mut Check<'_>>,
    ) -> Result<(), Failed> {
        let chunk = u64::from(CHUNK).min(self.area.len() as u64 / DEPTH as u64 / u64::from(BLOCK));
        let mut slots: [Option<(u32, u64, u32)>; DEPTH] = [None; DEPTH];
        let mut next = first;
        let end = first + count;
        let mut buf = [0u8; BLOCK as usize];
        loop {
            for (i, s) in slots.iter_mut().enumerate() {
                if s.is_none() && next < end {
                    let n = (end - next).min(chunk) as u32;
                    let at = i as u64 * chunk * u64::from(BLOCK);
                    if let Some(fill) = fill {
                        for b in 0..u64::from(n) {
                            fill(next + b, &mut buf);
                            let _ = self.area.write(at + b * u64::from(BLOCK), &buf);
                        }
                    }
                    let req = self.next_req;
                    self.next_req = self.next_req.wrapping_add(1);
                    let (block, buf) = (next, at as u32);
                    let m = if write {
                        Msg::Write {
                            req,
                            block,
                            count: n,
                            buf,
                        }
                    } else {
                        Msg::Read {
                            req,
                            block,
                            count: n,
                            buf,
                        }
                    };
                    self.port.send(ex, m).await.map_err(fault)?;
                    *s = Some((req, next, n));
                    next += u64::from(n);
                }
            }
            if slots.iter().all(Option::is_none) {
                return Ok(());
            }
            let (req, status) = match self.port.recv(ex).await.map_err(fault)? {
                Msg::Done { req, status } => (req, status),
                other => {
                    debug_println!("blk-check: FAILED: {other} while requests were pending");
                    return Err(Failed);
                }
            };
            let Some(i) = slots.iter().position(|s| s.is_some_and(|s| s.0 == req)) else {
                debug_println!("blk-check: FAILED: done for request {req}, never sent");
                return Err(Failed);
            };
            let (_, block, n) = slots[i].take().unwrap_or_default();
            if status != blk::OK {
                debug_println!(
                    "blk-check: FAILED: request for blocks {block}+{n} answered {status}"
                );
                return Err(Failed);
            }
            if let Some(check) = check.as_mut() {
                let at = i as u64 * chunk * u64::from(BLOCK);
                for b in 0..u64::from(n) {
                    let _ = self.area.read(at + b * u64::from(BLOCK), &mut buf);
                    if !check(block + b, &buf) {
                        return Err(Failed);
                    }
                }
            }
        }
    }
}

fn fault(f: Fault) -> Failed {
    debug_println!("blk-check: FAILED: port fault {f:?}");
    Failed
}

fn compare(what: &str, b: u64, bytes: &[u8], word: impl Fn(u64, u64) -> [u8; 8]) -> bool {
    for (w, got) in bytes.chunks_exact(8).enumerate() {
        if got != word(b, w as u64) {
            debug_println!("blk-check: FAILED: {what}: block {b} word {w} reads {got:02x?}");
            return false;
        }
    }
    true
}

async fn checks(ex: &Executor<'_, MicrokitPlatform>, cfg: &config::Config) -> Result<(), Failed> {
    let port = dingo_pd::typed_port(
        cfg.name,
        &cfg.ports.blk,
        blk::Observer::new(clock()),
        Supervisor::fatal(&REPORTER),
    );
    let mut d = Disk {
        port,
        // SAFETY: system-builder checked that the disk region is mapped
        // read-write here for its size; the driver's device shares it, and
        // this PD touches it only through this value.
        area: unsafe { DataArea::new(cfg.regions.disk.as_ptr(), cfg.regions.disk.size) },
        blocks: 0,
        next_req: 1,
    };
    match d.port.recv(ex).await.map_err(fault)? {
        Msg::Ready {
            blocks,
            block_size: BLOCK,
        } => d.blocks = blocks,
        other => {
            debug_println!("blk-check: FAILED: {other} first, expected ready with 512-byte blocks");
            return Err(Failed);
        }
    }
    debug_println!("blk-check: disk ready: {} blocks of 512 bytes", d.blocks);
    if d.blocks < 2 * WRITTEN + 2 {
        debug_println!("blk-check: FAILED: the disk is too small for the write check");
        return Err(Failed);
    }

    let mut content = None;
    let mut read = 0u64;
    let mut whole = |b: u64, bytes: &[u8]| {
        let c = *content.get_or_insert(if &bytes[..16] == LABEL {
            Content::Pattern
        } else {
            Content::Zeros
        });
        read += 1;
        compare("whole-disk read", b, bytes, |b, w| c.word(b, w))
    };
    d.run(ex, false, 0, d.blocks, None, Some(&mut whole))
        .await?;
    let c = content.unwrap_or(Content::Zeros);
    debug_println!(
        "blk-check: every block read and compared: {read} blocks, {}",
        if c == Content::Pattern {
            "the pattern disk"
        } else {
            "a zeroed disk"
        }
    );

    let at = d.blocks / 2 - WRITTEN / 2;
    let fill = |b: u64, buf: &mut [u8]| {
        for (w, x) in buf.chunks_exact_mut(8).enumerate() {
            x.copy_from_slice(&written(b, w as u64).to_le_bytes());
        }
    };
    d.run(ex, true, at, WRITTEN, Some(&fill), None).await?;
    let mut back = |b: u64, bytes: &[u8]| {
        compare("written read back", b, bytes, |b, w| {
            written(b, w).to_le_bytes()
        })
    };
    d.run(ex, false, at, WRITTEN, None, Some(&mut back)).await?;
    for b in [at - 1, at + WRITTEN] {
        let mut beside =
            |b: u64, bytes: &[u8]| compare("beside the write", b, bytes, |b, w| c.word(b, w));
        d.run(ex, false, b, 1, None, Some(&mut beside)).await?;
    }
    debug_println!(
        "blk-check: 1 MiB written at block {at} read back; the blocks beside it unchanged"
    );

    for (block, count) in [(d.blocks, 1u32), (d.blocks - 1, 2), (u64::MAX, 1)] {
        let req = d.next_req;
        d.next_req += 1;
        d.port
            .send(
                ex,
                Msg::Read {
                    req,
                    block,
                    count,
                    buf: 0,
                },
            )
            .await
            .map_err(fault)?;
        match d.port.recv(ex).await.map_err(fault)? {
            Msg::Done {
                req: r,
                status: blk::BAD_REQUEST,
            } if r == req => {}
            other => {
                debug_println!("blk-check: FAILED: a read of {block}+{count} answered {other}");
                return Err(Failed);
            }
        }
    }
    debug_println!("blk-check: reads past the end refused (BAD_REQUEST)");

    let passes = cfg.params.passes;
    if passes > 0 {
        let mib = (d.blocks * u64::from(BLOCK) * u64::from(passes)) >> 20;
        debug_println!("blk-check: read passes begin");
        for _ in 0..passes {
            d.run(ex, false, 0, d.blocks, None, None).await?;
        }
        debug_println!("blk-check: read passes end: {mib} MiB");
        debug_println!("blk-check: write passes begin");
        // The buffers hold the last pattern written; they are not refilled.
        for _ in 0..passes {
            d.run(ex, true, 0, d.blocks, None, None).await?;
        }
        debug_println!("blk-check: write passes end: {mib} MiB");
    }
    let pc = d.port.counters();
    if pc.violations != 0 || pc.malformed != 0 {
        debug_println!(
            "blk-check: FAILED: {} violations, {} malformed",
            pc.violations,
            pc.malformed
        );
        return Err(Failed);
    }
    Ok(())
}

async fn main(ex: &Executor<'_, MicrokitPlatform>) {
    let cfg = config::load();
    if let Some(console) = cfg.ioports.console {
        CONSOLE.call_once(|| console);
        microkit::sel4::set_console(|c| {
            if let Some(p) = CONSOLE.get() {
                let _ = microkit::IoPort::of(*p).out8(p.base, c);
            }
        });
    }
    // Without QEMU's debug-exit port the run is another test PD's to end:
    // the verdict is only said (a failure's reason is printed where it
    // happens).
    match (checks(ex, &cfg).await, cfg.ioports.debug_exit) {
        (Ok(()), exit) => {
            debug_println!("blk-check: all checks passed");
            if let Some(port) = exit {
                microkit::debug_exit(port).success();
            }
        }
        (Err(Failed), Some(port)) => microkit::debug_exit(port).failure(),
        (Err(Failed), None) => {}
    }
}

dingo_pd::async_protection_domain!(main, clock = clock);
