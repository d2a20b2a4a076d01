//! The client side of the timer PD, shared by every PD that reads the time
//! or sets timeouts (and by the timer PD itself for the shared layouts).
//! [`clock`] reads monotonic nanoseconds from the time page with no IPC and
//! the timer PD's interrupt count next to it; [`port`] fixes the geometry of
//! a Timer port and builds its typed, observed ends; [`platform`] is a
//! dingo-rt executor [`Platform`](dingo_rt::executor::Platform) whose
//! deadlines become Timer requests, so that `ex.sleep(..).await` in a client
//! PD is woken by the timer PD; [`delay`] offers both as embedded-hal's
//! `DelayNs` (blocking: spinning on the time page; async: an executor
//! sleep), for drivers written against those traits. Free of seL4 calls:
//! everything here runs in host tests.
#![cfg_attr(not(test), no_std)]

pub mod clock;
pub mod delay;
pub mod platform;
pub mod port;

/// Host stand-ins for tests of this crate and of the timer PD's server.
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

pub use dingo_protocols::timer;
