//! Random timeout client B of the timer test (see the crate doc).
#![no_std]
#![no_main]

use dingo_pd::MicrokitPlatform;
use dingo_pd::dingo_rt::executor::Executor;
use dingo_pd::microkit::setvar;

setvar!(time_page_vaddr, timer_port_vaddr, results_vaddr);

fn clock() -> u64 {
    timer_tests::now(time_page_vaddr.get())
}

async fn main(ex: &Executor<'_, MicrokitPlatform>) {
    let (port, results) = (timer_port_vaddr.get(), results_vaddr.get());
    timer_tests::random_client(ex, "timer-client-b", 1, port, results).await;
}

dingo_pd::async_protection_domain!(main, clock = clock);
