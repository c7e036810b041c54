//! What every component shares at run time: the stop request it watches, and binding its
//! address with an error that names it.

use std::net::SocketAddr;

use tokio::sync::watch;

use crate::error::Error;

/// Bind `addr` for `what`.
pub(crate) async fn bind(
    addr: SocketAddr,
    what: &'static str,
) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Listen { what, addr, source })
}

/// A stop request that every component watches.
#[derive(Clone)]
pub(crate) struct Stop(pub(crate) watch::Receiver<bool>);

impl Stop {
    /// Completes once a stop is requested.
    pub(crate) async fn stopped(mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}
