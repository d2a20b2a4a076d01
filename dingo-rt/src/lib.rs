//! Dingo runtime: ports over seL4 channels and shared-memory rings, and the single-threaded event loop of a PD.
