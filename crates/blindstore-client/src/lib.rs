//! A typed client for Blindstore's HTTP API v1.
//!
//! [`Client`] speaks the API; [`ChainWriter`] holds a chain's write key and signs entries
//! exactly as docs/entry-format.md says; [`verify_entries`] checks what a read returned, the way any
//! reader should. Used by the CLI, the tests, benchmarks and the fault-injection harness.
//!
//! The client never retries: every error says whether the request certainly had no effect
//! ([`ClientError::is_definite`]) or may have had one.

mod accounts;

pub use accounts::Session;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use blindstore_types::api::{
    AppendRequest, AppendResponse, Chain, ClusterMembers, CreateChainRequest, Entries, Entry,
    ErrorBody, ErrorCode, Health, MissingChunksRequest, MissingChunksResponse, NodeChange,
    Replicas, Zone, ZoneList, ZoneQuota, ZoneSettingsChange,
};
use blindstore_types::entry::{chain_id, genesis, UnsignedEntry};
use blindstore_types::{ChainId, Hash32, PublicKey, Signature, ZoneId};
use ed25519_dalek::SigningKey;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e)
    }
}

/// An error and its causes, each said once: `a: b: c`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an API error.
    #[error("{status} {}: {}", body.error.code, body.error.message)]
    Api { status: StatusCode, body: ErrorBody },
    /// The request could not be sent or the answer not received. Its message says the whole
    /// chain of causes once (it is not also given as a source, which would repeat it).
    #[error("transport: {}", chain(.0))]
    Transport(reqwest::Error),
    /// The server answered something that is not the documented body.
    #[error("unexpected response ({status}): {detail}")]
    Unexpected { status: StatusCode, detail: String },
    /// The client's side of a login or registration failed: a wrong password or an unknown
    /// account (OPAQUE cannot tell them apart), or a malformed server message.
    #[error("login: {0}")]
    Login(#[from] blindstore_auth::AuthError),
}

impl ClientError {
    /// The API error code (`index_conflict`, `unknown_zone`...), if the server gave one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error.code),
            _ => None,
        }
    }

    /// For `envelope_conflict`: the envelope's current version (0: it does not exist).
    pub fn envelope_version(&self) -> Option<u64> {
        match self {
            ClientError::Api { body, .. } if body.error.code == ErrorCode::EnvelopeConflict => {
                body.error.version
            }
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => {
                Some(*status)
            }
            ClientError::Transport(e) => e.status(),
            ClientError::Login(_) => None,
        }
    }

    /// True if the request certainly had no effect: an API error other than
    /// `outcome_unknown`, or a connection that was never established.
    pub fn is_definite(&self) -> bool {
        match self {
            // A code this build does not know (a newer server): definite only as a 4xx.
            ClientError::Api { body, status } => match body.error.code {
                ErrorCode::OutcomeUnknown => false,
                ErrorCode::Unknown => status.is_client_error(),
                _ => true,
            },
            ClientError::Transport(e) => e.is_connect(),
            ClientError::Unexpected { .. } => false,
            ClientError::Login(_) => true,
        }
    }

    /// For `index_conflict`: the chain's current length and head.
    pub fn conflict(&self) -> Option<(u64, Hash32)> {
        match self {
            ClientError::Api { body, .. } if body.error.code == ErrorCode::IndexConflict => {
                Some((body.length?, body.head?))
            }
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// A client of one node's HTTP API.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    admin_token: Option<String>,
}

impl Client {
    /// `base` is the node's URL, e.g. `http://127.0.0.1:8080`. Requests time out after 30 s.
    pub fn new(base: &str) -> Self {
        Self::with_timeout(base, Duration::from_secs(30))
    }

    /// Like [`Client::new`], with requests that give up after `timeout` (an unknown outcome:
    /// see [`ClientError::is_definite`]).
    pub fn with_timeout(base: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .build()
            .expect("a client with default TLS-less settings builds");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            admin_token: None,
        }
    }

    /// Sends `Authorization: Bearer <token>` on admin requests.
    pub fn with_admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_owned());
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.base, path))
    }

    fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.request(method, path);
        match &self.admin_token {
            Some(t) => builder.bearer_auth(t),
            None => builder,
        }
    }

    /// The membership as the node sees it (admin).
    pub async fn cluster(&self) -> Result<ClusterMembers> {
        json(self.admin(Method::GET, "/v1/admin/cluster").send().await?).await
    }

    /// The members, each with its own health as the node could ask it (admin).
    pub async fn cluster_overview(&self) -> Result<blindstore_types::api::ClusterOverview> {
        json(
            self.admin(Method::GET, "/v1/admin/cluster/overview")
                .send()
                .await?,
        )
        .await
    }

    /// The chunks most asked of the node or gateway since it started (admin).
    pub async fn most_requested(&self) -> Result<blindstore_types::api::MostRequested> {
        json(
            self.admin(Method::GET, "/v1/admin/chunks/most-requested")
                .send()
                .await?,
        )
        .await
    }

    /// The nodes holding a chunk, and those that should (admin).
    pub async fn replicas(&self, zone: &ZoneId, hash: &Hash32) -> Result<Replicas> {
        let path = format!("/v1/admin/zones/{zone}/chunks/{hash}/replicas");
        json(self.admin(Method::GET, &path).send().await?).await
    }

    /// Starts draining a node (admin).
    pub async fn drain(&self, node_id: u64) -> Result<NodeChange> {
        let path = format!("/v1/admin/cluster/nodes/{node_id}/drain");
        json(self.admin(Method::POST, &path).send().await?).await
    }

    /// Stops draining a node: it owns chunks again (admin; send it to the leader).
    pub async fn undrain(&self, node_id: u64) -> Result<NodeChange> {
        let path = format!("/v1/admin/cluster/nodes/{node_id}/drain");
        json(self.admin(Method::DELETE, &path).send().await?).await
    }

    /// Removes a node (admin; send it to the leader).
    pub async fn remove_node(
        &self,
        node_id: u64,
        force: bool,
        below_three_voters: bool,
    ) -> Result<NodeChange> {
        let path = format!("/v1/admin/cluster/nodes/{node_id}");
        let request = self
            .admin(Method::DELETE, &path)
            .query(&[("force", force), ("below_three_voters", below_three_voters)]);
        json(request.send().await?).await
    }

    /// Replaces the cluster's join token (admin); members keep using the old one for `grace`.
    pub async fn rotate_join_token(
        &self,
        grace: Option<std::time::Duration>,
    ) -> Result<blindstore_types::api::RotatedToken> {
        let body = blindstore_types::api::RotateToken {
            grace_seconds: grace.map(|g| g.as_secs()),
        };
        let request = self.admin(Method::POST, "/v1/admin/cluster/rotate-token");
        json(request.json(&body).send().await?).await
    }

    /// Replaces the cluster's `admin` or `metrics` credential; the new token(s), shown once.
    pub async fn rotate_credential(
        &self,
        credential: &str,
    ) -> Result<blindstore_types::api::RotatedCredential> {
        let body = blindstore_types::api::RotateCredential {
            credential: credential.to_owned(),
        };
        let request = self.admin(Method::POST, "/v1/admin/cluster/credentials/rotate");
        json(request.json(&body).send().await?).await
    }

    pub async fn health(&self) -> Result<Health> {
        json(self.request(Method::GET, "/v1/health").send().await?).await
    }

    /// Deletes a zone and everything in it (admin); what was removed.
    pub async fn delete_zone(
        &self,
        zone: &ZoneId,
    ) -> Result<blindstore_types::command::ZoneRemoved> {
        let path = format!("/v1/admin/zones/{zone}");
        json(self.admin(Method::DELETE, &path).send().await?).await
    }

    /// Creates a zone; returns whether it was new, and the zone.
    pub async fn create_zone(&self, zone: &ZoneId) -> Result<(bool, Zone)> {
        let response = self
            .admin(Method::PUT, &format!("/v1/admin/zones/{zone}"))
            .send()
            .await?;
        let created = response.status() == StatusCode::CREATED;
        Ok((created, json(response).await?))
    }

    /// Sets a zone's quotas; fields left out keep their values (admin). The quotas now in force.
    pub async fn set_quota(&self, zone: &ZoneId, change: &ZoneQuota) -> Result<ZoneQuota> {
        let path = format!("/v1/admin/zones/{zone}/quota");
        json(self.admin(Method::PUT, &path).json(change).send().await?).await
    }

    /// Changes a zone's settings; fields left out keep their values (admin).
    pub async fn set_zone_settings(
        &self,
        zone: &ZoneId,
        change: &ZoneSettingsChange,
    ) -> Result<blindstore_types::account::ZoneSettings> {
        let path = format!("/v1/admin/zones/{zone}/settings");
        json(self.admin(Method::PUT, &path).json(change).send().await?).await
    }

    /// Changes a zone's registration policy and caps; fields left out keep their values
    /// (admin).
    pub async fn set_registration(
        &self,
        zone: &ZoneId,
        change: &blindstore_types::api::RegistrationChange,
    ) -> Result<blindstore_types::account::RegistrationSettings> {
        let path = format!("/v1/admin/zones/{zone}/registration");
        json(self.admin(Method::PUT, &path).json(change).send().await?).await
    }

    /// Creates `count` one-time invite codes valid for `ttl_secs` (admin).
    pub async fn create_invites(
        &self,
        zone: &ZoneId,
        count: u64,
        ttl_secs: Option<u64>,
    ) -> Result<blindstore_types::api::Invites> {
        let path = format!("/v1/admin/zones/{zone}/invites");
        let body = blindstore_types::api::InviteRequest { count, ttl_secs };
        json(self.admin(Method::POST, &path).json(&body).send().await?).await
    }

    /// Publishes a site version whose chunks are all stored (admin); its number.
    pub async fn publish_site(
        &self,
        zone: &ZoneId,
        manifest: &blindstore_types::site::SiteManifest,
    ) -> Result<u64> {
        let path = format!("/v1/admin/zones/{zone}/site");
        let published: blindstore_types::api::SitePublished = json(
            self.admin(Method::POST, &path)
                .json(manifest)
                .send()
                .await?,
        )
        .await?;
        Ok(published.version)
    }

    /// The zone's site versions and the current one (admin).
    pub async fn site_versions(
        &self,
        zone: &ZoneId,
    ) -> Result<blindstore_types::api::SiteVersions> {
        let path = format!("/v1/admin/zones/{zone}/site");
        json(self.admin(Method::GET, &path).send().await?).await
    }

    /// Makes a site version current (admin).
    pub async fn set_site_version(&self, zone: &ZoneId, version: u64) -> Result<()> {
        let path = format!("/v1/admin/zones/{zone}/site/current");
        let body = blindstore_types::api::SiteSwitch { version };
        checked(self.admin(Method::PUT, &path).json(&body).send().await?).await?;
        Ok(())
    }

    pub async fn zones(&self) -> Result<Vec<Zone>> {
        let list: ZoneList = json(self.admin(Method::GET, "/v1/admin/zones").send().await?).await?;
        Ok(list.zones)
    }

    pub async fn zone(&self, zone: &ZoneId) -> Result<Zone> {
        json(
            self.admin(Method::GET, &format!("/v1/admin/zones/{zone}"))
                .send()
                .await?,
        )
        .await
    }

    /// Uploads a chunk; returns its hash and whether it was new.
    pub async fn put_chunk(&self, zone: &ZoneId, bytes: Vec<u8>) -> Result<(Hash32, bool)> {
        let hash = Hash32::digest(&bytes);
        let created = self.put_chunk_as(zone, &hash, bytes).await?;
        Ok((hash, created))
    }

    /// Uploads bytes under a given address (which the server checks).
    pub async fn put_chunk_as(&self, zone: &ZoneId, hash: &Hash32, bytes: Vec<u8>) -> Result<bool> {
        let response = self
            .request(Method::PUT, &format!("/v1/zones/{zone}/chunks/{hash}"))
            .body(bytes)
            .send()
            .await?;
        let status = response.status();
        checked(response).await?;
        Ok(status == StatusCode::CREATED)
    }

    pub async fn get_chunk(&self, zone: &ZoneId, hash: &Hash32) -> Result<Vec<u8>> {
        let response = self
            .request(Method::GET, &format!("/v1/zones/{zone}/chunks/{hash}"))
            .send()
            .await?;
        Ok(checked(response).await?.bytes().await?.to_vec())
    }

    /// The replicated state for a backup (admin), written to `out` as it arrives, with the log
    /// position it was applied up to: `(index, term)`. A write to `out` that fails ends it
    /// with that error (as `Unexpected`).
    pub async fn backup_state(&self, out: &mut impl std::io::Write) -> Result<(u64, u64)> {
        let mut response = checked(
            self.admin(Method::GET, "/v1/admin/backup/state")
                .send()
                .await?,
        )
        .await?;
        let status = response.status();
        let number = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let (Some(index), Some(term)) = (
            number("blindstore-backup-index"),
            number("blindstore-backup-term"),
        ) else {
            return Err(ClientError::Unexpected {
                status,
                detail: "no Blindstore-Backup-Index or Blindstore-Backup-Term header".into(),
            });
        };
        let position = (index, term);
        while let Some(bytes) = response.chunk().await? {
            out.write_all(&bytes).map_err(|e| ClientError::Unexpected {
                status,
                detail: format!("writing the state: {e}"),
            })?;
        }
        Ok(position)
    }

    pub async fn missing_chunks(&self, zone: &ZoneId, hashes: &[Hash32]) -> Result<Vec<Hash32>> {
        let body = MissingChunksRequest {
            hashes: hashes.to_vec(),
        };
        let response = self
            .request(Method::POST, &format!("/v1/zones/{zone}/chunks/missing"))
            .json(&body)
            .send()
            .await?;
        let answer: MissingChunksResponse = json(response).await?;
        Ok(answer.missing)
    }

    /// Creates (or finds) the chain owned by `public_key`.
    pub async fn create_chain(&self, zone: &ZoneId, public_key: &PublicKey) -> Result<Chain> {
        let body = CreateChainRequest {
            public_key: *public_key,
        };
        let response = self
            .request(Method::POST, &format!("/v1/zones/{zone}/chains"))
            .json(&body)
            .send()
            .await?;
        json(response).await
    }

    pub async fn chain(&self, zone: &ZoneId, chain: &ChainId) -> Result<Chain> {
        json(
            self.request(Method::GET, &format!("/v1/zones/{zone}/chains/{chain}"))
                .send()
                .await?,
        )
        .await
    }

    pub async fn append(
        &self,
        zone: &ZoneId,
        chain: &ChainId,
        request: &AppendRequest,
    ) -> Result<AppendResponse> {
        let response = self
            .request(
                Method::POST,
                &format!("/v1/zones/{zone}/chains/{chain}/entries"),
            )
            .json(request)
            .send()
            .await?;
        json(response).await
    }

    /// `?from=&limit=`; `stale` asks for `consistency=stale`.
    pub async fn entries(
        &self,
        zone: &ZoneId,
        chain: &ChainId,
        from: u64,
        limit: usize,
        stale: bool,
    ) -> Result<Entries> {
        let mut query = vec![("from", from.to_string()), ("limit", limit.to_string())];
        if stale {
            query.push(("consistency", "stale".into()));
        }
        let response = self
            .request(
                Method::GET,
                &format!("/v1/zones/{zone}/chains/{chain}/entries"),
            )
            .query(&query)
            .header(reqwest::header::ACCEPT, ENTRIES_ACCEPT)
            .send()
            .await?;
        entries_answer(response).await
    }

    /// `?last=n`.
    pub async fn last_entries(&self, zone: &ZoneId, chain: &ChainId, n: usize) -> Result<Entries> {
        let response = self
            .request(
                Method::GET,
                &format!("/v1/zones/{zone}/chains/{chain}/entries"),
            )
            .query(&[("last", n)])
            .header(reqwest::header::ACCEPT, ENTRIES_ACCEPT)
            .send()
            .await?;
        entries_answer(response).await
    }

    /// Every entry of a chain, following `next` (linearizable reads).
    pub async fn all_entries(&self, zone: &ZoneId, chain: &ChainId) -> Result<Vec<Entry>> {
        self.all_entries_as(zone, chain, false).await
    }

    /// Every entry of a chain, following `next`; `stale` reads each page with
    /// `consistency=stale`. Entries never change, so the pages add up to the chain as it was
    /// when the last page was read.
    pub async fn all_entries_as(
        &self,
        zone: &ZoneId,
        chain: &ChainId,
        stale: bool,
    ) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let page = self.entries(zone, chain, from, 1000, stale).await?;
            out.extend(page.entries);
            match page.next {
                Some(next) => from = next,
                None => return Ok(out),
            }
        }
    }
}

/// Holds a chain's write key and signs entries for it.
#[derive(Clone)]
pub struct ChainWriter {
    key: SigningKey,
    zone: ZoneId,
    public_key: PublicKey,
    chain_id: ChainId,
}

impl ChainWriter {
    pub fn new(zone: ZoneId, key: SigningKey) -> Self {
        let public_key = PublicKey(key.verifying_key().to_bytes());
        Self {
            chain_id: chain_id(&public_key),
            key,
            zone,
            public_key,
        }
    }

    /// A writer with a fresh random key.
    pub fn generate(zone: ZoneId) -> Self {
        Self::new(zone, SigningKey::from_bytes(&rand_seed()))
    }

    pub fn zone(&self) -> &ZoneId {
        &self.zone
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    pub fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    pub fn genesis(&self) -> Hash32 {
        genesis(&self.chain_id)
    }

    /// The append request for `payload` at `index` after `prev`, signed; and its entry hash.
    pub fn sign(
        &self,
        index: u64,
        prev: Hash32,
        payload: &[u8],
        chunks: Vec<Hash32>,
    ) -> (AppendRequest, Hash32) {
        let signed = UnsignedEntry::new(
            self.zone.clone(),
            self.chain_id,
            index,
            prev,
            payload,
            chunks,
        )
        .sign(&self.key);
        let header = signed.header();
        let request = AppendRequest {
            index,
            prev,
            payload: URL_SAFE_NO_PAD.encode(payload),
            chunks: header.chunks.clone(),
            signature: header.signature,
        };
        (request, header.entry_hash)
    }
}

/// Checks entries as read from the API against docs/entry-format.md: each is signed by `public_key`,
/// its payload hashes to `payload_hash`, its `entry_hash` is right, and each `prev` is the
/// previous entry's hash (the first one's is `prev`, e.g. the genesis). Returns the hash of
/// the last entry (or `prev` if there are none).
pub fn verify_entries(
    zone: &ZoneId,
    public_key: &PublicKey,
    prev: Hash32,
    entries: &[Entry],
) -> std::result::Result<Hash32, String> {
    let id = chain_id(public_key);
    let mut expected_prev = prev;
    for entry in entries {
        let payload = URL_SAFE_NO_PAD
            .decode(&entry.payload)
            .map_err(|_| format!("entry {}: payload is not base64url", entry.index))?;
        if entry.prev != expected_prev {
            return Err(format!(
                "entry {}: prev does not link to the previous entry",
                entry.index
            ));
        }
        let unsigned = UnsignedEntry::new(
            zone.clone(),
            id,
            entry.index,
            entry.prev,
            &payload,
            entry.chunks.clone(),
        );
        if unsigned.payload_hash != entry.payload_hash {
            return Err(format!(
                "entry {}: payload does not match payload_hash",
                entry.index
            ));
        }
        let header = unsigned
            .with_signature(Signature(entry.signature.0))
            .verify(public_key)
            .map_err(|e| format!("entry {}: {e}", entry.index))?;
        if header.entry_hash != entry.entry_hash {
            return Err(format!("entry {}: entry_hash is wrong", entry.index));
        }
        expected_prev = header.entry_hash;
    }
    Ok(expected_prev)
}

fn rand_seed() -> [u8; 32] {
    rand::random()
}

async fn checked(response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await?;
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Err(ClientError::Api { status, body }),
        Err(_) => Err(ClientError::Unexpected {
            status,
            detail: text,
        }),
    }
}

/// Entries reads ask for the compact binary form, and take JSON from servers that only have it.
const ENTRIES_ACCEPT: &str = "application/vnd.blindstore.entries, application/json;q=0.5";

/// An entries answer in either form.
async fn entries_answer(response: Response) -> Result<Entries> {
    let response = checked(response).await?;
    let binary = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(blindstore_types::entries_binary::CONTENT_TYPE));
    if !binary {
        return json_body(response).await;
    }
    let status = response.status();
    let bytes = response.bytes().await?;
    blindstore_types::entries_binary::decode(&bytes).map_err(|e| ClientError::Unexpected {
        status,
        detail: e.to_string(),
    })
}

async fn json<T: DeserializeOwned>(response: Response) -> Result<T> {
    json_body(checked(response).await?).await
}

/// The JSON body of an answer already checked for an error status.
async fn json_body<T: DeserializeOwned>(response: Response) -> Result<T> {
    let status = response.status();
    let text = response.text().await?;
    serde_json::from_str(&text).map_err(|e| ClientError::Unexpected {
        status,
        detail: format!("{e}: {text}"),
    })
}
