//! Integration tests: the real binary, in a temporary home, through the names a
//! user types. One test binary, so it links once.

mod support;

mod archive;
mod cli_args;
mod contents;
mod daemon;
mod encryption;
mod fidelity_restore;
mod fidelity_write;
mod history;
mod incremental;
mod man;
mod manager;
mod metrics;
mod operations;
mod ops;
mod ping;
mod remote;
mod restore_races;
mod run_control;
mod scheduling;
mod several_sources;
mod sources;
mod sparse_restore;
mod spec;
mod systemd;
mod trust_daemon;
mod trust_history;
mod trust_store;
