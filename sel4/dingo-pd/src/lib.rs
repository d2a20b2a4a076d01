//! Runs dingo-rt in a Microkit protection domain: the executor's
//! [`Platform`] on the Microkit runtime (wait on the PD's notification,
//! notify and acknowledge IRQs through its channels), a [`Reporter`] that
//! prints protocol violations on the debug console and hands a PD with a
//! fatal one to the monitor, and the entry macro of an `async` PD (with
//! [`timer_platform`], whose sleeps the timer PD serves). For
//! PDs that run their own synchronous loop: [`Watch`] (which ports to
//! read after a wake-up), [`flush`] (one notification per batch) and
//! [`idle`] (a driver without its device).
#![no_std]

use core::fmt::Write;
#[cfg(target_arch = "x86_64")]
use core::sync::atomic::{AtomicPtr, Ordering};

use dingo_protocols::timer;
use dingo_rt::executor::{Executor, Platform};
use dingo_rt::port::{Port, Side};
use dingo_rt::ring::{Arm, NotifyPeer};
use dingo_rt::typed::{PortObserver, Protocol, Report, Reporter, Supervisor, TypedPort};
use microkit::sel4::DebugWriter;
use microkit::{Channel, ChannelSet};
#[cfg(target_arch = "x86_64")]
use timer_client::clock::TimeReader;
use timer_client::platform::TimerPlatform;
use tingu_rt::Observer;
use tingu_rt::shadow::Shadowed;

pub use dingo_rt;
pub use microkit;
pub use pd_config;

/// This PD's end of a Dingo port, from its config. A region or geometry
/// that does not fit stops the PD with a message naming the PD and port:
/// system-builder checks both, so that means an image not built by it.
pub fn port(pd: &str, cfg: &pd_config::PortConfig) -> Port<64> {
    let side = match cfg.side {
        pd_config::Side::Provider => Side::A,
        pd_config::Side::Client => Side::B,
    };
    // SAFETY: system-builder checked that the port's region is mapped
    // read-write here for cfg.size bytes, by exactly one other PD (the
    // peer, on the other side), and is no other role's region.
    match unsafe { Port::new(cfg.vaddr as *mut u8, cfg.size, cfg.slots, side, cfg.channel) } {
        Ok(p) => p,
        Err(e) => panic!("{pd}: port {} ({}): {e}", cfg.role, cfg.protocol),
    }
}

/// As [`port`], with the protocol observer for this end (provider or
/// client, as the config says) and the port's reports named after the PD
/// and the port role.
pub fn typed_port<'r, O: Observer>(
    pd: &'static str,
    cfg: &pd_config::PortConfig,
    observer: O,
    supervisor: Supervisor<'r>,
) -> TypedPort<'r, Protocol<O>>
where
    O::Msg: Shadowed,
{
    let observer = match cfg.side {
        pd_config::Side::Provider => Protocol::provider(observer),
        pd_config::Side::Client => Protocol::client(observer),
    };
    observed_port(pd, cfg, observer, supervisor)
}

/// As [`port`], checked by `observer` (a protocol's, or one a component
/// shares among its ports), reports named after the PD and the port role,
/// with the client's shadow where the config says the peer restarts.
pub fn observed_port<'r, O: PortObserver>(
    pd: &'static str,
    cfg: &pd_config::PortConfig,
    observer: O,
    supervisor: Supervisor<'r>,
) -> TypedPort<'r, O> {
    TypedPort::new(port(pd, cfg), observer, supervisor, pd, cfg.role).shadowed(cfg.peer_restarts)
}

/// Notifies the peer of `port` if what this PD sent since the last flush
/// asks for it (the peer armed its flag; dingo-rt's signal suppression).
/// A synchronous PD's loop flushes each port once per round, so that a
/// batch costs one notification.
#[inline]
pub fn flush<O: PortObserver>(port: &mut TypedPort<'_, O>) {
    if port.take_notify() == NotifyPeer::Yes {
        Channel::new(port.channel()).notify();
    }
}

/// For a driver without a usable device: says why once, naming the PD,
/// and waits forever, so that the rest of the system runs without it.
pub fn idle(pd: &str, why: core::fmt::Arguments<'_>) -> ! {
    microkit::debug_println!("{pd}: {why}; staying idle");
    loop {
        microkit::wait();
    }
}

/// The ports a synchronous PD's event loop must read after a wake-up: those
/// whose channel woke it and those not armed for sleep. A steady port armed
/// for sleep that was not notified has nothing new (its peer notifies after
/// any message it pushes once the flag is set, dingo-rt's signal
/// suppression), so it is neither read nor armed again. Ports are numbered
/// in the order of the channels given to [`new`](Self::new).
pub struct Watch<const N: usize> {
    channels: [Channel; N],
    look: [bool; N],
}

impl<const N: usize> Watch<N> {
    /// Every port looked at on the first round.
    pub fn new(channels: [u8; N]) -> Self {
        Watch {
            channels: channels.map(Channel::new),
            look: [true; N],
        }
    }

    /// Whether port `i` may hold something new.
    pub fn looks_at(&self, i: usize) -> bool {
        self.look[i]
    }

    /// Arms port `i` for sleep, if it was looked at: whether a message
    /// slipped in meanwhile, so that the loop must go round again. A port
    /// that is not steady (a session starting, a peer restarting) stays
    /// looked at on every wake-up.
    pub fn arm<O: PortObserver>(&mut self, i: usize, port: &mut TypedPort<'_, O>) -> bool {
        if !self.look[i] {
            return false;
        }
        let arm = port.prepare_recv_sleep();
        self.look[i] = !(port.is_steady() && matches!(arm, Ok(Arm::Sleep)));
        matches!(arm, Ok(Arm::Retry))
    }

    /// Keeps port `i` awake until the PD next sleeps: its "wake me" flag
    /// is withdrawn and the port is looked at again before sleeping. For a
    /// PD about to wake a peer of higher priority that answers at once (a
    /// driver handing frames to its client): the peer runs before this PD
    /// sleeps, and its answers then cost neither a notification nor a
    /// wake-up of their own.
    pub fn stay_awake<O: PortObserver>(&mut self, i: usize, port: &mut TypedPort<'_, O>) {
        port.withdraw_recv_sleep();
        self.look[i] = true;
    }

    /// Looks at port `i` on the next round whatever woke the PD (its send
    /// side found room, say).
    pub fn again(&mut self, i: usize) {
        self.look[i] = true;
    }

    /// Adds the ports whose channels are in `woken` (what
    /// [`microkit::wait`] returned).
    pub fn woken(&mut self, woken: ChannelSet) {
        for (looked, ch) in self.look.iter_mut().zip(self.channels) {
            *looked |= woken.contains(ch);
        }
    }
}

/// The supervisor of a PD's ports: violations are fatal when the monitor
/// restarts this PD on a fault (a fault then costs a restart, and the
/// clients' shadows replay the rest), logged otherwise.
pub fn supervisor(reporter: &dyn Reporter) -> Supervisor<'_> {
    if microkit::recovery::restartable() {
        Supervisor::fatal(reporter)
    } else {
        Supervisor::log(reporter)
    }
}

/// The time source of a PD: monotonic nanoseconds.
pub type Clock = fn() -> u64;

/// dingo-rt's kernel interface on the Microkit runtime.
pub struct MicrokitPlatform {
    clock: Clock,
    deadline: Option<u64>,
}

impl MicrokitPlatform {
    pub const fn new(clock: Clock) -> Self {
        Self {
            clock,
            deadline: None,
        }
    }

    /// The deadline the executor asked for, if any. Waking at it needs a
    /// timer: a PD that sleeps wraps this platform in timer-client's
    /// `TimerPlatform`, which turns the deadline into Timer requests.
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }
}

impl Platform for MicrokitPlatform {
    fn wait(&mut self) -> u64 {
        microkit::wait().bits()
    }
    fn notify(&mut self, channel: u8) {
        Channel::new(channel).notify();
    }
    fn irq_ack(&mut self, channel: u8) {
        if let Err(e) = Channel::new(channel).irq_ack() {
            microkit::debug_println!("dingo-pd: IRQ ack on channel {channel} failed: {e:?}");
        }
    }
    fn now_ns(&self) -> u64 {
        (self.clock)()
    }
    fn set_deadline(&mut self, at_ns: Option<u64>) {
        self.deadline = at_ns;
    }
}

/// The executor of an async PD whose sleeps the timer PD serves
/// ([`async_protection_domain!`]`(main, timer)`), with `N` task slots.
pub type TimedExecutor<'a, const N: usize = 8> =
    Executor<'a, TimerPlatform<'static, MicrokitPlatform>, N>;

/// An async PD's platform whose deadlines go to the timer PD as Timer
/// requests on the port `cfg` configures (observed; a violation is fatal
/// and reported on the console), and whose time is `clock`.
pub fn timer_platform(
    pd: &'static str,
    cfg: &pd_config::PortConfig,
    clock: Clock,
) -> TimerPlatform<'static, MicrokitPlatform> {
    static REPORTER: ConsoleReporter = ConsoleReporter;
    let port = typed_port(
        pd,
        cfg,
        timer::Observer::new(clock()),
        Supervisor::fatal(&REPORTER),
    );
    TimerPlatform::new(MicrokitPlatform::new(clock), port)
}

/// The timer PD's time page as the plain function a [`Clock`] is: where
/// the page is mapped is looked up on the first reading only (the PD's
/// configuration is decoded then).
#[cfg(target_arch = "x86_64")]
pub struct TimePage(AtomicPtr<u8>);

#[cfg(target_arch = "x86_64")]
impl TimePage {
    pub const fn new() -> Self {
        TimePage(AtomicPtr::new(core::ptr::null_mut()))
    }

    /// The time now, in nanoseconds.
    ///
    /// # Safety
    ///
    /// `find` returns where the time page is mapped readable, a page at
    /// least, for the rest of the PD's life (system-builder checks a PD's
    /// `time_page` region so).
    #[inline]
    pub unsafe fn now_ns(&self, find: impl FnOnce() -> *const u8) -> u64 {
        let mut page = self.0.load(Ordering::Relaxed);
        if page.is_null() {
            page = find().cast_mut();
            self.0.store(page, Ordering::Relaxed);
        }
        // SAFETY: the caller's promise.
        unsafe { TimeReader::new(page) }.now_ns()
    }
}

#[cfg(target_arch = "x86_64")]
impl Default for TimePage {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints each report as one line on the debug console; a fatal one then
/// faults the PD (a panic ends in an invalid instruction), which hands it to
/// the monitor: the monitor's fault report names the PD.
pub struct ConsoleReporter;

impl Reporter for ConsoleReporter {
    fn report(&self, report: &Report<'_>) {
        let _ = match report {
            Report::PeerRestarted { .. } => writeln!(DebugWriter, "dingo: {report}"),
            _ => writeln!(DebugWriter, "dingo: protocol violation: {report}"),
        };
    }
    fn fatal(&self, _report: &Report<'_>) {
        panic!("fatal protocol violation (policy: fatal)")
    }
}

/// Declares an async PD: `async_protection_domain!(main, clock = f)` with
/// `async fn main(ex: &Executor<'_, MicrokitPlatform>)`; `f` is the PD's
/// time source. With `platform = expr` instead, the executor runs on that
/// platform (built once at start-up), e.g. one whose deadlines go to the
/// timer PD so that sleeps wake up; `main` then takes an
/// `&Executor<'_, ThatPlatform>`. `async_protection_domain!(main, timer)`
/// is the common case of that (x86_64): the time from the PD's `time_page`
/// region, sleeps through its `timer` port ([`timer_platform`]), and
/// `main` takes a [`TimedExecutor`]. The executor's task slots are those of
/// `main`'s parameter type (`Executor<'_, P>` has 8; `Executor<'_, P, 0>`
/// suits a PD that spawns nothing).
#[macro_export]
macro_rules! async_protection_domain {
    ($main:path, timer) => {
        #[doc(hidden)]
        static __DINGO_PD_TIME_PAGE: $crate::TimePage = $crate::TimePage::new();
        #[doc(hidden)]
        fn __dingo_pd_clock() -> u64 {
            // SAFETY: system-builder checked that the PD's time page is
            // mapped readable at its region's address, a page at least.
            unsafe { __DINGO_PD_TIME_PAGE.now_ns(|| config::load().regions.time_page.as_ptr()) }
        }
        $crate::async_protection_domain!(
            $main,
            platform = {
                let cfg = config::load();
                $crate::timer_platform(cfg.name, &cfg.ports.timer, __dingo_pd_clock)
            }
        );
    };
    ($main:path, clock = $clock:expr) => {
        $crate::async_protection_domain!($main, platform = $crate::MicrokitPlatform::new($clock));
    };
    ($main:path, platform = $platform:expr) => {
        #[doc(hidden)]
        fn __dingo_pd_main() -> ! {
            let ex = core::pin::pin!($crate::dingo_rt::executor::Executor::new($platform));
            let main = core::pin::pin!($main(&ex));
            ex.as_ref().run(main);
            // The driver finished: stay alive for the monitor, doing nothing.
            loop {
                $crate::microkit::wait();
            }
        }
        $crate::microkit::entry!(__dingo_pd_main);
    };
}
