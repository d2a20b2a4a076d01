//! The generated observers against legal traces (from the paper and from
//! the protocol comments) and illegal ones.

use dingo_protocols::{
    block_device as blk, ethernet_controller as eth, ethernet_driver, keyboard as kbd,
    lifecycle as lc, power_management as pm, root_hub, timer, usb_bus as bus,
    usb_host_controller as hc, usb_pipe as pipe, usb_root_ports as rp, usb_storage,
};
use tingu_rt::{Direction, Direction::*, Flow::*, Message, Observer, ViolationKind};

const MS: u64 = 1_000_000;

/// Feeds `(message, direction)` pairs one millisecond apart; all must be legal.
fn run<O: Observer>(obs: &mut O, trace: &[(O::Msg, Direction)]) {
    for (i, (m, d)) in trace.iter().enumerate() {
        if let Err(v) = obs.observe(m, *d, i as u64 * MS) {
            panic!("message {i} of a legal trace rejected: {v}");
        }
    }
}

#[test]
fn lifecycle_start_stop_reaches_final_state() {
    let mut o = lc::Observer::new(0);
    run(
        &mut o,
        &[
            (lc::Msg::Start, In),
            (lc::Msg::StartComplete, Out),
            (lc::Msg::Stop, In),
        ],
    );
    assert_eq!(o.state_name(), "stopping");
    o.observe(&lc::Msg::StopComplete, Out, 10 * MS).unwrap();
    assert!(o.is_final());
    let v = o.observe(&lc::Msg::Start, In, 11 * MS).unwrap_err();
    assert_eq!(v.kind, ViolationKind::Terminated);
}

#[test]
fn lifecycle_unplug_from_superstate_and_crossing_start_reply() {
    // The OS side: unplugged while starting, then the driver's startComplete
    // (sent before it saw the unplug) arrives.
    let mut o = lc::Observer::new(0);
    run(
        &mut o,
        &[
            (lc::Msg::Start, In),
            (lc::Msg::Unplugged, In),
            (lc::Msg::StartComplete, Out),
            (lc::Msg::StopComplete, Out),
        ],
    );
    assert_eq!(o.state(), lc::State::Stopped);
    // But a second stop is not legal in unplugging.
    let mut o = lc::Observer::new(0);
    run(
        &mut o,
        &[
            (lc::Msg::Start, In),
            (lc::Msg::StartComplete, Out),
            (lc::Msg::Unplugged, In),
        ],
    );
    let v = o.observe(&lc::Msg::Stop, In, 5 * MS).unwrap_err();
    assert_eq!(
        (v.kind, v.state),
        (ViolationKind::UnexpectedMessage, "unplugging")
    );
}

#[test]
fn wrong_direction_is_reported() {
    let mut o = lc::Observer::new(0);
    let v = o.observe(&lc::Msg::Start, Out, 0).unwrap_err();
    assert_eq!(v.kind, ViolationKind::WrongDirection);
    assert_eq!(
        o.state_name(),
        "init",
        "a rejected message must not change the state"
    );
}

#[test]
fn ethernet_tx_after_disable_is_rejected_with_report() {
    let mut o = eth::Observer::new(0);
    run(
        &mut o,
        &[
            (eth::Msg::Enable, In),
            (eth::Msg::EnableComplete, Out),
            (
                eth::Msg::TxPacket {
                    buf: 0x1000,
                    len: 60,
                },
                In,
            ),
            (eth::Msg::TxPacketDone { buf: 0x1000 }, Out),
            (
                eth::Msg::TxPacket {
                    buf: 0x2000,
                    len: 1514,
                },
                In,
            ),
            (eth::Msg::Disable, In),
        ],
    );
    // The paper's transition #3/#4: outstanding packets are answered first.
    let bad = eth::Msg::TxPacket {
        buf: 0x3000,
        len: 42,
    };
    let v = o.observe(&bad, In, 10 * MS).unwrap_err();
    assert_eq!(
        (v.kind, v.state, v.protocol),
        (
            ViolationKind::UnexpectedMessage,
            "disabling",
            "EthernetController"
        )
    );
    let text = v.to_string();
    assert!(
        text.starts_with(
            "EthernetController in state disabling: unexpected message ?txPacket(buf=12288, len=42)"
        ),
        "{text}"
    );
    assert!(text.ends_with("last messages: ?enable(), !enableComplete(), ?txPacket(buf=4096, len=60), !txPacketDone(buf=4096), ?txPacket(buf=8192, len=1514), ?disable()"), "{text}");
    // disableComplete needs the pending packet answered.
    let v = o
        .observe(&eth::Msg::DisableComplete, Out, 11 * MS)
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
    o.observe(
        &eth::Msg::TxPacketAbort {
            buf: 0x2000,
            error: 5,
        },
        Out,
        12 * MS,
    )
    .unwrap();
    o.observe(&eth::Msg::DisableComplete, Out, 13 * MS).unwrap();
    let v = o.observe(&bad, In, 14 * MS).unwrap_err();
    assert_eq!(
        (v.kind, v.state),
        (ViolationKind::UnexpectedMessage, "disabled")
    );
}

#[test]
fn guard_failure_leaves_state_and_variables_alone() {
    let mut o = pm::Observer::new(0);
    let v = o.observe(&pm::Msg::Sleep { level: 0 }, In, 0).unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
    assert!(
        v.to_string().contains("guard failed for ?sleep(level=0)"),
        "{v}"
    );
    let v = o.observe(&pm::Msg::Sleep { level: 4 }, In, 0).unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
    assert_eq!((o.state(), o.vars().power_level), (pm::State::FullPower, 0));
    o.observe(&pm::Msg::Sleep { level: 3 }, In, MS).unwrap();
    assert_eq!(
        (o.state(), o.vars().power_level),
        (pm::State::SleepPrepare, 3)
    );
    run(
        &mut o,
        &[
            (pm::Msg::SleepComplete, Out),
            (pm::Msg::Wakeup, In),
            (pm::Msg::WakeupComplete, Out),
        ],
    );
    assert_eq!((o.state(), o.vars().power_level), (pm::State::FullPower, 0));
}

#[test]
fn timeout_state_overrun() {
    let mut o = lc::Observer::new(0);
    o.observe(&lc::Msg::Start, In, 1_000 * MS).unwrap();
    // `starting` allows 5000 ms from entry.
    o.check_timeouts(6_000 * MS).unwrap();
    let v = o.check_timeouts(6_000 * MS + 1).unwrap_err();
    assert_eq!(
        v.kind,
        ViolationKind::TimeoutOverrun {
            limit_ms: 5000,
            elapsed_ns: 5_000 * MS + 1
        }
    );
    assert_eq!(v.state, "starting");
    assert!(v.message().is_none());
    assert!(
        v.to_string()
            .contains("timeout state overrun: limit 5000 ms, 5000.000001 ms elapsed"),
        "{v}"
    );
    // Reported once; the clock restarts.
    o.check_timeouts(6_001 * MS).unwrap();
    // A late reply is itself an overrun.
    let mut o = lc::Observer::new(0);
    o.observe(&lc::Msg::Start, In, 0).unwrap();
    let v = o
        .observe(&lc::Msg::StartComplete, Out, 7_000 * MS)
        .unwrap_err();
    assert!(matches!(
        v.kind,
        ViolationKind::TimeoutOverrun { limit_ms: 5000, .. }
    ));
    // States without a timeout never overrun.
    let mut o = lc::Observer::new(0);
    o.check_timeouts(u64::MAX).unwrap();
}

#[test]
fn power_management_sleeps_only_once_started() {
    let mut c = ethernet_driver::Observer::new(0);
    c.observe_lc(&lc::Msg::Start, Received, 0).unwrap();
    // A sleep request may arrive before startComplete (the rule judges the
    // driver's answer: a request can cross lifecycle messages), but the
    // driver may not confirm it yet.
    c.observe_pm(&pm::Msg::Sleep { level: 3 }, Received, MS)
        .unwrap();
    let v = c.observe_pm(&pm::Msg::SleepComplete, Sent, MS).unwrap_err();
    assert_eq!(
        v.kind,
        ViolationKind::BlockedByDependency {
            port: "lc",
            state: "starting"
        }
    );
    assert_eq!((v.component, v.port), ("EthernetDriver", "pm"));
    assert!(
        v.to_string()
            .starts_with("component EthernetDriver port pm: PowerManagement in state sleep_prepare: message !sleepComplete() blocked by dependency: port lc is in state starting"),
        "{v}"
    );
    assert_eq!(c.pm.state(), pm::State::SleepPrepare);
    c.observe_pm(&pm::Msg::SleepFailed { error: 1 }, Sent, 2 * MS)
        .unwrap();
    c.observe_lc(&lc::Msg::StartComplete, Sent, 2 * MS).unwrap();
    c.observe_pm(&pm::Msg::Sleep { level: 3 }, Received, 3 * MS)
        .unwrap();
    c.observe_pm(&pm::Msg::SleepComplete, Sent, 3 * MS).unwrap();
    // The reverse dependency: the driver completes a stop only at full power.
    c.observe_lc(&lc::Msg::Stop, Received, 4 * MS).unwrap();
    let v = c
        .observe_lc(&lc::Msg::StopComplete, Sent, 4 * MS)
        .unwrap_err();
    assert_eq!(
        v.kind,
        ViolationKind::BlockedByDependency {
            port: "pm",
            state: "sleeping"
        }
    );
    c.observe_pm(&pm::Msg::Wakeup, Received, 5 * MS).unwrap();
    c.observe_pm(&pm::Msg::WakeupComplete, Sent, 6 * MS)
        .unwrap();
    c.observe_lc(&lc::Msg::StopComplete, Sent, 7 * MS).unwrap();
}

#[test]
fn ethernet_driver_enables_only_while_running() {
    let mut c = ethernet_driver::Observer::new(0);
    c.observe_lc(&lc::Msg::Start, Received, 0).unwrap();
    // An enable that arrives before startComplete is answered with a failure.
    c.observe_eth(&eth::Msg::Enable, Received, 0).unwrap();
    let v = c
        .observe_eth(&eth::Msg::EnableComplete, Sent, 0)
        .unwrap_err();
    assert_eq!(
        v.kind,
        ViolationKind::BlockedByDependency {
            port: "lc",
            state: "starting"
        }
    );
    c.observe_eth(&eth::Msg::EnableFailed { error: 1 }, Sent, 0)
        .unwrap();
    c.observe_lc(&lc::Msg::StartComplete, Sent, 0).unwrap();
    c.observe_eth(&eth::Msg::Enable, Received, 0).unwrap();
    c.observe_eth(&eth::Msg::EnableComplete, Sent, 0).unwrap();
    c.observe_eth(&eth::Msg::TxPacket { buf: 1, len: 64 }, Received, 0)
        .unwrap();
    c.observe_lc(&lc::Msg::Unplugged, Received, 0).unwrap();
    // A packet the OS sent before its unplug notice can arrive after it
    // (another ring); the driver still answers every pending packet.
    c.observe_eth(&eth::Msg::TxPacket { buf: 2, len: 64 }, Received, 0)
        .unwrap();
    for buf in [1, 2] {
        c.observe_eth(&eth::Msg::TxPacketAbort { buf, error: 1 }, Sent, 0)
            .unwrap();
    }
    c.observe_lc(&lc::Msg::StopComplete, Sent, 0).unwrap();
}

/// A USB disk driver with a configured device and pipes `keys` open.
fn configured_with_pipes(keys: &[u32]) -> usb_storage::Observer {
    let mut c = usb_storage::Observer::new(0);
    for m in [
        bus::Msg::Attached { port: 1, speed: 1 },
        bus::Msg::Addressed {
            addr: 1,
            vendor: 0x46f4,
            product: 0x0001,
            class: 0,
            subclass: 0,
            protocol: 0,
        },
    ] {
        c.observe_usb(&m, Received, 0).unwrap();
    }
    c.observe_usb(&bus::Msg::SetConfiguration { config: 1 }, Sent, 0)
        .unwrap();
    c.observe_usb(&bus::Msg::Configured { config: 1 }, Received, 0)
        .unwrap();
    for &k in keys {
        c.observe_usb(&open_pipe(k, 1), Sent, 0).unwrap();
        c.observe_pipes(u64::from(k), &pipe::Msg::Opened, Received, 0)
            .unwrap();
    }
    c
}

fn open_pipe(pipe: u32, endpoint: u8) -> bus::Msg {
    bus::Msg::OpenPipe {
        pipe,
        endpoint,
        kind: 2,
        max_packet: 64,
        interval: 0,
    }
}

fn submit(xfer: u32, len: u32) -> pipe::Msg {
    pipe::Msg::Submit {
        xfer,
        setup: 0,
        buf: 0,
        len,
    }
}

#[test]
fn usb_unplug_during_transfer_takes_the_abort_path() {
    let mut c = configured_with_pipes(&[7]);
    assert_eq!(c.pipes_open(), 1);
    c.observe_pipes(7, &submit(1, 512), Sent, 0).unwrap();
    c.observe_pipes(7, &submit(2, 512), Sent, 0).unwrap();
    c.observe_usb(&bus::Msg::Detached, Received, 0).unwrap();
    c.observe_pipes(7, &pipe::Msg::Unplugged, Received, 0)
        .unwrap();
    assert_eq!(c.pipes(7).unwrap().state(), pipe::State::Dead);
    // A submit that crossed the unplug notice is legal...
    c.observe_pipes(7, &submit(3, 8), Sent, 0).unwrap();
    // ...but the pipe cannot close with transfers pending,
    let v = c
        .observe_pipes(7, &pipe::Msg::Closed, Received, 0)
        .unwrap_err();
    assert_eq!(
        (v.kind, v.port, v.subport),
        (ViolationKind::GuardFailed, "pipes", Some(7))
    );
    // and after unplug a transfer cannot complete successfully.
    let v = c
        .observe_pipes(
            7,
            &pipe::Msg::Complete {
                xfer: 1,
                status: 0,
                actual: 512,
            },
            Received,
            0,
        )
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
    // Nor before the driver's close (its submits may still be on the way).
    for xfer in 1..=3 {
        c.observe_pipes(
            7,
            &pipe::Msg::Complete {
                xfer,
                status: 3,
                actual: 0,
            },
            Received,
            0,
        )
        .unwrap();
    }
    let v = c
        .observe_pipes(7, &pipe::Msg::Closed, Received, 0)
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed, "no close sent yet");
    c.observe_pipes(7, &pipe::Msg::Close, Sent, 0).unwrap();
    c.observe_pipes(7, &pipe::Msg::Closed, Received, 0).unwrap();
    assert_eq!(
        c.pipes_open(),
        0,
        "a pipe in its final state frees its slot"
    );
    let v = c
        .observe_pipes(7, &pipe::Msg::Opened, Received, 0)
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::UnknownSubport { key: 7 });
    // Released, the port waits for the next device: attach, detach again.
    c.observe_usb(&bus::Msg::Release, Sent, 0).unwrap();
    assert_eq!(c.usb.state(), bus::State::Empty);
    c.observe_usb(&bus::Msg::Attached { port: 2, speed: 0 }, Received, 0)
        .unwrap();
    c.observe_usb(&bus::Msg::Detached, Received, 0).unwrap();
    // A second detach is a protocol violation: one detach per attach.
    let v = c.observe_usb(&bus::Msg::Detached, Received, 0).unwrap_err();
    assert_eq!(v.kind, ViolationKind::UnexpectedMessage);
}

#[test]
fn subport_spawning_and_limit() {
    let mut c = configured_with_pipes(&[1, 2, 3]);
    assert_eq!(c.pipes_open(), 3);
    let (two, four, five) = (open_pipe(2, 2), open_pipe(4, 2), open_pipe(5, 2));
    let v = c.observe_usb(&two, Sent, 0).unwrap_err();
    assert_eq!(v.kind, ViolationKind::DuplicateSubport { key: 2 });
    c.observe_usb(&four, Sent, 0).unwrap();
    let v = c.observe_usb(&five, Sent, 0).unwrap_err();
    assert_eq!(v.kind, ViolationKind::SubportLimit { max: 4 });
    assert!(
        v.to_string()
            .contains("subport limit 4 reached by ?openPipe(pipe=5"),
        "{v}"
    );
    // Each pipe follows its own protocol: pipe 4 is still opening.
    assert_eq!(c.pipes(4).unwrap().state(), pipe::State::Opening);
    assert_eq!(c.pipes(1).unwrap().state(), pipe::State::Open);
    c.observe_pipes(4, &pipe::Msg::OpenFailed { error: 9 }, Received, 0)
        .unwrap();
    c.observe_usb(&open_pipe(5, 2), Sent, 0).unwrap();
    assert_eq!(c.pipes_open(), 4);
    // Subport timeouts are checked too: pipe 5 must open within 1000 ms.
    let v = c.check_timeouts(1_001 * MS).unwrap_err();
    assert_eq!((v.port, v.subport, v.state), ("pipes", Some(5), "opening"));
}

#[test]
fn a_disk_is_announced_only_on_a_configured_device() {
    let mut c = usb_storage::Observer::new(0);
    let ready = blk::Msg::Ready {
        blocks: 8192,
        block_size: 512,
    };
    let v = c.observe_blk(&ready, Sent, 0).unwrap_err();
    assert_eq!(
        v.kind,
        ViolationKind::BlockedByDependency {
            port: "usb",
            state: "empty"
        }
    );
    let mut c = configured_with_pipes(&[1]);
    c.observe_blk(&ready, Sent, 0).unwrap();
    // A request crossing `gone` is answered GONE, and only GONE.
    c.observe_blk(
        &blk::Msg::Read {
            req: 1,
            block: 0,
            count: 8,
            buf: 0,
        },
        Received,
        0,
    )
    .unwrap();
    c.observe_blk(&blk::Msg::Done { req: 1, status: 0 }, Sent, 0)
        .unwrap();
    c.observe_blk(&blk::Msg::Gone, Sent, 0).unwrap();
    c.observe_blk(
        &blk::Msg::Write {
            req: 2,
            block: 0,
            count: 1,
            buf: 0,
        },
        Received,
        0,
    )
    .unwrap();
    let v = c
        .observe_blk(&blk::Msg::Done { req: 2, status: 0 }, Sent, 0)
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
    c.observe_blk(&blk::Msg::Done { req: 2, status: 2 }, Sent, 0)
        .unwrap();
}

#[test]
fn keyboard_presses_are_released_before_disconnect() {
    let mut o = kbd::Observer::new(0);
    let key = |usage, pressed| kbd::Msg::Key {
        usage,
        modifiers: 0,
        pressed,
    };
    run(
        &mut o,
        &[
            (kbd::Msg::Connected, Out),
            (key(4, true), Out),
            (key(5, true), Out),
            (kbd::Msg::Rollover, Out),
            (key(4, false), Out),
        ],
    );
    assert_eq!(o.vars().held, 1);
    let v = o.observe(&kbd::Msg::Disconnected, Out, 0).unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
    run(
        &mut o,
        &[(key(5, false), Out), (kbd::Msg::Disconnected, Out)],
    );
    // A release with nothing held is a violation.
    let mut o = kbd::Observer::new(0);
    o.observe(&kbd::Msg::Connected, Out, 0).unwrap();
    let release = key(4, false);
    let v = o.observe(&release, Out, 0).unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
}

#[test]
fn root_hub_ports_are_apart_and_each_bus_spawns_its_own_pipes() {
    // A port reset is answered on UsbRootPorts, not UsbHostController.
    let mut c = root_hub::Observer::new(0);
    c.observe_ports(&rp::Msg::PortReset { port: 0 }, Sent, 0)
        .unwrap();
    c.observe_hc(&hc::Msg::Halt, Sent, 0).unwrap();
    c.observe_ports(&rp::Msg::PortResetDone { port: 0, ok: true }, Received, 0)
        .unwrap();
    let v = c
        .observe_ports(&rp::Msg::PortResetDone { port: 0, ok: true }, Received, 0)
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
    let mut c = root_hub::Observer::new(0);
    c.observe_bus1(&bus::Msg::Attached { port: 1, speed: 1 }, Sent, 0)
        .unwrap();
    c.observe_bus1(
        &bus::Msg::Addressed {
            addr: 2,
            vendor: 1,
            product: 2,
            class: 0,
            subclass: 0,
            protocol: 0,
        },
        Sent,
        0,
    )
    .unwrap();
    c.observe_bus1(&open_pipe(0, 0), Received, 0).unwrap();
    assert_eq!((c.pipes1_open(), c.pipes0_open()), (1, 0));
    c.observe_pipes1(0, &pipe::Msg::Opened, Sent, 0).unwrap();
    let v = c
        .observe_pipes0(0, &pipe::Msg::Opened, Sent, 0)
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::UnknownSubport { key: 0 });
}

#[test]
fn host_controller_reset_may_cross_requests() {
    let mut o = hc::Observer::new(0);
    run(
        &mut o,
        &[
            (
                hc::Msg::OpenEndpoint {
                    ep: 1,
                    addr: 0,
                    endpoint: 0,
                    kind: 0,
                    dir_in: false,
                    max_packet: 8,
                    interval: 0,
                    low_speed: false,
                },
                In,
            ),
            (hc::Msg::EndpointOpened { ep: 1 }, Out),
            (
                hc::Msg::Submit {
                    xfer: 9,
                    ep: 1,
                    setup: 0x0012_0000_0100_0680,
                    buf: 0,
                    len: 18,
                },
                In,
            ),
        ],
    );
    // The submit crossed the reset notice: it is answered after it (`tingu
    // verify` refuted a guard asking for nothing pending), and no more
    // answers than requests.
    run(
        &mut o,
        &[
            (hc::Msg::ControllerReset { error: 1 }, Out),
            (
                hc::Msg::Complete {
                    xfer: 9,
                    status: 2,
                    actual: 0,
                },
                Out,
            ),
        ],
    );
    let v = o
        .observe(
            &hc::Msg::Complete {
                xfer: 9,
                status: 2,
                actual: 0,
            },
            Out,
            0,
        )
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
}

#[test]
fn timer_cancel_crossing_fire_is_legal_on_both_sides() {
    // Client view: request, cancel sent before the fire arrived, then the fire.
    let mut client = timer::Observer::new(0);
    run(
        &mut client,
        &[
            (
                timer::Msg::Request {
                    id: 1,
                    deadline_ns: 10,
                },
                In,
            ),
            (timer::Msg::Cancel { id: 1 }, In),
            (timer::Msg::Fired { id: 1 }, Out),
        ],
    );
    // Server view: fired first, then the stale cancel (ignored, no answer).
    let mut server = timer::Observer::new(0);
    run(
        &mut server,
        &[
            (
                timer::Msg::Request {
                    id: 1,
                    deadline_ns: 10,
                },
                In,
            ),
            (timer::Msg::Fired { id: 1 }, Out),
            (timer::Msg::Cancel { id: 1 }, In),
        ],
    );
    assert_eq!((client.vars().live, server.vars().live), (0, 0));
    // Answering more than was asked is a violation.
    let v = server
        .observe(&timer::Msg::Cancelled { id: 1 }, Out, 10 * MS)
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
    // Rejection needs a known reason.
    server
        .observe(
            &timer::Msg::Request {
                id: 2,
                deadline_ns: 0,
            },
            In,
            11 * MS,
        )
        .unwrap();
    let v = server
        .observe(&timer::Msg::Rejected { id: 2, reason: 9 }, Out, 12 * MS)
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::GuardFailed);
    server
        .observe(&timer::Msg::Rejected { id: 2, reason: 1 }, Out, 13 * MS)
        .unwrap();
}

#[test]
fn history_keeps_the_last_messages_in_order() {
    let mut o = timer::Observer::new(0);
    for id in 0..20 {
        o.observe(&timer::Msg::Request { id, deadline_ns: 0 }, In, 0)
            .unwrap();
    }
    let v = o.violation(ViolationKind::UnexpectedMessage, None);
    let ids: Vec<String> = v.history().map(|r| r.to_string()).collect();
    let want: Vec<String> = (12..20)
        .map(|id| format!("?request(id={id}, deadline_ns=0)"))
        .collect();
    assert_eq!(ids, want);
    assert!(v.history().all(|r| {
        r.id()
            == timer::Msg::Request {
                id: 0,
                deadline_ns: 0,
            }
            .id()
    }));
}

#[test]
fn variable_overflow_is_a_violation() {
    let mut o = eth::Observer::new(0);
    run(
        &mut o,
        &[(eth::Msg::Enable, In), (eth::Msg::EnableComplete, Out)],
    );
    for i in 0..u16::MAX {
        o.observe(
            &eth::Msg::RxBuffer {
                buf: u32::from(i),
                len: 2048,
            },
            In,
            0,
        )
        .unwrap();
    }
    let v = o
        .observe(&eth::Msg::RxBuffer { buf: 0, len: 2048 }, In, 0)
        .unwrap_err();
    assert_eq!(
        v.kind,
        ViolationKind::VariableOverflow {
            variable: "rx_lent"
        }
    );
    assert_eq!(o.vars().rx_lent, u16::MAX);
}

#[test]
fn restart_starts_a_new_session_and_keeps_the_history() {
    let mut o = eth::Observer::new(0);
    run(
        &mut o,
        &[
            (eth::Msg::Enable, In),
            (eth::Msg::EnableComplete, Out),
            (eth::Msg::TxPacket { buf: 0, len: 60 }, In),
            (
                eth::Msg::RxBuffer {
                    buf: 2048,
                    len: 2048,
                },
                In,
            ),
        ],
    );
    assert_eq!((o.vars().tx_pending, o.vars().rx_lent), (1, 1));
    o.restart(100 * MS);
    assert_eq!(o.state(), eth::State::Disabled);
    assert_eq!((o.vars().tx_pending, o.vars().rx_lent), (0, 0));
    // The old session's answer is now illegal, and the report still shows
    // the messages from before the restart.
    let v = o
        .observe(&eth::Msg::TxPacketDone { buf: 0 }, Out, 101 * MS)
        .unwrap_err();
    assert_eq!(v.kind, ViolationKind::UnexpectedMessage);
    assert_eq!(v.history().count(), 4);
    // A timeout state entered afresh: the clock starts at the restart.
    o.observe(&eth::Msg::Enable, In, 200 * MS).unwrap();
    assert_eq!(o.deadline_ns(), Some(1200 * MS));
}
