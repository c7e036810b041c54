//! Connecting to the TIMPORA gateway as an agency identity (client certificates, bearer tokens,
//! the development credentials of a data directory), the contract's proto3 JSON, and the
//! vocabulary of alert actions that the command line and the operations console share.

pub mod actions;
mod connect;
pub mod dev;
mod error;
pub mod json;

pub use connect::{Auth, Conn, Credentials, Keyring, Target, connect};
pub use error::{Error, random_hex};
