//! The backup's checkpoint, stored at the destination after each batch:
//! where the next pass starts.

use serde::{Deserialize, Serialize};

use super::{Backup, BackupError};

/// Where the backup stands: every record of every log object before
/// `log_object`, and the first `records_done` records of it, are applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Checkpoint {
    pub v: u32,
    pub zone: String,
    pub log_object: String,
    pub records_done: u64,
    pub object_done: bool,
}

impl Backup {
    pub fn checkpoint_name(&self) -> String {
        format!("zonelog-backup/{}/checkpoint.json", self.zone)
    }

    pub async fn load_checkpoint(&self) -> Result<Option<Checkpoint>, BackupError> {
        let name = self.checkpoint_name();
        let Some(bytes) = self.dest.load_state(&name).await? else {
            return Ok(None);
        };
        let checkpoint: Checkpoint =
            serde_json::from_slice(&bytes).map_err(|e| BackupError::Checkpoint {
                name: name.clone(),
                reason: e.to_string(),
            })?;
        if checkpoint.zone != self.zone {
            return Err(BackupError::Checkpoint {
                name,
                reason: format!(
                    "it belongs to zone {:?}, not {:?}",
                    checkpoint.zone, self.zone
                ),
            });
        }
        Ok(Some(checkpoint))
    }

    pub(super) async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), BackupError> {
        let bytes = serde_json::to_vec(checkpoint).unwrap_or_default();
        self.dest
            .save_state(&self.checkpoint_name(), bytes.into())
            .await?;
        Ok(())
    }
}
