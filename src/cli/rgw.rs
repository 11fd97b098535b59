//! `zonelog rgw probe`, `rgw setup-notifications` and
//! `rgw remove-notifications`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use zonelog::capture::rgw::admin::SignedClient;
use zonelog::capture::rgw::RgwAdmin;
use zonelog::config::Config;
use zonelog::filter::Filter;

use super::wiring::{load_config, rgw_client};

pub(crate) async fn probe(config: PathBuf) -> Result<ExitCode> {
    let cfg = load_config(&config)?;
    let (client, rgw) = rgw_client(&cfg)?;
    let admin = RgwAdmin::new(client);
    let filter = Filter::new(&cfg.filter);
    let shards = admin.datalog_shard_count().await?;
    println!("rgw {}: data log has {shards} shards", rgw.endpoint);
    let buckets = admin.list_buckets().await?;
    let matching: Vec<&String> = buckets
        .iter()
        .filter(|b| filter.matches_bucket(b))
        .collect();
    println!(
        "{} buckets, {} match the filter",
        buckets.len(),
        matching.len()
    );
    for bucket in matching {
        let info = admin.bucket_instance(bucket).await?;
        println!(
            "  {bucket}: instance {} ({} index shards)",
            info.instance_id, info.num_shards
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The topic and notifications of [sources.notify], on the RGW the config
/// names; with that RGW's endpoint for messages.
fn notify_setup(
    cfg: &Config,
    command: &str,
) -> Result<(zonelog::capture::notify::setup::NotifySetup, url::Url)> {
    use zonelog::capture::notify::setup::NotifySetup;
    let notify = cfg
        .sources
        .notify
        .as_ref()
        .context("the config has no [sources.notify] section: nothing to point RGW at")?;
    let (endpoint, access, secret, region) = match (&notify.rgw, &cfg.sources.rgw) {
        (Some(r), _) => (&r.endpoint, &r.access_key, &r.secret_key, &r.region),
        (None, Some(r)) => (&r.endpoint, &r.access_key, &r.secret_key, &r.region),
        (None, None) => bail!(
            "set [sources.notify.rgw] (endpoint and the bucket owner's keys) or [sources.rgw]: {command} needs an RGW to talk to"
        ),
    };
    let push_endpoint = match &notify.push_endpoint {
        Some(url) => url.clone(),
        None if notify.listen.ip().is_unspecified() => bail!(
            "sources.notify.listen is {}, which RGW cannot connect to; set sources.notify.push_endpoint to the URL RGW should use",
            notify.listen
        ),
        None => url::Url::parse(&format!("http://{}/v1/events", notify.listen))
            .context("cannot build the push endpoint from sources.notify.listen")?,
    };
    let client = SignedClient::new(endpoint.clone(), access, secret.clone(), region)?;
    Ok((
        NotifySetup::new(client, &notify.topic, &push_endpoint, &notify.token),
        endpoint.clone(),
    ))
}

pub(crate) async fn setup_notifications(cfg: &Config, dry_run: bool) -> Result<ExitCode> {
    let (setup, endpoint) = notify_setup(cfg, "setup-notifications")?;
    let report = setup
        .run(&Filter::new(&cfg.filter), dry_run, &mut |line| {
            println!("{line}")
        })
        .await
        .with_context(|| format!("setup-notifications on {endpoint}"))?;
    if !report.failed.is_empty() {
        eprintln!(
            "error: {} bucket(s) could not be set up (see above); the keys must be the bucket owner's",
            report.failed.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn remove_notifications(cfg: &Config, dry_run: bool) -> Result<ExitCode> {
    let (setup, endpoint) = notify_setup(cfg, "remove-notifications")?;
    let report = setup
        .remove(dry_run, &mut |line| println!("{line}"))
        .await
        .with_context(|| format!("remove-notifications on {endpoint}"))?;
    if !report.failed.is_empty() {
        eprintln!(
            "error: {} bucket(s) still have the notification (see above); the keys must be the bucket owner's",
            report.failed.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
