//! Where a store lives, as a user names it: a local directory, given as a path or as a
//! `file://` URL. A URL of any other scheme (`s3://`, `gs://`, `az://`, `http://`, ...) is
//! refused with [`Error::UnsupportedUrl`] before anything is created or read: this build keeps
//! stores on local disk only, and taking `s3://bucket/prefix` as a path would create a local
//! directory named `s3:` that the user believes is in object storage.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The local directory `location` names: `location` itself when it is a path, the path of a
/// `file://` URL (`file:///srv/store` or `file://localhost/srv/store`), or an
/// [`Error::UnsupportedUrl`] for a URL this build cannot open.
pub(crate) fn local_dir(location: &Path) -> Result<PathBuf> {
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
            "this build keeps stores on local disk only; object storage is not supported yet \
             (give a local directory, or a file:// URL)",
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
    fn object_store_and_other_urls_are_refused_naming_the_url() {
        for url in [
            "s3://bucket/prefix",
            "gs://bucket/p",
            "az://container/p",
            "https://example.com/store",
            "file://otherhost/srv/store",
            "file:///srv/a%20store",
        ] {
            match local_dir(Path::new(url)) {
                Err(Error::UnsupportedUrl { url: named, .. }) => assert_eq!(named, url),
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
