//! Test and benchmark support for the TIMPORA hub: the development PKI and data-directory
//! set-up (`timpora dev init`, `timpora up`), the in-process sandbox hub the end-to-end tests
//! and the benchmarks share, synthetic fixtures, and the benchmarks themselves. Nothing here is
//! part of a production component: the gateway, correlator and console do not depend on it.

pub mod bench_audit;
pub mod bench_correlate;
pub mod bench_ingest;
pub mod bench_lateness;
pub mod bench_soak;
pub mod dev;
pub mod https;
pub mod otlp;
pub mod pki;
pub mod province;
pub mod sandbox;

pub use sandbox::{Authed, Bearer, IDENTITIES, Sandbox, SandboxBuilder, fixtures, v1};
