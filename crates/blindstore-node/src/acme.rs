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
    serve_challenges(
        config.http_addr,
        challenges.clone(),
        Arc::new(config.domains.clone()),
    )
    .await?;
    let acme = Acme {
        file: config.dir.join("certificate.json"),
        config,
        challenges,
    };
    let tls = match acme.kept() {
        Ok(kept) => {
            gauge_expiry(&kept);
            tracing::info!(
                expires = %humantime::format_rfc3339_seconds(kept.not_after),
                "ACME: serving the certificate kept in {}",
                acme.file.display()
            );
            kept.tls
        }
        Err(why) => {
            tracing::info!("ACME: getting a certificate: {why}");
            let got = acme
                .obtain()
                .await
                .context("getting the first certificate over ACME")?;
            got.tls
        }
    };
    let renewing = tls.clone();
    tokio::spawn(async move { acme.keep_renewed(renewing).await });
    Ok(tls)
}

struct Acme {
    config: AcmeConfig,
    challenges: Challenges,
    /// `<data_dir>/acme/certificate.json`: the certificate, its key and the directory that
    /// issued it, in one file so they are replaced together.
    file: PathBuf,
}

impl Acme {
    /// Renews whenever two thirds of the certificate's lifetime have passed; a failure is
    /// logged and tried again later (the current certificate stays in use).
    async fn keep_renewed(self, tls: Arc<blindstore_web::Tls>) {
        let mut retry = RETRY_FIRST;
        loop {
            let kept = self.kept().ok();
            let wait = kept
                .as_ref()
                .and_then(|k| k.renew_at().duration_since(SystemTime::now()).ok())
                .unwrap_or_default();
            if !wait.is_zero() {
                tokio::time::sleep(wait.min(LOOK_EVERY)).await;
                continue;
            }
            tracing::info!("ACME: renewing the certificate");
            let renewed = self.obtain().await.and_then(|got| {
                tls.replace(got.chain.as_bytes(), got.key.as_bytes())
                    .map_err(|e| anyhow::anyhow!("serving the renewed certificate: {e}"))
                    .map(|()| got)
            });
            match renewed {
                Ok(got) => {
                    retry = RETRY_FIRST;
                    metrics::counter!("blindstore_acme_renewals_total", "result" => "ok")
                        .increment(1);
                    // Never back to back, even if the new one looks due at once (a clock
                    // ahead of the ACME server's): a sixth of its lifetime, at most 30 s.
                    let lifetime = got
                        .not_after
                        .duration_since(got.not_before)
                        .unwrap_or_default();
                    tokio::time::sleep((lifetime / 6).clamp(Duration::from_secs(1), RETRY_FIRST))
                        .await;
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

    /// One order, start to end: the new certificate, written in place.
    async fn obtain(&self) -> anyhow::Result<Kept> {
        let attempt = tokio::time::timeout(ATTEMPT, self.order());
        let (chain, key) = match attempt.await {
            Ok(got) => got?,
            Err(_) => bail!(
                "no certificate within {}s from {}",
                ATTEMPT.as_secs(),
                self.config.directory
            ),
        };
        let stored = StoredCertificate {
            directory: self.config.directory.clone(),
            chain,
            key,
        };
        let kept = stored
            .check(&self.config)
            .map_err(|e| anyhow::anyhow!("the ACME server's certificate: {e}"))?;
        write_private(&self.file, serde_json::to_string(&stored)?.as_bytes())?;
        tracing::info!(
            domains = self.config.domains.join(","),
            expires = %humantime::format_rfc3339_seconds(kept.not_after),
            "ACME: certificate issued"
        );
        gauge_expiry(&kept);
        Ok(kept)
    }

    /// The kept certificate, if it can serve now: from this directory, naming every domain,
    /// not expired, its key its own; else why not.
    fn kept(&self) -> Result<Kept, String> {
        let text = match std::fs::read_to_string(&self.file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err("none kept yet".into())
            }
            Err(e) => return Err(format!("{} is unreadable: {e}", self.file.display())),
        };
        let stored: StoredCertificate = serde_json::from_str(&text)
            .map_err(|e| format!("{} is unreadable: {e}", self.file.display()))?;
        if stored.directory != self.config.directory {
            return Err(format!(
                "the kept one comes from another ACME directory ({})",
                stored.directory
            ));
        }
        let kept = stored.check(&self.config)?;
        if kept.not_after <= SystemTime::now() {
            return Err("the kept one has expired".into());
        }
        Ok(kept)
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
        // Whatever ends this attempt (an error, the deadline dropping it), its answers go.
        let mut tokens = Answers {
            challenges: &self.challenges,
            tokens: Vec::new(),
        };
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
            tokens.tokens.push(challenge.token.clone());
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
        drop(tokens);
        let status = status?;
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

/// The challenge answers one attempt published, taken down when it ends.
struct Answers<'a> {
    challenges: &'a Challenges,
    tokens: Vec<String>,
}

impl Drop for Answers<'_> {
    fn drop(&mut self) {
        let mut challenges = self.challenges.lock().expect("challenges");
        for token in &self.tokens {
            challenges.remove(token);
        }
    }
}

/// `certificate.json`.
#[derive(Serialize, Deserialize)]
struct StoredCertificate {
    /// The ACME directory that issued it.
    directory: String,
    /// PEM, leaf first.
    chain: String,
    /// PEM.
    key: String,
}

impl StoredCertificate {
    /// What it is, if it names every domain and its key goes with it.
    fn check(&self, config: &AcmeConfig) -> Result<Kept, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.chain.as_bytes())
            .map_err(|e| format!("an unreadable certificate: {e}"))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| format!("an unreadable certificate: {e}"))?;
        let names: Vec<String> = cert
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
        if let Some(missing) = config
            .domains
            .iter()
            .find(|d| !names.iter().any(|n| n.eq_ignore_ascii_case(d)))
        {
            return Err(format!("the kept one does not name {missing}"));
        }
        let at = |t: x509_parser::time::ASN1Time| {
            SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
        };
        let tls = blindstore_web::Tls::from_pem(self.chain.as_bytes(), self.key.as_bytes())?;
        Ok(Kept {
            not_before: at(cert.validity().not_before),
            not_after: at(cert.validity().not_after),
            chain: self.chain.clone(),
            key: self.key.clone(),
            tls,
        })
    }
}

/// A certificate that can serve.
struct Kept {
    not_before: SystemTime,
    not_after: SystemTime,
    chain: String,
    key: String,
    tls: Arc<blindstore_web::Tls>,
}

impl Kept {
    /// Two thirds into its lifetime (Let's Encrypt's 90 days: 30 days before expiry).
    fn renew_at(&self) -> SystemTime {
        renew_at(self.not_before, self.not_after)
    }
}

fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_before + lifetime * 2 / 3
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
async fn serve_challenges(
    addr: SocketAddr,
    challenges: Challenges,
    domains: Arc<Vec<String>>,
) -> anyhow::Result<()> {
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
        .with_state(challenges)
        .fallback(move |headers: HeaderMap, uri: Uri| to_https(domains.clone(), headers, uri));
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

/// Plain HTTP on port 80 is only for challenges: requests for one of the certificate's names
/// go to HTTPS, anything else is not found (no redirect to a host a client made up).
async fn to_https(domains: Arc<Vec<String>>, headers: HeaderMap, uri: Uri) -> Response {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(name, _port)| name))
        .and_then(|name| domains.iter().find(|d| d.eq_ignore_ascii_case(name)));
    let Some(host) = host else {
        return (
            StatusCode::NOT_FOUND,
            "this port answers ACME challenges and redirects this node's names to HTTPS\n",
        )
            .into_response();
    };
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
    fn a_certificate_kept_from_another_directory_is_not_served() {
        let dir = std::env::temp_dir().join(format!("acme-kept-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let acme = Acme {
            config: AcmeConfig {
                domains: vec!["a.example.com".into()],
                email: None,
                directory: LETS_ENCRYPT.into(),
                ca_cert: None,
                http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                dir: dir.clone(),
            },
            challenges: Challenges::default(),
            file: dir.join("certificate.json"),
        };
        assert_eq!(acme.kept().err().as_deref(), Some("none kept yet"));
        let staging = StoredCertificate {
            directory: "https://acme-staging-v02.api.letsencrypt.org/directory".into(),
            chain: String::new(),
            key: String::new(),
        };
        std::fs::write(&acme.file, serde_json::to_string(&staging).unwrap()).unwrap();
        let why = acme.kept().err().unwrap();
        assert!(why.contains("another ACME directory"), "{why}");
        std::fs::write(&acme.file, "{").unwrap();
        assert!(acme.kept().err().unwrap().contains("unreadable"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn renewal_is_due_two_thirds_into_the_lifetime() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            renew_at(start, start + Duration::from_secs(90 * 86_400)),
            start + Duration::from_secs(60 * 86_400)
        );
    }
}
