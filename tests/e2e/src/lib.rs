//! End-to-end suites: a real `nats-server`, the real gateway, real sockets. The sandbox they
//! run in is `timpora-testkit`'s, shared with the benchmarks.

pub use timpora_testkit::{
    Authed, Bearer, IDENTITIES, Sandbox as Hub, SandboxBuilder as HubBuilder, fixtures, v1,
};
