//! backupctl: a scheduled-backup manager. The binary in `main.rs` is a thin door
//! into these modules, which integration tests and examples use as well.
//!
//! Dependencies point one way: `cli` → `daemon` → `store` / `archive` → the leaf
//! modules (`clock`, `home`, `logging`, `error`, `exit_codes`, `primitives`).

pub mod archive;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod error;
pub mod exit_codes;
pub mod file_error;
pub mod home;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod primitives;
pub mod remote;
pub mod store;
