//! The object store: input bodies and output files live here, behind one small door.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::buffered::{BufReader, BufWriter};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use tokio::io::AsyncWriteExt;

/// Errors of the blob room.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("object store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported store URL `{0}`: use file://DIR, memory:// or s3://BUCKET/PREFIX")]
    BadUrl(String),
    #[error("object not found")]
    NotFound,
}

/// A handle on the configured object store.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// The directory of a local store, whose half-written uploads may be left by a crash.
    local_root: Option<std::path::PathBuf>,
}

/// A streamed read of (part of) an object.
pub struct BlobRead {
    /// The bytes, in order.
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
    /// The byte range served.
    pub range: Range<u64>,
    /// The object's whole size.
    pub size: u64,
}

impl Blobs {
    /// Open `file://DIR` (or a bare directory path), `memory://` or `s3://BUCKET/PREFIX`.
    pub fn open(url: &str) -> Result<Blobs, BlobError> {
        let store: Arc<dyn ObjectStore> = if url == "memory://" || url == "memory:" {
            Arc::new(object_store::memory::InMemory::new())
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(BlobError::BadUrl(url.to_string()));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()?;
            let prefix = prefix.trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            let dir = match url.strip_prefix("file://") {
                Some(d) => d,
                None if !url.contains("://") => url,
                None => return Err(BlobError::BadUrl(url.to_string())),
            };
            std::fs::create_dir_all(dir)?;
            let root = std::path::PathBuf::from(dir);
            return Ok(Blobs {
                store: Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir)?),
                local_root: Some(root),
            });
        };
        Ok(Blobs {
            store,
            local_root: None,
        })
    }

    /// A writer that streams into a new object; call `finish` to make it visible.
    pub fn writer(&self, key: &str) -> BlobWriter {
        BlobWriter {
            inner: BufWriter::new(self.store.clone(), Path::from(key)),
            size: 0,
        }
    }

    /// Store a whole small object.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<u64, BlobError> {
        let len = data.len() as u64;
        self.store.put(&Path::from(key), data.into()).await?;
        Ok(len)
    }

    /// A buffered async reader over a whole object (for operations reading their input).
    pub async fn reader(&self, key: &str) -> Result<BufReader, BlobError> {
        let meta = self.store.head(&Path::from(key)).await.map_err(not_found)?;
        Ok(BufReader::new(self.store.clone(), &meta))
    }

    /// Read an object, or the byte range `range` of it.
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<BlobRead, BlobError> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let res = self
            .store
            .get_opts(&Path::from(key), opts)
            .await
            .map_err(not_found)?;
        let size = res.meta.size;
        let range = res.range.clone();
        let stream = res
            .into_stream()
            .map(|r| r.map_err(BlobError::from))
            .boxed();
        Ok(BlobRead {
            stream,
            range,
            size,
        })
    }

    /// Remove what uploads into a local store left half-written when their process died (the
    /// store writes `NAME#N` and renames it to `NAME` when complete), once untouched for
    /// `grace`, so uploads in flight in another process are left alone. S3 aborts incomplete
    /// uploads by its own lifecycle rules. Returns how many were removed.
    pub async fn sweep_staging(&self, grace: std::time::Duration) -> Result<usize, BlobError> {
        let Some(root) = self.local_root.clone() else {
            return Ok(0);
        };
        let sweep = move || -> std::io::Result<usize> {
            let mut removed = 0;
            let mut dirs = vec![root];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir)? {
                    let entry = entry?;
                    let meta = entry.metadata()?;
                    if meta.is_dir() {
                        dirs.push(entry.path());
                        continue;
                    }
                    let name = entry.file_name();
                    let staged =
                        name.to_str()
                            .and_then(|n| n.rsplit_once('#'))
                            .is_some_and(|(_, n)| {
                                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                            });
                    let idle = meta
                        .modified()
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age >= grace);
                    if staged && idle && std::fs::remove_file(entry.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        };
        Ok(tokio::task::spawn_blocking(sweep)
            .await
            .map_err(std::io::Error::other)??)
    }

    /// Remove an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), BlobError> {
        match self.store.head(&Path::from("readyz-probe")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn not_found(e: object_store::Error) -> BlobError {
    match e {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => BlobError::Store(other),
    }
}

/// A streaming object writer that counts what it wrote.
pub struct BlobWriter {
    inner: BufWriter,
    size: u64,
}

impl BlobWriter {
    /// Append bytes.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), BlobError> {
        self.inner.write_all(data).await?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// Complete the upload and return the object's size.
    pub async fn finish(mut self) -> Result<u64, BlobError> {
        self.inner.shutdown().await?;
        Ok(self.size)
    }

    /// Give up on the upload.
    pub async fn abort(mut self) {
        let _ = self.inner.abort().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn half_written_uploads_are_swept_once_idle() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path().to_str().unwrap()).unwrap();
        blobs
            .put("outputs/a", Bytes::from_static(b"kept"))
            .await
            .unwrap();
        let sub = dir.path().join("outputs");
        let old = sub.join("b#1");
        std::fs::write(&old, b"half").unwrap();
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let fresh = sub.join("c#2");
        std::fs::write(&fresh, b"in flight").unwrap();
        let named = sub.join("d#x");
        std::fs::write(&named, b"not staging").unwrap();
        let n = blobs
            .sweep_staging(std::time::Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert!(!old.exists() && fresh.exists() && named.exists());
        assert!(blobs.get("outputs/a", None).await.is_ok());
    }
}
