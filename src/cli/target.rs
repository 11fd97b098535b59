//! `zonelog target create-bucket`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::wiring::load_config;

pub(crate) async fn create_bucket(config: PathBuf) -> Result<ExitCode> {
    let cfg = load_config(&config)?;
    let t = cfg
        .target
        .as_ref()
        .context("the config has no [target] section")?;
    let (Some(endpoint), Some(bucket), Some(access), Some(secret)) =
        (&t.endpoint, &t.bucket, &t.access_key, &t.secret_key)
    else {
        println!("the target is a directory; nothing to create");
        return Ok(ExitCode::SUCCESS);
    };
    let s3 = zonelog::s3::S3::new("target", endpoint, &t.region, access, secret.expose());
    s3.create_bucket(bucket).await?;
    println!("bucket {bucket} is ready on {endpoint}");
    Ok(ExitCode::SUCCESS)
}
