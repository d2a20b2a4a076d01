//! Writes a greeting into the shared buffer and notifies the consumer; on
//! its acknowledgement calls the adder (a PPC with six message registers)
//! and reports to the supervisor.
#![no_std]
#![no_main]

use examples::{ADD_LABEL, GREETING};
use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, debug_println, set_mr, setvar};

const CONSUMER: Channel = Channel::new(0);
const ADDER: Channel = Channel::new(1);
const SUPERVISOR: Channel = Channel::new(2);

setvar!(buffer_vaddr, buffer_paddr);

struct Producer;

fn init() -> Producer {
    let buffer = buffer_vaddr.get() as *mut u8;
    // SAFETY: system.xml maps the 4 KiB `buffer` region read-write here.
    let dst = unsafe { core::slice::from_raw_parts_mut(buffer, 4096) };
    dst[..GREETING.len()].copy_from_slice(GREETING);
    // The region's physical address, for the consumer to compare with its own setvar.
    dst[64..72].copy_from_slice(&buffer_paddr.get().to_le_bytes());
    debug_println!(
        "producer: wrote greeting at {:#x} (paddr {:#x}); notifying consumer",
        buffer as u64,
        buffer_paddr.get()
    );
    CONSUMER.notify();
    Producer
}

impl Handler for Producer {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(CONSUMER) {
            return;
        }
        debug_println!("producer: consumer acknowledged");
        for i in 0..6 {
            set_mr(i, i as u64 + 1);
        }
        let reply = ADDER.pp_call(MessageInfo::new(ADD_LABEL, 0, 0, 6));
        let sum = microkit::mr(0);
        debug_println!(
            "producer: adder returned sum {sum} (label {}, {} MRs)",
            reply.label(),
            reply.length()
        );
        if sum == 21 && reply.label() == ADD_LABEL {
            SUPERVISOR.notify();
        } else {
            debug_println!("producer: FAILED: expected sum 21 with label {ADD_LABEL}");
        }
    }
}

microkit::protection_domain!(init);
