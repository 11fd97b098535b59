//! `zonelog rgw setup-notifications`: points a Ceph RGW's bucket
//! notifications at the notify source.
//!
//! What RGW 16 accepts (checked on the dev zone, 16.2.15):
//! - topics are created with the SNS-style `POST /` form
//!   `Action=CreateTopic&Name=…&Attributes.entry.N.key/value`, signed with
//!   SigV4 like any S3 call; `persistent=true` makes RGW queue each event in
//!   RADOS and retry until the endpoint answers 2xx;
//! - an http push endpoint with `user:password@` is refused
//!   (`InvalidInput`: secrets only over https unless
//!   `rgw_allow_notification_secrets_in_cleartext`), and RGW cannot add a
//!   header, so the token travels as `?token=` in the endpoint URL;
//! - `PUT /BUCKET?notification` with a `TopicConfiguration` adds or
//!   replaces the notification of that id and keeps the bucket's others;
//! - RGW copies the topic into each notification when it is created, so
//!   after a topic changes the notifications are written again;
//! - `DELETE /BUCKET?notification=ID` removes one notification (an RGW
//!   extension to S3); `remove-notifications` uses it to undo a setup.
//!
//! The S3 calls (the user's buckets, a bucket's notifications) go through
//! the one S3 client; the SNS topic API and the `DELETE` extension, which
//! S3 does not have, are signed by hand.

use url::Url;

use crate::capture::rgw::admin::{encode_path, encode_query, AdminError, SignedClient};
use crate::config::Secret;
use crate::filter::Filter;
use crate::s3::{TopicNotification, S3};
use reqwest::Method;

const EVENTS: [&str; 2] = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub arn: String,
    pub endpoint: String,
    pub persistent: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Unchanged,
}

impl Action {
    fn describe(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Action::Create, true) => "would create",
            (Action::Create, false) => "created",
            (Action::Update, true) => "would update",
            (Action::Update, false) => "updated",
            (Action::Unchanged, _) => "unchanged",
        }
    }
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct SetupReport {
    pub topic: Option<Action>,
    pub arn: String,
    pub buckets: Vec<(String, Action)>,
    pub failed: Vec<(String, String)>,
}

/// What a removal did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct RemoveReport {
    /// The ARN of the topic removed.
    pub topic: Option<String>,
    pub buckets: Vec<String>,
    pub failed: Vec<(String, String)>,
}

pub struct NotifySetup {
    client: SignedClient,
    s3: S3,
    topic: String,
    /// The push endpoint with the token: what RGW stores.
    endpoint: String,
    /// The same without the token, for messages.
    shown: String,
}

impl NotifySetup {
    pub fn new(client: SignedClient, topic: &str, push_endpoint: &Url, token: &Secret) -> Self {
        let mut with_token = push_endpoint.clone();
        with_token
            .query_pairs_mut()
            .append_pair("token", token.expose());
        let separator = if push_endpoint.query().is_some() {
            '&'
        } else {
            '?'
        };
        let shown = format!("{push_endpoint}{separator}token=<redacted>");
        NotifySetup {
            s3: client.s3("rgw"),
            client,
            topic: topic.to_string(),
            endpoint: with_token.to_string(),
            shown,
        }
    }

    /// Our topic as RGW has it, if it exists.
    pub async fn find_topic(&self) -> Result<Option<TopicInfo>, AdminError> {
        let reply = self.sns(&[("Action", "ListTopics")], "list topics").await?;
        let body = String::from_utf8_lossy(&reply);
        for member in elements(&body, "member") {
            if element(member, "Name").as_deref() != Some(self.topic.as_str()) {
                continue;
            }
            return Ok(Some(TopicInfo {
                arn: element(member, "TopicArn").unwrap_or_default(),
                endpoint: element(member, "EndpointAddress").unwrap_or_default(),
                persistent: element(member, "Persistent")
                    .is_some_and(|p| p.eq_ignore_ascii_case("true")),
            }));
        }
        Ok(None)
    }

    /// Creates or overwrites the topic; returns its ARN.
    pub async fn put_topic(&self) -> Result<String, AdminError> {
        let reply = self
            .sns(
                &[
                    ("Action", "CreateTopic"),
                    ("Name", &self.topic),
                    ("Attributes.entry.1.key", "push-endpoint"),
                    ("Attributes.entry.1.value", &self.endpoint),
                    ("Attributes.entry.2.key", "persistent"),
                    ("Attributes.entry.2.value", "true"),
                ],
                &format!("create topic {}", self.topic),
            )
            .await?;
        let body = String::from_utf8_lossy(&reply);
        element(&body, "TopicArn").ok_or_else(|| AdminError::Decode {
            endpoint: self.client.endpoint().to_string(),
            what: format!("create topic {}", self.topic),
            reason: format!("no TopicArn in {:?}", excerpt(&body)),
        })
    }

    pub async fn delete_topic(&self, arn: &str) -> Result<(), AdminError> {
        self.sns(
            &[("Action", "DeleteTopic"), ("TopicArn", arn)],
            &format!("delete topic {arn}"),
        )
        .await
        .map(|_| ())
    }

    /// Buckets the keys' user owns (the ones whose notifications it may set).
    pub async fn list_buckets(&self) -> Result<Vec<String>, AdminError> {
        Ok(self.s3.list_buckets().await?)
    }

    /// Whether the bucket already sends both event families to `arn` under
    /// our notification id.
    pub async fn bucket_configured(&self, bucket: &str, arn: &str) -> Result<bool, AdminError> {
        Ok(self.our_notification(bucket).await?.is_some_and(|n| {
            n.topic_arn == arn && EVENTS.iter().all(|e| n.events.iter().any(|x| x == e))
        }))
    }

    /// The bucket's notification with our id, whatever topic and events it
    /// names.
    async fn our_notification(
        &self,
        bucket: &str,
    ) -> Result<Option<TopicNotification>, AdminError> {
        Ok(self
            .s3
            .topic_notifications(bucket)
            .await?
            .into_iter()
            .find(|n| n.id == self.topic))
    }

    /// Adds our notification to the bucket or replaces it. RGW 16 keeps a
    /// bucket's notifications in one RADOS object updated with a version
    /// check, so a setup racing another one can get a 500; the S3 client
    /// tries such a call again.
    pub async fn put_notification(&self, bucket: &str, arn: &str) -> Result<(), AdminError> {
        let notification = TopicNotification {
            id: self.topic.clone(),
            topic_arn: arn.to_string(),
            events: EVENTS.iter().map(|e| e.to_string()).collect(),
        };
        Ok(self
            .s3
            .put_topic_notification(bucket, &notification)
            .await?)
    }

    /// Removes our notification from a bucket.
    pub async fn delete_notification(&self, bucket: &str) -> Result<(), AdminError> {
        let url = self.client.url(
            &format!("/{}", encode_path(bucket)),
            // RGW's extension: `?notification=ID` deletes that one
            // notification (without a value, all of the bucket's).
            &[("notification", Some(&self.topic))],
        );
        self.client
            .send(
                Method::DELETE,
                url,
                Vec::new(),
                &format!("delete notification of {bucket}"),
            )
            .await
            .map(|_| ())
    }

    /// Makes RGW push every change of every matching bucket to us; prints
    /// each step through `say`. Dry: only looks and says what it would do.
    pub async fn run(
        &self,
        filter: &Filter,
        dry_run: bool,
        say: &mut dyn FnMut(String),
    ) -> Result<SetupReport, AdminError> {
        let mut report = SetupReport::default();
        let existing = self.find_topic().await?;
        let topic_action = match &existing {
            None => Action::Create,
            Some(t) if t.endpoint == self.endpoint && t.persistent => Action::Unchanged,
            Some(_) => Action::Update,
        };
        report.arn = match (&existing, topic_action, dry_run) {
            (Some(t), Action::Unchanged, _) | (Some(t), _, true) => t.arn.clone(),
            (None, _, true) => format!("(new topic {})", self.topic),
            (_, _, false) => self.put_topic().await?,
        };
        report.topic = Some(topic_action);
        say(format!(
            "topic {}: {} (persistent, push-endpoint {}) {}",
            self.topic,
            topic_action.describe(dry_run),
            self.shown,
            report.arn
        ));
        let mut buckets = self.list_buckets().await?;
        buckets.retain(|b| filter.matches_bucket(b));
        buckets.sort();
        if buckets.is_empty() {
            say("no bucket of this user matches the filter".into());
        }
        for bucket in buckets {
            let configured = if topic_action == Action::Unchanged {
                match self.bucket_configured(&bucket, &report.arn).await {
                    Ok(c) => c,
                    Err(e) => {
                        say(format!(
                            "bucket {bucket}: cannot read its notifications: {e}"
                        ));
                        report.failed.push((bucket, e.to_string()));
                        continue;
                    }
                }
            } else {
                false
            };
            let action = if configured {
                Action::Unchanged
            } else if topic_action == Action::Update {
                // RGW keeps a copy of the old topic in each notification.
                Action::Update
            } else {
                Action::Create
            };
            if action != Action::Unchanged && !dry_run {
                if let Err(e) = self.put_notification(&bucket, &report.arn).await {
                    say(format!("bucket {bucket}: cannot set the notification: {e}"));
                    report.failed.push((bucket, e.to_string()));
                    continue;
                }
            }
            say(format!(
                "bucket {bucket}: notification {} ({} -> topic {})",
                action.describe(dry_run),
                EVENTS.join(", "),
                self.topic
            ));
            report.buckets.push((bucket, action));
        }
        Ok(report)
    }

    /// Undoes [`Self::run`]: removes our notification from every bucket of
    /// the user that has one (matching the filter or not, since the filter
    /// may have changed since the setup), then the topic. Dry: only looks
    /// and says what it would remove. Idempotent.
    pub async fn remove(
        &self,
        dry_run: bool,
        say: &mut dyn FnMut(String),
    ) -> Result<RemoveReport, AdminError> {
        let mut report = RemoveReport::default();
        let verb = if dry_run { "would remove" } else { "removed" };
        let topic = self.find_topic().await?;
        let mut buckets = self.list_buckets().await?;
        buckets.sort();
        for bucket in buckets {
            let found = match self.our_notification(&bucket).await {
                Ok(found) => found,
                Err(e) => {
                    say(format!(
                        "bucket {bucket}: cannot read its notifications: {e}"
                    ));
                    report.failed.push((bucket, e.to_string()));
                    continue;
                }
            };
            if found.is_none() {
                continue;
            }
            if !dry_run {
                if let Err(e) = self
                    .delete_one(&bucket, topic.as_ref().map(|t| t.arn.as_str()))
                    .await
                {
                    say(format!(
                        "bucket {bucket}: cannot remove the notification: {e}"
                    ));
                    report.failed.push((bucket, e.to_string()));
                    continue;
                }
            }
            say(format!(
                "bucket {bucket}: notification {} {verb}",
                self.topic
            ));
            report.buckets.push(bucket);
        }
        // The topic last: a failed bucket above still points at it, and a
        // rerun finds and removes both.
        match topic {
            Some(topic) if report.failed.is_empty() => {
                if !dry_run {
                    self.delete_topic(&topic.arn).await?;
                }
                say(format!("topic {}: {verb} ({})", self.topic, topic.arn));
                report.topic = Some(topic.arn);
            }
            Some(topic) => say(format!(
                "topic {}: kept ({}), because some buckets still use it",
                self.topic, topic.arn
            )),
            None => say(format!("topic {}: not present", self.topic)),
        }
        Ok(report)
    }

    /// Removes our notification from one bucket and checks that it is gone.
    ///
    /// RGW 16 keeps one hidden copy of the topic per notification id
    /// (`ID_TOPIC`), shared by every bucket whose notification has that id,
    /// and deleting a notification deletes that copy; the next bucket's
    /// delete then fails to read it and answers 200 without removing
    /// anything (its log says "failed to read topic info"). Writing the
    /// notification again first recreates the copy, so each delete works.
    async fn delete_one(&self, bucket: &str, arn: Option<&str>) -> Result<(), AdminError> {
        if let Some(arn) = arn {
            self.put_notification(bucket, arn).await?;
        }
        self.delete_notification(bucket).await?;
        match self.our_notification(bucket).await? {
            None => Ok(()),
            Some(_) => Err(AdminError::Decode {
                endpoint: self.client.endpoint().to_string(),
                what: format!("delete notification of {bucket}"),
                reason: format!(
                    "RGW answered 200 but the notification is still there{}",
                    if arn.is_none() {
                        " (its topic no longer exists; set the notification up again, then remove it)"
                    } else {
                        ""
                    }
                ),
            }),
        }
    }

    async fn sns(&self, params: &[(&str, &str)], what: &str) -> Result<bytes::Bytes, AdminError> {
        let body: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
            .collect();
        let url = self.client.url("/", &[]);
        let body = body.join("&");
        let reply = retry(|| {
            self.client.send_with_headers(
                Method::POST,
                url.clone(),
                &[("content-type", "application/x-www-form-urlencoded")],
                body.clone().into_bytes(),
                what,
            )
        })
        .await?;
        Ok(reply.body)
    }
}

/// RGW 16 keeps a tenant's topics in one RADOS object updated with a
/// version check, so two setups at once (or a setup racing an operator)
/// can get a 500 for the loser's write; it succeeds when tried again. Only
/// transient errors are retried.
async fn retry<F, Fut>(mut call: F) -> Result<crate::capture::rgw::admin::Reply, AdminError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<crate::capture::rgw::admin::Reply, AdminError>>,
{
    let mut attempt = 0u64;
    loop {
        match call().await {
            Err(e) if e.is_transient() && attempt < 5 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "retrying an RGW call");
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            result => return result,
        }
    }
}

/// The inner text of every `<tag>…</tag>` (no nesting of the same tag).
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

fn element(xml: &str, tag: &str) -> Option<String> {
    elements(xml, tag).first().map(|v| unescape(v))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The first 300 bytes of a reply at most, cut at a character boundary.
fn excerpt(body: &str) -> &str {
    let mut end = body.len().min(300);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    &body[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_excerpt_never_cuts_a_character() {
        let body = format!("{}ü and more", "x".repeat(299));
        assert_eq!(super::excerpt(&body), "x".repeat(299));
        assert_eq!(super::excerpt("short"), "short");
    }

    use super::*;

    #[test]
    fn reads_rgw_topic_listings() {
        let xml = r#"<ListTopicsResponse><ListTopicsResult><Topics><member><User></User><Name>exp1</Name><EndPoint><EndpointAddress>http://127.0.0.1:47999/v1/events?token=a&amp;b</EndpointAddress><Persistent>True</Persistent></EndPoint><TopicArn>arn:aws:sns:default::exp1</TopicArn></member></Topics></ListTopicsResult></ListTopicsResponse>"#;
        let members = elements(xml, "member");
        assert_eq!(members.len(), 1);
        assert_eq!(element(members[0], "Name").as_deref(), Some("exp1"));
        assert_eq!(
            element(members[0], "EndpointAddress").as_deref(),
            Some("http://127.0.0.1:47999/v1/events?token=a&b")
        );
    }

    #[test]
    fn the_token_goes_into_the_query_and_not_into_messages() {
        let client = SignedClient::new(
            Url::parse("http://127.0.0.1:1").unwrap(),
            "ak",
            Secret::new("sk"),
            "us-east-1",
        )
        .unwrap();
        let setup = NotifySetup::new(
            client,
            "zonelog",
            &Url::parse("http://10.0.0.1:9480/v1/events").unwrap(),
            &Secret::new("t ok&en"),
        );
        assert_eq!(
            setup.endpoint,
            "http://10.0.0.1:9480/v1/events?token=t+ok%26en"
        );
        assert_eq!(
            setup.shown,
            "http://10.0.0.1:9480/v1/events?token=<redacted>"
        );
    }
}
