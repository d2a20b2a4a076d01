//! The USB stack's in-image test. It is the user of the disk (BlockDevice)
//! and of the keyboard (Keyboard); the host types and plugs through QMP
//! when this PD says it is ready (tests/run.py's `drive` steps wait for
//! those lines). In order:
//!
//! 1. The keyboard and the disk are enumerated and bound (both announce
//!    themselves within 30 s).
//! 2. Every block of the disk is read and compared with the pattern the
//!    build wrote (`passes` times, for the MB/s figure); 1 MiB is written
//!    with another pattern and read back.
//!    With `key_bench` (the keyboard latency bench, bench/usb/run.py):
//!    that many presses printed as each arrives, with the disk idle, then
//!    as many while it is read.
//! 3. `keys` keys typed through QMP arrive in order, none lost or doubled,
//!    while the disk is being read all the time.
//! 4. Seven keys held at once (QMP presses them in order and releases
//!    them in reverse): six presses, one rollover, six releases, nothing
//!    that was not pressed.
//! 5. `replug` unplug/replug cycles of each device (the host unplugs in
//!    the middle of this PD's reads too): each cycle one connect and one
//!    disconnect of the keyboard, one ready and one gone of the disk, and
//!    a read of the disk after every replug compares right.
//! 6. The drivers' counters (their stats pages) once the devices settled:
//!    every descriptor, transfer, address, pipe and buffer count is what
//!    it was before the first unplug, and the controller's schedule
//!    checker found nothing.
#![no_std]
#![no_main]

use dingo_pd::dingo_rt::executor::{Either, Millis, join, select};
use dingo_pd::dingo_rt::port::DataArea;
use dingo_pd::dingo_rt::typed::{Protocol, Supervisor, TypedPort};
use dingo_pd::microkit::debug_println;
use dingo_pd::{ConsoleReporter, TimedExecutor};
use dingo_protocols::block_device::{self as blk, Msg as BlkMsg};
use dingo_protocols::keyboard::{self as kbd, Msg as KbdMsg};
use usb_check::{CHORD, KEYS, LABEL, check_block, usage};
use usb_core::stats;
use usb_storage_core::DATA_BASE;

pd_config::program!("usb-check");

static REPORTER: ConsoleReporter = ConsoleReporter;

const MS: u64 = 1_000_000;
const SECOND: u64 = 1_000 * MS;
/// Blocks per request: 1 MiB.
const CHUNK: u32 = 2048;

type Ex<'a> = TimedExecutor<'a>;
type KbdPort = TypedPort<'static, Protocol<kbd::Observer>>;
type BlkPort = TypedPort<'static, Protocol<blk::Observer>>;

struct Failed;

fn check(ok: bool, what: core::fmt::Arguments<'_>) -> Result<(), Failed> {
    if ok {
        debug_println!("usb-check: {what}");
        Ok(())
    } else {
        debug_println!("usb-check: FAILED: {what}");
        Err(Failed)
    }
}

/// The disk as this PD knows it.
struct Disk {
    port: BlkPort,
    area: DataArea,
    blocks: u64,
    block_size: u32,
    present: bool,
    next_req: u32,
    /// Blocks per request at most.
    chunk: u32,
    readies: u32,
    gones: u32,
}

/// A request's outcome, or the disk's going.
enum Answer {
    Done(u8),
    Gone,
}

impl Disk {
    fn buf_blocks(&self) -> u32 {
        ((self.area.len() as u32 - DATA_BASE) / self.block_size).min(self.chunk)
    }

    fn event(&mut self, m: BlkMsg) {
        match m {
            BlkMsg::Ready { blocks, block_size } => {
                self.blocks = blocks;
                self.block_size = block_size;
                self.present = true;
                self.readies += 1;
                debug_println!(
                    "usb-check: disk ready ({}): {blocks} blocks of {block_size} bytes",
                    self.readies
                );
            }
            BlkMsg::Gone => {
                self.present = false;
                self.gones += 1;
                debug_println!("usb-check: disk gone ({})", self.gones);
            }
            _ => {}
        }
    }

    /// One request, answered (or the disk went).
    async fn io(
        &mut self,
        ex: &Ex<'_>,
        block: u64,
        count: u32,
        write: bool,
    ) -> Result<Answer, Failed> {
        let req = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        let m = if write {
            BlkMsg::Write {
                req,
                block,
                count,
                buf: DATA_BASE,
            }
        } else {
            BlkMsg::Read {
                req,
                block,
                count,
                buf: DATA_BASE,
            }
        };
        if self.port.send(ex, m).await.is_err() {
            return Err(Failed);
        }
        loop {
            match select(self.port.recv(ex), ex.sleep(30.ms() * 1000)).await {
                Either::First(Ok(BlkMsg::Done { req: r, status })) if r == req => {
                    return Ok(Answer::Done(status));
                }
                Either::First(Ok(BlkMsg::Gone)) => {
                    self.event(BlkMsg::Gone);
                    // The pending request is answered before `gone`.
                    return Ok(Answer::Gone);
                }
                Either::First(Ok(m)) => self.event(m),
                Either::First(Err(_)) => return Err(Failed),
                Either::Second(()) => {
                    debug_println!("usb-check: FAILED: request {req} unanswered for 30 s");
                    return Err(Failed);
                }
            }
        }
    }

    /// Checks `count` blocks from `block` in the buffer.
    fn compare(&self, block: u64, count: u32) -> Result<(), Failed> {
        let bs = self.block_size as usize;
        let mut b = [0u8; 512];
        for i in 0..u64::from(count) {
            let _ = self
                .area
                .read(u64::from(DATA_BASE) + i * bs as u64, &mut b[..bs.min(512)]);
            if let Err(w) = check_block(block + i, &b[..bs.min(512)]) {
                debug_println!(
                    "usb-check: FAILED: block {} word {w} is not the pattern",
                    block + i
                );
                return Err(Failed);
            }
        }
        Ok(())
    }

    /// Reads the whole disk and compares; returns the bytes read, or
    /// `None` if the disk went meanwhile.
    async fn read_all(&mut self, ex: &Ex<'_>, verify: bool) -> Result<Option<u64>, Failed> {
        let per = self.buf_blocks();
        let mut block = 0;
        while block < self.blocks {
            let n = per.min((self.blocks - block) as u32);
            match self.io(ex, block, n, false).await? {
                Answer::Done(blk::OK) => {}
                Answer::Done(s) if s == blk::GONE => return Ok(None),
                Answer::Gone => return Ok(None),
                Answer::Done(s) => {
                    debug_println!("usb-check: FAILED: reading blocks {block}+{n}: status {s}");
                    return Err(Failed);
                }
            }
            if verify {
                self.compare(block, n)?;
            }
            block += u64::from(n);
        }
        Ok(Some(self.blocks * u64::from(self.block_size)))
    }
}

fn rate(bytes: u64, ns: u64) -> (u64, u64) {
    // MB/s with two decimals, as an integer pair; in u128, since in u64
    // the product overflows past 184 MB.
    let centi = u128::from(bytes) * 100 * u128::from(SECOND) / u128::from(ns.max(1)) / 1_000_000;
    let centi = u64::try_from(centi).unwrap_or(u64::MAX);
    (centi / 100, centi % 100)
}

/// Waits until both devices announced themselves.
async fn wait_devices(ex: &Ex<'_>, disk: &mut Disk, keys: &mut KbdPort) -> Result<(), Failed> {
    let deadline = ex.now_ns() + 30 * SECOND;
    let mut keyboard = false;
    while !(keyboard && disk.present) {
        let left = deadline.saturating_sub(ex.now_ns());
        match select(
            select(keys.recv(ex), disk.port.recv(ex)),
            ex.sleep(core::time::Duration::from_nanos(left)),
        )
        .await
        {
            Either::First(Either::First(Ok(KbdMsg::Connected))) => {
                keyboard = true;
                debug_println!("usb-check: keyboard connected (1)");
            }
            Either::First(Either::First(_)) => {}
            Either::First(Either::Second(Ok(m))) => disk.event(m),
            Either::First(Either::Second(Err(_))) => return Err(Failed),
            Either::Second(()) => {
                return check(
                    false,
                    format_args!(
                        "devices within 30 s: keyboard {keyboard}, disk {}",
                        disk.present
                    ),
                );
            }
        }
    }
    Ok(())
}

/// The bench's loads (`bench = true`, bench/usb/run.py), per request size:
/// the disk read `passes - 1` more times without comparing, then `writes`
/// MiB written, each between lines the harness samples the instruction
/// counters at.
async fn disk_bench(ex: &Ex<'_>, disk: &mut Disk, passes: u16, writes: u16) -> Result<(), Failed> {
    // 1 MiB requests (this driver's), then 64 KiB ones (Linux's, measured
    // in DESIGN.md).
    for kib in [1024u32, 64] {
        disk.chunk = kib * 1024 / disk.block_size.max(1);
        debug_println!("usb-check: bench: read {kib} KiB begins");
        let start = ex.now_ns();
        let mut bytes = 0;
        for _ in 1..passes.max(2) {
            match disk.read_all(ex, false).await? {
                Some(b) => bytes += b,
                None => return check(false, format_args!("the disk went during the read bench")),
            }
        }
        let (mbs, frac) = rate(bytes, ex.now_ns() - start);
        debug_println!(
            "usb-check: bench: read {kib} KiB ends, {bytes} bytes, {mbs}.{frac:02} MB/s"
        );
        let n = disk.buf_blocks();
        let bs = u64::from(disk.block_size);
        debug_println!("usb-check: bench: write {kib} KiB begins");
        let start = ex.now_ns();
        let mut bytes = 0;
        // As many bytes at either size: 1 MiB per `writes`.
        let count = u64::from(writes.max(1)) * u64::from(CHUNK) / u64::from(n);
        for i in 0..count {
            // Over the disk's second half, away from the label's block.
            let at = disk.blocks / 2 + (i * u64::from(n)) % (disk.blocks / 2 - u64::from(n));
            match disk.io(ex, at, n, true).await? {
                Answer::Done(blk::OK) => bytes += u64::from(n) * bs,
                _ => return check(false, format_args!("writing blocks {at}+{n} in the bench")),
            }
        }
        let (mbs, frac) = rate(bytes, ex.now_ns() - start);
        debug_println!(
            "usb-check: bench: write {kib} KiB ends, {bytes} bytes, {mbs}.{frac:02} MB/s"
        );
    }
    disk.chunk = CHUNK;
    Ok(())
}

async fn disk_tests(ex: &Ex<'_>, disk: &mut Disk, passes: u16) -> Result<(), Failed> {
    // The label, from block 0.
    if let Answer::Done(blk::OK) = disk.io(ex, 0, 1, false).await? {
        let mut l = [0u8; 16];
        let _ = disk.area.read(u64::from(DATA_BASE), &mut l);
        check(
            &l == LABEL,
            format_args!(
                "disk label \"{}\", capacity {} KiB",
                core::str::from_utf8(&l).unwrap_or("?"),
                disk.blocks * u64::from(disk.block_size) / 1024
            ),
        )?;
    }
    let start = ex.now_ns();
    let mut bytes = 0;
    for pass in 0..passes.max(1) {
        match disk.read_all(ex, pass == 0).await? {
            Some(b) => bytes += b,
            None => return check(false, format_args!("the disk went during the read test")),
        }
    }
    let (mbs, frac) = rate(bytes, ex.now_ns() - start);
    check(
        true,
        format_args!(
            "read every block of the disk ({} MiB) and compared: all match; {mbs}.{frac:02} MB/s over {passes} passes",
            (disk.blocks * u64::from(disk.block_size)) >> 20
        ),
    )?;
    // Write 1 MiB of another pattern near the end, read it back.
    let n = disk.buf_blocks();
    let at = disk.blocks - u64::from(n);
    let bs = u64::from(disk.block_size);
    let word = |i: u64| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xfeed).to_le_bytes();
    for i in 0..u64::from(n) * bs / 8 {
        let _ = disk.area.write(u64::from(DATA_BASE) + i * 8, &word(i));
    }
    let start = ex.now_ns();
    let wrote = disk.io(ex, at, n, true).await?;
    let took = ex.now_ns() - start;
    check(
        matches!(wrote, Answer::Done(blk::OK)),
        format_args!("wrote {} KiB at block {at}", u64::from(n) * bs / 1024),
    )?;
    for i in 0..u64::from(n) * bs / 8 {
        let _ = disk.area.write(u64::from(DATA_BASE) + i * 8, &[0; 8]);
    }
    let back = disk.io(ex, at, n, false).await?;
    let mut same = matches!(back, Answer::Done(blk::OK));
    let mut w = [0u8; 8];
    for i in 0..u64::from(n) * bs / 8 {
        let _ = disk.area.read(u64::from(DATA_BASE) + i * 8, &mut w);
        same &= w == word(i);
    }
    let (mbs, frac) = rate(u64::from(n) * bs, took);
    check(
        same,
        format_args!("read the written blocks back: identical; write {mbs}.{frac:02} MB/s"),
    )
}

/// The keys typed through QMP, while the disk is read without a pause.
async fn key_test(
    ex: &Ex<'_>,
    disk: &mut Disk,
    keys: &mut KbdPort,
    count: u16,
) -> Result<(), Failed> {
    debug_println!("usb-check: ready for {count} keys");
    let done = core::cell::Cell::new(false);
    let typing = async {
        let mut got = 0u16;
        let mut held = 0u32;
        let mut doubled = 0u32;
        // Until every key typed was released too.
        while got < count || held > 0 {
            match select(keys.recv(ex), ex.sleep(30.ms() * 1000)).await {
                Either::First(Ok(KbdMsg::Key {
                    usage: u, pressed, ..
                })) => {
                    if !pressed {
                        held = held.saturating_sub(1);
                        continue;
                    }
                    held += 1;
                    if held > 1 {
                        doubled += 1;
                    }
                    let want = usage(KEYS[usize::from(got) % KEYS.len()]);
                    if u != want {
                        done.set(true);
                        return check(
                            false,
                            format_args!("key {got}: usage {u:#04x}, expected {want:#04x}"),
                        );
                    }
                    got += 1;
                }
                Either::First(Ok(_)) => {}
                Either::First(Err(_)) => {
                    done.set(true);
                    return Err(Failed);
                }
                Either::Second(()) => {
                    done.set(true);
                    return check(
                        false,
                        format_args!("only {got} of {count} keys within 30 s of each other"),
                    );
                }
            }
        }
        done.set(true);
        check(
            doubled == 0,
            format_args!("{count} keys arrived in order, none lost or doubled"),
        )
    };
    let reading = async {
        let mut bytes = 0u64;
        while !done.get() {
            let n = disk.buf_blocks();
            match disk.io(ex, 0, n, false).await {
                Ok(Answer::Done(blk::OK)) => bytes += u64::from(n) * u64::from(disk.block_size),
                _ => return Err(Failed),
            }
        }
        Ok(bytes)
    };
    let (typed, read) = join(typing, reading).await;
    typed?;
    let read = read?;
    check(
        true,
        format_args!("the disk was read all along: {} MiB", read >> 20),
    )
}

/// The keyboard latency bench's keys (`key_bench`, bench/usb/run.py):
/// `count` presses with the disk idle, then `count` more while it is read
/// without a pause, each printed the moment it arrives (the host times
/// from its QMP `send-key` to the line).
async fn key_latency(
    ex: &Ex<'_>,
    disk: &mut Disk,
    keys: &mut KbdPort,
    count: u16,
) -> Result<(), Failed> {
    for phase in ["idle", "reading"] {
        debug_println!("usb-check: bench: keys {phase}: ready for {count} keys");
        let done = core::cell::Cell::new(false);
        let typing = async {
            let mut got = 0u16;
            while got < count {
                match select(keys.recv(ex), ex.sleep(30.ms() * 1000)).await {
                    Either::First(Ok(KbdMsg::Key { pressed: true, .. })) => {
                        debug_println!("usb-check: bench: key {got}");
                        got += 1;
                    }
                    Either::First(Ok(_)) => {}
                    Either::First(Err(_)) => break,
                    Either::Second(()) => break,
                }
            }
            done.set(true);
            check(
                got == count,
                format_args!("bench: keys {phase}: {got} of {count} keys arrived"),
            )
        };
        let reading = async {
            while phase == "reading" && !done.get() {
                let n = disk.buf_blocks();
                match disk.io(ex, 0, n, false).await {
                    Ok(Answer::Done(blk::OK)) => {}
                    _ => return Err(Failed),
                }
            }
            Ok(())
        };
        let (typed, read) = join(typing, reading).await;
        typed?;
        read?;
    }
    Ok(())
}

/// Seven keys held at once.
async fn chord_test(ex: &Ex<'_>, keys: &mut KbdPort) -> Result<(), Failed> {
    debug_println!("usb-check: ready for a chord of {} keys", CHORD.len());
    let mut presses = 0;
    let mut releases = 0;
    let mut rollovers = 0;
    let mut phantom = 0;
    let mut held: heapless::Vec<u8, 8> = heapless::Vec::new();
    // QMP presses the keys in order and releases them in reverse, so the
    // seventh is released first and the keyboard never lists it: six
    // presses, the rollover, six releases. A phantom key would be one not
    // in the chord, or a seventh press.
    while rollovers == 0 || presses < CHORD.len() - 1 || !held.is_empty() {
        match select(keys.recv(ex), ex.sleep(30.ms() * 1000)).await {
            Either::First(Ok(KbdMsg::Key {
                usage: u, pressed, ..
            })) => {
                if !CHORD.iter().any(|&c| usage(c) == u) {
                    phantom += 1;
                }
                if pressed {
                    presses += 1;
                    let _ = held.push(u);
                } else {
                    releases += 1;
                    held.retain(|&h| h != u);
                }
            }
            Either::First(Ok(KbdMsg::Rollover)) => rollovers += 1,
            Either::First(Ok(_)) => {}
            Either::First(Err(_)) => return Err(Failed),
            Either::Second(()) => {
                return check(
                    false,
                    format_args!("chord: {presses} presses, {releases} releases within 30 s"),
                );
            }
        }
    }
    check(
        phantom == 0 && rollovers == 1 && held.is_empty() && presses == CHORD.len() - 1,
        format_args!(
            "seven keys held at once: {presses} presses, {rollovers} rollover, {releases} releases, {phantom} phantom keys (the seventh, released first, never listed)"
        ),
    )
}

/// Counter pages: (name, reader, its counter names).
struct Pages {
    pages: heapless::Vec<(&'static str, stats::Reader, &'static [&'static str]), 4>,
}

const KBD_COUNTERS: [&str; 7] = [
    "attached",
    "detached",
    "pipes",
    "pending",
    "reports",
    "keys",
    "rollovers",
];
const DISK_COUNTERS: [&str; 10] = [
    "attached",
    "detached",
    "pipes",
    "pending",
    "requests",
    "commands",
    "bytes_read",
    "bytes_written",
    "recoveries",
    "failures",
];
const OHCI_COUNTERS: [&str; 14] = [
    "eds",
    "tds",
    "placeholders",
    "transfers",
    "endpoints",
    "submitted",
    "completed",
    "refused",
    "bad_done",
    "halts_recovered",
    "aborted",
    "controller_resets",
    "watchdog_resets",
    "schedule_violations",
];

/// Counters that say what is in use (the leak check compares them).
fn in_use(page: &str, name: &str) -> bool {
    match page {
        "ohci" => matches!(
            name,
            "eds" | "tds" | "placeholders" | "transfers" | "endpoints"
        ),
        "roothub" => matches!(name, "addresses" | "handles" | "transfers" | "pipes"),
        _ => matches!(name, "pipes" | "pending"),
    }
}

impl Pages {
    fn snapshot(&self) -> [[u64; stats::MAX]; 4] {
        let mut all = [[0u64; stats::MAX]; 4];
        for (i, (_, r, _)) in self.pages.iter().enumerate() {
            let _ = r.counters(&mut all[i]);
        }
        all
    }

    fn print(&self, values: &[[u64; stats::MAX]; 4]) {
        for (i, (page, _, names)) in self.pages.iter().enumerate() {
            let mut line: heapless::String<400> = heapless::String::new();
            for (n, name) in names.iter().enumerate() {
                let _ = core::fmt::Write::write_fmt(
                    &mut line,
                    format_args!(" {name}={}", values[i][n]),
                );
            }
            debug_println!("usb-check: {page}:{line}");
        }
    }
}

async fn replug_test(
    ex: &Ex<'_>,
    disk: &mut Disk,
    keys: &mut KbdPort,
    cycles: u16,
    pages: &Pages,
) -> Result<(), Failed> {
    let before = pages.snapshot();
    let readies0 = disk.readies;
    let gones0 = disk.gones;
    let mut connects = 0u32;
    let mut disconnects = 0u32;
    let mut reads_ok = 0u32;
    let mut reads_cut = 0u32;
    let target = u32::from(cycles);
    debug_println!("usb-check: ready for {cycles} replug cycles");
    let deadline = ex.now_ns() + 600 * SECOND;
    loop {
        let disk_done = disk.readies - readies0 >= target && disk.gones - gones0 >= target;
        if connects >= target && disconnects >= target && disk_done && disk.present {
            break;
        }
        if ex.now_ns() >= deadline {
            return check(
                false,
                format_args!(
                    "replug: {connects} connects, {disconnects} disconnects, {} readies, {} gones in 600 s",
                    disk.readies - readies0,
                    disk.gones - gones0
                ),
            );
        }
        // Read while the disk is there (the host may unplug it mid-read);
        // otherwise wait for whatever comes.
        if disk.present {
            let n = disk.buf_blocks().min(256);
            let reading = disk.io(ex, 0, n, false);
            match select(reading, keys.recv(ex)).await {
                Either::First(Ok(Answer::Done(blk::OK))) => {
                    disk.compare(0, n)?;
                    reads_ok += 1;
                }
                Either::First(Ok(_)) => reads_cut += 1,
                Either::First(Err(_)) => return Err(Failed),
                Either::Second(m) => key_event(m, &mut connects, &mut disconnects)?,
            }
        } else {
            match select(
                keys.recv(ex),
                select(disk.port.recv(ex), ex.sleep(100.ms())),
            )
            .await
            {
                Either::First(m) => key_event(m, &mut connects, &mut disconnects)?,
                Either::Second(Either::First(Ok(m))) => disk.event(m),
                Either::Second(Either::First(Err(_))) => return Err(Failed),
                Either::Second(Either::Second(())) => {}
            }
        }
    }
    check(
        true,
        format_args!(
            "{cycles} replug cycles: keyboard {connects} connects and {disconnects} disconnects, disk {} readies and {} gones; {reads_ok} reads compared right, {reads_cut} cut by an unplug",
            disk.readies - readies0,
            disk.gones - gones0
        ),
    )?;
    // Let the drivers settle: the keyboard's reports back in flight.
    ex.sleep(300.ms()).await;
    let after = pages.snapshot();
    pages.print(&after);
    let mut leaks = 0;
    for (i, (page, _, names)) in pages.pages.iter().enumerate() {
        for (n, name) in names.iter().enumerate() {
            if in_use(page, name) && after[i][n] != before[i][n] {
                debug_println!(
                    "usb-check: FAILED: {page} {name} was {} before the cycles, {} after",
                    before[i][n],
                    after[i][n]
                );
                leaks += 1;
            }
        }
    }
    let per = |page: &str, name: &str| -> u64 {
        pages
            .pages
            .iter()
            .position(|(p, _, _)| *p == page)
            .and_then(|i| {
                let names = pages.pages[i].2;
                names
                    .iter()
                    .position(|n| *n == name)
                    .map(|n| after[i][n] - before[i][n])
            })
            .unwrap_or(0)
    };
    check(
        leaks == 0,
        format_args!("no leaked TD, ED, transfer, address, pipe or buffer after {cycles} cycles"),
    )?;
    check(
        per("usb-kbd", "attached") == u64::from(cycles)
            && per("usb-kbd", "detached") == u64::from(cycles)
            && per("usb-storage", "attached") == u64::from(cycles)
            && per("usb-storage", "detached") == u64::from(cycles),
        format_args!("exactly one attach and one detach per cycle for each device"),
    )
}

fn key_event(
    m: Result<KbdMsg, dingo_pd::dingo_rt::typed::Fault>,
    connects: &mut u32,
    disconnects: &mut u32,
) -> Result<(), Failed> {
    match m {
        Ok(KbdMsg::Connected) => {
            *connects += 1;
            debug_println!("usb-check: keyboard connected ({})", *connects + 1);
        }
        Ok(KbdMsg::Disconnected) => {
            *disconnects += 1;
            debug_println!("usb-check: keyboard disconnected ({})", *disconnects);
        }
        Ok(_) => {}
        Err(_) => return Err(Failed),
    }
    Ok(())
}

async fn run(ex: &Ex<'_>) -> Result<(), Failed> {
    let cfg = config::load();
    let mut keys: KbdPort = dingo_pd::typed_port(
        cfg.name,
        &cfg.ports.kbd,
        kbd::Observer::new(ex.now_ns()),
        Supervisor::fatal(&REPORTER),
    );
    let mut disk = Disk {
        port: dingo_pd::typed_port(
            cfg.name,
            &cfg.ports.blk,
            blk::Observer::new(ex.now_ns()),
            Supervisor::fatal(&REPORTER),
        ),
        // SAFETY: system-builder checked that the disk window is mapped
        // read-write here for its size; the disk driver and the controller
        // share it, and this PD touches it only through this value.
        area: unsafe { DataArea::new(cfg.regions.disk.as_ptr(), cfg.regions.disk.size) },
        blocks: 0,
        block_size: 512,
        present: false,
        next_req: 1,
        chunk: CHUNK,
        readies: 0,
        gones: 0,
    };
    let mut pages = Pages {
        pages: heapless::Vec::new(),
    };
    let kinds: [(&'static str, &'static [&'static str]); 4] = [
        ("ohci", &OHCI_COUNTERS),
        ("roothub", &roothub_core::COUNTERS),
        ("usb-kbd", &KBD_COUNTERS),
        ("usb-storage", &DISK_COUNTERS),
    ];
    for (region, (name, names)) in cfg.regions.stats.iter().zip(kinds) {
        // SAFETY: system-builder checked that each stats region is mapped
        // readable here, a page at least.
        let _ = pages
            .pages
            .push((name, unsafe { stats::Reader::new(region.as_ptr()) }, names));
    }
    let _ = ohci_core::COUNTERS;
    wait_devices(ex, &mut disk, &mut keys).await?;
    if cfg.params.bench {
        disk_tests(ex, &mut disk, 1).await?;
        disk_bench(ex, &mut disk, cfg.params.passes, cfg.params.writes).await?;
    } else {
        disk_tests(ex, &mut disk, cfg.params.passes).await?;
    }
    if cfg.params.key_bench > 0 {
        key_latency(ex, &mut disk, &mut keys, cfg.params.key_bench).await?;
    }
    if cfg.params.keys > 0 {
        key_test(ex, &mut disk, &mut keys, cfg.params.keys).await?;
        chord_test(ex, &mut keys).await?;
    }
    if cfg.params.replug > 0 {
        replug_test(ex, &mut disk, &mut keys, cfg.params.replug, &pages).await?;
    } else {
        pages.print(&pages.snapshot());
    }
    let v = pages.snapshot();
    let violations = pages
        .pages
        .iter()
        .position(|(p, _, _)| *p == "ohci")
        .map_or(0, |i| v[i][13]);
    check(
        violations == 0,
        format_args!("schedule checker: {violations} violations"),
    )?;
    let c = keys.counters();
    let d = disk.port.counters();
    check(
        c.violations == 0 && d.violations == 0,
        format_args!(
            "Keyboard port {} received, BlockDevice port {} sent {} received, {} violations",
            c.received,
            d.sent,
            d.received,
            c.violations + d.violations
        ),
    )
}

/// COM1, for the console role: the console on release kernels (the bench).
static CONSOLE: spin::Once<pd_config::IoPorts> = spin::Once::new();

async fn main(ex: &Ex<'_>) {
    let cfg = config::load();
    if let Some(console) = cfg.ioports.console {
        CONSOLE.call_once(|| console);
        dingo_pd::microkit::sel4::set_console(|c| {
            if let Some(p) = CONSOLE.get() {
                let _ = dingo_pd::microkit::IoPort::of(*p).out8(p.base, c);
            }
        });
    }
    let mut exit = dingo_pd::microkit::debug_exit(cfg.ioports.debug_exit);
    match run(ex).await {
        Ok(()) => {
            debug_println!("usb-check: all checks passed; ending the run");
            exit.success();
        }
        Err(Failed) => exit.failure(),
    }
}

dingo_pd::async_protection_domain!(main, timer);
