//! The correlation service: reads the events stream in order (clock ticks included), feeds the
//! engine, and stores each alert once in the alerts stream. It records clock ticks into the
//! events stream itself, so event time moves on while no agency sends anything, and a replay
//! sees the same clock.
//!
//! Crash safety: alerts are stored (with an id the alerts stream accepts once, ever) before the
//! checkpoint that covers their events is written, and a checkpoint holds the engine's whole
//! state with the stream position. A restart, after a clean stop or a `kill -9`, continues from
//! the last checkpoint: alerts of events after it are decided again and recognised by id, so
//! none is lost and none is stored twice.
//!
//! Rule sets: the active set lives in the rules bucket (`timpora rules apply`, or SIGHUP with a
//! rule file). A new set is warmed up on the stream up to the current position with its alerts
//! held back (those events were the previous set's to judge), then decides from there on.
//!
//! Scale-out: correlators started with the same number of parts divide the parts of the group
//! keys among themselves and take over a stopped one's (see the `sharing` module).

use std::future::Future;

use timpora_bus::Bus;
use timpora_correlate::Partition;
pub use timpora_correlate::Stats;

mod service;
mod sharing;

pub use service::{
    CHECKPOINT_NAME, Error, Options, PartReports, checkpoint_name, encode_checkpoint, status_key,
    to_proto,
};

/// Run until `shutdown` completes; the engine's counters at the end. `initial` is a rule file's
/// text to run, made the active set (else the active set runs, else the built-in one). With `options.partitions` above 1 this correlator
/// shares the work with the others of the same count (see the `sharing` module).
pub async fn run(
    bus: Bus,
    initial: Option<&str>,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<Stats, Error> {
    let _ticker = sharing::Task(tokio::spawn(service::record_ticks(
        bus.clone(),
        options.tick_every,
    )));
    if options.partitions <= 1 {
        return service::run_part(
            bus,
            initial,
            options,
            Partition::WHOLE,
            String::new(),
            shutdown,
        )
        .await;
    }
    sharing::run(bus, initial, options, shutdown).await
}
