//! Zones: creating and listing them, their quotas and settings, and the site host names
//! they serve.

use blindstore_types::api::ZoneUsage;
use blindstore_types::command::{Command, CommandResponse, Quota};
use blindstore_types::ZoneId;

use crate::error::unexpected;
use crate::now_ms;
use crate::{Consistency, NodeError};

/// A zone with usage, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct ZoneInfo {
    pub quota: Quota,
    pub registration: blindstore_types::account::RegistrationSettings,
    pub accounts: blindstore_types::account::AccountUsage,
    pub settings: blindstore_types::account::ZoneSettings,
    pub zone: ZoneId,
    pub created_at_ms: u64,
    pub usage: ZoneUsage,
}

/// A zone's passkey settings after `change`: an empty relying party id turns passkeys off;
/// a new id or origin list is checked to make a relying party browsers accept.
fn passkey_settings(
    current: Option<blindstore_types::account::PasskeySettings>,
    change: &blindstore_types::api::ZoneSettingsChange,
) -> Result<Option<blindstore_types::account::PasskeySettings>, NodeError> {
    let rp_id = match (&change.passkey_rp_id, &current) {
        (Some(id), _) if id.is_empty() => {
            if change
                .passkey_origins
                .as_ref()
                .is_some_and(|o| !o.is_empty())
            {
                return Err(NodeError::BadRequest(
                    "passkey origins given while turning passkeys off".into(),
                ));
            }
            return Ok(None);
        }
        (Some(id), _) => id.clone(),
        (None, Some(current)) => current.rp_id.clone(),
        (None, None) if change.passkey_origins.is_some() => {
            return Err(NodeError::BadRequest(
                "passkey origins need a relying party id (--passkey-rp-id)".into(),
            ))
        }
        (None, None) => return Ok(None),
    };
    let origins = match (&change.passkey_origins, current) {
        (Some(origins), _) => origins.clone(),
        (None, Some(current)) => current.origins,
        (None, None) => Vec::new(),
    };
    blindstore_auth::passkey::check_relying_party(&rp_id, &origins)
        .map_err(NodeError::BadRequest)?;
    Ok(Some(blindstore_types::account::PasskeySettings {
        rp_id,
        origins,
    }))
}

facade!(
    /// Zones: creating and listing them, their settings, quotas and site hosts.
    Zones,
    zones
);

impl Zones<'_> {
    /// A zone's settings as this node has applied them (no read barrier: for per-request
    /// decisions such as CORS, where a moment's lag is harmless).
    pub fn zone_settings(
        &self,
        zone: &ZoneId,
    ) -> Result<blindstore_types::account::ZoneSettings, NodeError> {
        Ok(self.inner.state.zone_settings(zone)?)
    }

    /// The settings of every zone whose settings were set, as this node has applied them.
    pub fn all_zone_settings(
        &self,
    ) -> Result<Vec<(ZoneId, blindstore_types::account::ZoneSettings)>, NodeError> {
        Ok(self.inner.state.zone_settings_all()?)
    }

    /// The zone whose site the host name `host` serves, as this node has applied the settings.
    pub fn zone_for_host(&self, host: &str) -> Result<Option<ZoneId>, NodeError> {
        Ok(self.inner.state.zone_for_host(host)?)
    }

    /// Creates `zone`; returns whether it was new.
    #[tracing::instrument(skip_all, fields(zone = %zone), err(level = "debug"))]
    /// Deletes a zone and everything in it (`Command::DeleteZone`); what was removed. Its
    /// chunks are collected on every node after the staging TTL, as garbage.
    pub async fn delete_zone(
        &self,
        zone: &ZoneId,
    ) -> Result<blindstore_types::command::ZoneRemoved, NodeError> {
        let response = self
            .propose(Command::DeleteZone { zone: zone.clone() })
            .await?;
        answer!(response, CommandResponse::ZoneDeleted(removed) => removed)
    }

    pub async fn create_zone(&self, zone: ZoneId) -> Result<bool, NodeError> {
        match self
            .propose(Command::CreateZone {
                zone: zone.clone(),
                created_at_ms: now_ms(),
            })
            .await?
        {
            CommandResponse::ZoneCreated { created } => {
                // Its account secrets come with it.
                if self.inner.state.zone_auth(&zone)?.is_none() {
                    self.accounts().set_zone_auth(&zone).await?;
                }
                Ok(created)
            }
            other => Err(unexpected(other)),
        }
    }

    pub async fn list(&self, consistency: Consistency) -> Result<Vec<ZoneInfo>, NodeError> {
        self.read_barrier(consistency).await?;
        let zones = self.inner.state.zones()?;
        zones
            .into_iter()
            .map(|(zone, record)| self.zone_info(zone, record))
            .collect()
    }

    pub async fn zone(
        &self,
        zone: &ZoneId,
        consistency: Consistency,
    ) -> Result<ZoneInfo, NodeError> {
        self.read_barrier(consistency).await?;
        let record = self.inner.state.zone(zone)?.ok_or(NodeError::UnknownZone)?;
        self.zone_info(zone.clone(), record)
    }

    pub(crate) fn zone_info(
        &self,
        zone: ZoneId,
        record: blindstore_types::command::ZoneRecord,
    ) -> Result<ZoneInfo, NodeError> {
        let held = self.inner.replicator.local().usage(&zone)?;
        let quota = self.inner.state.quota(&zone)?;
        Ok(ZoneInfo {
            quota,
            registration: self.inner.state.registration(&zone)?,
            accounts: self.inner.state.account_usage(&zone)?,
            settings: self.inner.state.zone_settings(&zone)?,
            zone,
            created_at_ms: record.created_at_ms,
            usage: ZoneUsage {
                chains: record.chains,
                entries: record.entries,
                chunks: held.chunks,
                bytes: held.bytes,
            },
        })
    }

    /// Sets `zone`'s quotas: fields left out keep their current values.
    pub async fn set_quota(
        &self,
        zone: &ZoneId,
        change: &blindstore_types::api::ZoneQuota,
    ) -> Result<Quota, NodeError> {
        self.read_barrier(Consistency::Linearizable).await?;
        let mut quota = self.inner.state.quota(zone)?;
        quota.max_chains = change.max_chains.unwrap_or(quota.max_chains);
        quota.max_entries = change.max_entries.unwrap_or(quota.max_entries);
        quota.max_chunk_bytes = change.max_chunk_bytes.unwrap_or(quota.max_chunk_bytes);
        quota.max_chunks = change.max_chunks.unwrap_or(quota.max_chunks);
        let command = Command::SetQuota {
            zone: zone.clone(),
            quota,
        };
        answer!(self.propose(command).await?, CommandResponse::QuotaSet => quota)
    }

    /// Changes `zone`'s settings: fields left out keep their current values.
    pub async fn set_zone_settings(
        &self,
        zone: &ZoneId,
        change: &blindstore_types::api::ZoneSettingsChange,
    ) -> Result<blindstore_types::account::ZoneSettings, NodeError> {
        self.read_barrier(Consistency::Linearizable).await?;
        self.require_zone(zone)?;
        let mut settings = self.inner.state.zone_settings(zone)?;
        settings.writes = change.writes.unwrap_or(settings.writes);
        let q = &mut settings.account_quota;
        q.max_chains = change.account_max_chains.unwrap_or(q.max_chains);
        q.max_chunks = change.account_max_chunks.unwrap_or(q.max_chunks);
        q.max_chunk_bytes = change.account_max_chunk_bytes.unwrap_or(q.max_chunk_bytes);
        settings.passkeys = passkey_settings(settings.passkeys.take(), change)?;
        if let Some(origins) = &change.cors_origins {
            for origin in origins {
                blindstore_types::account::check_cors_origin(origin)
                    .map_err(NodeError::BadRequest)?;
            }
            settings.cors_origins = origins.clone();
        }
        if let Some(hosts) = &change.site_hosts {
            // That no other zone has a host is checked where the change is applied.
            for host in hosts {
                blindstore_types::account::check_site_host(host).map_err(NodeError::BadRequest)?;
            }
            settings.site_hosts = hosts.clone();
        }
        if let Some(proxies) = &change.proxies {
            for (i, route) in proxies.iter().enumerate() {
                route.check().map_err(NodeError::BadRequest)?;
                if proxies[..i].iter().any(|r| r.name == route.name) {
                    return Err(NodeError::BadRequest(format!(
                        "proxy {} is listed twice",
                        route.name
                    )));
                }
            }
            settings.proxies = proxies.clone();
        }
        let command = Command::SetZoneSettings {
            zone: zone.clone(),
            settings: settings.clone(),
        };
        answer!(self.propose(command).await?, CommandResponse::ZoneSettingsSet => settings)
    }

    /// Like `require_zone`, but a zone not found locally is looked for again after catching
    /// up with the leader (this node may lag).
    pub(crate) async fn require_zone_fresh(&self, zone: &ZoneId) -> Result<(), NodeError> {
        if self.require_zone(zone).is_ok() {
            return Ok(());
        }
        self.read_barrier(Consistency::Linearizable).await?;
        self.require_zone(zone)
    }

    pub(crate) fn require_zone(&self, zone: &ZoneId) -> Result<(), NodeError> {
        match self.inner.state.zone(zone)? {
            Some(_) => Ok(()),
            None => Err(NodeError::UnknownZone),
        }
    }
}
