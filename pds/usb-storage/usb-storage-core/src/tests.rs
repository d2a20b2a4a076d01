//! The driver against a scripted hub with a Bulk-Only device behind it
//! (a RAM disk), every message checked by the UsbStorage component's
//! observer; and the device's misbehaviours.

use std::cell::RefCell;
use std::vec::Vec;

use dingo_protocols::{block_device, usb_storage};
use tingu_rt::Flow;
use usb_bus::{BusMsg, PipeMsg, Wire};
use usb_core::fixtures::STORAGE_CONFIG;

use super::*;

const BLOCKS: u64 = 4096;

struct Mem(RefCell<Vec<u8>>);

impl Window for Mem {
    fn size(&self) -> u32 {
        self.0.borrow().len() as u32
    }
    fn read(&self, offset: u32, dst: &mut [u8]) {
        let o = offset as usize;
        dst.copy_from_slice(&self.0.borrow()[o..o + dst.len()]);
    }
    fn write(&self, offset: u32, src: &[u8]) {
        let o = offset as usize;
        self.0.borrow_mut()[o..o + src.len()].copy_from_slice(src);
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Quirk {
    None,
    /// The next N status wrappers have a wrong signature / tag / phase error.
    BadSignature(u8),
    BadTag(u8),
    PhaseError(u8),
    /// The next N data stages STALL.
    StallData(u8),
    /// Bulk transfers never complete.
    NakForever,
    /// READ fails with a medium error (status 1, sense key 3).
    MediumError,
}

struct Dev {
    disk: Vec<u8>,
    quirk: Quirk,
    /// The command of the last CBW: (tag, opcode, lba, count, data_len).
    cbw: Option<(u32, u8, u32, u16, u32)>,
    csw_status: u8,
    sense_key: u8,
    commands: Vec<u8>,
    resets: u32,
    /// The data stage of the current command is still due.
    data_due: bool,
}

struct Rig {
    mem: Mem,
    dev: Dev,
    s: Storage,
    obs: usb_storage::Observer,
    pending: Vec<(u32, u32, u32, u32)>,
    outs: Vec<Out>,
    notes: Vec<Note>,
    now: u64,
    /// Every batch of messages the driver sent between two answers.
    batches: Vec<Vec<Wire>>,
}

fn rig() -> Rig {
    let mut disk = vec![0u8; (BLOCKS * 512) as usize];
    for (i, b) in disk.iter_mut().enumerate() {
        *b = (i / 512) as u8 ^ (i as u8);
    }
    Rig {
        mem: Mem(RefCell::new(vec![0; DATA_BASE as usize + (2 << 20)])),
        dev: Dev {
            disk,
            quirk: Quirk::None,
            cbw: None,
            csw_status: 0,
            sense_key: 0,
            commands: Vec::new(),
            resets: 0,
            data_due: false,
        },
        s: Storage::new(),
        obs: usb_storage::Observer::new(0),
        pending: Vec::new(),
        outs: Vec::new(),
        notes: Vec::new(),
        now: 0,
        batches: Vec::new(),
    }
}

fn check(o: &mut usb_storage::Observer, w: &Wire, flow: Flow, now: u64) {
    let r = match w {
        Wire::Bus(m) => o.observe_usb(m, flow, now).map_err(|v| v.to_string()),
        Wire::Pipe { pipe, msg } => o
            .observe_pipes(u64::from(*pipe), msg, flow, now)
            .map_err(|v| v.to_string()),
    };
    if let Err(v) = r {
        panic!("{v}");
    }
}

impl Rig {
    fn deliver(&mut self, w: Wire) {
        check(&mut self.obs, &w, Flow::Received, self.now);
        self.s.input(w, self.now, &self.mem);
        self.pump();
    }

    fn pump(&mut self) {
        loop {
            let mut replies = Vec::new();
            let mut batch = Vec::new();
            while let Some(w) = self.s.session.take() {
                check(&mut self.obs, &w, Flow::Sent, self.now);
                batch.push(w);
                self.hub(w, &mut replies);
            }
            if !batch.is_empty() {
                self.batches.push(batch);
            }
            while let Some(o) = self.s.take_out() {
                let m = match o {
                    Out::Ready { blocks, block_size } => {
                        block_device::Msg::Ready { blocks, block_size }
                    }
                    Out::Done { req, status } => block_device::Msg::Done { req, status },
                    Out::Gone => block_device::Msg::Gone,
                };
                if let Err(v) = self.obs.observe_blk(&m, Flow::Sent, self.now) {
                    panic!("{v}");
                }
                self.outs.push(o);
            }
            while let Some(n) = self.s.take_note() {
                self.notes.push(n);
            }
            if replies.is_empty() {
                return;
            }
            for r in replies {
                check(&mut self.obs, &r, Flow::Received, self.now);
                self.s.input(r, self.now, &self.mem);
            }
        }
    }

    /// The hub and the device behind it.
    fn hub(&mut self, w: Wire, out: &mut Vec<Wire>) {
        let done = |pipe, xfer, status, actual| Wire::Pipe {
            pipe,
            msg: PipeMsg::Complete {
                xfer,
                status,
                actual,
            },
        };
        match w {
            Wire::Bus(BusMsg::OpenPipe { pipe, .. }) => out.push(Wire::Pipe {
                pipe,
                msg: PipeMsg::Opened,
            }),
            Wire::Bus(BusMsg::SetConfiguration { config }) => {
                out.push(Wire::Bus(BusMsg::Configured { config }))
            }
            Wire::Pipe {
                pipe: 0,
                msg: PipeMsg::Submit {
                    xfer, setup, buf, ..
                },
            } => {
                let s = Setup::from_u64(setup);
                let n = if s.request == 6 {
                    let n = STORAGE_CONFIG.len().min(usize::from(s.length));
                    self.mem.write(buf, &STORAGE_CONFIG[..n]);
                    n as u32
                } else {
                    if s.request == 0xff {
                        self.dev.resets += 1;
                        self.dev.cbw = None;
                    }
                    0
                };
                out.push(done(0, xfer, status::OK, n));
            }
            Wire::Pipe {
                pipe,
                msg: PipeMsg::Submit { xfer, buf, len, .. },
            } => {
                if self.dev.quirk == Quirk::NakForever {
                    self.pending.push((pipe, xfer, buf, len));
                    return;
                }
                out.push(self.device(pipe, xfer, buf, len));
            }
            Wire::Pipe {
                pipe,
                msg: PipeMsg::Abort,
            } => {
                let (gone, keep): (Vec<_>, Vec<_>) = self.pending.iter().partition(|p| p.0 == pipe);
                self.pending = keep;
                for (p, x, _, _) in gone {
                    out.push(done(p, x, status::ABORTED, 0));
                }
                out.push(Wire::Pipe {
                    pipe,
                    msg: PipeMsg::AbortComplete,
                });
            }
            _ => {}
        }
    }

    /// One bulk transfer at the device.
    fn device(&mut self, pipe: u32, xfer: u32, buf: u32, len: u32) -> Wire {
        let reply = |status, actual| Wire::Pipe {
            pipe,
            msg: PipeMsg::Complete {
                xfer,
                status,
                actual,
            },
        };
        let stage = xfer & 3;
        if pipe == 2 && stage == 0 {
            let mut cbw = [0u8; 31];
            self.mem.read(buf, &mut cbw);
            assert_eq!(&cbw[0..4], b"USBC");
            let tag = u32::from_le_bytes(cbw[4..8].try_into().unwrap());
            let dlen = u32::from_le_bytes(cbw[8..12].try_into().unwrap());
            let op = cbw[15];
            let lba = u32::from_be_bytes(cbw[17..21].try_into().unwrap());
            let count = u16::from_be_bytes(cbw[22..24].try_into().unwrap());
            self.dev.commands.push(op);
            self.dev.cbw = Some((tag, op, lba, count, dlen));
            self.dev.csw_status = 0;
            self.dev.data_due = dlen > 0;
            return reply(status::OK, len);
        }
        let Some((tag, op, lba, count, _)) = self.dev.cbw else {
            return reply(status::STALL, 0);
        };
        if stage == 2 {
            // QEMU's usb-storage loses a status read queued behind data it
            // completes asynchronously: the driver must not send one.
            assert!(
                !self.dev.data_due,
                "status read before the data stage ended"
            );
        }
        if stage == 1 {
            self.dev.data_due = false;
            if let Quirk::StallData(n) = self.dev.quirk
                && n > 0
            {
                self.dev.quirk = Quirk::StallData(n - 1);
                return reply(status::STALL, 0);
            }
            let bytes: Vec<u8> = match op {
                0x12 => {
                    let mut v = vec![0u8; 36];
                    v[8..16].copy_from_slice(b"QEMU    ");
                    v[16..32].copy_from_slice(b"QEMU HARDDISK   ");
                    v[32..36].copy_from_slice(b"2.5+");
                    v
                }
                0x25 => {
                    let mut v = ((BLOCKS - 1) as u32).to_be_bytes().to_vec();
                    v.extend_from_slice(&512u32.to_be_bytes());
                    v
                }
                0x03 => {
                    let mut v = vec![0u8; 18];
                    v[0] = 0x70;
                    v[2] = self.dev.sense_key;
                    v
                }
                0x28 if self.dev.quirk == Quirk::MediumError => {
                    self.dev.csw_status = 1;
                    self.dev.sense_key = 3;
                    vec![0; len as usize]
                }
                0x28 => {
                    let at = lba as usize * 512;
                    self.dev.disk[at..at + usize::from(count) * 512].to_vec()
                }
                0x2a => {
                    let at = lba as usize * 512;
                    let mut v = vec![0u8; len as usize];
                    self.mem.read(buf, &mut v);
                    self.dev.disk[at..at + v.len()].copy_from_slice(&v);
                    return reply(status::OK, len);
                }
                _ => Vec::new(),
            };
            let n = bytes.len().min(len as usize);
            self.mem.write(buf, &bytes[..n]);
            return reply(status::OK, n as u32);
        }
        // The status wrapper.
        let mut csw = [0u8; 13];
        csw[0..4].copy_from_slice(b"USBS");
        csw[4..8].copy_from_slice(&tag.to_le_bytes());
        csw[12] = self.dev.csw_status;
        match self.dev.quirk {
            Quirk::BadSignature(n) if n > 0 => {
                self.dev.quirk = Quirk::BadSignature(n - 1);
                csw[0] = b'X';
            }
            Quirk::BadTag(n) if n > 0 => {
                self.dev.quirk = Quirk::BadTag(n - 1);
                csw[4] ^= 0x55;
            }
            Quirk::PhaseError(n) if n > 0 => {
                self.dev.quirk = Quirk::PhaseError(n - 1);
                csw[12] = 2;
            }
            _ => {}
        }
        self.mem.write(buf, &csw);
        reply(status::OK, 13)
    }

    fn attach(&mut self) {
        self.deliver(Wire::Bus(BusMsg::Attached { port: 1, speed: 1 }));
        self.deliver(Wire::Bus(BusMsg::Addressed {
            addr: 2,
            vendor: 0x46f4,
            product: 1,
            class: 8,
            subclass: 6,
            protocol: 0x50,
        }));
    }

    fn request(&mut self, req: u32, block: u64, count: u32, buf: u32, write: bool) {
        let m = if write {
            block_device::Msg::Write {
                req,
                block,
                count,
                buf,
            }
        } else {
            block_device::Msg::Read {
                req,
                block,
                count,
                buf,
            }
        };
        if let Err(v) = self.obs.observe_blk(&m, Flow::Received, self.now) {
            panic!("{v}");
        }
        self.s.request(
            Request {
                req,
                block,
                count,
                buf,
                write,
            },
            self.now,
            &self.mem,
        );
        self.pump();
    }
}

#[test]
fn set_up_reads_inquiry_and_capacity_then_reads_and_writes() {
    let mut r = rig();
    r.attach();
    assert_eq!(r.dev.commands, [0x12, 0x00, 0x25]);
    assert_eq!(
        r.outs,
        [Out::Ready {
            blocks: BLOCKS,
            block_size: 512
        }]
    );
    assert!(
        matches!(r.notes[0], Note::Disk { blocks: BLOCKS, ref product, .. } if product == b"QEMU HARDDISK   ")
    );
    r.outs.clear();
    // A 2 MiB read: two 1 MiB commands.
    r.request(1, 8, 4096 - 8, DATA_BASE, false);
    assert_eq!(r.outs, [Out::Done { req: 1, status: OK }]);
    let mut got = vec![0u8; (4096 - 8) * 512];
    r.mem.read(DATA_BASE, &mut got);
    assert_eq!(&got[..], &r.dev.disk[8 * 512..]);
    assert_eq!(r.dev.commands.iter().filter(|c| **c == 0x28).count(), 2);
    // A write, read back.
    let pattern: Vec<u8> = (0..4096).map(|i| (i * 13) as u8).collect();
    r.mem.write(DATA_BASE, &pattern);
    r.request(2, 100, 8, DATA_BASE, true);
    r.mem.write(DATA_BASE, &[0; 4096]);
    r.request(3, 100, 8, DATA_BASE, false);
    let mut back = vec![0u8; 4096];
    r.mem.read(DATA_BASE, &mut back);
    assert_eq!(back, pattern);
    // Outside the disk, outside the data region, into the driver's own.
    r.outs.clear();
    r.request(4, BLOCKS - 1, 2, DATA_BASE, false);
    r.request(5, 0, 1, 0, false);
    r.request(6, 0, 8192, DATA_BASE, false);
    assert_eq!(
        r.outs,
        [
            Out::Done {
                req: 4,
                status: BAD_REQUEST
            },
            Out::Done {
                req: 5,
                status: BAD_REQUEST
            },
            Out::Done {
                req: 6,
                status: BAD_REQUEST
            },
        ]
    );
}

fn recovered(r: &mut Rig, quirk: Quirk) {
    r.attach();
    r.outs.clear();
    r.dev.quirk = quirk;
    r.request(1, 0, 8, DATA_BASE, false);
    assert_eq!(r.outs, [Out::Done { req: 1, status: OK }], "{:?}", r.notes);
    assert!(
        r.notes.iter().any(|n| matches!(n, Note::Recovery { .. })),
        "{:?}",
        r.notes
    );
    assert_eq!(r.dev.resets, 1, "one Bulk-Only Mass Storage Reset");
    assert_eq!(r.s.stats.recoveries, 1);
}

#[test]
fn a_wrong_status_signature_is_recovered() {
    let mut r = rig();
    recovered(&mut r, Quirk::BadSignature(1));
    assert!(r.notes.iter().any(|n| matches!(
        n,
        Note::Recovery {
            why: Trouble::Signature(_),
            ..
        }
    )));
}

#[test]
fn a_wrong_status_tag_is_recovered() {
    let mut r = rig();
    recovered(&mut r, Quirk::BadTag(1));
}

#[test]
fn a_phase_error_is_recovered() {
    let mut r = rig();
    recovered(&mut r, Quirk::PhaseError(1));
}

#[test]
fn a_status_that_stays_bad_fails_the_request_not_the_driver() {
    let mut r = rig();
    r.attach();
    r.outs.clear();
    r.dev.quirk = Quirk::BadSignature(2);
    r.request(1, 0, 8, DATA_BASE, false);
    assert_eq!(
        r.outs,
        [Out::Done {
            req: 1,
            status: IO_ERROR
        }]
    );
    // The next request works.
    r.request(2, 0, 8, DATA_BASE, false);
    assert_eq!(r.outs[1], Out::Done { req: 2, status: OK });
}

#[test]
fn a_stalled_data_stage_is_recovered() {
    let mut r = rig();
    r.attach();
    r.outs.clear();
    r.dev.quirk = Quirk::StallData(1);
    r.request(1, 0, 8, DATA_BASE, false);
    assert_eq!(r.outs.len(), 1);
    assert!(matches!(r.outs[0], Out::Done { req: 1, .. }));
}

#[test]
fn a_medium_error_asks_for_sense_and_fails_the_request() {
    let mut r = rig();
    r.attach();
    r.outs.clear();
    r.dev.quirk = Quirk::MediumError;
    r.request(1, 0, 8, DATA_BASE, false);
    assert_eq!(
        r.outs,
        [Out::Done {
            req: 1,
            status: IO_ERROR
        }]
    );
    assert!(r.notes.iter().any(|n| matches!(
        n,
        Note::Failed {
            why: Trouble::CheckCondition { sense: 3, .. },
            ..
        }
    )));
    assert_eq!(r.dev.commands.last(), Some(&0x03));
}

#[test]
fn a_device_that_naks_forever_times_out_into_recovery_then_fails() {
    let mut r = rig();
    r.attach();
    r.outs.clear();
    r.dev.quirk = Quirk::NakForever;
    r.request(1, 0, 8, DATA_BASE, false);
    assert!(r.outs.is_empty());
    for _ in 0..3 {
        r.now += COMMAND_TIMEOUT_NS + 1;
        r.s.tick(r.now);
        r.pump();
    }
    assert_eq!(
        r.outs,
        [Out::Done {
            req: 1,
            status: IO_ERROR
        }],
        "{:?}",
        r.notes
    );
    assert!(r.notes.iter().any(|n| matches!(
        n,
        Note::Recovery {
            why: Trouble::Timeout,
            ..
        }
    )));
    assert!(
        r.s.next_deadline().is_none(),
        "nothing left to time out: no hang"
    );
}

#[test]
fn unplug_answers_every_request_gone() {
    let mut r = rig();
    r.attach();
    r.outs.clear();
    r.dev.quirk = Quirk::NakForever;
    r.request(1, 0, 8, DATA_BASE, false);
    r.request(2, 8, 8, DATA_BASE, false);
    r.deliver(Wire::Bus(BusMsg::Detached));
    assert_eq!(
        r.outs,
        [
            Out::Done {
                req: 1,
                status: GONE
            },
            Out::Done {
                req: 2,
                status: GONE
            },
            Out::Gone
        ]
    );
    assert_eq!(r.s.pending(), 0);
    r.outs.clear();
    r.request(3, 0, 8, DATA_BASE, false);
    assert_eq!(
        r.outs,
        [Out::Done {
            req: 3,
            status: GONE
        }]
    );
}

/// An injected garbage status wrapper is caught by the driver's own
/// checks, and reset recovery retries the command, whose data compares.
fn garbage_recovered(g: fault_campaign::Garbage) {
    let mut r = rig();
    r.attach();
    r.outs.clear();
    r.s.corrupt_next_status(g);
    r.request(1, 16, 8, DATA_BASE, false);
    assert_eq!(r.outs, [Out::Done { req: 1, status: OK }], "{:?}", r.notes);
    let mut got = vec![0u8; 8 * 512];
    r.mem.read(DATA_BASE, &mut got);
    assert_eq!(&got[..], &r.dev.disk[16 * 512..24 * 512]);
    assert_eq!((r.s.stats.recoveries, r.dev.resets), (1, 1));
    assert_eq!(r.s.stats.data_commands, 1, "the retry passed");
    // Once only: the next command's status is the device's.
    r.request(2, 0, 8, DATA_BASE, false);
    assert_eq!(r.s.stats.recoveries, 1);
}

#[test]
fn an_injected_status_of_all_ones_is_caught_and_recovered() {
    garbage_recovered(fault_campaign::Garbage::AllOnes);
}

#[test]
fn an_injected_noise_status_is_caught_and_recovered() {
    for seed in [1, 0x9e37_79b9, 0xdead_beef] {
        garbage_recovered(fault_campaign::Garbage::Noise { seed });
    }
}

#[test]
fn a_retry_after_reset_recovery_sends_its_command_wrapper_alone_first() {
    let mut r = rig();
    r.attach();
    r.batches.clear();
    r.s.corrupt_next_status(fault_campaign::Garbage::AllOnes);
    r.request(1, 0, 8, DATA_BASE, false);
    assert_eq!(r.outs.last(), Some(&Out::Done { req: 1, status: OK }));
    let submits = |b: &Vec<Wire>| -> Vec<(u32, u32)> {
        b.iter()
            .filter_map(|w| match w {
                Wire::Pipe {
                    pipe,
                    msg: PipeMsg::Submit { xfer, .. },
                } if *pipe != 0 => Some((*pipe, xfer & 3)),
                _ => None,
            })
            .collect()
    };
    let bulk: Vec<Vec<(u32, u32)>> = r
        .batches
        .iter()
        .map(submits)
        .filter(|s| !s.is_empty())
        .collect();
    // First try: wrapper and data together. The retry: the wrapper alone
    // (the hub may still be resetting the endpoints' toggles), then the
    // data, then the status.
    assert_eq!(bulk[0], [(BULK_OUT, 0), (BULK_IN, 1)]);
    assert_eq!(bulk[1], [(BULK_IN, 2)]);
    assert_eq!(
        &bulk[2..],
        [vec![(BULK_OUT, 0)], vec![(BULK_IN, 1)], vec![(BULK_IN, 2)]]
    );
}
