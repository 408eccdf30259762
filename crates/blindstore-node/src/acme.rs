//! Automatic certificates over ACME (RFC 8555): `serve --acme-domain HOST` gets a certificate
//! for its names from Let's Encrypt (or `--acme-directory`), answering HTTP-01 challenges on
//! `--acme-http-addr` (port 80), keeps it in `<data_dir>/acme/` (0600) and renews it once two
//! thirds of its lifetime have passed; the HTTPS server then serves the new one to new
//! connections without a restart.
//!
//! The protocol is instant-acme's (a small, maintained RFC 8555 client on rustls and tokio, as
//! the rest of the server); this module decides when, keeps the files, and answers the
//! challenges.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use axum::extract::{Path as UrlPath, State};
use axum::http::header::{CONTENT_TYPE, HOST, LOCATION};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

/// Let's Encrypt's production directory: the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// How long one attempt (order, challenges, certificate) may take.
const ATTEMPT: Duration = Duration::from_secs(120);
/// A failed renewal is tried again after this, doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(30);
const RETRY_MAX: Duration = Duration::from_secs(3600);
/// The renewal task looks at least this often (a clock jump or a suspended machine).
const LOOK_EVERY: Duration = Duration::from_secs(3600);

/// What the node was told about ACME.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub directory: String,
    pub ca_cert: Option<PathBuf>,
    pub http_addr: SocketAddr,
    /// `<data_dir>/acme`.
    pub dir: PathBuf,
}

/// Refuses what cannot be a DNS name a public ACME server certifies (names only: no
/// addresses, no wildcards, which HTTP-01 cannot prove).
pub fn check_domain(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.parse::<std::net::IpAddr>().is_err()
        && name.split('.').count() >= 2
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        bail!(
            "acme_domain {name:?} is not a DNS name such as node1.example.com (no addresses, \
             no wildcards: HTTP-01 proves one name at a time)"
        );
    }
    Ok(())
}

/// The tokens of challenges in flight and the answers the ACME server expects.
type Challenges = Arc<Mutex<HashMap<String, String>>>;

/// Starts answering challenges, gets a certificate unless a usable one is kept, and keeps it
/// renewed: the returned TLS configuration always holds the current one.
pub async fn start(config: AcmeConfig) -> anyhow::Result<Arc<blindstore_web::Tls>> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.dir)
        .with_context(|| format!("creating {}", config.dir.display()))?;
    let challenges = Challenges::default();
    serve_challenges(config.http_addr, challenges.clone()).await?;
    let files = CertFiles::new(&config.dir);
    let acme = Acme {
        config,
        challenges,
        files,
    };
    match acme.files.read() {
        Some(kept) if kept.covers(&acme.config.domains) && kept.not_after > SystemTime::now() => {
            gauge_expiry(&kept);
            tracing::info!(
                expires = %humantime::format_rfc3339_seconds(kept.not_after),
                "ACME: serving the certificate kept in {}",
                acme.config.dir.display()
            );
        }
        kept => {
            if kept.is_some() {
                tracing::info!("ACME: the kept certificate has expired or does not name every --acme-domain; getting a new one");
            }
            acme.obtain()
                .await
                .context("getting the first certificate over ACME")?;
        }
    }
    let tls = blindstore_web::Tls::load(&acme.files.cert, &acme.files.key)
        .map_err(|e| anyhow::anyhow!("loading the ACME certificate: {e}"))?;
    tokio::spawn(acme.keep_renewed(tls.clone()));
    Ok(tls)
}

struct Acme {
    config: AcmeConfig,
    challenges: Challenges,
    files: CertFiles,
}

impl Acme {
    /// Renews whenever two thirds of the certificate's lifetime have passed; a failure is
    /// logged and tried again later (the current certificate stays in use).
    async fn keep_renewed(self, tls: Arc<blindstore_web::Tls>) {
        let mut retry = RETRY_FIRST;
        loop {
            let due = self.files.read().map(|kept| kept.renew_at());
            let wait = due
                .and_then(|at| at.duration_since(SystemTime::now()).ok())
                .unwrap_or_default();
            if !wait.is_zero() {
                tokio::time::sleep(wait.min(LOOK_EVERY)).await;
                continue;
            }
            tracing::info!("ACME: renewing the certificate");
            let renewed = self.obtain().await.and_then(|()| {
                tls.reload()
                    .map_err(|e| anyhow::anyhow!("loading the renewed certificate: {e}"))
            });
            match renewed {
                Ok(()) => {
                    retry = RETRY_FIRST;
                    metrics::counter!("blindstore_acme_renewals_total", "result" => "ok")
                        .increment(1);
                }
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        retry_in_s = retry.as_secs(),
                        "ACME: renewal failed; the current certificate stays in use"
                    );
                    metrics::counter!("blindstore_acme_renewals_total", "result" => "failed")
                        .increment(1);
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// One order, start to end: the new certificate and key written in place.
    async fn obtain(&self) -> anyhow::Result<()> {
        let attempt = tokio::time::timeout(ATTEMPT, self.order());
        let (cert, key) = match attempt.await {
            Ok(got) => got?,
            Err(_) => bail!(
                "no certificate within {}s from {}",
                ATTEMPT.as_secs(),
                self.config.directory
            ),
        };
        self.files.write(&cert, &key)?;
        let kept = self
            .files
            .read()
            .context("the certificate just written cannot be read back")?;
        tracing::info!(
            domains = self.config.domains.join(","),
            expires = %humantime::format_rfc3339_seconds(kept.not_after),
            "ACME: certificate issued"
        );
        gauge_expiry(&kept);
        Ok(())
    }

    async fn order(&self) -> anyhow::Result<(String, String)> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .config
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .context("placing the order")?;
        let mut tokens = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.context("reading an authorization")?;
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => bail!(
                    "the authorization for {} is {other:?}",
                    authorization.identifier()
                ),
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Http01)
                .context("the ACME server offers no HTTP-01 challenge")?;
            self.challenges.lock().expect("challenges").insert(
                challenge.token.clone(),
                challenge.key_authorization().as_str().to_owned(),
            );
            tokens.push(challenge.token.clone());
            challenge
                .set_ready()
                .await
                .context("telling the ACME server the challenge is ready")?;
        }
        let status = order
            .poll_ready(&RetryPolicy::new().timeout(ATTEMPT))
            .await
            .with_context(|| {
                format!(
                    "the ACME server did not validate {} (it fetches \
                     http://<name>/.well-known/acme-challenge/<token> on port 80, answered here \
                     on {})",
                    self.config.domains.join(", "),
                    self.config.http_addr
                )
            });
        let forget = |tokens: &[String]| {
            let mut challenges = self.challenges.lock().expect("challenges");
            for token in tokens {
                challenges.remove(token);
            }
        };
        let status = match status {
            Ok(status) => status,
            Err(e) => {
                forget(&tokens);
                return Err(e);
            }
        };
        forget(&tokens);
        if status != OrderStatus::Ready {
            bail!(
                "the ACME server did not validate {}: {}",
                self.config.domains.join(", "),
                why_invalid(&mut order).await
            );
        }
        let key = order.finalize().await.context("finalizing the order")?;
        let cert = order
            .poll_certificate(&RetryPolicy::new().timeout(ATTEMPT))
            .await
            .context("downloading the certificate")?;
        Ok((cert, key))
    }

    /// The account kept for this directory, or a new one (kept, 0600).
    async fn account(&self) -> anyhow::Result<Account> {
        let builder = || match &self.config.ca_cert {
            Some(root) => Account::builder_with_root(root)
                .with_context(|| format!("trusting {} for the ACME server", root.display())),
            None => Account::builder().context("setting up the ACME client"),
        };
        let path = self.config.dir.join("account.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let kept: KeptAccount = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", path.display()))?;
            if kept.directory == self.config.directory {
                return builder()?
                    .from_credentials(kept.credentials)
                    .await
                    .with_context(|| format!("reaching {}", self.config.directory));
            }
            tracing::info!(
                directory = self.config.directory,
                "ACME: the kept account belongs to another directory; registering a new one"
            );
        }
        let contact: Vec<String> = self
            .config
            .email
            .iter()
            .map(|e| format!("mailto:{e}"))
            .collect();
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory.clone(),
                None,
            )
            .await
            .with_context(|| format!("registering an account at {}", self.config.directory))?;
        let kept = KeptAccount {
            directory: self.config.directory.clone(),
            credentials,
        };
        write_private(&path, serde_json::to_string(&kept)?.as_bytes())?;
        tracing::info!(
            directory = self.config.directory,
            "ACME: account registered"
        );
        Ok(account)
    }
}

/// What the ACME server said about a failed validation.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authorization)) = authorizations.next().await {
        for challenge in &authorization.challenges {
            if let Some(problem) = &challenge.error {
                reasons.push(format!(
                    "{}: {}",
                    authorization.identifier(),
                    problem.detail.as_deref().unwrap_or("no detail")
                ));
            }
        }
    }
    if reasons.is_empty() {
        "no reason given".into()
    } else {
        reasons.join("; ")
    }
}

#[derive(Serialize, Deserialize)]
struct KeptAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// The certificate and key files in `<data_dir>/acme/`.
struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
}

/// What matters of a kept certificate.
struct Kept {
    names: Vec<String>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Kept {
    fn covers(&self, domains: &[String]) -> bool {
        domains
            .iter()
            .all(|d| self.names.iter().any(|n| n.eq_ignore_ascii_case(d)))
    }

    /// Two thirds into its lifetime (Let's Encrypt's 90 days: 30 days before expiry).
    fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + lifetime * 2 / 3
    }
}

impl CertFiles {
    fn new(dir: &Path) -> Self {
        Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// The kept certificate, if there is a readable one with its key.
    fn read(&self) -> Option<Kept> {
        if !self.key.exists() {
            return None;
        }
        let pem = std::fs::read(&self.cert).ok()?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
        let cert = pem.parse_x509().ok()?;
        let names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let at = |t: x509_parser::time::ASN1Time| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
        };
        Some(Kept {
            names,
            not_before: at(cert.validity().not_before),
            not_after: at(cert.validity().not_after),
        })
    }

    /// Replaces both files, each whole (written aside, synced, renamed), the key first.
    fn write(&self, cert: &str, key: &str) -> anyhow::Result<()> {
        write_private(&self.key, key.as_bytes())?;
        write_private(&self.cert, cert.as_bytes())
    }
}

/// Writes `path` whole with mode 0600: aside, synced, renamed over.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let aside = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)
        .with_context(|| format!("writing {}", aside.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", aside.display()))?;
    std::fs::rename(&aside, path).with_context(|| format!("replacing {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

fn gauge_expiry(kept: &Kept) {
    let at = kept
        .not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!("blindstore_tls_certificate_expiry_seconds").set(at.as_secs_f64());
}

/// The HTTP-01 listener: challenge answers, and a redirect to HTTPS for anything else.
async fn serve_challenges(addr: SocketAddr, challenges: Challenges) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or forward port 80 to \
             another --acme-http-addr)"
        } else {
            ""
        };
        anyhow::anyhow!("binding {addr} for ACME HTTP-01 challenges: {e}{hint}")
    })?;
    let bound = listener.local_addr().context("reading the bound address")?;
    tracing::info!(addr = %bound, "ACME: answering HTTP-01 challenges");
    let app = Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer))
        .fallback(to_https)
        .with_state(challenges);
    let limits = blindstore_web::ServerLimits::default();
    let app = blindstore_web::limited(app, &limits);
    tokio::spawn(blindstore_web::serve(
        listener,
        app,
        limits,
        None,
        std::future::pending(),
    ));
    Ok(())
}

async fn answer(State(challenges): State<Challenges>, UrlPath(token): UrlPath<String>) -> Response {
    match challenges.lock().expect("challenges").get(&token) {
        Some(answer) => {
            ([(CONTENT_TYPE, "application/octet-stream")], answer.clone()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such challenge\n").into_response(),
    }
}

/// Plain HTTP on port 80 is only for challenges: everything else goes to HTTPS.
async fn to_https(headers: HeaderMap, uri: Uri) -> Response {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return (StatusCode::BAD_REQUEST, "no Host header\n").into_response();
    };
    let host = host.split(':').next().unwrap_or(host);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    (
        StatusCode::PERMANENT_REDIRECT,
        [(LOCATION, format!("https://{host}{path}"))],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_names_not_addresses_or_wildcards() {
        assert!(check_domain("node1.example.com").is_ok());
        assert!(check_domain("a-b.example").is_ok());
        for bad in [
            "",
            "localhost",
            "127.0.0.1",
            "*.example.com",
            "-a.example.com",
            "a..example.com",
            "a_b.example.com",
        ] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn renewal_is_due_two_thirds_into_the_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let kept = Kept {
            names: vec!["a.example.com".into()],
            not_before: start,
            not_after: start + Duration::from_secs(90 * 86_400),
        };
        assert_eq!(kept.renew_at(), start + Duration::from_secs(60 * 86_400));
        assert!(kept.covers(&["A.example.com".into()]));
        assert!(!kept.covers(&["a.example.com".into(), "b.example.com".into()]));
    }
}
