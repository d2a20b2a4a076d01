//! Dingo runtime: the host-testable core that every seL4 protection domain
//! links. [`ring`] is a single-producer single-consumer ring of fixed-size
//! message slots in memory shared with an untrusted peer, with sDDF-style
//! signal suppression; [`port`] lays out a Dingo port's shared region (one
//! ring per direction plus a bulk data area addressed by checked offsets);
//! [`executor`] is the PD's single-threaded async executor, woken by its
//! seL4 notification, where `.await` plays Tame's CALL, `select` plays
//! AWAIT/IF/ELIF and [`executor::Event`] plays EMIT; [`typed`] puts a
//! Tingu protocol on a port, so that every message sent or received passes
//! the protocol's observer and violations are reported under the PD's
//! policy. Kernel operations sit
//! behind the [`executor::Platform`] trait, so everything here runs in plain
//! `cargo test`. No allocation and no locks: a PD has one thread.
#![cfg_attr(not(test), no_std)]

pub mod executor;
pub mod port;
pub mod ring;
pub mod typed;

#[cfg(test)]
mod test_util;
