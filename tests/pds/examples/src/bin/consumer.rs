//! Reads the producer's greeting from the shared buffer (mapped read-only
//! here), acknowledges it, and reports to the supervisor.
#![no_std]
#![no_main]

use examples::GREETING;
use microkit::{Channel, ChannelSet, Handler, debug_println, setvar};

pd_config::program!("consumer");

// As in the producer: Microkit's region_paddr setvar, on purpose.
setvar!(buffer_paddr);

struct Consumer {
    buffer: pd_config::SharedRegion,
    producer: Channel,
    supervisor: Channel,
}

fn init() -> Consumer {
    let cfg = config::load();
    debug_println!("consumer: waiting for the producer");
    Consumer {
        buffer: cfg.regions.buffer,
        producer: cfg.channels.producer.into(),
        supervisor: cfg.channels.supervisor.into(),
    }
}

impl Handler for Consumer {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(self.producer) {
            return;
        }
        // SAFETY: system-builder checked that `buffer` is mapped readable
        // here for buffer.size bytes (at least the 4 KiB the manifest asks).
        let buf = unsafe { core::slice::from_raw_parts(self.buffer.as_ptr(), self.buffer.size) };
        let text = core::str::from_utf8(&buf[..GREETING.len()]).unwrap_or("<not UTF-8>");
        let their_paddr = u64::from_le_bytes(buf[64..72].try_into().unwrap());
        debug_println!(
            "consumer: read '{text}' from the shared buffer at {:#x}",
            self.buffer.vaddr
        );
        self.producer.notify();
        if buf[..GREETING.len()] == *GREETING && their_paddr == buffer_paddr.get() {
            debug_println!("consumer: both PDs see the buffer at paddr {their_paddr:#x}");
            self.supervisor.notify();
        } else {
            debug_println!(
                "consumer: FAILED: unexpected buffer contents or paddr {their_paddr:#x}"
            );
        }
    }
}

microkit::protection_domain!(init);
