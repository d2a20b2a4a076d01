//! libFuzzer entry point; the target itself is [`fuzz::tingu`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::tingu(data));
