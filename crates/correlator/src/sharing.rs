//! Correlators that share the work. The group keys are cut into `partitions` parts (a fixed hash
//! of the key; see `timpora_correlate::Partition`); each part has an engine of its own, with its
//! own checkpoint, and every engine reads the whole events stream (event time and each source's
//! lateness are the whole stream's) but keeps state and decides for its part's groups only. The
//! parts together raise exactly the alerts one correlator raises, with the same ids.
//!
//! Who runs which part is agreed in the correlators bucket (a NATS key-value bucket), with no
//! coordinator: every correlator renews `member.<id>` (alive until a time) and the parts it
//! holds (`part.<i>-of-<n>`: holder and until when) every third of the lease; it holds a fair
//! share, `ceil(parts / members alive)`, claims free or expired parts up to it, and hands the
//! extra over (checkpoint first, then the part is freed) when more correlators are alive. Claims
//! and renewals are compare-and-swap on the key's revision, so two correlators never both
//! take a part. When a correlator dies its holds expire after the lease, and the others take
//! its parts over, each resuming from that part's checkpoint; alerts of the events after it
//! are decided again and recognised by id (the alerts stream stores an id once, ever), so none
//! is lost and none is stored twice — even while a correlator too slow to renew still runs.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use timpora_bus::{Bus, SharedEntry};
use timpora_correlate::{Partition, Stats};

use crate::service::{Error, Options, run_part};

/// A task aborted when dropped, so that nothing a correlator started outlives it.
pub(crate) struct Task<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A part this correlator runs.
struct Held {
    stop: tokio::sync::oneshot::Sender<()>,
    task: Task<Result<Stats, Error>>,
}

/// A hold on a key of the correlators bucket: who, and until when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hold {
    holder: String,
    until_ms: u64,
}

impl Hold {
    fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.holder, self.until_ms).into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (holder, until) = text.split_once(' ')?;
        Some(Self {
            holder: holder.to_owned(),
            until_ms: until.parse().ok()?,
        })
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn part_key(p: Partition) -> String {
    format!("part.{p}")
}

fn member_key(id: &str) -> String {
    format!("member.{id}")
}

/// A member id no other correlator has: random.
fn new_member_id() -> String {
    let mut bytes = [0u8; 6];
    if getrandom::fill(&mut bytes).is_err() {
        // The time in nanoseconds is unique enough where the kernel's randomness is missing.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        return format!("t{nanos:x}");
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Share the work with the other correlators until `shutdown`; the counters of the parts this
/// one ran, added up.
pub(crate) async fn run(
    bus: Bus,
    initial: Option<&str>,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<Stats, Error> {
    let mut me = Member {
        id: new_member_id(),
        bus,
        initial: initial.map(str::to_owned),
        options,
        held: BTreeMap::new(),
        stats: Stats::default(),
    };
    tracing::info!(
        member = %me.id, parts = me.options.partitions, lease_ms = me.options.lease.as_millis() as u64,
        "correlator sharing the work"
    );
    let mut shutdown = pin!(shutdown);
    let mut rounds = tokio::time::interval((me.options.lease / 3).max(Duration::from_millis(50)));
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = rounds.tick() => {
                // A round that cannot finish within the lease gives up: the holds are renewed
                // next round, or lapse and the parts are taken over by someone who can.
                let lease = me.options.lease;
                match tokio::time::timeout(lease, me.round()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot agree on the parts this round"),
                    Err(_) => tracing::warn!(lease_ms = lease.as_millis() as u64, "a round took longer than the lease; trying again"),
                }
            }
        }
    }
    me.leave().await;
    Ok(me.stats)
}

/// This correlator among the others.
struct Member {
    id: String,
    bus: Bus,
    initial: Option<String>,
    options: Options,
    held: BTreeMap<u32, Held>,
    stats: Stats,
}

impl Member {
    fn parts(&self) -> impl Iterator<Item = Partition> + use<> {
        let count = self.options.partitions;
        (0..count).map(move |index| Partition { index, count })
    }

    fn hold(&self, until_ms: u64) -> Vec<u8> {
        Hold {
            holder: self.id.clone(),
            until_ms,
        }
        .encode()
    }

    /// One round: say it is alive, renew its holds, then claim or hand over parts to hold its
    /// fair share.
    async fn round(&mut self) -> Result<(), timpora_bus::Error> {
        let now = now_ms();
        let until = now + self.options.lease.as_millis() as u64;
        self.bus
            .shared_put(&member_key(&self.id), self.hold(until))
            .await?;
        let entries: BTreeMap<String, SharedEntry> = self
            .bus
            .shared_entries(">")
            .await?
            .into_iter()
            .map(|e| (e.key.clone(), e))
            .collect();
        let holds = |key: &str| {
            entries
                .get(key)
                .and_then(|e| Hold::decode(&e.value).map(|h| (h, e.revision)))
        };
        let alive = entries
            .values()
            .filter(|e| e.key.starts_with("member."))
            .filter_map(|e| Hold::decode(&e.value))
            .filter(|h| h.until_ms > now)
            .count()
            .max(1) as u32;
        let share = self.options.partitions.div_ceil(alive) as usize;

        // Renew what it holds; a part someone else holds now was lost (this correlator was too
        // slow to renew): stop it at once, the other decides it.
        let held: Vec<Partition> = self
            .parts()
            .filter(|p| self.held.contains_key(&p.index))
            .collect();
        for p in held {
            let renewed = match holds(&part_key(p)) {
                Some((h, rev)) if h.holder == self.id => {
                    self.bus
                        .shared_swap(&part_key(p), self.hold(until), Some(rev))
                        .await?
                }
                _ => None,
            };
            if renewed.is_none() {
                tracing::warn!(part = %p, "part taken over by another correlator; stopping it");
                self.held.remove(&p.index);
                if let Some(parts) = &self.options.parts {
                    parts.close(&p.to_string());
                }
            }
        }
        // A part whose engine stopped by itself (an error) is given up, for another to take.
        let ended: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, h)| h.task.0.is_finished())
            .map(|(i, _)| *i)
            .collect();
        for index in ended {
            if let Some(h) = self.held.remove(&index) {
                let p = Partition {
                    index,
                    count: self.options.partitions,
                };
                self.finished(p, h.task).await;
                self.free(p).await?;
            }
        }

        // Claim free or expired parts up to the fair share, starting at a place of its own so
        // that correlators starting together do not all reach for the same part first.
        if self.held.len() < share {
            let count = self.options.partitions;
            let start = self.id.bytes().map(u32::from).sum::<u32>() % count;
            for i in 0..count {
                if self.held.len() >= share {
                    break;
                }
                let p = Partition {
                    index: (start + i) % count,
                    count,
                };
                if self.held.contains_key(&p.index) {
                    continue;
                }
                let revision = match holds(&part_key(p)) {
                    Some((h, _)) if h.until_ms > now => continue,
                    Some((_, rev)) => Some(rev),
                    None => None,
                };
                if self
                    .bus
                    .shared_swap(&part_key(p), self.hold(until), revision)
                    .await?
                    .is_some()
                {
                    tracing::info!(part = %p, member = %self.id, "part taken");
                    self.start(p);
                }
            }
        }
        // Hand over what is beyond the fair share: its checkpoint first, then the part freed.
        while self.held.len() > share {
            let Some((index, held)) = self.held.pop_last() else {
                break;
            };
            let p = Partition {
                index,
                count: self.options.partitions,
            };
            let _ = held.stop.send(());
            self.finished(p, held.task).await;
            self.free(p).await?;
            tracing::info!(part = %p, member = %self.id, "part handed over");
        }

        // Members gone for long are forgotten.
        for e in entries.values().filter(|e| e.key.starts_with("member.")) {
            if Hold::decode(&e.value).is_none_or(|h| h.until_ms + 60_000 < now) {
                let _ = self.bus.shared_delete(&e.key).await;
            }
        }
        Ok(())
    }

    /// Start deciding part `p`, from its checkpoint.
    fn start(&mut self, p: Partition) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bus, initial, member) = (self.bus.clone(), self.initial.clone(), self.id.clone());
        // One part's progress and status are not the correlator's: they are the part's.
        let (status, progress) = match &self.options.parts {
            Some(parts) => {
                let (s, p) = parts.open(&p.to_string());
                (Some(s), Some(p))
            }
            None => (None, None),
        };
        let options = Options {
            progress,
            status,
            ..self.options.clone()
        };
        let task = tokio::spawn(async move {
            run_part(bus, initial.as_deref(), options, p, member, async {
                let _ = stopped.await;
            })
            .await
        });
        self.held.insert(
            p.index,
            Held {
                stop,
                task: Task(task),
            },
        );
    }

    /// Wait for a part's engine to stop; its counters added up.
    async fn finished(&mut self, p: Partition, mut task: Task<Result<Stats, Error>>) {
        if let Some(parts) = &self.options.parts {
            parts.close(&p.to_string());
        }
        match (&mut task.0).await {
            Ok(Ok(s)) => {
                self.stats.events += s.events;
                self.stats.late_events += s.late_events;
                self.stats.alerts += s.alerts;
                self.stats.extended += s.extended;
                self.stats.corrections += s.corrections;
                self.stats.withdrawn += s.withdrawn;
                self.stats.shed_groups += s.shed_groups;
            }
            Ok(Err(e)) => tracing::error!(part = %p, error = %e, "part stopped"),
            Err(e) => tracing::error!(part = %p, error = %e, "part task failed"),
        }
    }

    /// Free part `p` at once (rather than after the lease) if this correlator still holds it.
    async fn free(&self, p: Partition) -> Result<(), timpora_bus::Error> {
        let key = part_key(p);
        let mine = self
            .bus
            .shared_entries(&key)
            .await?
            .into_iter()
            .find(|e| e.key == key)
            .filter(|e| Hold::decode(&e.value).is_some_and(|h| h.holder == self.id));
        if let Some(e) = mine {
            self.bus
                .shared_swap(&key, self.hold(0), Some(e.revision))
                .await?;
        }
        Ok(())
    }

    /// At shutdown: every part checkpointed and freed, and this member gone.
    async fn leave(&mut self) {
        // Every part told to stop first, so that they checkpoint side by side.
        let tasks: Vec<(u32, Task<_>)> = std::mem::take(&mut self.held)
            .into_iter()
            .map(|(index, h)| {
                let _ = h.stop.send(());
                (index, h.task)
            })
            .collect();
        for (index, task) in tasks {
            let p = Partition {
                index,
                count: self.options.partitions,
            };
            self.finished(p, task).await;
            if let Err(e) = self.free(p).await {
                tracing::warn!(part = %p, error = %e, "part not freed; it lapses after the lease");
            }
        }
        let _ = self.bus.shared_delete(&member_key(&self.id)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_reads_back_as_written() {
        let h = Hold {
            holder: "a1b2c3".into(),
            until_ms: 1_764_000_000_123,
        };
        assert_eq!(Hold::decode(&h.encode()), Some(h));
        assert_eq!(Hold::decode(b"nobody"), None);
        assert_eq!(Hold::decode(b"x soon"), None);
        assert_ne!(new_member_id(), new_member_id());
    }
}
