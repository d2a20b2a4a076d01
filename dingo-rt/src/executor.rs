//! The single-threaded async executor of a protection domain.
//!
//! A PD has one thread and one seL4 notification. The executor polls the
//! PD's tasks, and when none can make progress it blocks in
//! [`Platform::wait`], which returns the bitset of channels that fired.
//! Rust `async`/`await` gives the sequential style of the Dingo paper's
//! Tame constructs without a preprocessor:
//!
//! | Dingo / Tame          | here                                                   |
//! |-----------------------|--------------------------------------------------------|
//! | `CALL(timeout(10))`   | `exec.sleep(10.ms()).await` ([`Millis`])               |
//! | `AWAIT(a, b) IF/ELIF` | `match select(a, b).await { Either::First(..) => .. }` |
//! | `EMIT(ev)`            | [`Event::emit`], awaited with [`Event::wait`]          |
//! | message delivery      | `exec.recv(&mut port.rx, port.channel).await`          |
//!
//! # Atomic delivery
//!
//! Exactly one task runs at a time, and it runs until its next `.await`
//! that is not ready. Everything between two awaits is therefore atomic
//! with respect to every other task and every incoming message: the
//! paper's "a message handler is never interrupted by another message".
//! No locks are needed, and none exist here; `core::cell` suffices.
//!
//! # Wake-ups
//!
//! Tasks are futures pinned by the caller: the main future passed to
//! [`Executor::run`] (task 0) and up to `N` more passed to
//! [`Executor::spawn`] (tasks 1..=N). No allocation is involved. Each time a
//! task is polled, the futures it awaits record what would make progress
//! possible: channel bits, a deadline, an [`Event`]. The loop is:
//!
//! 1. Poll every ready task; futures that return `Pending` register their
//!    interest (channel bits, deadline, event) for the polling task.
//! 2. After each poll, send the notifications and IRQ acks the task asked
//!    for ([`Executor::notify`], [`Executor::irq_ack`], port sends and
//!    receives), merged per channel as a seL4 notification merges them.
//! 3. An [`Event::emit`] marks its waiters ready at once, and so does a
//!    task's `Waker` (see below); repeat step 1 while any task is ready. No
//!    kernel call is made for either.
//! 4. Program the earliest registered deadline with
//!    [`Platform::set_deadline`] (only when it changed) and block in
//!    [`Platform::wait`].
//! 5. Latch the returned channel bits, read the clock, and mark ready every
//!    task whose channel interest intersects the bits or whose deadline has
//!    passed; go to step 1. Other tasks are not polled.
//!
//! # Example
//!
//! ```
//! use core::pin::pin;
//! use core::time::Duration;
//! use dingo_rt::executor::{Either, Executor, Platform, select};
//!
//! /// Stand-in for the seL4 platform: channel 3 fires at t = 5 ms.
//! struct Demo { now: u64, deadline: Option<u64> }
//! impl Platform for Demo {
//!     fn wait(&mut self) -> u64 {
//!         let irq_at = 5_000_000;
//!         match self.deadline {
//!             Some(at) if at < irq_at || self.now >= irq_at => { self.now = self.now.max(at); 0 }
//!             _ => { self.now = irq_at; 1 << 3 }
//!         }
//!     }
//!     fn notify(&mut self, _: u8) {}
//!     fn irq_ack(&mut self, _: u8) {}
//!     fn now_ns(&self) -> u64 { self.now }
//!     fn set_deadline(&mut self, at: Option<u64>) { self.deadline = at; }
//! }
//!
//! let exec = pin!(Executor::<'_, Demo>::new(Demo { now: 0, deadline: None }));
//! let outcome = exec.as_ref().run(pin!(async {
//!     // AWAIT(irq, timeout) IF(irq) ... ELIF(timeout) ...
//!     match select(exec.channel(3), exec.sleep(Duration::from_millis(10))).await {
//!         Either::First(()) => { exec.irq_ack(3); "irq" }
//!         Either::Second(()) => "timeout",
//!     }
//! }));
//! assert_eq!(outcome, "irq");
//! ```
//!
//! # Wakers, and futures from other crates
//!
//! Futures from this module register their interest with the executor
//! directly and never use the `Waker` in the `Context`. Futures from other
//! crates do: each task is polled with a real waker, and waking it (from
//! inside any task's poll, or from the task itself to yield) marks the task
//! ready, so it is polled again before the executor next blocks in
//! [`Platform::wait`]. A PD has one thread, so wakes happen during polls;
//! a wake from another thread (host tests) is recorded at once but is seen
//! only when the executor next looks, after its current wait returns.
//!
//! There is no allocation and no static: a waker points at wake state
//! inside the executor, which is why [`Executor::run`] takes the executor
//! pinned (`pin!(Executor::new(..))`): pinned, it cannot move while a
//! waker points at it. The executor counts the wakers that exist (clones
//! of the one it polls with). A waker must not outlive the executor, and
//! this is enforced rather than assumed: dropping an executor while any of
//! its wakers exists aborts the program with a message naming the count
//! (on seL4 the PD faults and the monitor reports it), because letting it
//! go would leave wakers pointing at freed memory. A PD never drops its
//! executor; a test must let tasks that hold foreign wakers finish, or
//! drop them, first.

use core::cell::{Cell, RefCell};
use core::fmt;
use core::future::{Future, poll_fn};
use core::marker::PhantomPinned;
use core::mem::ManuallyDrop;
use core::pin::{Pin, pin};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use core::time::Duration;

use crate::ring::{Arm, Consumer, NotifyPeer, Producer, RingError};

/// Duration literals for sleeps and timeouts: `10.ms()`, `250.us()`.
pub trait Millis {
    fn ms(self) -> Duration;
    fn us(self) -> Duration;
}

impl Millis for u64 {
    fn ms(self) -> Duration {
        Duration::from_millis(self)
    }
    fn us(self) -> Duration {
        Duration::from_micros(self)
    }
}

/// The kernel operations the executor needs; implemented on seL4 by the PD
/// runtime and by a fake in tests.
pub trait Platform {
    /// Blocks until the PD's notification is signalled or the deadline set
    /// with [`set_deadline`](Self::set_deadline) passes; returns the bitset
    /// of channel ids (0..=61) that fired, possibly 0 (a deadline, or a
    /// spurious wake-up).
    fn wait(&mut self) -> u64;
    /// Signals the peer at the other end of `channel`.
    fn notify(&mut self, channel: u8);
    /// Re-enables the IRQ delivered on `channel`.
    fn irq_ack(&mut self, channel: u8);
    /// Monotonic time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Asks for [`wait`](Self::wait) to return at or after `at_ns`, or
    /// cancels the request (`None`). The executor re-checks the clock after
    /// every wait, so an early return is harmless.
    fn set_deadline(&mut self, at_ns: Option<u64>);
}

/// Most tasks an executor can hold besides the main future.
pub const MAX_TASKS: usize = 63;

const MAIN: usize = 0;
const NO_DEADLINE: u64 = u64::MAX;

fn channel_bit(channel: u8) -> u64 {
    assert!(
        channel < 64,
        "channel id {channel} does not fit the 64-bit notification word"
    );
    1 << channel
}

/// Iterates the set bits of a word, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let bit = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(bit)
    }
}

/// What a task's waker reaches: the tasks woken since the executor last
/// looked, and how many wakers exist. Atomic because a `Waker` is `Send`
/// and `Sync`. Aligned to 64 bytes so that a waker's data pointer carries
/// its task id (0..=63) in its low six bits.
#[repr(align(64))]
struct WakeCore {
    woken: AtomicU64,
    /// Wakers that exist besides the borrowed one each poll uses.
    live: AtomicUsize,
}

const TASK_BITS: usize = 63;

impl WakeCore {
    /// The borrowed waker of `task`'s poll. Not counted: it is never
    /// dropped (`ManuallyDrop`), and it lives only during the poll, while
    /// the pinned executor is borrowed by `run`.
    fn waker(self: Pin<&Self>, task: usize) -> ManuallyDrop<Waker> {
        let data = (&*self as *const WakeCore)
            .map_addr(|a| a | task)
            .cast::<()>();
        // SAFETY: the vtable's functions uphold RawWaker's contract for
        // this data: it points at a pinned WakeCore (task id in the low
        // bits), which the executor keeps alive while any counted waker
        // exists (its Drop aborts otherwise); they only touch its atomics.
        ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(data, &WAKER_VTABLE)) })
    }
}

const WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

/// The WakeCore and the task id a waker's data pointer carries.
///
/// # Safety
///
/// `data` came from [`WakeCore::waker`] and its executor is alive (the
/// executor's Drop aborts while a counted waker exists).
unsafe fn waker_target<'w>(data: *const ()) -> (&'w WakeCore, usize) {
    let task = data.addr() & TASK_BITS;
    let core = data.map_addr(|a| a & !TASK_BITS).cast::<WakeCore>();
    // SAFETY: per the function's contract the pointer (with its tag
    // removed) is the live, pinned WakeCore the waker was made from.
    (unsafe { &*core }, task)
}

unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: called by Waker on a waker this module made.
    let (core, _) = unsafe { waker_target(data) };
    core.live.fetch_add(1, Ordering::Relaxed);
    RawWaker::new(data, &WAKER_VTABLE)
}

unsafe fn waker_wake(data: *const ()) {
    // SAFETY: as for waker_clone; `wake` consumes a counted waker.
    unsafe {
        waker_wake_by_ref(data);
        waker_drop(data);
    }
}

unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: as for waker_clone.
    let (core, task) = unsafe { waker_target(data) };
    core.woken.fetch_or(1 << task, Ordering::Release);
}

unsafe fn waker_drop(data: *const ()) {
    // SAFETY: as for waker_clone; only counted wakers are ever dropped.
    let (core, _) = unsafe { waker_target(data) };
    core.live.fetch_sub(1, Ordering::Release);
}

/// Scheduling state shared by the executor and the futures it hands out.
/// Not generic, so leaf futures and events need only `&Sched`.
struct Sched {
    /// Task being polled.
    current: Cell<usize>,
    /// Tasks to poll (bit i = task i).
    ready: Cell<u64>,
    /// Channel bits delivered and not yet consumed by a wait.
    pending: Cell<u64>,
    /// Per task: channel bits it waits on, as of its latest poll.
    interest: [Cell<u64>; 64],
    /// Per task: earliest deadline it waits on, as of its latest poll.
    deadline: [Cell<u64>; 64],
    /// Clock reading after the latest wait: never ahead of the real time.
    now: Cell<u64>,
    /// Channels to notify / IRQs to ack once the current poll returns.
    notify: Cell<u64>,
    irq_ack: Cell<u64>,
}

impl Sched {
    fn new() -> Self {
        Sched {
            current: Cell::new(MAIN),
            ready: Cell::new(0),
            pending: Cell::new(0),
            interest: [const { Cell::new(0) }; 64],
            deadline: [const { Cell::new(NO_DEADLINE) }; 64],
            now: Cell::new(0),
            notify: Cell::new(0),
            irq_ack: Cell::new(0),
        }
    }

    fn current_bit(&self) -> u64 {
        1 << self.current.get()
    }

    fn wake(&self, tasks: u64) {
        self.ready.set(self.ready.get() | tasks);
    }

    /// Consumes a latched notification.
    fn take_pending(&self, bit: u64) -> bool {
        let pending = self.pending.get();
        self.pending.set(pending & !bit);
        pending & bit != 0
    }

    fn want_channel(&self, bit: u64) {
        let slot = &self.interest[self.current.get()];
        slot.set(slot.get() | bit);
    }

    fn want_deadline(&self, at_ns: u64) {
        let slot = &self.deadline[self.current.get()];
        slot.set(slot.get().min(at_ns));
    }

    fn queue_notify(&self, bit: u64) {
        self.notify.set(self.notify.get() | bit);
    }

    /// Interest is rebuilt from scratch by every poll, so futures dropped
    /// since the last one (e.g. select losers) stop waking the task.
    fn begin_poll(&self, task: usize) {
        self.current.set(task);
        self.interest[task].set(0);
        self.deadline[task].set(NO_DEADLINE);
    }

    fn deliver(&self, fired: u64, now: u64, tasks: usize) {
        self.now.set(now);
        self.pending.set(self.pending.get() | fired);
        let mut ready = 0;
        for task in 0..=tasks {
            if self.interest[task].get() & fired != 0 || self.deadline[task].get() <= now {
                ready |= 1 << task;
            }
        }
        self.wake(ready);
    }
}

/// [`Executor::spawn`] failed: all `N` task slots are occupied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpawnError;

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("executor task slots are all occupied")
    }
}

impl core::error::Error for SpawnError {}

/// A spawned task: a caller-pinned future.
pub type Task<'a> = Pin<&'a mut (dyn Future<Output = ()> + 'a)>;

/// The executor of one PD, over platform `P`, with room for `N` spawned
/// tasks besides the main future.
pub struct Executor<'a, P: Platform, const N: usize = 8> {
    sched: Sched,
    platform: RefCell<P>,
    tasks: [Cell<Option<Task<'a>>>; N],
    /// Bit i+1 = slot i holds a task (the slot itself is empty while the
    /// task is being polled).
    occupied: Cell<u64>,
    armed_deadline: Cell<Option<u64>>,
    running: Cell<bool>,
    wake: WakeCore,
    /// Wakers point into the executor: it must not move once run.
    _pinned: PhantomPinned,
}

// On the wake state rather than the executor, so that tasks spawned into
// the executor may borrow it (no drop-check constraint on `'a`).
impl Drop for WakeCore {
    fn drop(&mut self) {
        let live = self.live.load(Ordering::Acquire);
        if live != 0 {
            abort_with(live);
        }
    }
}

/// Ends the program: panicking while a guard's drop panics again is an
/// abort, with or without unwinding, and `core` has no other way.
#[cold]
fn abort_with(live: usize) -> ! {
    struct Abort;
    impl Drop for Abort {
        fn drop(&mut self) {
            panic!("aborting: a waker would outlive its executor");
        }
    }
    let _abort = Abort;
    panic!(
        "executor dropped while {live} of its waker(s) still exist; a waker must not outlive \
         its executor"
    );
}

impl<'a, P: Platform, const N: usize> Executor<'a, P, N> {
    pub fn new(platform: P) -> Self {
        const { assert!(N <= MAX_TASKS, "an executor holds at most 63 spawned tasks") };
        Executor {
            sched: Sched::new(),
            platform: RefCell::new(platform),
            tasks: [const { Cell::new(None) }; N],
            occupied: Cell::new(0),
            armed_deadline: Cell::new(None),
            running: Cell::new(false),
            wake: WakeCore {
                woken: AtomicU64::new(0),
                live: AtomicUsize::new(0),
            },
            _pinned: PhantomPinned,
        }
    }

    /// Adds a task; it is first polled by the running (or next) [`run`](Self::run).
    pub fn spawn(&self, task: Task<'a>) -> Result<(), SpawnError> {
        let free = !self.occupied.get() & !1 & (u64::MAX >> (63 - N));
        let id = Bits(free).next().ok_or(SpawnError)?;
        self.tasks[id - 1].set(Some(task));
        self.occupied.set(self.occupied.get() | 1 << id);
        self.sched.wake(1 << id);
        Ok(())
    }

    /// Runs until `main` completes; spawned tasks run meanwhile. Not
    /// re-entrant: calling it from inside a task panics. The executor is
    /// pinned because the tasks' wakers point into it.
    pub fn run<F: Future>(self: Pin<&Self>, mut main: Pin<&mut F>) -> F::Output {
        assert!(
            !self.running.replace(true),
            "Executor::run called from inside a task"
        );
        // SAFETY: a field of a pinned value, never moved out of.
        let wake = unsafe { self.map_unchecked(|ex| &ex.wake) };
        self.sched.now.set(self.platform.borrow().now_ns());
        self.sched.wake(1 << MAIN);
        loop {
            loop {
                let woken = self.wake.woken.swap(0, Ordering::Acquire);
                let ready = self.sched.ready.replace(0) | (woken & self.tasks_mask());
                if ready == 0 {
                    break;
                }
                for task in Bits(ready) {
                    self.sched.begin_poll(task);
                    let waker = wake.waker(task);
                    let mut cx = Context::from_waker(&waker);
                    if task == MAIN {
                        let polled = main.as_mut().poll(&mut cx);
                        self.flush();
                        if let Poll::Ready(out) = polled {
                            if self.armed_deadline.take().is_some() {
                                self.platform.borrow_mut().set_deadline(None);
                            }
                            self.running.set(false);
                            return out;
                        }
                    } else if let Some(mut fut) = self.tasks[task - 1].take() {
                        if fut.as_mut().poll(&mut cx).is_pending() {
                            self.tasks[task - 1].set(Some(fut));
                        } else {
                            self.occupied.set(self.occupied.get() & !(1 << task));
                            self.sched.begin_poll(task);
                        }
                        self.flush();
                    }
                }
            }
            self.arm_deadline();
            let fired = self.platform.borrow_mut().wait();
            let now = self.platform.borrow().now_ns();
            self.sched.deliver(fired, now, N);
        }
    }

    /// The tasks that exist: main and the occupied slots (a wake of a
    /// finished task is ignored).
    fn tasks_mask(&self) -> u64 {
        self.occupied.get() | 1 << MAIN
    }

    fn flush(&self) {
        let mut platform = self.platform.borrow_mut();
        for channel in Bits(self.sched.irq_ack.replace(0)) {
            platform.irq_ack(channel as u8);
        }
        for channel in Bits(self.sched.notify.replace(0)) {
            platform.notify(channel as u8);
        }
    }

    fn arm_deadline(&self) {
        let earliest = self.sched.deadline[..=N]
            .iter()
            .map(Cell::get)
            .min()
            .filter(|&at| at != NO_DEADLINE);
        if earliest != self.armed_deadline.get() {
            self.armed_deadline.set(earliest);
            self.platform.borrow_mut().set_deadline(earliest);
        }
    }

    /// Current time from the platform.
    pub fn now_ns(&self) -> u64 {
        self.platform.borrow().now_ns()
    }

    /// Notifies `channel` when the current task next yields (merged with
    /// other notifies of the same channel in that poll).
    pub fn notify(&self, channel: u8) {
        self.sched.queue_notify(channel_bit(channel));
    }

    /// Acknowledges the IRQ on `channel` when the current task next yields.
    pub fn irq_ack(&self, channel: u8) {
        let bit = channel_bit(channel);
        self.sched.irq_ack.set(self.sched.irq_ack.get() | bit);
    }

    /// Completes when `channel` has been notified (or its IRQ fired) since
    /// this PD last consumed that channel. Notifications are latched like
    /// the seL4 notification word: one that arrived before the wait began
    /// completes it at once, and several are seen as one.
    pub fn channel(&self, channel: u8) -> ChannelWait<'_> {
        ChannelWait {
            sched: &self.sched,
            bit: channel_bit(channel),
        }
    }

    /// Completes with the channels of `mask` (bit i = channel i) that have
    /// been notified since this PD last consumed them, consuming them: an
    /// event loop's wait for "any of my channels or IRQs".
    pub fn any_channel(&self, mask: u64) -> AnyChannel<'_> {
        AnyChannel {
            sched: &self.sched,
            mask,
        }
    }

    /// [`any_channel`](Self::any_channel) until `deadline`, if there is
    /// one: the channels of `mask` that fired, or 0 when the deadline came
    /// first. An event loop's sleep between rounds, woken by its ports or
    /// by the earliest of its timeouts.
    pub async fn any_channel_until(&self, mask: u64, deadline: Option<u64>) -> u64 {
        match deadline {
            Some(at) => match select(self.any_channel(mask), self.sleep_until(at)).await {
                Either::First(fired) => fired,
                Either::Second(()) => 0,
            },
            None => self.any_channel(mask).await,
        }
    }

    /// Completes at or after platform time `at_ns`, never before.
    pub fn sleep_until(&self, at_ns: u64) -> Sleep<'_> {
        Sleep {
            sched: &self.sched,
            at_ns,
        }
    }

    /// Completes `duration` or more after now.
    pub fn sleep(&self, duration: Duration) -> Sleep<'_> {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sleep_until(self.now_ns().saturating_add(nanos))
    }

    /// A PD-local event queue holding up to `CAP` values (the paper's EMIT).
    pub fn event<T, const CAP: usize>(&self) -> Event<'_, T, CAP> {
        Event::new(&self.sched)
    }

    /// Receives the next message from a port's receive ring, sleeping on
    /// `channel` with signal suppression when it is empty, and notifying the
    /// producer if it was waiting for space.
    pub fn recv<'r, const SLOT: usize>(
        &self,
        rx: &'r mut Consumer<SLOT>,
        channel: u8,
    ) -> Recv<'_, 'r, SLOT> {
        Recv {
            sched: &self.sched,
            rx,
            bit: channel_bit(channel),
        }
    }

    /// Sends `msg` on a port's transmit ring, sleeping on `channel` while it
    /// is full, and notifying the consumer if it was waiting.
    pub fn send<'r, const SLOT: usize>(
        &self,
        tx: &'r mut Producer<SLOT>,
        channel: u8,
        msg: [u8; SLOT],
    ) -> SendMsg<'_, 'r, SLOT> {
        SendMsg {
            sched: &self.sched,
            tx,
            bit: channel_bit(channel),
            msg,
        }
    }
}

/// Future of [`Executor::channel`].
#[must_use = "futures do nothing unless awaited"]
pub struct ChannelWait<'x> {
    sched: &'x Sched,
    bit: u64,
}

impl Future for ChannelWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.sched.take_pending(self.bit) {
            Poll::Ready(())
        } else {
            self.sched.want_channel(self.bit);
            Poll::Pending
        }
    }
}

/// Future of [`Executor::any_channel`].
#[must_use = "futures do nothing unless awaited"]
pub struct AnyChannel<'x> {
    sched: &'x Sched,
    mask: u64,
}

impl Future for AnyChannel<'_> {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u64> {
        let fired = self.sched.pending.get() & self.mask;
        if fired != 0 {
            self.sched.take_pending(fired);
            Poll::Ready(fired)
        } else {
            self.sched.want_channel(self.mask);
            Poll::Pending
        }
    }
}

/// Future of [`Executor::sleep`] and [`Executor::sleep_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep<'x> {
    sched: &'x Sched,
    at_ns: u64,
}

impl Sleep<'_> {
    /// The deadline this sleep waits for.
    pub fn deadline_ns(&self) -> u64 {
        self.at_ns
    }
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        // `now` was read after the latest wait, so it never runs ahead of
        // the real clock: comparing against it cannot fire early.
        if self.sched.now.get() >= self.at_ns {
            Poll::Ready(())
        } else {
            self.sched.want_deadline(self.at_ns);
            Poll::Pending
        }
    }
}

/// A PD-local queue of up to `CAP` values of `T` (the paper's EMIT):
/// emitting wakes the tasks awaiting it without any kernel call.
pub struct Event<'x, T, const CAP: usize = 1> {
    sched: &'x Sched,
    slots: [Cell<Option<T>>; CAP],
    head: Cell<usize>,
    len: Cell<usize>,
    waiters: Cell<u64>,
}

impl<'x, T, const CAP: usize> Event<'x, T, CAP> {
    fn new(sched: &'x Sched) -> Self {
        const { assert!(CAP > 0, "an event must hold at least one value") };
        Event {
            sched,
            slots: [const { Cell::new(None) }; CAP],
            head: Cell::new(0),
            len: Cell::new(0),
            waiters: Cell::new(0),
        }
    }

    /// Queues `value` and wakes the awaiting tasks; gives the value back
    /// when the queue is full.
    pub fn emit(&self, value: T) -> Result<(), T> {
        let len = self.len.get();
        if len == CAP {
            return Err(value);
        }
        self.slots[(self.head.get() + len) % CAP].set(Some(value));
        self.len.set(len + 1);
        self.sched.wake(self.waiters.replace(0));
        Ok(())
    }

    /// Takes the oldest queued value without waiting.
    pub fn try_take(&self) -> Option<T> {
        let len = self.len.get();
        if len == 0 {
            return None;
        }
        let head = self.head.get();
        self.head.set((head + 1) % CAP);
        self.len.set(len - 1);
        self.slots[head].take()
    }

    pub fn len(&self) -> usize {
        self.len.get()
    }

    pub fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// Completes with the oldest queued value, waiting for an emit if none.
    pub fn wait(&self) -> EventWait<'_, 'x, T, CAP> {
        EventWait { event: self }
    }
}

/// Future of [`Event::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct EventWait<'e, 'x, T, const CAP: usize> {
    event: &'e Event<'x, T, CAP>,
}

impl<T, const CAP: usize> Future for EventWait<'_, '_, T, CAP> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        let event = self.event;
        match event.try_take() {
            Some(value) => Poll::Ready(value),
            None => {
                event
                    .waiters
                    .set(event.waiters.get() | event.sched.current_bit());
                Poll::Pending
            }
        }
    }
}

/// Future of [`Executor::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'x, 'r, const SLOT: usize> {
    sched: &'x Sched,
    rx: &'r mut Consumer<SLOT>,
    bit: u64,
}

impl<const SLOT: usize> Future for Recv<'_, '_, SLOT> {
    type Output = Result<[u8; SLOT], RingError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The ring itself is checked below, which covers whatever the
        // latched notification announced.
        this.sched.take_pending(this.bit);
        // Terminates: Retry means the re-check saw a message, and the next
        // pop either takes it or finds the producer index moved backwards,
        // which is Corrupt.
        loop {
            match this.rx.pop() {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(Some((msg, notify))) => {
                    if notify == NotifyPeer::Yes {
                        this.sched.queue_notify(this.bit);
                    }
                    return Poll::Ready(Ok(msg));
                }
                Ok(None) => {}
            }
            match this.rx.prepare_sleep() {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(Arm::Retry) => {}
                Ok(Arm::Sleep) => {
                    this.sched.want_channel(this.bit);
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Future of [`Executor::send`].
#[must_use = "futures do nothing unless awaited"]
pub struct SendMsg<'x, 'r, const SLOT: usize> {
    sched: &'x Sched,
    tx: &'r mut Producer<SLOT>,
    bit: u64,
    msg: [u8; SLOT],
}

impl<const SLOT: usize> Future for SendMsg<'_, '_, SLOT> {
    type Output = Result<(), RingError>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.sched.take_pending(this.bit);
        // Terminates for the same reason as Recv::poll.
        loop {
            match this.tx.push(&this.msg) {
                Ok(notify) => {
                    if notify == NotifyPeer::Yes {
                        this.sched.queue_notify(this.bit);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(RingError::Full) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            match this.tx.prepare_sleep() {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(Arm::Retry) => {}
                Ok(Arm::Sleep) => {
                    this.sched.want_channel(this.bit);
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Which of two selected futures completed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Either<A, B> {
    First(A),
    Second(B),
}

/// Which of three selected futures completed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Either3<A, B, C> {
    First(A),
    Second(B),
    Third(C),
}

/// Waits for the first of `a` and `b` (AWAIT/IF/ELIF) and drops the other.
/// Biased: when both are ready in the same poll, `a` wins, as the first IF
/// does.
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::First(out));
        }
        if let Poll::Ready(out) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Second(out));
        }
        Poll::Pending
    })
    .await
}

/// [`select`] over three futures, biased in argument order.
pub async fn select3<A: Future, B: Future, C: Future>(
    a: A,
    b: B,
    c: C,
) -> Either3<A::Output, B::Output, C::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut c = pin!(c);
    poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Either3::First(out));
        }
        if let Poll::Ready(out) = b.as_mut().poll(cx) {
            return Poll::Ready(Either3::Second(out));
        }
        if let Poll::Ready(out) = c.as_mut().poll(cx) {
            return Poll::Ready(Either3::Third(out));
        }
        Poll::Pending
    })
    .await
}

/// Runs `a` and `b` concurrently within one task until both complete.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut out_a = None;
    let mut out_b = None;
    poll_fn(|cx| {
        if out_a.is_none()
            && let Poll::Ready(out) = a.as_mut().poll(cx)
        {
            out_a = Some(out);
        }
        if out_b.is_none()
            && let Poll::Ready(out) = b.as_mut().poll(cx)
        {
            out_b = Some(out);
        }
        match (out_a.take(), out_b.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                out_a = x;
                out_b = y;
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests;
