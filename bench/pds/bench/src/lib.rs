//! Benchmark protection domains (`make bench`). `bench-client` and
//! `bench-server` time notification and PPC round trips through the
//! Microkit runtime, for comparison with the raw kernel baseline the monitor
//! measures in the same run (`bench-echo` answers the notifications: like
//! the raw echo thread it waits on its notification alone). `port-client`
//! and `port-server` time message round trips through a dingo-rt typed
//! port, with its observers on and off, against the same exchange as raw
//! ring writes and notifications.
#![no_std]

use dingo_rt::port::Port;
use dingo_rt::ring::{Arm, NotifyPeer};
use dingo_rt::typed::{PortObserver, TypedPort};
use microkit::hwio::tsc::rdtsc;
use microkit::{Channel, IoPort};
use tingu_rt::shadow::Shadowed;
use tingu_rt::{Flow, Violation, ViolationKind};

/// Rounds timed per figure, after as many untimed warm-up rounds; the
/// monitor's baseline uses the same numbers.
pub const ROUNDS: u64 = 1000;
pub const WARMUP: u64 = 100;

/// The COM1 ports of the console role, for the console function (a plain
/// `fn(u8)`) to find.
static CONSOLE: spin::Once<pd_config::IoPorts> = spin::Once::new();

/// Prints through COM1 (`console`: its data register at offset 0) when the
/// kernel cannot print.
pub fn use_com1_console(console: pd_config::IoPorts) {
    CONSOLE.call_once(|| console);
    microkit::sel4::set_console(|c| {
        if let Some(p) = CONSOLE.get() {
            let _ = IoPort::of(*p).out8(p.base, c);
        }
    });
}

static REPORTER: dingo_pd::ConsoleReporter = dingo_pd::ConsoleReporter;

/// A typed benchmark port with `observer`, under the fatal policy.
pub fn typed<O: PortObserver>(
    name: &'static str,
    cfg: &pd_config::PortConfig,
    observer: O,
) -> TypedPort<'static, O> {
    TypedPort::new(
        port(name, cfg),
        observer,
        dingo_rt::typed::Supervisor::fatal(&REPORTER),
        name,
        cfg.role,
    )
    .shadowed(cfg.peer_restarts)
}

/// This PD's end of a benchmark port, armed for its first message.
pub fn port(pd: &'static str, cfg: &pd_config::PortConfig) -> Port<64> {
    let mut port = dingo_pd::port(pd, cfg);
    // Ask to be woken for the first message: until the receiver arms its
    // flag, signal suppression tells the sender not to notify.
    let _ = port.rx.prepare_sleep();
    port
}

/// One end of a benchmark port. The raw end moves pre-encoded slots; the
/// typed ends encode, decode and (when observed) check every message. The
/// exchange loops below are the same for all three, so every figure pays
/// for the same notifications and system calls and their ratios are the
/// cost of the typed layer alone. `now` is read once per notification, as
/// the PDs' event loops do, and is the time the observers judge by.
pub trait End {
    type Msg: Copy;
    /// Sends `msg`, notifying the peer if it asked for it.
    fn send(&mut self, msg: &Self::Msg, channel: Channel, now: u64);
    /// The next message, if one is waiting.
    fn recv(&mut self, now: u64) -> Option<Self::Msg>;
    /// Arms the receive ring's wake-up flag: `true` to sleep, `false` when a
    /// message slipped in meanwhile.
    fn arm(&mut self) -> bool;
}

impl End for Port<64> {
    type Msg = [u8; 64];

    fn send(&mut self, slot: &[u8; 64], channel: Channel, _: u64) {
        match self.tx.push(slot) {
            Ok(NotifyPeer::Yes) => channel.notify(),
            Ok(NotifyPeer::No) => {}
            Err(e) => panic!("raw push failed: {e:?}"),
        }
    }

    fn recv(&mut self, _: u64) -> Option<[u8; 64]> {
        match self.rx.pop() {
            Ok(Some((slot, NotifyPeer::No))) => Some(slot),
            Ok(Some((_, NotifyPeer::Yes))) => panic!("the bench never fills a ring"),
            Ok(None) => None,
            Err(e) => panic!("raw pop failed: {e:?}"),
        }
    }

    fn arm(&mut self) -> bool {
        matches!(self.rx.prepare_sleep(), Ok(Arm::Sleep))
    }
}

impl<O: PortObserver> End for TypedPort<'_, O> {
    type Msg = O::Msg;

    fn send(&mut self, msg: &O::Msg, channel: Channel, now: u64) {
        if let Err(f) = self.try_send(msg, now) {
            panic!("typed send of {msg} failed: {f:?}");
        }
        if self.take_notify() == NotifyPeer::Yes {
            channel.notify();
        }
    }

    fn recv(&mut self, now: u64) -> Option<O::Msg> {
        match self.try_recv(now) {
            Ok(msg) => msg,
            Err(f) => panic!("typed receive failed: {f:?}"),
        }
    }

    fn arm(&mut self) -> bool {
        matches!(self.prepare_recv_sleep(), Ok(Arm::Sleep))
    }
}

/// The client's side of one benchmark: `start` opens the exchange (the
/// typed ports enable the controller first), then every `answer` is
/// followed by the next `request`, `WARMUP + ROUNDS` times.
pub struct Client<E: End> {
    pub end: E,
    channel: Channel,
    request: E::Msg,
    round: u64,
    start: u64,
    /// Instructions per round trip, once measured.
    pub result: Option<u64>,
}

impl<E: End> Client<E> {
    pub fn new(end: E, channel: Channel, request: E::Msg) -> Self {
        Client {
            end,
            channel,
            request,
            round: 0,
            start: 0,
            result: None,
        }
    }

    /// Sends the first message.
    pub fn open(&mut self, first: E::Msg) {
        self.end.send(&first, self.channel, rdtsc());
    }

    /// Handles a notification on this port: takes every answer, sending the
    /// next request right after each one, then arms the wake-up flag.
    /// `is_answer` tells an answer from the opening reply.
    pub fn notified(&mut self, is_answer: impl Fn(&E::Msg) -> bool) {
        let now = rdtsc();
        loop {
            while let Some(msg) = self.end.recv(now) {
                if is_answer(&msg) {
                    self.round += 1;
                    if self.round == WARMUP {
                        self.start = rdtsc();
                    }
                    if self.round == WARMUP + ROUNDS {
                        self.result = Some((rdtsc() - self.start) / ROUNDS);
                        return;
                    }
                }
                let request = self.request;
                self.end.send(&request, self.channel, now);
            }
            if self.end.arm() {
                return;
            }
        }
    }
}

/// The server's side: every message gets `answer(msg)` back at once.
pub fn serve<E: End>(end: &mut E, channel: Channel, answer: impl Fn(&E::Msg) -> E::Msg) {
    let now = rdtsc();
    loop {
        while let Some(msg) = end.recv(now) {
            end.send(&answer(&msg), channel, now);
        }
        if end.arm() {
            return;
        }
    }
}

/// A port end whose messages are not observed: the typed layer (encoding,
/// decoding, ring and version checks) without the protocol observer, for
/// the benchmark's "observers off" figure.
pub struct Unobserved<M>(core::marker::PhantomData<M>);

impl<M> Unobserved<M> {
    pub const fn new() -> Self {
        Unobserved(core::marker::PhantomData)
    }
}

impl<M> Default for Unobserved<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Shadowed> PortObserver for Unobserved<M> {
    type Msg = M;

    fn observe(
        &mut self,
        _: &M,
        _: Flow,
        _: u64,
        _: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind> {
        Ok(())
    }

    fn check_timeouts(
        &mut self,
        _: u64,
        _: impl FnOnce(&Violation<'_>),
    ) -> Result<(), ViolationKind> {
        Ok(())
    }

    fn deadline_ns(&self) -> Option<u64> {
        None
    }
}
