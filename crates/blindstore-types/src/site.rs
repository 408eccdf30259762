//! Static sites: a zone's deployed web app as the replicated state keeps it. A deploy uploads
//! every file as chunks, then publishes a manifest naming them in one step; the zone serves
//! its current version, and switching versions (rollback) is one step too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::Hash32;

/// Files one site version may hold.
pub const MAX_SITE_FILES: usize = 20_000;
/// Longest file path in a site, bytes.
pub const MAX_SITE_PATH_BYTES: usize = 1024;
/// Longest content security policy, bytes.
pub const MAX_SITE_CSP_BYTES: usize = 4096;

/// The bytes of a file (or of one of its precompressed variants), as chunks in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteBlob {
    /// The content's chunks, in order (each at most the node's chunk size).
    pub chunks: Vec<Hash32>,
    pub len: u64,
    /// SHA-256 of the whole content: the `ETag`.
    pub sha256: Hash32,
}

/// One file of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteFile {
    pub content_type: String,
    pub blob: SiteBlob,
    /// The same content gzip-compressed (from `<file>.gz` beside it), when present.
    #[serde(default)]
    pub gzip: Option<SiteBlob>,
    /// The same content brotli-compressed (from `<file>.br`), when present.
    #[serde(default)]
    pub br: Option<SiteBlob>,
}

/// A site version: its files by path (no leading `/`, e.g. `index.html`,
/// `assets/app.3f2a9c1b.js`) and how to serve them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteManifest {
    pub files: BTreeMap<String, SiteFile>,
    /// `Content-Security-Policy` sent with every file, if set.
    #[serde(default)]
    pub csp: Option<String>,
    /// Answer HTML navigations to paths that are not files with `index.html` (single-page
    /// apps). Requests for scripts, styles and other assets still get 404.
    #[serde(default)]
    pub spa: bool,
}

impl SiteManifest {
    /// Every chunk the site needs.
    pub fn chunks(&self) -> impl Iterator<Item = &Hash32> {
        self.files.values().flat_map(|f| {
            f.blob
                .chunks
                .iter()
                .chain(f.gzip.iter().flat_map(|b| &b.chunks))
                .chain(f.br.iter().flat_map(|b| &b.chunks))
        })
    }

    /// Checks paths, sizes and the policy; the chunks are checked by the node.
    pub fn check(&self) -> Result<(), String> {
        if self.files.is_empty() {
            return Err("a site has at least one file".into());
        }
        if self.files.len() > MAX_SITE_FILES {
            return Err(format!("a site has at most {MAX_SITE_FILES} files"));
        }
        for (path, file) in &self.files {
            check_site_path(path)?;
            for blob in std::iter::once(&file.blob)
                .chain(&file.gzip)
                .chain(&file.br)
            {
                if blob.chunks.is_empty() && blob.len > 0 {
                    return Err(format!("{path}: content without chunks"));
                }
            }
            if file.content_type.is_empty()
                || file.content_type.len() > 255
                || !file.content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
            {
                return Err(format!("{path}: bad content type"));
            }
        }
        if let Some(csp) = &self.csp {
            if csp.len() > MAX_SITE_CSP_BYTES || !csp.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(format!(
                    "the content security policy is printable ASCII of at most {MAX_SITE_CSP_BYTES} bytes"
                ));
            }
        }
        Ok(())
    }
}

/// Checks a site path: `/`-separated segments, none empty, `.` or `..`, no leading `/`, no
/// control characters or backslashes.
pub fn check_site_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty()
        && path.len() <= MAX_SITE_PATH_BYTES
        && !path.chars().any(|c| c.is_control() || c == '\\')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if ok {
        Ok(())
    } else {
        Err(format!("bad site path {path:?}"))
    }
}

/// A site version as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteVersionRecord {
    pub manifest: SiteManifest,
    pub created_at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_paths_stay_inside_the_site() {
        for good in ["index.html", "assets/app.3f2a9c1b.js", "a b/ü.txt"] {
            assert!(check_site_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/index.html",
            "a//b",
            "../x",
            "a/./b",
            "a\\b",
            "dir/",
            "a\nb",
        ] {
            assert!(check_site_path(bad).is_err(), "{bad:?}");
        }
    }
}
