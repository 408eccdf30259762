//! The sites room of the state machine: site versions (their manifests reference chunks, so
//! those are never collected) and each zone's current version.

use heed::{RwTxn, WithoutTls};

use blindstore_types::command::{CommandResponse, Rejection};
use blindstore_types::record::encode;
use blindstore_types::site::{SiteManifest, SiteVersionRecord};
use blindstore_types::ZoneId;

use crate::store::{StateMachineStore, Tables};
use crate::zones::get_zone;
use crate::{decode, zone_key, StorageError};

impl StateMachineStore {
    /// The zone's current site version and its manifest, if it has a site.
    pub fn current_site(
        &self,
        zone: &ZoneId,
    ) -> Result<Option<(u64, SiteVersionRecord)>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let t = &self.inner.tables;
        let Some(version) = current_site_version(t, &rtxn, zone)? else {
            return Ok(None);
        };
        let record = t
            .sites
            .get(&rtxn, &site_key(zone, version))?
            .map(|b| decode("site version", b))
            .transpose()?
            .ok_or_else(|| StorageError::MalformedKey("current site version missing".into()))?;
        Ok(Some((version, record)))
    }

    /// The zone's current site version number, if it has a site.
    pub fn current_site_version(&self, zone: &ZoneId) -> Result<Option<u64>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        current_site_version(&self.inner.tables, &rtxn, zone)
    }

    /// Every site version of the zone, oldest first.
    pub fn site_versions(
        &self,
        zone: &ZoneId,
    ) -> Result<Vec<(u64, SiteVersionRecord)>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let prefix = site_key(zone, 0);
        let prefix = &prefix[..prefix.len() - 8];
        let mut out = Vec::new();
        for item in self.inner.tables.sites.prefix_iter(&rtxn, prefix)? {
            let (key, bytes) = item?;
            let version = u64::from_be_bytes(
                key[prefix.len()..]
                    .try_into()
                    .map_err(|_| StorageError::MalformedKey("site version key".into()))?,
            );
            out.push((version, decode("site version", bytes)?));
        }
        Ok(out)
    }
}

/// `u8 len(zone) || zone || u64 version` (big-endian).
pub(crate) fn site_key(zone: &ZoneId, version: u64) -> Vec<u8> {
    let zone = zone.as_str().as_bytes();
    let mut key = Vec::with_capacity(1 + zone.len() + 8);
    key.push(zone.len() as u8);
    key.extend_from_slice(zone);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

pub(crate) fn current_site_version(
    t: &Tables,
    txn: &heed::RoTxn<WithoutTls>,
    zone: &ZoneId,
) -> Result<Option<u64>, StorageError> {
    t.site_current
        .get(txn, zone.as_str().as_bytes())?
        .map(|b| {
            b.try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StorageError::MalformedKey("current site version".into()))
        })
        .transpose()
}

/// Publishes a site version and makes it current; its chunks become referenced.
pub(crate) fn publish(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
    manifest: SiteManifest,
    created_at_ms: u64,
) -> Result<CommandResponse, StorageError> {
    if get_zone(t, wtxn, &zone)?.is_none() {
        return Ok(CommandResponse::Rejected(Rejection::UnknownZone));
    }
    let prefix = site_key(&zone, 0);
    let prefix = &prefix[..prefix.len() - 8];
    let last = match t.sites.rev_prefix_iter(wtxn, prefix)?.next() {
        Some(item) => {
            let (key, _) = item?;
            u64::from_be_bytes(
                key[prefix.len()..]
                    .try_into()
                    .map_err(|_| StorageError::MalformedKey("site version key".into()))?,
            )
        }
        None => 0,
    };
    let version = last + 1;
    for hash in manifest.chunks() {
        t.refs.put(wtxn, &zone_key(&zone, hash), &[])?;
    }
    let record = SiteVersionRecord {
        manifest,
        created_at_ms,
    };
    t.sites
        .put(wtxn, &site_key(&zone, version), &encode(&record))?;
    t.site_current
        .put(wtxn, zone.as_str().as_bytes(), &version.to_be_bytes())?;
    Ok(CommandResponse::SitePublished { version })
}

pub(crate) fn set_version(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
    version: u64,
) -> Result<CommandResponse, StorageError> {
    if t.sites.get(wtxn, &site_key(&zone, version))?.is_none() {
        return Ok(CommandResponse::Rejected(Rejection::UnknownSiteVersion));
    }
    t.site_current
        .put(wtxn, zone.as_str().as_bytes(), &version.to_be_bytes())?;
    Ok(CommandResponse::SiteVersionSet)
}
