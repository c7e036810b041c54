//! Shutdown on SIGINT or SIGTERM: the first starts a graceful drain, a second exits at once.

use std::future::Future;

/// A future that completes on the first SIGINT/SIGTERM; a second signal exits the process.
pub fn shutdown() -> impl Future<Output = ()> + Send + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        wait().await;
        tracing::info!("shutting down; press Ctrl-C again to exit at once");
        let _ = tx.send(());
        wait().await;
        tracing::warn!("second signal; exiting now");
        std::process::exit(130);
    });
    async move {
        let _ = rx.await;
    }
}

async fn wait() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
