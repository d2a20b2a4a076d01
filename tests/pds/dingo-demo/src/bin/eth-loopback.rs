//! A simulated Ethernet controller behind the EthernetController protocol:
//! every transmitted frame is received again into a buffer the client lent.
//! Its observer checks each message; a violation is fatal, so a misbehaving
//! client gets this PD stopped and reported by the monitor rather than
//! trusted.
#![no_std]
#![no_main]

use dingo_demo::clock;
use dingo_pd::dingo_rt::executor::Executor;
use dingo_pd::dingo_rt::typed::Supervisor;
use dingo_pd::microkit::debug_println;
use dingo_pd::{ConsoleReporter, MicrokitPlatform};
use dingo_protocols::ethernet_controller::{self as eth, Msg, Observer};

pd_config::program!("eth-loopback");

static REPORTER: ConsoleReporter = ConsoleReporter;

async fn main(ex: &Executor<'_, MicrokitPlatform>) {
    let cfg = config::load();
    let mut eth = dingo_pd::typed_port(
        cfg.name,
        &cfg.ports.eth,
        Observer::new(clock()),
        Supervisor::fatal(&REPORTER),
    );
    let mut lent: Option<(u32, u16)> = None;
    let mut frame = [0u8; 1536];
    loop {
        let Ok(msg) = eth.recv(ex).await else {
            continue;
        };
        let replies: &[Msg] = match msg {
            Msg::Enable => &[Msg::EnableComplete],
            Msg::RxBuffer { buf, len } => {
                lent = Some((buf, len));
                &[]
            }
            Msg::TxPacket { buf, len } => {
                let n = len as usize;
                match lent.take() {
                    Some((rx, rx_len)) if n <= rx_len as usize && n <= frame.len() => {
                        let copied = eth
                            .data()
                            .read(buf as u64, &mut frame[..n])
                            .and_then(|()| eth.data().write(rx as u64, &frame[..n]));
                        if copied.is_ok() {
                            debug_println!(
                                "eth-loopback: looped {n} bytes from buffer {buf:#x} to {rx:#x}"
                            );
                            &[Msg::RxPacket { buf: rx, len }, Msg::TxPacketDone { buf }]
                        } else {
                            &[Msg::TxPacketAbort {
                                buf,
                                error: eth::BAD_REQUEST,
                            }]
                        }
                    }
                    other => {
                        lent = other;
                        &[Msg::TxPacketAbort {
                            buf,
                            error: eth::DEVICE,
                        }]
                    }
                }
            }
            Msg::Disable => {
                if let Some((rx, _)) = lent.take() {
                    let _ = eth.send(ex, Msg::RxBufferReturn { buf: rx }).await;
                }
                &[Msg::DisableComplete]
            }
            _ => &[],
        };
        for reply in replies {
            let _ = eth.send(ex, *reply).await;
        }
    }
}

dingo_pd::async_protection_domain!(main, clock = clock);
