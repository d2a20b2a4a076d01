//! The PD runtime: what a protection domain's code sees, with the semantics
//! and ABI of seL4 Microkit's libmicrokit (so PD source carries over to the
//! official SDK) in the shape of rust-sel4's `sel4-microkit`.
//!
//! A PD declares `microkit::protection_domain!(init)`, where `init` returns
//! a [`Handler`]. The runtime then waits on the PD's input capability and
//! delivers each event to the handler, one at a time and to completion:
//! either a protected procedure call on one channel, or a set of channels
//! that notified. Capabilities sit in libmicrokit's slots
//! (`pd_layout::cspace`).
//!
//! One deviation from libmicrokit, forced by seL4 5.0.0: endpoint badges
//! are 28 bits, so a PPC cannot be told from a notification by badge bit 63.
//! Instead the runtime receives with its own "marked" message info
//! (capsUnwrapped = 0b111, which the kernel never produces: its slow path
//! zeroes the field and its fast path passes only what a caller wrote). An
//! IPC overwrites the info; a notification leaves the mark in place. A
//! caller that forges the mark into its call's info makes its call look
//! like notifications on the channels its endpoint badge names, and gets no
//! reply: it can confuse no one but itself and the callee's view of those
//! channels. PPC badges are `BADGE_PPC | channel`.
//!
//! When system.xml maps the system log ring into the PD (setvar
//! `dingo_log_vaddr`), everything the PD prints also goes into the ring,
//! whole lines at a time; the console PD shows it on the screen.
#![no_std]

use core::cell::UnsafeCell;
use core::fmt;
use pd_layout::{IPC_BUFFER_VADDR, cspace};
use sel4::MessageInfo;
use sel4::cap::{Cap, kind};
use sel4::ipc_buffer::IpcBuffer;
use sel4::syscall;

pub use hwio;
pub use pd_layout as layout;
pub use sel4;
// Start code, memory functions and the panic handler come with the runtime.
pub use sel4::{debug_print, debug_println};
use sel4_start as _;

mod log;
pub mod recovery;

/// A channel end of this PD: its id in system.xml (also used for IRQs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Channel(u8);

impl Channel {
    /// The channel with `id` (0..=61 on x86_64, 0..=27 on 32-bit ARM).
    pub const fn new(id: u8) -> Self {
        assert!(
            id <= pd_layout::MAX_CHANNEL_ID as u8,
            "channel id beyond the architecture's badge bits"
        );
        Self(id)
    }
    pub const fn index(self) -> u8 {
        self.0
    }
    /// Signals the peer. Does nothing when system.xml gives this end no
    /// `notify` right (the slot is empty; the kernel ignores the send).
    pub fn notify(self) {
        syscall::signal(cspace::NOTIFY_BASE + self.0 as u64);
    }
    /// Re-enables the IRQ delivered on this channel.
    pub fn irq_ack(self) -> sel4::Result<()> {
        Cap::<kind::IrqHandler>::from_cptr(cspace::IRQ_BASE + self.0 as u64).ack()
    }
    /// Protected procedure call to the peer: message registers set with
    /// [`set_mr`] go out, the reply's come back in them.
    pub fn pp_call(self, msg: MessageInfo) -> MessageInfo {
        let msg = MessageInfo::new(msg.label(), 0, 0, msg.length());
        let reply = syscall::call(cspace::PPC_BASE + self.0 as u64, msg, load_mrs());
        store_mrs(reply.mrs);
        // The callee's receive mark may come back on the fast path.
        MessageInfo::new(reply.info.label(), 0, 0, reply.info.length())
    }
}

/// A channel role of the PD's generated config.
impl From<pd_config::Channel> for Channel {
    fn from(c: pd_config::Channel) -> Self {
        Channel::new(c.id)
    }
}

/// An IRQ arrives as a notification on its channel, and is acknowledged
/// there.
impl From<pd_config::Irq> for Channel {
    fn from(irq: pd_config::Irq) -> Self {
        Channel::new(irq.id)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "channel {}", self.0)
    }
}

/// The channels that notified, delivered together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSet(u64);

/// One bit per channel id.
const CHANNEL_BITS: u64 = (1 << (pd_layout::MAX_CHANNEL_ID + 1)) - 1;

impl ChannelSet {
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits & CHANNEL_BITS)
    }
    pub const fn bits(self) -> u64 {
        self.0
    }
    pub const fn contains(self, ch: Channel) -> bool {
        self.0 & (1 << ch.0) != 0
    }
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        (0..=pd_layout::MAX_CHANNEL_ID as u8)
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(Channel)
    }
}

/// A PD's event handlers. Each call runs to completion before the next
/// event is taken: handlers are atomic, so a PD needs no locks.
pub trait Handler {
    /// Some channels notified (or their IRQs fired).
    fn notified(&mut self, channels: ChannelSet);

    /// A peer called this PD. The reply's message registers are set with
    /// [`set_mr`]; the returned info goes back with them.
    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> MessageInfo {
        panic!(
            "unexpected protected procedure call on {channel} (label {})",
            msg.label()
        )
    }

    /// A child PD faulted. Child PDs are not supported by this runtime's
    /// system builder, so this is never called; it exists for source
    /// compatibility with Microkit handlers.
    fn fault(&mut self, child: u8, msg: MessageInfo) -> Option<MessageInfo> {
        panic!(
            "fault of child {child} (label {}) but child PDs are not supported",
            msg.label()
        )
    }
}

/// This PD's IPC buffer: the monitor maps it at the same address in every
/// PD before the PD starts ([`start`] registers it with the `sel4` crate
/// too). The runtime reaches it at that constant address, so a message
/// register costs one memory access.
const IPC_BUFFER: *mut IpcBuffer = IPC_BUFFER_VADDR as *mut IpcBuffer;

/// Message register `i` (of the last message received or to be sent).
#[inline]
pub fn mr(i: usize) -> u64 {
    // SAFETY: IPC_BUFFER is mapped for the PD's life; the PD has one thread
    // and no reference into the buffer outlives this read.
    unsafe { (*IPC_BUFFER).msg(i) }
}

/// Sets message register `i` of the next message sent (a machine word: on
/// 32-bit ARM the upper half is dropped).
#[inline]
pub fn set_mr(i: usize, value: u64) {
    // SAFETY: as in mr.
    unsafe { (*IPC_BUFFER).set_msg(i, value) }
}

// The first message registers travel in CPU registers; keeping every one in
// the IPC buffer between syscalls gives mr()/set_mr() one home.
#[inline]
fn load_mrs() -> syscall::Mrs {
    core::array::from_fn(mr)
}

#[inline]
fn store_mrs(mrs: syscall::Mrs) {
    for (i, v) in mrs.into_iter().enumerate() {
        set_mr(i, v);
    }
}

/// An I/O port range from system.xml's `<ioport id=...>` (x86 only).
/// Drivers use it as a typed bus through [`IoPort::ports`]; the raw
/// instructions below are for checking what the kernel allows.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug)]
pub struct IoPort(Cap<kind::IoPort>);

/// A device's I/O ports as an hwio bus (each access a kernel call).
#[cfg(target_arch = "x86_64")]
pub type Ports = hwio::PortIo<Cap<kind::IoPort>>;

#[cfg(target_arch = "x86_64")]
impl IoPort {
    pub const fn new(id: u8) -> Self {
        Self(Cap::from_cptr(cspace::IOPORT_BASE + id as u64))
    }
    /// The capability of an ioport role of the PD's generated config.
    pub const fn of(ports: pd_config::IoPorts) -> Self {
        Self::new(ports.id)
    }
    /// An ioport role of the PD's generated config as a bus whose offset 0
    /// is the range's first port.
    pub fn bus(ports: pd_config::IoPorts, name: &'static str) -> Ports {
        Self::of(ports).ports(name, ports.base, ports.size)
    }
    /// Ports `base..base + size` (system.xml's `addr` and `size` of this
    /// `<ioport>`) as a bus whose offset 0 is `base`.
    pub fn ports(self, name: &'static str, base: u16, size: u16) -> Ports {
        hwio::PortIo::new(name, self.0, base, size)
    }
    pub fn in8(self, port: u16) -> sel4::Result<u8> {
        self.0.in8(port)
    }
    pub fn in16(self, port: u16) -> sel4::Result<u16> {
        self.0.in16(port)
    }
    pub fn in32(self, port: u16) -> sel4::Result<u32> {
        self.0.in32(port)
    }
    pub fn out8(self, port: u16, value: u8) -> sel4::Result<()> {
        self.0.out8(port, value)
    }
    pub fn out16(self, port: u16, value: u16) -> sel4::Result<()> {
        self.0.out16(port, value)
    }
    pub fn out32(self, port: u16, value: u32) -> sel4::Result<()> {
        self.0.out32(port, value)
    }
}

/// A word the system builder or the monitor fills in before the PD starts
/// (`setvar_vaddr` of a map, `setvar region_paddr`, ...). Declare it with
/// [`setvar!`] under the symbol name system.xml uses.
#[repr(transparent)]
pub struct SetVar(UnsafeCell<u64>);

// SAFETY: written only before the PD starts; the PD has one thread.
unsafe impl Sync for SetVar {}

impl SetVar {
    #[doc(hidden)]
    pub const fn new() -> Self {
        Self(UnsafeCell::new(0))
    }
    pub fn get(&self) -> u64 {
        // SAFETY: a plain read of our own word; volatile, because it was
        // written from outside the program after it was compiled.
        unsafe { self.0.get().read_volatile() }
    }
}

/// Declares a setvar symbol: `setvar!(buffer_vaddr);` then `buffer_vaddr.get()`.
#[macro_export]
macro_rules! setvar {
    ($($name:ident),+ $(,)?) => {
        $(
            #[unsafe(no_mangle)]
            #[used]
            #[allow(non_upper_case_globals)]
            static $name: $crate::SetVar = $crate::SetVar::new();
        )+
    };
}

/// How test and benchmark PDs end a run under QEMU: on x86_64 QEMU's
/// isa-debug-exit device, on the PD's ioport role for it (system.xml gives
/// the range: `<ioport addr="0xf4" size="4"/>` on QEMU's machine); on ARM
/// semihosting, which needs no role (`hwio::semihosting`). A role that is
/// optional in the manifest, so that one program serves both, may be
/// absent on ARM; absent on x86_64 it leaves the PD unable to end the run,
/// which [`RunExit`] says when asked to.
pub fn debug_exit(ports: impl Into<Option<pd_config::IoPorts>>) -> RunExit {
    RunExit(ports.into())
}

/// The end of a run; see [`debug_exit`].
pub struct RunExit(Option<pd_config::IoPorts>);

impl RunExit {
    /// Ends the run with `code`. Returns only where the machine has no way
    /// to (real hardware, or no debug-exit port on x86_64).
    pub fn exit(&mut self, code: hwio::debug_exit::Code) {
        #[cfg(target_arch = "x86_64")]
        match self.0 {
            Some(ports) => {
                hwio::debug_exit::DebugExit::new(IoPort::bus(ports, "debug-exit")).exit(code)
            }
            None => debug_println!(
                "microkit: no debug-exit ioport role bound; cannot end the run ({code:?})"
            ),
        }
        #[cfg(target_arch = "arm")]
        {
            let _ = self.0;
            hwio::semihosting::exit(code);
        }
    }
    pub fn success(&mut self) {
        self.exit(hwio::debug_exit::Code::Success)
    }
    pub fn failure(&mut self) {
        self.exit(hwio::debug_exit::Code::Failure)
    }
}

/// capsUnwrapped bits the kernel never writes into a received message info.
const MARK: u64 = 0b111;

fn marked(info: MessageInfo) -> MessageInfo {
    MessageInfo::new(info.label(), MARK, 0, info.length())
}

/// Runs `handler` on this PD's events for ever.
pub fn run<H: Handler>(mut handler: H) -> ! {
    let mut reply: Option<MessageInfo> = None;
    loop {
        recovery::step();
        let msg = match reply.take() {
            Some(info) => syscall::reply_recv(cspace::INPUT, marked(info), load_mrs()),
            None => syscall::recv_marked(cspace::INPUT, marked(MessageInfo::new(0, 0, 0, 0))),
        };
        recovery::step();
        if msg.info.caps_unwrapped() == MARK && msg.info.extra_caps() == 0 {
            // A notification: the kernel left our info and wrote the
            // notification word (one bit per channel) as the badge.
            if msg.badge != 0 {
                handler.notified(ChannelSet::from_bits(msg.badge));
            }
        } else if msg.badge & cspace::BADGE_PPC != 0 {
            store_mrs(msg.mrs);
            let ch = Channel((msg.badge & 0x3f) as u8);
            reply = Some(handler.protected(ch, msg.info));
        }
    }
}

/// Waits for notifications outside the [`Handler`] loop (for PDs that run
/// their own event loop, such as dingo-rt's executor); returns the channels
/// that notified, possibly none. Such PDs serve no protected procedure
/// calls: a call arriving here is answered at once with an empty reply, so
/// the caller is never left blocked.
pub fn wait() -> ChannelSet {
    recovery::step();
    let msg = syscall::recv_marked(cspace::INPUT, marked(MessageInfo::new(0, 0, 0, 0)));
    recovery::step();
    if msg.info.caps_unwrapped() == MARK && msg.info.extra_caps() == 0 {
        ChannelSet::from_bits(msg.badge)
    } else {
        syscall::reply(MessageInfo::new(0, 0, 0, 0), [0; 4]);
        ChannelSet::from_bits(0)
    }
}

#[doc(hidden)]
pub fn start(main: fn() -> !) -> ! {
    // SAFETY: the monitor maps this PD's IPC buffer at IPC_BUFFER_VADDR and
    // configures the TCB with it before the PD starts.
    unsafe { sel4::ipc_buffer::set_ipc_buffer(IPC_BUFFER_VADDR as *mut _) };
    log::attach();
    main()
}

/// Declares the PD's entry: `entry!(main)` with `fn main() -> !`, run once
/// the runtime is set up. The monitor starts the PD at `_start` with the
/// stack pointer at the top of its stack. Most PDs use
/// [`protection_domain!`] instead.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[doc(hidden)]
        extern "C" fn __microkit_main() -> ! {
            $crate::start($main)
        }
        $crate::__entry_asm!(__microkit_main);
    };
}

#[doc(hidden)]
#[cfg(target_arch = "x86_64")]
#[macro_export]
macro_rules! __entry_asm {
    ($main:ident) => {
        core::arch::global_asm!(
            ".globl _start",
            "_start:",
            "call {main}",
            "ud2",
            main = sym $main,
        );
    };
}

#[doc(hidden)]
#[cfg(target_arch = "arm")]
#[macro_export]
macro_rules! __entry_asm {
    ($main:ident) => {
        core::arch::global_asm!(
            ".globl _start",
            "_start:",
            "bl {main}",
            "udf #0",
            main = sym $main,
        );
    };
}

/// Declares the PD: `protection_domain!(init)` with `fn init() -> impl Handler`.
#[macro_export]
macro_rules! protection_domain {
    ($init:path) => {
        #[doc(hidden)]
        fn __microkit_pd() -> ! {
            $crate::run($init())
        }
        $crate::entry!(__microkit_pd);
    };
}
