//! `zonelog verify`: lists a source bucket and its destination side by side
//! (both in key order, a page at a time, so memory stays bounded) and
//! reports every key that is missing, extra, or different.

use std::fmt;

use super::dest::Destination;
use super::s3::{bare_etag, is_md5_etag, Listed, S3Error, S3};
use super::SOURCE_ETAG_META;
use crate::config::DeletePolicy;
use crate::filter::Filter;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    MissingAtDestination { size: u64 },
    ExtraAtDestination { size: u64 },
    SizeDiffers { source: u64, destination: u64 },
    EtagDiffers { source: String, destination: String },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::MissingAtDestination { size } => {
                write!(f, "missing at the destination ({size} bytes at the source)")
            }
            Difference::ExtraAtDestination { size } => {
                write!(f, "only at the destination ({size} bytes)")
            }
            Difference::SizeDiffers {
                source,
                destination,
            } => write!(
                f,
                "size differs: source {source}, destination {destination}"
            ),
            Difference::EtagDiffers {
                source,
                destination,
            } => write!(
                f,
                "etag differs: source {source}, destination {destination}"
            ),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct VerifySummary {
    pub compared: u64,
    pub differences: u64,
}

/// A paged listing read one object at a time.
struct Cursor<'a> {
    page: std::vec::IntoIter<Listed>,
    next: Option<String>,
    done: bool,
    fetch: Box<dyn FnMut(Option<String>) -> PageFuture<'a> + Send + 'a>,
}

type PageFuture<'a> =
    futures::future::BoxFuture<'a, Result<(Vec<Listed>, Option<String>), S3Error>>;

impl<'a> Cursor<'a> {
    async fn advance(&mut self) -> Result<Option<Listed>, S3Error> {
        loop {
            if let Some(item) = self.page.next() {
                return Ok(Some(item));
            }
            if self.done {
                return Ok(None);
            }
            let (items, next) = (self.fetch)(self.next.take()).await?;
            self.done = next.is_none();
            self.next = next;
            self.page = items.into_iter();
        }
    }
}

/// Compares one source bucket with its destination bucket; calls `report`
/// for each difference.
pub async fn verify_bucket(
    source: &S3,
    dest: &dyn Destination,
    policy: DeletePolicy,
    filter: &Filter,
    source_bucket: &str,
    dest_bucket: &str,
    report: &mut (dyn FnMut(&str, &Difference) + Send),
) -> Result<VerifySummary, S3Error> {
    let mut src = Cursor {
        page: Vec::new().into_iter(),
        next: None,
        done: false,
        fetch: Box::new(move |token| Box::pin(source.list_page(source_bucket, token))),
    };
    let mut dst = Cursor {
        page: Vec::new().into_iter(),
        next: None,
        done: false,
        fetch: Box::new(move |token| Box::pin(dest.list_page(dest_bucket, token))),
    };
    let mut summary = VerifySummary::default();
    let mut a = src.advance().await?;
    let mut b = dst.advance().await?;
    // Keys outside the bucket's key prefixes are not backed up, so they
    // are not compared either. The bucket itself was chosen by the caller.
    let wanted = |l: &Listed| filter.matches_key(source_bucket, &l.key);
    loop {
        let order = match (&a, &b) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.key.as_bytes().cmp(y.key.as_bytes()),
        };
        match order {
            std::cmp::Ordering::Less => {
                let x = a.take().expect("ordered by presence");
                if wanted(&x) {
                    summary.compared += 1;
                    summary.differences += 1;
                    report(&x.key, &Difference::MissingAtDestination { size: x.size });
                }
                a = src.advance().await?;
            }
            std::cmp::Ordering::Greater => {
                let y = b.take().expect("ordered by presence");
                if policy == DeletePolicy::Mirror && filter.matches_key(source_bucket, &y.key) {
                    summary.differences += 1;
                    report(&y.key, &Difference::ExtraAtDestination { size: y.size });
                }
                b = dst.advance().await?;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (
                    a.take().expect("ordered by presence"),
                    b.take().expect("ordered by presence"),
                );
                if wanted(&x) {
                    summary.compared += 1;
                    if let Some(d) = compare(dest, dest_bucket, &x, &y).await? {
                        summary.differences += 1;
                        report(&x.key, &d);
                    }
                }
                a = src.advance().await?;
                b = dst.advance().await?;
            }
        }
    }
    Ok(summary)
}

async fn compare(
    dest: &dyn Destination,
    dest_bucket: &str,
    source: &Listed,
    copy: &Listed,
) -> Result<Option<Difference>, S3Error> {
    if source.size != copy.size {
        return Ok(Some(Difference::SizeDiffers {
            source: source.size,
            destination: copy.size,
        }));
    }
    let (s, d) = (bare_etag(&source.etag), bare_etag(&copy.etag));
    if s == d {
        return Ok(None);
    }
    // ETags of multipart uploads depend on the part sizes; the copy
    // carries the source's ETag in its metadata.
    let recorded = if !is_md5_etag(s) || !is_md5_etag(d) {
        dest.head(dest_bucket, &copy.key)
            .await?
            .and_then(|info| info.metadata.get(SOURCE_ETAG_META).cloned())
    } else {
        None
    };
    if recorded.as_deref() == Some(s) {
        return Ok(None);
    }
    // A directory destination has no metadata: equal sizes are all it can
    // show for a multipart source.
    if !is_md5_etag(s) && !dest.keeps_metadata() {
        return Ok(None);
    }
    Ok(Some(Difference::EtagDiffers {
        source: s.to_string(),
        destination: recorded.unwrap_or_else(|| d.to_string()),
    }))
}
