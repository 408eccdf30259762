//! Serving a static site: which file a request gets, and the headers computed from the file
//! actually served — `Content-Type`, a strong `ETag` (the SHA-256 of the bytes sent),
//! conditional GET, `immutable` caching only for content-hashed names and revalidation for
//! everything else, precompressed variants by `Accept-Encoding`, the site's CSP, and a
//! single-page-app fallback that answers HTML navigations only (a missing script is a 404,
//! never `index.html`). Also scanning a directory into a manifest, for `serve --site` and
//! `site deploy`.

use std::io::Read;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::header::{
    ACCEPT, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use blindstore_types::site::{SiteBlob, SiteFile, SiteManifest};
use blindstore_types::Hash32;
use sha2::{Digest, Sha256};

/// Which bytes of a file are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

/// What a request resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved<'a> {
    /// A file, in one of its encodings, with the status to answer (200, or 404 for the site's
    /// `404.html`).
    File {
        path: &'a str,
        file: &'a SiteFile,
        encoding: Encoding,
        status: StatusCode,
    },
    /// Nothing: a plain 404.
    NotFound,
    /// A directory asked for without its trailing slash: redirect there.
    Redirect(String),
}

/// The bytes sent for `file` in `encoding` (chosen only among those the file has).
fn blob_of(file: &SiteFile, encoding: Encoding) -> &SiteBlob {
    match encoding {
        Encoding::Identity => &file.blob,
        Encoding::Gzip => file.gzip.as_ref().expect("chosen only when present"),
        Encoding::Brotli => file.br.as_ref().expect("chosen only when present"),
    }
}

/// Resolves the request path (percent-encoded, without the site's prefix, starting with `/`).
pub fn resolve<'a>(
    manifest: &'a SiteManifest,
    raw_path: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Resolved<'a> {
    let Some(path) = decode_path(raw_path) else {
        return Resolved::NotFound;
    };
    let found = |path: &str| manifest.files.get_key_value(path);
    let hit = if path.is_empty() || path.ends_with('/') {
        found(&format!("{path}index.html"))
    } else if let Some(hit) = found(&path) {
        Some(hit)
    } else if found(&format!("{path}/index.html")).is_some() {
        let last = raw_path.rsplit('/').next().unwrap_or_default();
        return Resolved::Redirect(format!("{last}/"));
    } else {
        None
    };
    let (hit, status) = match hit {
        Some(hit) => (Some(hit), StatusCode::OK),
        None if manifest.spa && is_navigation(method, headers) => {
            (found("index.html"), StatusCode::OK)
        }
        None => (found("404.html"), StatusCode::NOT_FOUND),
    };
    match hit {
        Some((path, file)) => Resolved::File {
            path,
            file,
            encoding: choose_encoding(file, headers),
            status,
        },
        None => Resolved::NotFound,
    }
}

/// The path without its leading `/`, percent-decoded; `None` if it leaves the site or is not
/// UTF-8.
fn decode_path(raw: &str) -> Option<String> {
    let raw = raw.strip_prefix('/').unwrap_or(raw);
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?
        .into_owned();
    let leaves = decoded
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
        || decoded.contains('\\')
        || decoded.contains("//")
        || decoded.chars().any(char::is_control);
    (!leaves).then_some(decoded)
}

/// Whether the request is a browser navigation to a page (not a script, style, image or
/// fetch).
fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (header("sec-fetch-mode"), header("sec-fetch-dest")) {
        (Some(mode), _) if mode != "navigate" => false,
        (_, Some(dest)) if dest != "document" && dest != "iframe" => false,
        (Some(_), _) | (_, Some(_)) => true,
        // No fetch metadata (older clients): a request that accepts HTML.
        _ => headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html")),
    }
}

/// Brotli, then gzip, when the client accepts it and the site has it.
fn choose_encoding(file: &SiteFile, headers: &HeaderMap) -> Encoding {
    let accepted = |name: &str| {
        headers.get_all(ACCEPT_ENCODING).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',').any(|item| {
                    let mut parts = item.split(';');
                    let coding = parts.next().unwrap_or_default().trim();
                    let q_zero = parts.any(|p| {
                        p.trim()
                            .strip_prefix("q=")
                            .and_then(|q| q.parse::<f32>().ok())
                            .is_some_and(|q| q == 0.0)
                    });
                    (coding == name || coding == "*") && !q_zero
                })
            })
        })
    };
    if file.br.is_some() && accepted("br") {
        Encoding::Brotli
    } else if file.gzip.is_some() && accepted("gzip") {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// Whether a file name carries a content hash (`app.3f2a9c1b.js`, `index-DbG4x_5x.css`): a
/// `.`- or `-`-separated part of 8 or more letters, digits or `_` with both letters and
/// digits. Only such files are cached as immutable.
pub fn is_content_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    stem.split(['.', '-']).any(|part| {
        part.len() >= 8
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && part.bytes().any(|b| b.is_ascii_digit())
            && part.bytes().any(|b| b.is_ascii_alphabetic())
    })
}

/// The headers of a file answer, from the file actually served.
pub fn file_headers(
    manifest: &SiteManifest,
    path: &str,
    file: &SiteFile,
    encoding: Encoding,
) -> HeaderMap {
    let blob = blob_of(file, encoding);
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&file.content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    h.insert(ETAG, etag(&blob.sha256));
    let cache = if is_content_hashed(path) && !file.content_type.starts_with("text/html") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    match encoding {
        Encoding::Identity => {}
        Encoding::Gzip => {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Encoding::Brotli => {
            h.insert(CONTENT_ENCODING, HeaderValue::from_static("br"));
        }
    }
    if file.gzip.is_some() || file.br.is_some() {
        h.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(csp) = manifest
        .csp
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        h.insert(CONTENT_SECURITY_POLICY, csp);
    }
    h
}

fn etag(sha256: &Hash32) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{sha256}\"")).expect("hex is a valid header value")
}

/// Answers a site request; `load` fetches a blob's bytes (`path` and `encoding` say which).
pub async fn answer<F, Fut, E>(
    manifest: &SiteManifest,
    raw_path: &str,
    method: &Method,
    headers: &HeaderMap,
    load: F,
) -> Result<Response, E>
where
    F: FnOnce(&str, Encoding, &SiteBlob) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, E>>,
{
    if method != Method::GET && method != Method::HEAD {
        let mut r = StatusCode::METHOD_NOT_ALLOWED.into_response();
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let (path, file, encoding, status) = match resolve(manifest, raw_path, method, headers) {
        Resolved::File {
            path,
            file,
            encoding,
            status,
        } => (path, file, encoding, status),
        Resolved::Redirect(location) => {
            let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert("location", v);
            }
            return Ok(r);
        }
        Resolved::NotFound => {
            let mut r = (StatusCode::NOT_FOUND, "not found\n").into_response();
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return Ok(r);
        }
    };
    let mut out_headers = file_headers(manifest, path, file, encoding);
    let blob = blob_of(file, encoding);
    if status == StatusCode::OK && crate::if_none_match(headers, &blob.sha256) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        out_headers.remove(CONTENT_TYPE);
        r.headers_mut().extend(out_headers);
        return Ok(r);
    }
    out_headers.insert(CONTENT_LENGTH, HeaderValue::from(blob.len));
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(load(path, encoding, blob).await?)
    };
    let mut r = (status, body).into_response();
    r.headers_mut().extend(out_headers);
    Ok(r)
}

/// A file found by [`scan_dir`].
#[derive(Debug, Clone)]
pub struct ScannedFile {
    /// The site path (`/`-separated, relative to the root).
    pub path: String,
    pub disk: PathBuf,
    pub content_type: String,
    pub len: u64,
    pub sha256: Hash32,
    /// `<file>.gz` and `<file>.br` beside it: their disk paths, lengths and hashes.
    pub gzip: Option<(PathBuf, u64, Hash32)>,
    pub br: Option<(PathBuf, u64, Hash32)>,
}

/// Every file below `root`, with its type and hash; `x.gz` and `x.br` become variants of `x`
/// when `x` exists (and files of their own otherwise). Hidden files and directories (names
/// starting with `.`) are left out; symbolic links are followed.
pub fn scan_dir(root: &Path) -> std::io::Result<Vec<ScannedFile>> {
    scan_dir_with(root, &mut hash_file)
}

/// [`scan_dir`] with the length and SHA-256 of each file given by `hash` (which may answer
/// from a cache of files it hashed before).
pub fn scan_dir_with(
    root: &Path,
    hash: &mut dyn FnMut(&Path) -> std::io::Result<(u64, Hash32)>,
) -> std::io::Result<Vec<ScannedFile>> {
    let mut paths = Vec::new();
    collect(root, root, &mut paths)?;
    paths.sort();
    let set: std::collections::BTreeSet<&str> = paths.iter().map(|(p, _)| p.as_str()).collect();
    let variant_of = |path: &str| {
        [".gz", ".br"]
            .iter()
            .find_map(|ext| path.strip_suffix(ext))
            .filter(|base| set.contains(base))
            .is_some()
    };
    let mut out = Vec::new();
    for (path, disk) in &paths {
        if variant_of(path) {
            continue;
        }
        let (len, sha256) = hash(disk)?;
        let mut variant = |ext: &str| -> std::io::Result<Option<(PathBuf, u64, Hash32)>> {
            let name = format!("{path}{ext}");
            match paths.iter().find(|(p, _)| *p == name) {
                Some((_, disk)) => {
                    let (len, sha) = hash(disk)?;
                    Ok(Some((disk.clone(), len, sha)))
                }
                None => Ok(None),
            }
        };
        out.push(ScannedFile {
            path: path.clone(),
            disk: disk.clone(),
            content_type: content_type(path),
            len,
            sha256,
            gzip: variant(".gz")?,
            br: variant(".br")?,
        });
    }
    Ok(out)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(std::io::Error::other(format!(
                "{}: file names must be UTF-8",
                entry.path().display()
            )));
        };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if std::fs::metadata(&path)?.is_dir() {
            collect(root, &path, out)?;
        } else {
            let relative = path
                .strip_prefix(root)
                .expect("below the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((relative, path));
        }
    }
    Ok(())
}

/// The length and SHA-256 of a file's bytes.
pub fn hash_file(path: &Path) -> std::io::Result<(u64, Hash32)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        len += n as u64;
    }
    Ok((len, Hash32(hasher.finalize().into())))
}

/// The `Content-Type` of a path, by its extension (`application/octet-stream` when unknown);
/// text types are UTF-8.
pub fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = mime.essence_str();
    let text = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript" | "application/json" | "image/svg+xml"
        );
    if text {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

/// A manifest for files served from disk (their blobs have no chunks: the bytes are read
/// from the files).
pub fn local_manifest(files: &[ScannedFile], csp: Option<String>, spa: bool) -> SiteManifest {
    let blob = |len, sha256| SiteBlob {
        chunks: Vec::new(),
        len,
        sha256,
    };
    SiteManifest {
        files: files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    SiteFile {
                        content_type: f.content_type.clone(),
                        blob: blob(f.len, f.sha256),
                        gzip: f.gzip.as_ref().map(|(_, len, sha)| blob(*len, *sha)),
                        br: f.br.as_ref().map(|(_, len, sha)| blob(*len, *sha)),
                    },
                )
            })
            .collect(),
        csp,
        spa,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content_type: &str, variants: bool) -> SiteFile {
        let blob = |n: u8| SiteBlob {
            chunks: vec![Hash32([n; 32])],
            len: 10,
            sha256: Hash32([n; 32]),
        };
        SiteFile {
            content_type: content_type.into(),
            blob: blob(1),
            gzip: variants.then(|| blob(2)),
            br: variants.then(|| blob(3)),
        }
    }

    fn site(spa: bool) -> SiteManifest {
        let mut m = SiteManifest {
            spa,
            ..SiteManifest::default()
        };
        m.files
            .insert("index.html".into(), file("text/html; charset=utf-8", false));
        m.files.insert(
            "assets/app.3f2a9c1b.js".into(),
            file("text/javascript; charset=utf-8", true),
        );
        m.files
            .insert("docs/index.html".into(), file("text/html", false));
        m
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn path_of(r: Resolved) -> Option<(String, StatusCode)> {
        match r {
            Resolved::File { path, status, .. } => Some((path.to_owned(), status)),
            _ => None,
        }
    }

    #[test]
    fn the_spa_fallback_answers_navigations_only() {
        let m = site(true);
        let get = Method::GET;
        let navigate = headers(&[
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ]);
        let script = headers(&[("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "script")]);
        assert_eq!(
            path_of(resolve(&m, "/budget/2026", &get, &navigate)),
            Some(("index.html".into(), StatusCode::OK))
        );
        assert_eq!(
            resolve(&m, "/assets/missing.js", &get, &script),
            Resolved::NotFound
        );
        let old_client = headers(&[("accept", "text/html,application/xhtml+xml")]);
        assert!(path_of(resolve(&m, "/x", &get, &old_client)).is_some());
        assert_eq!(
            resolve(&m, "/x", &get, &headers(&[("accept", "*/*")])),
            Resolved::NotFound
        );
        // Without the SPA setting, a navigation to a missing page is a 404 too.
        assert_eq!(
            resolve(&site(false), "/budget", &get, &navigate),
            Resolved::NotFound
        );
    }

    #[test]
    fn paths_resolve_inside_the_site_only() {
        let m = site(false);
        let h = HeaderMap::new();
        let get = Method::GET;
        assert_eq!(path_of(resolve(&m, "/", &get, &h)).unwrap().0, "index.html");
        assert_eq!(
            path_of(resolve(&m, "/docs/", &get, &h)).unwrap().0,
            "docs/index.html"
        );
        assert_eq!(
            resolve(&m, "/docs", &get, &h),
            Resolved::Redirect("docs/".into())
        );
        assert_eq!(
            path_of(resolve(&m, "/assets/app%2E3f2a9c1b.js", &get, &h))
                .unwrap()
                .0,
            "assets/app.3f2a9c1b.js"
        );
        for bad in [
            "/../index.html",
            "/assets/%2e%2e/index.html",
            "/a%5cb",
            "//index.html",
        ] {
            assert_eq!(resolve(&m, bad, &get, &h), Resolved::NotFound, "{bad}");
        }
    }

    #[test]
    fn precompressed_variants_follow_accept_encoding() {
        let m = site(false);
        let get = Method::GET;
        let pick = |ae: &str| match resolve(
            &m,
            "/assets/app.3f2a9c1b.js",
            &get,
            &headers(&[("accept-encoding", ae)]),
        ) {
            Resolved::File { encoding, .. } => encoding,
            other => panic!("{other:?}"),
        };
        assert_eq!(pick("gzip, deflate, br"), Encoding::Brotli);
        assert_eq!(pick("gzip"), Encoding::Gzip);
        assert_eq!(pick("br;q=0, gzip"), Encoding::Gzip);
        assert_eq!(pick("identity"), Encoding::Identity);
    }

    #[test]
    fn only_content_hashed_names_are_immutable() {
        for hashed in [
            "app.3f2a9c1b.js",
            "assets/index-DbG4x5x1.css",
            "chunk.a1b2c3d4e5.js",
        ] {
            assert!(is_content_hashed(hashed), "{hashed}");
        }
        for plain in [
            "index.html",
            "jquery-3.6.0.min.js",
            "favicon.ico",
            "bootstrap-bundle.js",
            "report-20261129.pdf",
            "longnamewithoutdigits.js",
        ] {
            assert!(!is_content_hashed(plain), "{plain}");
        }
        let m = site(false);
        let js = &m.files["assets/app.3f2a9c1b.js"];
        let h = file_headers(&m, "assets/app.3f2a9c1b.js", js, Encoding::Gzip);
        assert_eq!(h[CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(h[CONTENT_ENCODING], "gzip");
        assert_eq!(h[VARY], "accept-encoding");
        assert_eq!(h[ETAG], format!("\"{}\"", Hash32([2; 32])));
        let html = file_headers(&m, "index.html", &m.files["index.html"], Encoding::Identity);
        assert_eq!(html[CACHE_CONTROL], "no-cache");
    }

    #[test]
    fn content_types_come_from_extensions() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type("photo.png"), "image/png");
        assert_eq!(content_type("data.wasm"), "application/wasm");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }
}
