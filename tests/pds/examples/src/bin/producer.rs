//! Writes a greeting into the shared buffer and notifies the consumer; on
//! its acknowledgement calls the adder (a PPC with six message registers)
//! and reports to the supervisor.
#![no_std]
#![no_main]

use examples::{ADD_LABEL, GREETING};
use microkit::sel4::MessageInfo;
use microkit::{Channel, ChannelSet, Handler, debug_println, set_mr, setvar};

pd_config::program!("producer");

// Microkit's own way to learn a region's physical address, kept here to
// exercise `<setvar region_paddr>`; everything else comes from the config.
setvar!(buffer_paddr);

struct Producer {
    consumer: Channel,
    adder: Channel,
    supervisor: Channel,
}

fn init() -> Producer {
    let cfg = config::load();
    let buffer = cfg.regions.buffer;
    // SAFETY: system-builder checked that `buffer` is mapped read-write
    // here for buffer.size bytes, and nothing else in this PD touches it.
    let dst = unsafe { core::slice::from_raw_parts_mut(buffer.as_ptr(), buffer.size) };
    dst[..GREETING.len()].copy_from_slice(GREETING);
    // The region's physical address, for the consumer to compare with its own setvar.
    dst[64..72].copy_from_slice(&buffer_paddr.get().to_le_bytes());
    debug_println!(
        "producer: wrote greeting at {:#x} (paddr {:#x}); notifying consumer",
        buffer.vaddr,
        buffer_paddr.get()
    );
    let consumer = Channel::from(cfg.channels.consumer);
    consumer.notify();
    Producer {
        consumer,
        adder: cfg.channels.adder.into(),
        supervisor: cfg.channels.supervisor.into(),
    }
}

impl Handler for Producer {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(self.consumer) {
            return;
        }
        debug_println!("producer: consumer acknowledged");
        for i in 0..6 {
            set_mr(i, i as u64 + 1);
        }
        let reply = self.adder.pp_call(MessageInfo::new(ADD_LABEL, 0, 0, 6));
        let sum = microkit::mr(0);
        debug_println!(
            "producer: adder returned sum {sum} (label {}, {} MRs)",
            reply.label(),
            reply.length()
        );
        if sum == 21 && reply.label() == ADD_LABEL {
            self.supervisor.notify();
        } else {
            debug_println!("producer: FAILED: expected sum 21 with label {ADD_LABEL}");
        }
    }
}

microkit::protection_domain!(init);
