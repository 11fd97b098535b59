//! The window a round works on, as the index keeps it: the plan stored in
//! `collector/pending` before anything is uploaded (state `planned`, then
//! `uploaded`), and the last finished window in `collector/last`. The
//! steps they go through are in the collector's module docs.

use serde::{Deserialize, Serialize};

use super::keeper::LeaseKeeper;
use super::{Collector, CollectorError};
use crate::index::{ChangeIndex, EntryId, FrozenWindow, Watermark, WriteBatch};

pub(super) const PENDING: &str = "collector/pending";
pub(super) const LAST: &str = "collector/last";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(super) enum WindowState {
    Planned,
    Uploaded {
        count: u64,
        first_id: String,
        last_id: String,
        bytes: u64,
        sha256: String,
    },
}

/// A window as recorded in the index before its upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct WindowPlan {
    pub(super) number: u64,
    pub(super) start_ns: u64,
    pub(super) cutoff_ns: u64,
    pub(super) watermark: Watermark,
    pub(super) limit: u64,
    pub(super) object: String,
    /// The multipart upload of `object` in flight, recorded before its
    /// first part: a round that does not finish it (the target went away,
    /// a kill) leaves it to be aborted by the round that resumes the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) upload_id: Option<String>,
    #[serde(flatten)]
    pub(super) state: WindowState,
}

impl WindowPlan {
    /// What the plan covers, kept as it is in latest mode (see
    /// `ChangeIndex::freeze`).
    pub(super) fn frozen(&self) -> FrozenWindow {
        FrozenWindow {
            cutoff: EntryId::at(self.cutoff_ns),
            watermark: self.watermark,
        }
    }
}

/// The last window a collector finished (for status and consumers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastWindow {
    pub number: u64,
    pub cutoff_ns: u64,
    pub object: String,
    pub count: u64,
}

/// The last finished window and whether one is planned but unfinished.
pub async fn window_state(
    index: &dyn ChangeIndex,
) -> Result<(Option<LastWindow>, Option<u64>), CollectorError> {
    let decode =
        |name: &str, bytes: Option<Vec<u8>>| -> Result<Option<serde_json::Value>, CollectorError> {
            match bytes {
                Some(b) if !b.is_empty() => {
                    serde_json::from_slice(&b)
                        .map(Some)
                        .map_err(|e| CollectorError::State {
                            name: name.to_string(),
                            reason: e.to_string(),
                        })
                }
                _ => Ok(None),
            }
        };
    let last = decode(LAST, index.marker(LAST).await?)?
        .map(serde_json::from_value::<LastWindow>)
        .transpose()
        .map_err(|e| CollectorError::State {
            name: LAST.into(),
            reason: e.to_string(),
        })?;
    let pending = decode(PENDING, index.marker(PENDING).await?)?
        .and_then(|v| v.get("number").and_then(|n| n.as_u64()));
    Ok((last, pending))
}

impl Collector {
    pub(super) async fn load<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, CollectorError> {
        match self.index.marker(name).await? {
            None => Ok(None),
            Some(bytes) if bytes.is_empty() => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| self.state_error(name, e)),
        }
    }

    pub(super) async fn store<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        keeper: &LeaseKeeper,
    ) -> Result<(), CollectorError> {
        let bytes = serde_json::to_vec(value).map_err(|e| self.state_error(name, e))?;
        self.index
            .write(
                WriteBatch::new()
                    .marker(name, bytes)
                    .fenced(Some(keeper.fence())),
            )
            .await?;
        Ok(())
    }

    pub(super) fn state_error(&self, name: &str, e: impl std::fmt::Display) -> CollectorError {
        CollectorError::State {
            name: name.to_string(),
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_survive_a_round_trip_through_the_index() {
        let plan = WindowPlan {
            number: 7,
            start_ns: 1,
            cutoff_ns: 2,
            watermark: Watermark(99),
            limit: 10,
            object: "o".into(),
            upload_id: Some("2~abc".into()),
            state: WindowState::Uploaded {
                count: 3,
                first_id: "a".into(),
                last_id: "b".into(),
                bytes: 4,
                sha256: "s".into(),
            },
        };
        let json = serde_json::to_vec(&plan).unwrap();
        assert_eq!(serde_json::from_slice::<WindowPlan>(&json).unwrap(), plan);
    }
}
