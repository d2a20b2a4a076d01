//! Example and test protection domains for the Microkit runtime: the
//! example system in the top-level system.xml (producer, consumer, adder,
//! supervisor) and the fault test's PDs (tests/systems/fault.xml). Each PD
//! is a binary in src/bin; this library holds what they share.
#![no_std]

/// What the producer writes into the shared buffer for the consumer.
pub const GREETING: &[u8] = b"hello from producer";

/// Label of the adder's "sum your message registers" call.
pub const ADD_LABEL: u64 = 7;
