//! The boot loader of the ARM boards: what runs between the firmware (or
//! QEMU's `-kernel`) and seL4. seL4 5.0.0 on 32-bit ARM is no ELF loader
//! and expects to be entered with the MMU on, so this program:
//!
//! 1. stops the caches and the MMU that a bootloader may have left on
//!    (cleaning the data cache first, so nothing it wrote is lost; the
//!    outer L2 cache too);
//! 2. turns the console UART on (QEMU and some bootloaders leave the
//!    transmitter off; the kernel prints there and assumes it is on);
//! 3. reads its payload (crate `boot-payload`, written by system-builder)
//!    and copies the kernel's segments and the system image into place,
//!    the image at the kernel's `ki_end`;
//! 4. builds a first-level page table of 1 MiB sections: the identity for
//!    everything (so it keeps running after the switch), and the kernel's
//!    window (its link address 0xe0000000) onto the kernel's physical base;
//! 5. turns the MMU on and jumps to the kernel's entry with `init_kernel`'s
//!    four arguments in r0..r3. The kernel turns the caches on itself.
//!
//! What is the board's lives in [`board`]: the console UART and where RAM
//! is. The loader is linked at 0x20000000 (loader.ld) and system-builder
//! refuses a boot image whose copies would overwrite it.
#![no_std]
#![no_main]

use core::fmt::Write;

use boot_payload::Payload;
use hwio::Mmio;
use imx_uart_core::Uart;

/// The board: its console and its RAM.
mod board {
    pub const NAME: &str = "the Sabre Lite (i.MX6)";
    /// The console the kernel prints on (Sabre Lite: UART2).
    pub const CONSOLE_UART: usize = imx_uart_core::UART2_PADDR;
    /// Physical RAM (the Sabre Lite has 1 GiB from 0x10000000): mapped as
    /// normal memory; everything else as strongly-ordered device memory.
    pub const RAM: core::ops::Range<u32> = 0x1000_0000..0x5000_0000;
    /// The PL310 L2 cache controller of the Cortex-A9 (the i.MX6 has one
    /// at this address; QEMU does not model it, and reads return 0).
    pub const L2CC: usize = 0x00a0_2000;
}

// Patched by system-builder (boot_image): where the payload segment is.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data")]
#[used]
static mut DINGO_PAYLOAD_VADDR: u64 = 0;
#[unsafe(no_mangle)]
#[unsafe(link_section = ".data")]
#[used]
static mut DINGO_PAYLOAD_SIZE: u64 = 0;

const STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);
#[unsafe(no_mangle)]
static mut LOADER_STACK: Stack = Stack([0; STACK_SIZE]);

/// The first-level translation table: 4096 section entries, 16 KiB aligned.
#[repr(C, align(16384))]
struct Table(core::cell::UnsafeCell<[u32; 4096]>);
// SAFETY: the loader has one thread, and only loader_main touches it.
unsafe impl Sync for Table {}
static TABLE: Table = Table(core::cell::UnsafeCell::new([0; 4096]));

// Entry: interrupts off, SVC mode, a stack, caches and MMU off, then Rust.
core::arch::global_asm!(
    ".section .text.start, \"ax\"",
    ".globl _start",
    "_start:",
    "cpsid if",
    "cps #0x13",
    "movw r0, #:lower16:{stack}",
    "movt r0, #:upper16:{stack}",
    "add sp, r0, #{size}",
    "bl {clean}",
    "mrc p15, 0, r0, c1, c0, 0",
    // M (MMU), C (data cache), Z (branch prediction), I (instruction cache)
    "bic r0, r0, #0x1",
    "bic r0, r0, #0x4",
    "bic r0, r0, #0x800",
    "bic r0, r0, #0x1000",
    "mcr p15, 0, r0, c1, c0, 0",
    "isb",
    "mov r0, #0",
    "mcr p15, 0, r0, c7, c5, 0", // ICIALLU
    "mcr p15, 0, r0, c7, c5, 6", // BPIALL
    "mcr p15, 0, r0, c8, c7, 0", // TLBIALL
    "dsb",
    "isb",
    "bl {main}",
    "1: wfi",
    "b 1b",
    ".text",
    stack = sym LOADER_STACK,
    size = const STACK_SIZE,
    clean = sym dcache_clean_invalidate_all,
    main = sym loader_main,
);

// Cleans and invalidates every data and unified cache level by set/way
// (ARMv7-A, ARM ARM B4.2.1's loop over CLIDR/CCSIDR), so that what a
// bootloader left in the caches reaches memory before they go off.
core::arch::global_asm!(
    ".globl dingo_dcache_clean_invalidate_all",
    "dingo_dcache_clean_invalidate_all:",
    "push {{r4-r11, lr}}",
    "mrc p15, 1, r0, c0, c0, 1", // CLIDR
    "ands r3, r0, #0x07000000",
    "mov r3, r3, lsr #23", // level of coherency * 2
    "beq 5f",
    "mov r10, #0",
    "1:",
    "add r2, r10, r10, lsr #1",
    "mov r1, r0, lsr r2",
    "and r1, r1, #7",
    "cmp r1, #2",
    "blt 4f",                     // no data cache at this level
    "mcr p15, 2, r10, c0, c0, 0", // CSSELR
    "isb",
    "mrc p15, 1, r1, c0, c0, 0", // CCSIDR
    "and r2, r1, #7",
    "add r2, r2, #4", // log2 line length
    "movw r4, #0x3ff",
    "ands r4, r4, r1, lsr #3", // ways - 1
    "clz r5, r4",
    "movw r7, #0x7fff",
    "ands r7, r7, r1, lsr #13", // sets - 1
    "2:",
    "mov r9, r4",
    "3:",
    "orr r11, r10, r9, lsl r5",
    "orr r11, r11, r7, lsl r2",
    "mcr p15, 0, r11, c7, c14, 2", // DCCISW
    "subs r9, r9, #1",
    "bge 3b",
    "subs r7, r7, #1",
    "bge 2b",
    "4:",
    "add r10, r10, #2",
    "cmp r3, r10",
    "bgt 1b",
    "5:",
    "mov r10, #0",
    "mcr p15, 2, r10, c0, c0, 0",
    "dsb",
    "isb",
    "pop {{r4-r11, pc}}",
);

unsafe extern "C" {
    #[link_name = "dingo_dcache_clean_invalidate_all"]
    fn dcache_clean_invalidate_all();
}

/// PL310 registers (ARM CoreLink Level 2 Cache Controller L2C-310 TRM).
mod l2 {
    use hwio::{ReadWrite, Register};
    pub const CTRL: Register<u32, (), ReadWrite> = Register::new(0x100);
    pub const CACHE_SYNC: Register<u32, (), ReadWrite> = Register::new(0x730);
    pub const CLEAN_INV_WAY: Register<u32, (), ReadWrite> = Register::new(0x7fc);
    /// All 16 ways.
    pub const ALL_WAYS: u32 = 0xffff;
    pub const SIZE: usize = 0x1000;
}

/// Writes back and turns off the outer cache, if a bootloader left it on.
fn l2_off() {
    use hwio::Registers;
    // SAFETY: the PL310's registers, at their physical address (the MMU is
    // off), touched by nothing else while the loader runs.
    let mut l2cc = unsafe { Mmio::new("l2cc", board::L2CC, l2::SIZE) };
    if l2cc.get(l2::CTRL) & 1 == 0 {
        return;
    }
    l2cc.set(l2::CLEAN_INV_WAY, l2::ALL_WAYS);
    while l2cc.get(l2::CLEAN_INV_WAY) & l2::ALL_WAYS != 0 {
        core::hint::spin_loop();
    }
    l2cc.set(l2::CACHE_SYNC, 0);
    l2cc.set(l2::CTRL, 0);
}

fn console() -> Uart<Mmio> {
    // SAFETY: the console UART's registers at their physical address (the
    // MMU is off, then identity-mapped); the kernel takes it over only
    // after the loader is gone.
    Uart::new(unsafe {
        Mmio::new(
            "console",
            board::CONSOLE_UART,
            imx_uart_core::regs::MMIO_SIZE,
        )
    })
}

fn halt(out: &mut Uart<Mmio>, why: core::fmt::Arguments) -> ! {
    let _ = writeln!(out, "loader: {why}; stopped");
    loop {
        // SAFETY: waits for an interrupt, which never comes (masked).
        unsafe { core::arch::asm!("wfi") };
    }
}

/// Section descriptor bits (ARMv7-A short descriptors, TRE = 0).
const SECTION: u32 = 0b10;
/// Privileged read/write, no user access (AP[1:0] = 01).
const AP_PRIV_RW: u32 = 0b01 << 10;
/// Never executable.
const XN: u32 = 1 << 4;
/// Normal memory, outer and inner write-back write-allocate (TEX = 001,
/// C = 1, B = 1).
const NORMAL_WB: u32 = 0b001 << 12 | 1 << 3 | 1 << 2;
/// Strongly ordered (TEX = 000, C = 0, B = 0).
const STRONGLY_ORDERED: u32 = 0;

fn section(paddr_mib: u32, attrs: u32) -> u32 {
    paddr_mib << 20 | attrs | AP_PRIV_RW | SECTION
}

/// The identity map, and the kernel's window from `vbase` onto `pbase`.
fn build_table(table: &mut [u32; 4096], vbase: u32, pbase: u32) {
    for (mib, entry) in table.iter_mut().enumerate() {
        let mib = mib as u32;
        *entry = if (vbase >> 20..4096).contains(&mib) {
            section((pbase >> 20) + (mib - (vbase >> 20)), NORMAL_WB)
        } else if board::RAM.contains(&(mib << 20)) {
            section(mib, NORMAL_WB)
        } else {
            section(mib, STRONGLY_ORDERED | XN)
        };
    }
}

extern "C" fn loader_main() -> ! {
    l2_off();
    let mut out = console();
    out.enable();
    let _ = writeln!(out, "\nloader: seL4 boot loader for {}", board::NAME);
    // SAFETY: plain reads of our own statics, patched into the file by
    // system-builder (volatile: the compiler must not fold the zeros).
    let (vaddr, size) = unsafe {
        (
            core::ptr::read_volatile(&raw const DINGO_PAYLOAD_VADDR),
            core::ptr::read_volatile(&raw const DINGO_PAYLOAD_SIZE),
        )
    };
    if size == 0 {
        halt(
            &mut out,
            format_args!("no payload (a loader not packed by system-builder)"),
        );
    }
    // SAFETY: system-builder put `size` bytes at `vaddr` in a segment of
    // this image, which the bootloader loaded with the rest (physical ==
    // virtual while the MMU is off).
    let bytes = unsafe { core::slice::from_raw_parts(vaddr as *const u8, size as usize) };
    let payload = match Payload::parse(bytes) {
        Ok(p) => p,
        Err(e) => halt(&mut out, format_args!("{e}")),
    };
    let a = payload.args;
    let _ = writeln!(
        out,
        "loader: kernel at {:#x} (window {:#x} -> {:#x}), system image {:#x}..{:#x}, entry {:#x}",
        payload.kernel_entry,
        payload.kernel_vbase,
        payload.kernel_pbase,
        a.ui_p_reg_start,
        a.ui_p_reg_end,
        a.v_entry
    );
    for c in payload.copies() {
        // SAFETY: the destinations are RAM below the loader, which
        // system-builder checked they do not overlap (boot_image::pack);
        // the MMU is off, so addresses are physical.
        unsafe {
            let dest = c.dest as *mut u8;
            core::ptr::copy_nonoverlapping(c.bytes.as_ptr(), dest, c.bytes.len());
            core::ptr::write_bytes(
                dest.add(c.bytes.len()),
                0,
                (c.size as usize) - c.bytes.len(),
            );
        }
    }
    // SAFETY: the table is ours alone; nothing else runs.
    let table = unsafe { &mut *TABLE.0.get() };
    build_table(table, payload.kernel_vbase, payload.kernel_pbase);
    let _ = writeln!(out, "loader: entering the kernel");
    let ttbr = table.as_ptr() as u32;
    // SAFETY: the table maps this code where it runs (identity) and the
    // kernel where it is linked; the copies are complete and, with the
    // caches off, in memory. The kernel never returns.
    unsafe {
        core::arch::asm!(
            "dsb",
            "mcr p15, 0, {zero}, c8, c7, 0", // TLBIALL
            "mcr p15, 0, {zero}, c2, c0, 2", // TTBCR: TTBR0 for everything
            "mcr p15, 0, {ttbr}, c2, c0, 0", // TTBR0
            "mcr p15, 0, {dacr}, c3, c0, 0", // DACR: every domain a client
            "isb",
            "mrc p15, 0, {tmp}, c1, c0, 0",
            "orr {tmp}, {tmp}, #1", // SCTLR.M
            "mcr p15, 0, {tmp}, c1, c0, 0",
            "isb",
            "bx {entry}",
            zero = in(reg) 0u32,
            ttbr = in(reg) ttbr,
            dacr = in(reg) 0x5555_5555u32,
            tmp = in(reg) 0u32,
            entry = in(reg) payload.kernel_entry,
            in("r0") a.ui_p_reg_start,
            in("r1") a.ui_p_reg_end,
            in("r2") a.pv_offset,
            in("r3") a.v_entry,
            options(noreturn),
        );
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    halt(&mut console(), format_args!("panic: {info}"))
}
