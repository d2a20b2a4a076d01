//! libFuzzer entry point; the target itself is [`fuzz::ring::run`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::ring::run(data));
