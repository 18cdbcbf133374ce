//! Benchmark support: generators and helpers shared by the criterion benches and bench binaries.

pub mod meshgen;
