//! Where a store lives, as a user names it: a local directory, given as a path or as a
//! `file://` URL, or (feature `object-store`) a prefix of an object store's bucket on
//! `ObjectStorage`: `s3://bucket/prefix` (S3 and S3-compatible servers),
//! `gs://bucket/prefix` (Google Cloud Storage) or `az://container/prefix` (Azure Blob
//! Storage). Any other URL (`http://`, ...) is refused with [`Error::UnsupportedUrl`] before
//! anything is created or read: taking `s3://bucket/prefix` as a path would create a local
//! directory named `s3:` that the user believes is in object storage.
//!
//! A Google Cloud Storage location is configured from the `GOOGLE_*` environment variables
//! and the options object_store's `GoogleConfigKey` takes (`service_account`,
//! `application_credentials`, ...); an Azure one from the `AZURE_*` variables and the
//! options of `AzureConfigKey` (`account_name`, `access_key`, `use_emulator`, ...). The
//! options below that are not S3's apply to all three.
//!
//! An S3 location is configured the standard way, from the `AWS_*` environment variables
//! object_store reads (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...), then from explicit options, which win: any key
//! object_store's `AmazonS3ConfigKey` takes (`access_key_id`, `region`, `endpoint`,
//! `allow_http`, ...), plus `client_max_retries` and `client_retry_timeout` (seconds), the
//! retry policy for failed requests (the crate's defaults: 10 retries within 180 s), and
//! `lock_ttl` (seconds, at least 1; default 60, or the environment's `REELDB_LOCK_TTL`),
//! how long the lease of a lock lasts: the store's writer lock, left by a writer that died,
//! is free again that long after its last renewal. `cache_dir` names a local directory
//! caching the objects read (created if missing; shared by the processes that name it), and
//! `cache_size` bounds it in bytes (default [`DEFAULT_CACHE_SIZE`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reeldb_keyframe::storage::{LocalStorage, Storage};

use crate::error::{Error, Result};

/// Options for a store's storage, as (key, value) pairs (see the module docs): Python's
/// `storage_options`, as Lance and delta-rs take them.
pub type StorageOptions = [(String, String)];

/// The bound of a local object cache (storage option `cache_size`) unless given: 1 GiB.
pub const DEFAULT_CACHE_SIZE: u64 = 1 << 30;

/// The storage a location names, and the name the store goes by.
pub(crate) struct Located {
    /// Where its files are.
    pub storage: Arc<dyn Storage>,
    /// The directory, or the URL, as the store's [`crate::Store::path`].
    pub shown: PathBuf,
    /// The URL, when the store is remote: the first request's failure names it.
    pub url: Option<String>,
}

/// The storage `location` names (see the module docs).
pub(crate) fn locate(location: &Path, options: &StorageOptions) -> Result<Located> {
    if let Some(text) = location.to_str()
        && let Some((scheme, rest)) = url_scheme(text)
        && ["s3", "gs", "az"]
            .iter()
            .any(|known| scheme.eq_ignore_ascii_case(known))
    {
        return object_store_location(text, &scheme.to_ascii_lowercase(), rest, options);
    }
    let dir = local_dir(location)?;
    if let Some((key, _)) = options.first() {
        return Err(Error::InvalidArgument(format!(
            "storage option {key:?} given for the local store {}: storage options configure \
             object stores (s3://, gs://, az://) only",
            dir.display()
        )));
    }
    Ok(Located {
        storage: Arc::new(LocalStorage::new(&dir)),
        shown: dir,
        url: None,
    })
}

/// Maps a failure of the first request to a remote store to [`Error::StorageUnreachable`]
/// naming its URL (a missing bucket, wrong credentials, an endpoint that does not answer);
/// local stores' errors stay as they are.
pub(crate) fn first_request<T>(located: &Located, result: Result<T>) -> Result<T> {
    match (result, &located.url) {
        (Err(Error::Keyframe(e)), Some(url))
            if !matches!(e, reeldb_keyframe::Error::Corrupt { .. }) =>
        {
            Err(Error::StorageUnreachable {
                url: url.clone(),
                reason: e.to_string(),
            })
        }
        (result, _) => result,
    }
}

/// The client of one kind of object store, being configured.
#[cfg(feature = "object-store")]
enum Client {
    S3(reeldb_keyframe::object_storage::object_store::aws::AmazonS3Builder),
    Gcs(reeldb_keyframe::object_storage::object_store::gcp::GoogleCloudStorageBuilder),
    Azure(reeldb_keyframe::object_storage::object_store::azure::MicrosoftAzureBuilder),
}

#[cfg(feature = "object-store")]
impl Client {
    /// The client for `scheme` (`s3`, `gs` or `az`) on `bucket` (a container, on Azure),
    /// configured from the environment.
    fn from_env(scheme: &str, bucket: &str) -> Client {
        use reeldb_keyframe::object_storage::object_store::{aws, azure, gcp};
        match scheme {
            "gs" => {
                Client::Gcs(gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket))
            }
            "az" => {
                Client::Azure(azure::MicrosoftAzureBuilder::from_env().with_container_name(bucket))
            }
            _ => Client::S3(aws::AmazonS3Builder::from_env().with_bucket_name(bucket)),
        }
    }

    /// Sets the client's option `key`; `None` if this kind of client has no such option.
    fn with(self, key: &str, value: &str) -> Option<Client> {
        Some(match self {
            Client::S3(b) => Client::S3(b.with_config(key.parse().ok()?, value)),
            Client::Gcs(b) => Client::Gcs(b.with_config(key.parse().ok()?, value)),
            Client::Azure(b) => Client::Azure(b.with_config(key.parse().ok()?, value)),
        })
    }

    /// Where its options are listed.
    fn option_names(&self) -> &'static str {
        match self {
            Client::S3(_) => "object_store's AmazonS3ConfigKey",
            Client::Gcs(_) => "object_store's GoogleConfigKey",
            Client::Azure(_) => "object_store's AzureConfigKey",
        }
    }

    fn build(
        self,
        retry: reeldb_keyframe::object_storage::object_store::RetryConfig,
    ) -> reeldb_keyframe::object_storage::object_store::Result<
        Arc<dyn reeldb_keyframe::object_storage::object_store::ObjectStore>,
    > {
        Ok(match self {
            Client::S3(b) => Arc::new(b.with_retry(retry).build()?),
            Client::Gcs(b) => Arc::new(b.with_retry(retry).build()?),
            Client::Azure(b) => Arc::new(b.with_retry(retry).build()?),
        })
    }
}

/// An `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix` location on
/// `ObjectStorage`.
#[cfg(feature = "object-store")]
fn object_store_location(
    url: &str,
    scheme: &str,
    rest: &str,
    options: &StorageOptions,
) -> Result<Located> {
    use reeldb_keyframe::object_storage::ObjectStorage;
    use reeldb_keyframe::object_storage::object_store::RetryConfig;

    let refuse = |reason: String| Error::UnsupportedUrl {
        url: url.to_string(),
        reason,
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(refuse(format!(
            "a {scheme}:// URL names a bucket (a container on Azure): {scheme}://bucket/prefix"
        )));
    }
    let mut client = Client::from_env(scheme, bucket);
    let mut retry = RetryConfig::default();
    let (mut cache_dir, mut cache_size) = (None, DEFAULT_CACHE_SIZE);
    let mut lock_ttl = match std::env::var("REELDB_LOCK_TTL") {
        Ok(value) => Some(seconds(&value).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "REELDB_LOCK_TTL={value:?}: not a number of seconds"
            ))
        })?),
        Err(_) => None,
    };
    for (key, value) in options {
        let bad = || {
            Error::InvalidArgument(format!(
                "storage option {key}={value:?} for {url}: not a number"
            ))
        };
        match key.as_str() {
            "client_max_retries" => retry.max_retries = value.parse().map_err(|_| bad())?,
            "client_retry_timeout" => retry.retry_timeout = seconds(value).ok_or_else(bad)?,
            "lock_ttl" => lock_ttl = Some(seconds(value).ok_or_else(bad)?),
            "cache_dir" => cache_dir = Some(PathBuf::from(value)),
            "cache_size" => cache_size = value.parse().map_err(|_| bad())?,
            _ => {
                let names = client.option_names();
                client = client.with(key, value).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "unknown storage option {key:?} for {url} (see {names}, or \
                         client_max_retries, client_retry_timeout, lock_ttl, cache_dir, \
                         cache_size)"
                    ))
                })?;
            }
        }
    }
    let store = client.build(retry).map_err(|e| refuse(e.to_string()))?;
    let mut storage = ObjectStorage::new(store, prefix)?;
    if let Some(ttl) = lock_ttl {
        storage = storage.with_lock_ttl(ttl);
    }
    if let Some(dir) = cache_dir {
        storage = storage.with_cache(&dir, cache_size)?;
    }
    Ok(Located {
        storage: Arc::new(storage),
        shown: PathBuf::from(url),
        url: Some(url.to_string()),
    })
}

/// A duration given in seconds (a non-negative number, fractions allowed).
#[cfg(feature = "object-store")]
fn seconds(value: &str) -> Option<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(value.parse().ok()?).ok()
}

/// Without feature `object-store`, an object store's location is refused.
#[cfg(not(feature = "object-store"))]
fn object_store_location(
    url: &str,
    _scheme: &str,
    _rest: &str,
    _options: &StorageOptions,
) -> Result<Located> {
    Err(Error::UnsupportedUrl {
        url: url.to_string(),
        reason: "this build has no object storage (it was built without feature \
                 object-store); give a local directory, or a file:// URL"
            .into(),
    })
}

/// The local directory `location` names: `location` itself when it is a path, the path of a
/// `file://` URL (`file:///srv/store` or `file://localhost/srv/store`), or an
/// [`Error::UnsupportedUrl`] for any other URL.
fn local_dir(location: &Path) -> Result<PathBuf> {
    let Some(text) = location.to_str() else {
        // Not UTF-8, so not a URL anyone typed.
        return Ok(location.to_path_buf());
    };
    let Some((scheme, rest)) = url_scheme(text) else {
        return Ok(location.to_path_buf());
    };
    let refuse = |reason: &str| Error::UnsupportedUrl {
        url: text.to_string(),
        reason: reason.to_string(),
    };
    if !scheme.eq_ignore_ascii_case("file") {
        return Err(refuse(
            "stores live in local directories (a path, or a file:// URL) or, in builds with \
             feature object-store, in object stores: s3://bucket/prefix, gs://bucket/prefix, \
             az://container/prefix",
        ));
    }
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return Err(refuse(
            "a file:// URL must name a directory on this machine (file:///path)",
        ));
    }
    if path.contains('%') {
        return Err(refuse(
            "percent-escapes in file:// URLs are not decoded; give the directory as a path",
        ));
    }
    Ok(PathBuf::from(path))
}

/// The scheme of `text` and what follows `://`, when `text` is a URL: a scheme is a letter
/// followed by letters, digits, `+`, `-` or `.` (RFC 3986), so `C:\store` or `./s3:/x` are
/// paths.
fn url_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_as_they_are() {
        // A colon without `//`, or a scheme that is not one (a drive letter and backslash).
        for p in [
            "store",
            "./s3:/x",
            "s3:bucket",
            "/srv/store",
            "C:\\store",
            "1s3://x",
        ] {
            assert_eq!(local_dir(Path::new(p)).unwrap(), Path::new(p));
        }
    }

    #[test]
    fn a_file_url_names_its_local_directory() {
        assert_eq!(
            local_dir(Path::new("file:///srv/store")).unwrap(),
            Path::new("/srv/store")
        );
        assert_eq!(
            local_dir(Path::new("FILE://localhost/srv/store")).unwrap(),
            Path::new("/srv/store")
        );
    }

    #[test]
    fn other_urls_are_refused_naming_the_url() {
        for url in [
            "gs:///no-bucket",
            "az://",
            "https://example.com/store",
            "file://otherhost/srv/store",
            "file:///srv/a%20store",
            "s3:///no-bucket",
        ] {
            match locate(Path::new(url), &[]) {
                Err(Error::UnsupportedUrl { url: named, .. }) => assert_eq!(named, url),
                Err(other) => panic!("{url}: {other:?}"),
                Ok(_) => panic!("{url}: accepted"),
            }
        }
    }

    #[test]
    fn storage_options_are_for_object_stores_only() {
        let options = [("region".to_string(), "eu-west-1".to_string())];
        assert!(matches!(
            locate(Path::new("/srv/store"), &options),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[cfg(feature = "object-store")]
    #[test]
    fn an_unknown_option_of_each_object_store_names_where_its_options_are() {
        let options = [("no_such_option".to_string(), "1".to_string())];
        for (url, names) in [
            ("s3://bucket/p", "AmazonS3ConfigKey"),
            ("gs://bucket/p", "GoogleConfigKey"),
            ("az://container/p", "AzureConfigKey"),
        ] {
            match locate(Path::new(url), &options) {
                Err(Error::InvalidArgument(message)) => {
                    assert!(
                        message.contains(names) && message.contains(url),
                        "{message}"
                    )
                }
                Err(other) => panic!("{url}: {other:?}"),
                Ok(_) => panic!("{url}: accepted"),
            }
        }
    }

    #[cfg(feature = "object-store")]
    #[test]
    fn a_google_or_azure_store_that_does_not_answer_is_unreachable_naming_its_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let quick = [("client_max_retries", "0"), ("client_retry_timeout", "1")];
        for (url, options) in [
            (
                "gs://bucket/p",
                vec![("base_url", endpoint.as_str()), ("skip_signature", "true")],
            ),
            (
                "az://container/p",
                vec![("use_emulator", "true"), ("endpoint", endpoint.as_str())],
            ),
        ] {
            let options: Vec<(String, String)> = options
                .iter()
                .chain(&quick)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            match crate::Store::open_url(url, &options) {
                Err(Error::StorageUnreachable { url: named, .. }) => assert_eq!(named, url),
                Err(other) => panic!("{url}: {other:?}"),
                Ok(_) => panic!("{url}: opened"),
            }
        }
    }

    #[cfg(feature = "object-store")]
    #[test]
    fn an_unknown_or_malformed_storage_option_is_refused_naming_it() {
        for (key, value) in [("no_such_option", "1"), ("client_max_retries", "many")] {
            let options = [(key.to_string(), value.to_string())];
            match locate(Path::new("s3://bucket/p"), &options) {
                Err(Error::InvalidArgument(message)) => assert!(message.contains(key), "{message}"),
                Err(other) => panic!("{key}: {other:?}"),
                Ok(_) => panic!("{key}: accepted"),
            }
        }
    }
}
