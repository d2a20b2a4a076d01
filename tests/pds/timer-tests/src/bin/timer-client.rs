//! A random timeout client of the timer test (see the crate doc); its
//! instances differ only in their config.
#![no_std]
#![no_main]

use dingo_pd::MicrokitPlatform;
use dingo_pd::dingo_rt::executor::Executor;
use timer_tests::ClientConfig;

pd_config::program!("timer-client");

fn clock() -> u64 {
    timer_tests::now(|| {
        let r = config::load().regions;
        (r.time_page, r.counter)
    })
}

async fn main(ex: &Executor<'_, MicrokitPlatform>) {
    let cfg = config::load();
    let client = ClientConfig {
        name: cfg.name,
        timer: &cfg.ports.timer,
        results: &cfg.regions.results,
        check: cfg.channels.timer_check.into(),
        timeouts: cfg.params.timeouts.into(),
        seed: cfg.params.seed,
    };
    timer_tests::random_client(ex, client).await;
}

dingo_pd::async_protection_domain!(main, clock = clock);
