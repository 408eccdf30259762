//! Static sites: publishing a version once every chunk of it is stored, switching versions,
//! and reading the current one. A version becomes visible in one Raft command, so a deploy
//! that is cut off changes nothing, and every node switches as it applies the command.

use std::sync::Arc;

use blindstore_types::command::{Command, CommandResponse, Rejection};
use blindstore_types::record::encode;
use blindstore_types::site::{SiteBlob, SiteManifest, SiteVersionRecord};
use blindstore_types::{Hash32, ZoneId};

use crate::error::{rejection, unexpected};
use crate::now_ms;
use crate::NodeError;

/// Largest site manifest, encoded: it travels in one Raft entry.
pub const MAX_SITE_MANIFEST_BYTES: usize = 4 << 20;

facade!(
    /// Sites: publishing versions, switching between them, reading the current one.
    Sites,
    sites
);

impl Sites<'_> {
    /// Publishes `manifest` as the zone's next site version and makes it current, if every
    /// chunk it names is stored (`MissingChunks` otherwise, and nothing changes).
    pub async fn publish_site(
        &self,
        zone: &ZoneId,
        manifest: SiteManifest,
    ) -> Result<u64, NodeError> {
        manifest.check().map_err(NodeError::BadRequest)?;
        let size = encode(&manifest).len();
        if size > MAX_SITE_MANIFEST_BYTES {
            return Err(NodeError::TooLarge {
                what: "site manifest",
                limit: MAX_SITE_MANIFEST_BYTES as u64,
            });
        }
        self.zones().require_zone_fresh(zone).await?;
        self.chunks().check_room()?;
        let mut hashes: Vec<Hash32> = manifest.chunks().copied().collect();
        hashes.sort_unstable();
        hashes.dedup();
        let mut missing = Vec::new();
        // Touched as they are checked, so garbage collection leaves them until the publish
        // commits (after which they are referenced).
        for batch in hashes.chunks(self.limits().max_missing_query.max(1)) {
            missing.extend(self.chunks().missing_anywhere(zone, batch, true).await?);
        }
        if !missing.is_empty() {
            missing.truncate(100);
            return Err(NodeError::MissingChunks(missing));
        }
        let command = Command::PublishSite {
            zone: zone.clone(),
            manifest,
            created_at_ms: now_ms(),
        };
        answer!(self.propose(command).await?, CommandResponse::SitePublished { version } => version)
    }

    /// Makes site version `version` the zone's current one.
    pub async fn set_site_version(&self, zone: &ZoneId, version: u64) -> Result<(), NodeError> {
        self.zones().require_zone_fresh(zone).await?;
        let command = Command::SetSiteVersion {
            zone: zone.clone(),
            version,
        };
        match self.propose(command).await? {
            CommandResponse::SiteVersionSet => Ok(()),
            CommandResponse::Rejected(Rejection::UnknownSiteVersion) => Err(NodeError::BadRequest(
                format!("the zone has no site version {version}"),
            )),
            CommandResponse::Rejected(r) => Err(rejection(r)),
            other => Err(unexpected(other)),
        }
    }

    /// The zone's current site version number, as this node has applied it.
    pub fn current_site_version(&self, zone: &ZoneId) -> Result<Option<u64>, NodeError> {
        Ok(self.inner.state.current_site_version(zone)?)
    }

    /// The zone's current site version and manifest, as this node has applied them.
    pub fn current_site(
        &self,
        zone: &ZoneId,
    ) -> Result<Option<(u64, Arc<SiteManifest>)>, NodeError> {
        Ok(self
            .inner
            .state
            .current_site(zone)?
            .map(|(version, record)| (version, Arc::new(record.manifest))))
    }

    /// Every site version of the zone, oldest first, after a read barrier.
    pub async fn site_versions(
        &self,
        zone: &ZoneId,
    ) -> Result<(Vec<(u64, SiteVersionRecord)>, Option<u64>), NodeError> {
        self.zones().require_zone_fresh(zone).await?;
        self.read_barrier(crate::Consistency::Linearizable).await?;
        Ok((
            self.inner.state.site_versions(zone)?,
            self.inner.state.current_site_version(zone)?,
        ))
    }

    /// A site file's bytes, each chunk verified.
    pub async fn site_blob(&self, zone: &ZoneId, blob: &SiteBlob) -> Result<Vec<u8>, NodeError> {
        let mut bytes = Vec::with_capacity(blob.len as usize);
        for hash in &blob.chunks {
            bytes.extend_from_slice(&self.chunks().fetch_chunk(zone, hash).await?);
        }
        Ok(bytes)
    }
}
