//! The client of the loopback controller, written as sequential async code:
//! enable, lend a receive buffer, transmit a frame, wait for it to come back
//! and compare, disable. Every message passes its observer on both sides.
#![no_std]
#![no_main]

use dingo_demo::{BUF_LEN, RX_BUF, TX_BUF, clock};
use dingo_pd::dingo_rt::executor::Executor;
use dingo_pd::dingo_rt::typed::{Fault, Supervisor};
use dingo_pd::microkit::{self, debug_println};
use dingo_pd::{ConsoleReporter, MicrokitPlatform};
use dingo_protocols::ethernet_controller::{Msg, Observer};

pd_config::program!("net-client");

static REPORTER: ConsoleReporter = ConsoleReporter;

/// A broadcast ARP request, as a network stack would send first.
const FRAME: [u8; 60] = {
    let mut f = [0u8; 60];
    let head: [u8; 22] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, 0x00,
        0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
    ];
    let mut i = 0;
    while i < head.len() {
        f[i] = head[i];
        i += 1;
    }
    f
};

async fn run(ex: &Executor<'_, MicrokitPlatform>, cfg: &config::Config) -> Result<(), Fault> {
    let mut eth = dingo_pd::typed_port(
        cfg.name,
        &cfg.ports.eth,
        Observer::new(clock()),
        Supervisor::fatal(&REPORTER),
    );
    eth.send(ex, Msg::Enable).await?;
    let reply = eth.recv(ex).await?;
    debug_println!("net-client: enable -> {reply}");
    eth.send(
        ex,
        Msg::RxBuffer {
            buf: RX_BUF,
            len: BUF_LEN,
        },
    )
    .await?;
    if eth.data().write(TX_BUF as u64, &FRAME).is_err() {
        panic!("transmit buffer outside the data area");
    }
    eth.send(
        ex,
        Msg::TxPacket {
            buf: TX_BUF,
            len: FRAME.len() as u16,
        },
    )
    .await?;
    let (mut done, mut received) = (false, None);
    while !(done && received.is_some()) {
        match eth.recv(ex).await? {
            Msg::TxPacketDone { buf } if buf == TX_BUF => done = true,
            Msg::RxPacket { buf, len } => received = Some((buf, len)),
            other => debug_println!("net-client: unexpected {other}"),
        }
    }
    let (buf, len) = received.unwrap_or_default();
    let mut back = [0u8; 60];
    let same = len as usize == FRAME.len()
        && eth.data().read(buf as u64, &mut back).is_ok()
        && back == FRAME;
    debug_println!(
        "net-client: frame of {len} bytes came back in buffer {buf:#x}: {}",
        if same { "identical" } else { "DIFFERENT" }
    );
    eth.send(ex, Msg::Disable).await?;
    let reply = eth.recv(ex).await?;
    debug_println!("net-client: disable -> {reply}");
    let c = eth.counters();
    debug_println!(
        "net-client: {} sent, {} received, {} malformed, {} violations",
        c.sent,
        c.received,
        c.malformed,
        c.violations
    );
    if same && c.violations == 0 && c.malformed == 0 {
        Ok(())
    } else {
        Err(Fault::Full)
    }
}

async fn main(ex: &Executor<'_, MicrokitPlatform>) {
    let cfg = config::load();
    match run(ex, &cfg).await {
        Ok(()) => {
            debug_println!("net-client: all checks passed");
            microkit::debug_exit(cfg.ioports.debug_exit).success();
        }
        Err(f) => debug_println!("net-client: FAILED: {f:?}"),
    }
}

dingo_pd::async_protection_domain!(main, clock = clock);
