//! The root hub PD (work in progress: the core comes first).
#![no_std]
#![no_main]
