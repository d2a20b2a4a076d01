//! The raw kernel baseline of `make bench`: the same round trips the bench
//! PDs make (a notification there and back, a call and its reply), between
//! two threads of the monitor itself, with no runtime in between. The
//! caller runs at priority 100 and the echo thread at 200, as the bench
//! client and server PDs do, so both take the kernel's IPC fastpath.

use crate::error::{Context, Setup};
use crate::resources::{Object, ROOT_CNODE, Resources};
use crate::vspace::VSpace;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use hwio::tsc::rdtsc;
use sel4::cap::{self, Cap, Rights, TcbConfig, UserContext, VmAttributes, kind};
use sel4::{MessageInfo, debug_println, init_cap, syscall};

pub const ROUNDS: u64 = 1000;
pub const WARMUP: u64 = 100;
const CALLER_PRIORITY: u8 = 100;
const ECHO_PRIORITY: u8 = 200;
const MONITOR_PRIORITY: u8 = 255;
/// The echo thread's IPC buffer, in the monitor's VSpace.
const ECHO_IPC_BUFFER: u64 = (1 << 39) + 0x10_0000;
const STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; STACK_SIZE]>);
// SAFETY: only the echo thread uses it, as its stack.
unsafe impl Sync for Stack {}
static ECHO_STACK: Stack = Stack(UnsafeCell::new([0; STACK_SIZE]));

// The echo thread's capabilities, and the switch from notifications to calls.
static PING: AtomicU64 = AtomicU64::new(0);
static PONG: AtomicU64 = AtomicU64::new(0);
static ENDPOINT: AtomicU64 = AtomicU64::new(0);
static CALLS_NEXT: AtomicU64 = AtomicU64::new(0);

extern "C" fn echo() -> ! {
    let (ping, pong, ep) = (
        PING.load(Ordering::Relaxed),
        PONG.load(Ordering::Relaxed),
        ENDPOINT.load(Ordering::Relaxed),
    );
    loop {
        syscall::recv(ping);
        if CALLS_NEXT.load(Ordering::Relaxed) != 0 {
            break;
        }
        syscall::signal(pong);
    }
    let mut msg = syscall::recv(ep);
    loop {
        msg = syscall::reply_recv(ep, MessageInfo::new(0, 0, 0, 1), msg.mrs);
    }
}

fn per_round(f: impl Fn()) -> u64 {
    for _ in 0..WARMUP {
        f();
    }
    let start = rdtsc();
    for _ in 0..ROUNDS {
        f();
    }
    (rdtsc() - start) / ROUNDS
}

pub fn run(res: &mut Resources, own: &mut VSpace, cnode_bits: u8) -> Setup<()> {
    let (ping, pong, ep) = (
        res.alloc(Object::NOTIFICATION)?,
        res.alloc(Object::NOTIFICATION)?,
        res.alloc(Object::ENDPOINT)?,
    );
    // Signals need a badge to deliver anything.
    let (ping_tx, pong_tx) = (res.slots(1)?, res.slots(1)?);
    for (dst, src) in [(ping_tx, ping), (pong_tx, pong)] {
        ROOT_CNODE
            .mint(dst, 64, cap::Slot::new(ROOT_CNODE, src, 64), Rights::ALL, 1)
            .ctx("badge a bench notification")?;
    }
    // The echo thread waits on `ping` and signals through `pong_tx`.
    PING.store(ping, Ordering::Relaxed);
    PONG.store(pong_tx, Ordering::Relaxed);
    ENDPOINT.store(ep, Ordering::Relaxed);

    let ipc = res.alloc(Object::PAGE)?;
    own.map(
        res,
        ipc,
        ECHO_IPC_BUFFER,
        false,
        Rights::READ_WRITE,
        VmAttributes::DEFAULT,
    )?;
    let tcb = Cap::<kind::Tcb>::from_cptr(res.alloc(Object::TCB)?);
    tcb.configure(&TcbConfig {
        fault_ep: 0,
        priority: ECHO_PRIORITY,
        cspace: ROOT_CNODE,
        cspace_data: cap::cnode_guard(0, 64 - cnode_bits as u64),
        vspace: Cap::from_cptr(init_cap::CapInitThreadVSpace),
        ipc_buffer_vaddr: ECHO_IPC_BUFFER,
        ipc_buffer: Cap::from_cptr(ipc),
    })
    .ctx("configure the echo thread")?;
    let top = ECHO_STACK.0.get() as u64 + STACK_SIZE as u64;
    // rsp as if `echo` had been called: the return address slot below a
    // 16-byte boundary.
    let regs = UserContext {
        rip: echo as *const () as u64,
        rsp: top - 8,
        ..Default::default()
    };
    tcb.write_registers(true, &regs)
        .ctx("start the echo thread")?;

    let me = Cap::<kind::Tcb>::from_cptr(init_cap::CapInitThreadTCB);
    me.set_priority(CALLER_PRIORITY)
        .ctx("lower the monitor's priority")?;
    let notify = per_round(|| {
        syscall::signal(ping_tx);
        syscall::recv(pong);
    });
    CALLS_NEXT.store(1, Ordering::Relaxed);
    syscall::signal(ping_tx);
    let call = per_round(|| {
        syscall::call(ep, MessageInfo::new(0, 0, 0, 1), [1, 0, 0, 0]);
    });
    tcb.suspend().ctx("stop the echo thread")?;
    me.set_priority(MONITOR_PRIORITY)
        .ctx("restore the monitor's priority")?;
    debug_println!("bench: raw notify-roundtrip {notify} cycles ({ROUNDS} rounds)");
    debug_println!("bench: raw ppc-roundtrip {call} cycles ({ROUNDS} rounds)");
    Ok(())
}
