//! The PDs of the restart test (tests/systems/restart.xml): one that
//! faults until the monitor has restarted it often enough, one that never
//! stops faulting (and is given up on), one that hangs in a handler (and
//! is restarted when it overruns its budget), and the checker that sees
//! the first and the third recover and ends the run.
#![no_std]
