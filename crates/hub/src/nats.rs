//! The `nats-server` that `timpora up` starts as its child, looked after on a thread of its own:
//! if it exits it is started again on the same port and store; if it is not back within the
//! configured time, the hub is told why and stops.
//!
//! The server is (re)started from that thread, which lives exactly as long as the server should:
//! the kernel's parent-death signal (see `timpora-natsd`) is tied to the starting thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use timpora_natsd::NatsServer;
use tokio::sync::oneshot;

/// How often the child is looked at.
const POLL: Duration = Duration::from_millis(100);

/// A `nats-server` child under watch.
#[derive(Debug)]
pub struct Supervised {
    stop: Arc<AtomicBool>,
    ended: Option<oneshot::Receiver<Result<(), String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    url: String,
}

impl Supervised {
    /// Start `build`'s server on a thread of its own and watch it. `restart_within`: how long
    /// a server that exited may take to come back before the hub gives up.
    pub fn start(
        build: timpora_natsd::Builder,
        restart_within: Duration,
    ) -> Result<Self, timpora_natsd::Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (ended_tx, ended_rx) = oneshot::channel();
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("nats-server".into())
            .spawn(move || match build.start() {
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                }
                Ok(server) => {
                    let _ = started_tx.send(Ok(server.url()));
                    let result = watch(server, &stop2, restart_within);
                    let _ = ended_tx.send(result);
                }
            })
            .map_err(|source| timpora_natsd::Error::Io {
                what: "watch thread",
                source,
            })?;
        let url = match started_rx.recv() {
            Ok(Ok(url)) => url,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(timpora_natsd::Error::Io {
                    what: "watch thread",
                    source: std::io::Error::other("ended before the server started"),
                });
            }
        };
        Ok(Self {
            stop,
            ended: Some(ended_rx),
            thread: Some(thread),
            url,
        })
    }

    /// The server's client URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Completes when the server is gone for good: `Err` with the reason when it exited and
    /// did not come back (never completes while it runs or until [`Supervised::shutdown`]).
    pub async fn ended(&mut self) -> Result<(), String> {
        match self.ended.as_mut() {
            Some(rx) => {
                let result = rx
                    .await
                    .unwrap_or_else(|_| Err("its watch thread ended".into()));
                self.ended = None;
                result
            }
            None => futures::future::pending().await,
        }
    }

    /// Stop the server (gracefully, letting it flush its store) and wait for it.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Watch `server` until asked to stop (`Ok`) or until it exited and could not be started again
/// within `restart_within` (`Err`).
fn watch(
    mut server: NatsServer,
    stop: &AtomicBool,
    restart_within: Duration,
) -> Result<(), String> {
    loop {
        if stop.load(Ordering::Relaxed) {
            server.shutdown(Duration::from_secs(10));
            tracing::info!("nats-server stopped");
            return Ok(());
        }
        if let Some(status) = server.exit_status() {
            tracing::error!(%status, store = %server.store_dir().display(), "nats-server exited; starting it again on the same store");
            let deadline = Instant::now() + restart_within;
            let mut wait = Duration::from_millis(250);
            loop {
                match server.restart() {
                    Ok(()) => {
                        tracing::info!(url = %server.url(), "nats-server is back");
                        break;
                    }
                    Err(e) if Instant::now() + wait >= deadline || stop.load(Ordering::Relaxed) => {
                        server.stop();
                        let first_line =
                            e.to_string().lines().next().unwrap_or_default().to_owned();
                        return Err(format!(
                            "nats-server exited ({status}) and did not come back within {}s: {first_line}",
                            restart_within.as_secs()
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.to_string().lines().next().unwrap_or_default(), "nats-server did not start; trying again");
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
        std::thread::sleep(POLL);
    }
}
