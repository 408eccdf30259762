//! The zones room of the state machine: zone records, quotas and settings, and the site host
//! table derived from the settings (each host belongs to one zone, checked on apply).

use heed::{RwTxn, WithoutTls};

use blindstore_types::account::{ZoneSettings, ZoneSettingsV1};
use blindstore_types::command::{CommandResponse, Quota, Rejection, ZoneRecord, ZoneRemoved};
use blindstore_types::record::encode;
use blindstore_types::ZoneId;

use crate::store::{StateMachineStore, Tables};
use crate::{decode, StorageError};

impl StateMachineStore {
    pub fn zone(&self, zone: &ZoneId) -> Result<Option<ZoneRecord>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .tables
            .zones
            .get(&rtxn, zone.as_str())?
            .map(|b| decode("zone", b))
            .transpose()
    }

    /// All zones, in id order.
    pub fn zones(&self) -> Result<Vec<(ZoneId, ZoneRecord)>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.inner.tables.zones.iter(&rtxn)? {
            let (id, bytes) = item?;
            let zone = ZoneId::new(id)
                .map_err(|e| StorageError::MalformedKey(format!("zone key {id:?}: {e}")))?;
            out.push((zone, decode("zone", bytes)?));
        }
        Ok(out)
    }

    /// A zone's quotas (the defaults unless set).
    pub fn quota(&self, zone: &ZoneId) -> Result<Quota, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        read_quota(&self.inner.tables, &rtxn, zone)
    }

    /// A zone's settings (the defaults unless set).
    pub fn zone_settings(&self, zone: &ZoneId) -> Result<ZoneSettings, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        read_settings(&self.inner.tables, &rtxn, zone)
    }

    /// The settings of every zone whose settings were set.
    pub fn zone_settings_all(&self) -> Result<Vec<(ZoneId, ZoneSettings)>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        let mut out = Vec::new();
        for item in self.inner.tables.settings.iter(&rtxn)? {
            let (key, _) = item?;
            let zone = std::str::from_utf8(key)
                .ok()
                .and_then(|z| ZoneId::new(z).ok())
                .ok_or_else(|| StorageError::MalformedKey("settings key".into()))?;
            let settings = read_settings(&self.inner.tables, &rtxn, &zone)?;
            out.push((zone, settings));
        }
        Ok(out)
    }

    /// The zone whose settings list site host `host`, if any.
    pub fn zone_for_host(&self, host: &str) -> Result<Option<ZoneId>, StorageError> {
        let rtxn = self.inner.env.read_txn()?;
        self.inner
            .tables
            .site_hosts
            .get(&rtxn, host)?
            .map(|z| {
                ZoneId::new(z).map_err(|_| StorageError::MalformedKey("site host zone".into()))
            })
            .transpose()
    }
}

pub(crate) fn get_zone(
    t: &Tables,
    wtxn: &RwTxn,
    zone: &ZoneId,
) -> Result<Option<ZoneRecord>, StorageError> {
    t.zones
        .get(wtxn, zone.as_str())?
        .map(|b| decode("zone", b))
        .transpose()
}

pub(crate) fn read_settings(
    t: &Tables,
    txn: &heed::RoTxn<WithoutTls>,
    zone: &ZoneId,
) -> Result<ZoneSettings, StorageError> {
    match t.settings.get(txn, zone.as_str().as_bytes())? {
        // Settings stored before passkeys existed have the older, shorter layout.
        Some(bytes) => decode("zone settings", bytes).or_else(|e| {
            decode::<ZoneSettingsV1>("zone settings", bytes)
                .map(ZoneSettings::from)
                .map_err(|_| e)
        }),
        None => Ok(ZoneSettings::default()),
    }
}

/// Fills the site host table from the zones' settings. A host two zones list (possible in
/// state written before the table was kept) goes to the first zone in key order.
/// Deletes `zone` and every row that belongs to it, in one transaction.
pub(crate) fn delete(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
) -> Result<CommandResponse, StorageError> {
    if get_zone(t, wtxn, &zone)?.is_none() {
        return Ok(CommandResponse::Rejected(Rejection::UnknownZone));
    }
    let name = zone.as_str().as_bytes();
    // `u8 len(zone) || zone` starts every per-zone key (zk, ak, site and passkey-id keys).
    let mut prefix = vec![name.len() as u8];
    prefix.extend_from_slice(name);
    let a = &t.accounts;
    let mut gone = |db| delete_prefix(db, wtxn, &prefix);
    let removed = ZoneRemoved {
        chains: gone(t.chains)?,
        entries: gone(t.entries)?,
        chunk_refs: gone(t.refs)?,
        accounts: gone(a.accounts)?,
        sessions: gone(a.sessions)?,
        envelopes: gone(a.envelopes)?,
        passkeys: gone(a.passkeys)?,
        invites: gone(a.invites)?,
        site_versions: gone(t.sites)?,
    };
    for db in [t.payloads, a.account_sessions, a.passkey_ids] {
        delete_prefix(db, wtxn, &prefix)?;
    }
    // Tables keyed by the zone id alone.
    for db in [
        t.quotas,
        t.settings,
        t.site_current,
        a.zone_auth,
        a.registration,
        a.usage,
    ] {
        db.delete(wtxn, name)?;
    }
    t.zones.delete(wtxn, zone.as_str())?;
    rebuild_site_hosts(t, wtxn)?;
    Ok(CommandResponse::ZoneDeleted(removed))
}

/// Deletes every row of `db` whose key starts with `prefix`; how many.
fn delete_prefix(
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
    wtxn: &mut RwTxn,
    prefix: &[u8],
) -> Result<u64, StorageError> {
    let keys: Vec<Vec<u8>> = db
        .prefix_iter(wtxn, prefix)?
        .map(|item| item.map(|(k, _)| k.to_vec()))
        .collect::<Result<_, _>>()?;
    for key in &keys {
        db.delete(wtxn, key)?;
    }
    Ok(keys.len() as u64)
}

pub(crate) fn rebuild_site_hosts(t: &Tables, wtxn: &mut RwTxn) -> Result<(), StorageError> {
    t.site_hosts.clear(wtxn)?;
    let mut zones = Vec::new();
    for item in t.settings.iter(wtxn)? {
        let (key, _) = item?;
        let zone = std::str::from_utf8(key)
            .ok()
            .and_then(|z| ZoneId::new(z).ok())
            .ok_or_else(|| StorageError::MalformedKey("settings key".into()))?;
        zones.push(zone);
    }
    for zone in zones {
        for host in read_settings(t, wtxn, &zone)?.site_hosts {
            if t.site_hosts.get(wtxn, &host)?.is_none() {
                t.site_hosts.put(wtxn, &host, zone.as_str())?;
            }
        }
    }
    Ok(())
}

pub(crate) fn read_quota(
    t: &Tables,
    txn: &heed::RoTxn<WithoutTls>,
    zone: &ZoneId,
) -> Result<Quota, StorageError> {
    match t.quotas.get(txn, zone.as_str().as_bytes())? {
        Some(bytes) => decode("quota", bytes),
        None => Ok(Quota::default()),
    }
}

pub(crate) fn create(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
    created_at_ms: u64,
) -> Result<CommandResponse, StorageError> {
    if t.zones.get(wtxn, zone.as_str())?.is_some() {
        return Ok(CommandResponse::ZoneCreated { created: false });
    }
    let record = ZoneRecord {
        created_at_ms,
        chains: 0,
        entries: 0,
        payload_bytes: 0,
    };
    t.zones.put(wtxn, zone.as_str(), &encode(&record))?;
    Ok(CommandResponse::ZoneCreated { created: true })
}

/// Sets a zone's settings, keeping the site host table: a host another zone has is refused.
pub(crate) fn set_settings(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
    settings: ZoneSettings,
) -> Result<CommandResponse, StorageError> {
    if get_zone(t, wtxn, &zone)?.is_none() {
        return Ok(CommandResponse::Rejected(Rejection::UnknownZone));
    }
    for host in &settings.site_hosts {
        match t.site_hosts.get(wtxn, host)? {
            Some(owner) if owner != zone.as_str() => {
                let owner = ZoneId::new(owner)
                    .map_err(|_| StorageError::MalformedKey("site host zone".into()))?;
                return Ok(CommandResponse::Rejected(Rejection::SiteHostTaken {
                    host: host.clone(),
                    zone: owner,
                }));
            }
            _ => {}
        }
    }
    let before = read_settings(t, wtxn, &zone)?;
    for host in &before.site_hosts {
        if t.site_hosts.get(wtxn, host)? == Some(zone.as_str()) {
            t.site_hosts.delete(wtxn, host)?;
        }
    }
    for host in &settings.site_hosts {
        t.site_hosts.put(wtxn, host, zone.as_str())?;
    }
    t.settings
        .put(wtxn, zone.as_str().as_bytes(), &encode(&settings))?;
    Ok(CommandResponse::ZoneSettingsSet)
}

pub(crate) fn set_quota(
    t: &Tables,
    wtxn: &mut RwTxn,
    zone: ZoneId,
    quota: Quota,
) -> Result<CommandResponse, StorageError> {
    if get_zone(t, wtxn, &zone)?.is_none() {
        return Ok(CommandResponse::Rejected(Rejection::UnknownZone));
    }
    t.quotas
        .put(wtxn, zone.as_str().as_bytes(), &encode(&quota))?;
    Ok(CommandResponse::QuotaSet)
}
