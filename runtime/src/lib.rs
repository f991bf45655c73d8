//! Runs compiled programs: data loading, the training loop, metrics, checkpoints.
//!
//! The compiler (`netc-compiler`) checks a `.net` file and lowers it; this crate executes what it
//! produced against real data. Each concern lives in its own module so the training loop, the
//! CLI and the tests can use them separately.

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod generate;
pub mod images;
pub mod init;
pub mod log;
pub mod metrics;
pub mod plot;
pub mod schedule;
pub mod train;

/// Threads the native backend uses for steps compiled from now on (`--threads`).
pub use netc_backend_cpu::set_threads;
