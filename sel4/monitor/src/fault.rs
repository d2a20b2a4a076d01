//! Reports of PD faults. The monitor is every PD's fault handler: the
//! kernel turns a fault into a message on the monitor's endpoint, badged
//! with the PD's index + 1. The report names the PD, the fault kind, the
//! instruction pointer and the faulting address. The PD is never replied
//! to: what becomes of it is the supervisor's business (`supervise`).

use crate::system::PdHandle;
use boot_plan::layout::{STACK_GUARD_SIZE, STACK_TOP};
use sel4::ipc_buffer::{REGISTER_MRS, with_ipc_buffer};
use sel4::syscall::Received;
use sel4::{debug_println, fault_mr, fault_tag};

/// How the architecture describes a memory fault.
#[cfg(target_arch = "x86_64")]
mod arch {
    /// x86 page-fault error code bits.
    const PF_PRESENT: u64 = 1 << 0;
    const PF_WRITE: u64 = 1 << 1;
    /// x86 exception vector of an invalid opcode (`ud2`, how a PD panic ends).
    pub const INVALID_OPCODE: u64 = 6;

    /// Whether the fault was a write, and whether the page was present
    /// (so a protection violation rather than an unmapped address).
    pub fn decode(fsr: u64) -> (bool, Option<&'static str>) {
        let cause = if fsr & PF_PRESENT != 0 {
            "protection violation"
        } else {
            "unmapped address"
        };
        (fsr & PF_WRITE != 0, Some(cause))
    }
}

#[cfg(target_arch = "arm")]
mod arch {
    /// DFSR.WnR: the aborted access was a write.
    const WNR: u64 = 1 << 11;
    /// The only user-level exception on ARM, an undefined instruction
    /// (`udf`, how a PD panic ends), comes with number 0.
    pub const INVALID_OPCODE: u64 = 0;

    /// Whether the fault was a write, and its cause from the fault status
    /// (the short-descriptor FS field, bits 10 and 3..0).
    pub fn decode(fsr: u64) -> (bool, Option<&'static str>) {
        let status = (fsr & 0xf) | (fsr >> 6 & 0x10);
        let cause = match status {
            0x05 | 0x07 => Some("unmapped address"),
            0x0d | 0x0f => Some("protection violation"),
            0x01 => Some("misaligned access"),
            _ => None,
        };
        (fsr & WNR != 0, cause)
    }
}

fn mr(msg: &Received, i: usize) -> u64 {
    if i < REGISTER_MRS {
        msg.mrs[i]
    } else {
        with_ipc_buffer(|b| b.msg(i))
    }
}

/// Prints the report for a fault message of `pd`.
pub fn report(pd: &PdHandle, msg: &Received) {
    let name = pd.name;
    let label = msg.info.label();
    match label {
        fault_tag::VMFault => {
            let ip = mr(msg, fault_mr::VMFault_IP);
            let addr = mr(msg, fault_mr::VMFault_Addr);
            let fsr = mr(msg, fault_mr::VMFault_FSR);
            let prefetch = mr(msg, fault_mr::VMFault_PrefetchFault) != 0;
            let (write, cause) = arch::decode(fsr);
            let access = if prefetch {
                "instruction fetch"
            } else if write {
                "write"
            } else {
                "read"
            };
            let guard = STACK_TOP - pd.stack_size - STACK_GUARD_SIZE..STACK_TOP - pd.stack_size;
            if guard.contains(&addr) {
                debug_println!(
                    "monitor: FAULT in PD '{name}': VM fault ({access}, stack overflow: hit the guard page below its stack) at ip {ip:#x}, address {addr:#x}"
                );
            } else if let Some(why) = cause {
                debug_println!(
                    "monitor: FAULT in PD '{name}': VM fault ({access}, {why}) at ip {ip:#x}, address {addr:#x}"
                );
            } else {
                debug_println!(
                    "monitor: FAULT in PD '{name}': VM fault ({access}, fault status {fsr:#x}) at ip {ip:#x}, address {addr:#x}"
                );
            }
        }
        fault_tag::UserException => {
            let ip = mr(msg, fault_mr::UserException_FaultIP);
            let number = mr(msg, fault_mr::UserException_Number);
            let code = mr(msg, fault_mr::UserException_Code);
            let note = if number == arch::INVALID_OPCODE {
                " (invalid opcode: a panic ends this way)"
            } else {
                ""
            };
            debug_println!(
                "monitor: FAULT in PD '{name}': user exception {number} code {code:#x}{note} at ip {ip:#x}, address -"
            );
        }
        fault_tag::UnknownSyscall => {
            let ip = mr(msg, fault_mr::UnknownSyscall_FaultIP);
            let nr = mr(msg, fault_mr::UnknownSyscall_Syscall) as i64;
            debug_println!(
                "monitor: FAULT in PD '{name}': unknown syscall {nr} at ip {ip:#x}, address -"
            );
        }
        fault_tag::CapFault => {
            let ip = mr(msg, fault_mr::CapFault_IP);
            let cptr = mr(msg, fault_mr::CapFault_Addr);
            debug_println!(
                "monitor: FAULT in PD '{name}': capability fault on cptr {cptr:#x} at ip {ip:#x}"
            );
        }
        other => debug_println!("monitor: FAULT in PD '{name}': fault label {other}"),
    }
}
