//! Rate limits on account endpoints, so a password cannot be guessed online at speed and
//! accounts cannot be created in bulk (governor's keyed GCRA limiters):
//!
//! - Every answer that evaluates an account's OPRF — a login start (password or passkey) and
//!   a registration start, which for an existing account answers with the same OPRF key a
//!   login does — is held to the account's limit: one bucket per account for strangers, and
//!   one per device for a client that presents a device token an earlier login of that
//!   account got, so strangers cannot lock the owner out (OWASP's "device cookies").
//! - Strangers are also held per client IP (logins and registration steps apart).
//!
//! Limits are per node: behind a load balancer over n nodes a client gets at most n times the
//! rate. Over the limit: 429 `rate_limited` with `Retry-After`.
//!
//! The client IP is the TCP peer, unless the peer is a trusted proxy: then it is the
//! right-most address in `X-Forwarded-For` that is not itself a trusted proxy (an entry that
//! is not an address ends the search at the last trusted hop). IPv4-mapped IPv6 addresses
//! count as IPv4, and IPv6 clients are limited per /64 (one subscriber's usual allocation).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use blindstore_cluster::DeviceId;
use blindstore_types::account::AccountId;
use blindstore_types::ZoneId;
use blindstore_web::client_key;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::{ApiError, AppState};

/// Checks between two sweeps of idle keys (a sweep visits every key).
const SWEEP_EVERY: u64 = 4096;

/// Limits per minute; documented in docs/operations.md.
#[derive(Debug, Clone)]
pub struct AuthLimits {
    /// Login starts per client IP per minute.
    pub login_per_ip: u32,
    /// Login and registration starts per account per minute: shared by every client without
    /// a device token of the account, and the same again for each device that has one.
    pub login_per_account: u32,
    /// Registration steps per client IP per minute.
    pub register_per_ip: u32,
    /// Envelope writes and deletions per account per minute: envelopes are replicated state.
    pub envelope_writes_per_account: u32,
    /// Peers whose `X-Forwarded-For` is believed (gateways, load balancers).
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            login_per_ip: 30,
            login_per_account: 10,
            register_per_ip: 10,
            envelope_writes_per_account: 60,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The limiters of one node.
pub(crate) struct AuthLimiter {
    trusted_proxies: Vec<IpNet>,
    checks: std::sync::atomic::AtomicU64,
    login_ip: DefaultKeyedRateLimiter<IpAddr>,
    login_account: DefaultKeyedRateLimiter<(ZoneId, AccountId)>,
    login_device: DefaultKeyedRateLimiter<DeviceId>,
    register_ip: DefaultKeyedRateLimiter<IpAddr>,
    envelope_account: DefaultKeyedRateLimiter<(ZoneId, AccountId)>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"))
}

impl AuthLimiter {
    pub(crate) fn new(limits: &AuthLimits) -> Self {
        Self {
            trusted_proxies: limits.trusted_proxies.clone(),
            checks: Default::default(),
            login_ip: RateLimiter::keyed(per_minute(limits.login_per_ip)),
            login_account: RateLimiter::keyed(per_minute(limits.login_per_account)),
            login_device: RateLimiter::keyed(per_minute(limits.login_per_account)),
            register_ip: RateLimiter::keyed(per_minute(limits.register_per_ip)),
            envelope_account: RateLimiter::keyed(per_minute(limits.envelope_writes_per_account)),
        }
    }

    /// A login start from `ip` for `account`, by one of its devices or a stranger. (Its
    /// signature is `register_start`'s on purpose: `accounts::limited_start` calls either.)
    pub(crate) fn login(
        &self,
        ip: IpAddr,
        zone: &ZoneId,
        account: &AccountId,
        device: Option<DeviceId>,
    ) -> Result<(), ApiError> {
        self.sweep();
        if let Some(device) = device {
            return check(&self.login_device, &device);
        }
        check(&self.login_ip, &client_key(ip))?;
        check(&self.login_account, &(zone.clone(), account.clone()))
    }

    /// A registration start from `ip` for `account`: a registration step for the IP, and an
    /// OPRF answer for the account (its device's, or the one strangers share).
    pub(crate) fn register_start(
        &self,
        ip: IpAddr,
        zone: &ZoneId,
        account: &AccountId,
        device: Option<DeviceId>,
    ) -> Result<(), ApiError> {
        self.register(ip)?;
        match device {
            Some(device) => check(&self.login_device, &device),
            None => check(&self.login_account, &(zone.clone(), account.clone())),
        }
    }

    /// An envelope write or deletion by `account`.
    pub(crate) fn envelope_write(
        &self,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<(), ApiError> {
        self.sweep();
        check(&self.envelope_account, &(zone.clone(), account.clone()))
    }

    /// A registration step from `ip`.
    pub(crate) fn register(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.sweep();
        check(&self.register_ip, &client_key(ip))
    }

    /// Every so many checks, drops the keys whose limits have fully recovered.
    fn sweep(&self) {
        use std::sync::atomic::Ordering;
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.login_ip.retain_recent();
            self.login_account.retain_recent();
            self.login_device.retain_recent();
            self.register_ip.retain_recent();
            self.envelope_account.retain_recent();
        }
    }

    pub(crate) fn trusted(&self, ip: &IpAddr) -> bool {
        let ip = &ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

fn check<K>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), ApiError>
where
    K: Clone + Eq + std::hash::Hash,
{
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited(wait.max(Duration::from_secs(1)))
    })
}

/// An `X-Forwarded-For` entry as an address: `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678` or
/// `[2001:db8::1]:443`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The client's IP address (see the module documentation).
pub(crate) struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Requests that did not come over a socket (tests through the router) share one key.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| {
                c.0.ip().to_canonical()
            });
        let limiter = &state.auth_limiter;
        let mut client = peer;
        if !limiter.trusted(&client) {
            return Ok(ClientIp(client));
        }
        let entries: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        // From the right: trusted hops are skipped; the first untrusted address is the client;
        // anything that is not an address ends the search at the last trusted hop.
        for entry in entries.into_iter().rev() {
            let Some(ip) = forwarded_address(entry) else {
                break;
            };
            client = ip;
            if !limiter.trusted(&ip) {
                break;
            }
        }
        Ok(ClientIp(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_entries_with_ports_are_addresses_and_garbage_is_not() {
        assert_eq!(forwarded_address("1.2.3.4:5678"), "1.2.3.4".parse().ok());
        assert_eq!(
            forwarded_address("[2001:db8::1]:443"),
            "2001:db8::1".parse().ok()
        );
        assert_eq!(forwarded_address("unknown"), None);
    }
}
