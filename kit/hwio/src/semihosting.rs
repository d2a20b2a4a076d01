//! Ending a run under QEMU on ARM: Arm semihosting's `SYS_EXIT_EXTENDED`,
//! which makes QEMU exit with a status of the program's choosing. It is
//! the ARM counterpart of the [`debug_exit`](crate::debug_exit) device:
//! the same [`Code`]s give the same QEMU exit statuses, so tests decode
//! both boards alike. QEMU honours it only when started with
//! `-semihosting-config enable=on,userspace=on` (qemu/qemu.py does, for the
//! boards that need it); seL4 runs every program in user mode.
//!
//! No capability guards it: on a machine with semihosting enabled any user
//! program can end the run (and reach semihosting's other calls, which
//! this project never makes). On a real board the call is an ordinary
//! `swi` with a number the kernel does not know, so the calling thread
//! faults instead, and the monitor reports it.

pub use crate::debug_exit::Code;

/// `SYS_EXIT_EXTENDED`: exit with the status in the parameter block.
const SYS_EXIT_EXTENDED: u32 = 0x20;
/// `ADS_REASON_APPLICATION_EXIT`: a normal end; the subcode is the status.
const APPLICATION_EXIT: u32 = 0x20026;

/// Ends the run with `code`; returns only where semihosting is off.
pub fn exit(code: Code) {
    let block: [u32; 2] = [APPLICATION_EXIT, code.status() as u32];
    // SAFETY: the semihosting call reads the two-word block, which lives
    // for the whole asm; in ARM state `svc 0x123456` is the semihosting
    // trap, and where QEMU does not take it the kernel's fault path does.
    unsafe {
        core::arch::asm!(
            "svc #0x123456",
            inout("r0") SYS_EXIT_EXTENDED => _,
            in("r1") block.as_ptr(),
            options(nostack),
        );
    }
}
