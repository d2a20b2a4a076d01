//! libFuzzer entry point; the target itself is [`fuzz::system_builder`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::system_builder(data));
