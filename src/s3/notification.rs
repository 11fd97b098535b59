//! A bucket's event notifications to a topic (`?notification`), for
//! `zonelog rgw setup-notifications`. RGW keeps a bucket's other
//! notifications when one is PUT under a new id, where AWS replaces the
//! whole configuration: zonelog only ever writes its own one.

use aws_sdk_s3::types::{Event, NotificationConfiguration, TopicConfiguration};

use super::{S3Error, S3ErrorKind, S3};

/// One topic notification of a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNotification {
    pub id: String,
    pub topic_arn: String,
    /// Event names as S3 spells them, e.g. `s3:ObjectCreated:*`.
    pub events: Vec<String>,
}

impl S3 {
    /// The bucket's topic notifications.
    pub async fn topic_notifications(
        &self,
        bucket: &str,
    ) -> Result<Vec<TopicNotification>, S3Error> {
        self.count();
        let out = self
            .client
            .get_bucket_notification_configuration()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| self.error("get notifications", bucket.to_string(), e))?;
        Ok(out
            .topic_configurations()
            .iter()
            .map(|c| TopicNotification {
                id: c.id().unwrap_or_default().to_string(),
                topic_arn: c.topic_arn().to_string(),
                events: c.events().iter().map(|e| e.as_str().to_string()).collect(),
            })
            .collect())
    }

    /// Adds the notification, or replaces the bucket's one of the same id.
    pub async fn put_topic_notification(
        &self,
        bucket: &str,
        notification: &TopicNotification,
    ) -> Result<(), S3Error> {
        let topic = TopicConfiguration::builder()
            .id(&notification.id)
            .topic_arn(&notification.topic_arn)
            .set_events(Some(
                notification
                    .events
                    .iter()
                    .map(|e| Event::from(e.as_str()))
                    .collect(),
            ))
            .build()
            .map_err(|e| S3Error {
                role: self.role,
                endpoint: self.endpoint.clone(),
                op: "put notification",
                target: bucket.to_string(),
                reason: e.to_string(),
                kind: S3ErrorKind::Refused,
            })?;
        self.count();
        self.client
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .topic_configurations(topic)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error("put notification", bucket.to_string(), e))?;
        Ok(())
    }
}
