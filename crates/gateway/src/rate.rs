//! Publishing rates per identity: a token bucket each (`limits.events_per_second` on average,
//! `limits.burst` at once), so one caller cannot fill the bus for everyone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most identities remembered; past it, the buckets full longest are forgotten (a full bucket
/// is what a new one would be).
const MAX_IDENTITIES: usize = 100_000;

/// The buckets of every identity.
#[derive(Debug)]
pub struct Rates {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Rates {
    /// `per_second` events on average, `burst` at once; `per_second` 0 means no limit.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Take one event's token for `identity`; when there is none, how long until there is.
    pub fn take(&self, identity: &str) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // Looked up by reference: a key is allocated only for an identity's first event.
        if !map.contains_key(identity) {
            if map.len() >= MAX_IDENTITIES {
                let (per_second, burst) = (self.per_second, self.burst);
                map.retain(|_, (tokens, at)| {
                    *tokens + now.duration_since(*at).as_secs_f64() * per_second < burst
                });
            }
            map.insert(identity.to_owned(), (self.burst, now));
        }
        let Some((tokens, at)) = map.get_mut(identity) else {
            return Ok(());
        };
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_identities_apart() {
        let r = Rates::new(10, 3);
        for _ in 0..3 {
            r.take("desa/74.02.05.2001").unwrap();
        }
        let wait = r.take("desa/74.02.05.2001").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        r.take("desa/74.02.01.2007").unwrap();
        std::thread::sleep(wait + Duration::from_millis(5));
        r.take("desa/74.02.05.2001").unwrap();
        let unlimited = Rates::new(0, 0);
        for _ in 0..10_000 {
            unlimited.take("x/y").unwrap();
        }
    }
}
