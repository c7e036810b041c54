//! The access records: every read — and every refused one — is in the access stream before
//! anything is returned, and a read that streams is closed there with how many records it
//! returned, however it ends (the reader went away, the stream ended, the gateway stopped).

use std::time::SystemTime;

use timpora_bus::Bus;
use timpora_proto::v1::AlertAccess;
use tonic::Status;

use crate::error::Error;
use crate::identity::Identity;

/// What is being read, by whom.
#[derive(Debug, Clone)]
pub(crate) struct Read {
    /// `replay`, `subscribe`, `watch_alerts`, `list_alerts`, `list_access`, or a lifecycle action.
    pub action: &'static str,
    pub who: Identity,
    pub operator: String,
    /// The request's filter as the caller gave it.
    pub filter: String,
    /// The alert it concerns, if one.
    pub alert_id: String,
}

impl Read {
    fn access(&self) -> AlertAccess {
        AlertAccess {
            reader: self.who.to_string(),
            operator: self.operator.chars().take(128).collect(),
            time: Some(SystemTime::now().into()),
            action: self.action.into(),
            filter: self.filter.clone(),
            alert_id: self.alert_id.clone(),
            ..Default::default()
        }
    }

    /// Record the read (a read that returns at once: `returned` records).
    pub async fn once(&self, bus: &Bus, returned: u64) -> Result<(), Status> {
        let mut a = self.access();
        a.returned = returned;
        bus.record_access(&a).await.map_err(Error::from)?;
        Ok(())
    }

    /// Record the refusal of the read, then hand back the refusal.
    pub async fn refused(&self, bus: &Bus, status: Status) -> Status {
        let mut a = self.access();
        a.refused = format!("{:?}: {}", status.code(), status.message());
        if let Err(e) = bus.record_access(&a).await {
            tracing::warn!(reader = %self.who, error = %e, "refusal not recorded");
        }
        status
    }

    /// Record the opening of a read that streams; the guard records its closing when dropped.
    pub async fn open(&self, bus: &Bus) -> Result<Closing, Status> {
        bus.record_access(&self.access())
            .await
            .map_err(Error::from)?;
        Ok(Closing {
            bus: bus.clone(),
            read: self.clone(),
            returned: 0,
        })
    }
}

/// An open streaming read: counts what it returns and records its closing when dropped.
pub(crate) struct Closing {
    bus: Bus,
    read: Read,
    returned: u64,
}

impl Closing {
    /// One more record returned.
    pub fn returned(&mut self, n: u64) {
        self.returned += n;
    }
}

impl Drop for Closing {
    fn drop(&mut self) {
        let mut a = self.read.access();
        a.closing = true;
        a.returned = self.returned;
        let bus = self.bus.clone();
        let who = self.read.who.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = bus.record_access(&a).await {
                        tracing::warn!(reader = %who, error = %e, "closing access record not stored");
                    }
                });
            }
            Err(_) => tracing::warn!(reader = %who, "closing access record not stored: no runtime"),
        }
    }
}
