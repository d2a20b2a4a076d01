//! Reads the producer's greeting from the shared buffer (mapped read-only
//! here), acknowledges it, and reports to the supervisor.
#![no_std]
#![no_main]

use examples::GREETING;
use microkit::{Channel, ChannelSet, Handler, debug_println, setvar};

const PRODUCER: Channel = Channel::new(0);
const SUPERVISOR: Channel = Channel::new(1);

setvar!(buffer_vaddr, buffer_paddr);

struct Consumer;

fn init() -> Consumer {
    debug_println!("consumer: waiting for the producer");
    Consumer
}

impl Handler for Consumer {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(PRODUCER) {
            return;
        }
        // SAFETY: system.xml maps the 4 KiB `buffer` region read-only here.
        let buf = unsafe { core::slice::from_raw_parts(buffer_vaddr.get() as *const u8, 4096) };
        let text = core::str::from_utf8(&buf[..GREETING.len()]).unwrap_or("<not UTF-8>");
        let their_paddr = u64::from_le_bytes(buf[64..72].try_into().unwrap());
        debug_println!(
            "consumer: read '{text}' from the shared buffer at {:#x}",
            buffer_vaddr.get()
        );
        PRODUCER.notify();
        if buf[..GREETING.len()] == *GREETING && their_paddr == buffer_paddr.get() {
            debug_println!("consumer: both PDs see the buffer at paddr {their_paddr:#x}");
            SUPERVISOR.notify();
        } else {
            debug_println!(
                "consumer: FAILED: unexpected buffer contents or paddr {their_paddr:#x}"
            );
        }
    }
}

microkit::protection_domain!(init);
