//! Rate limits on account endpoints, so a password cannot be guessed online at speed and
//! accounts cannot be created in bulk: per client IP for registrations and logins, and per
//! account for logins (governor's keyed GCRA limiters). Limits are per node: behind a load
//! balancer over n nodes a client gets at most n times the rate. Over the limit: 429
//! `rate_limited` with `Retry-After`.
//!
//! The client IP is the TCP peer, unless the peer is a trusted proxy: then it is the
//! right-most address in `X-Forwarded-For` that is not itself a trusted proxy.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use blindstore_types::account::AccountId;
use blindstore_types::ZoneId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::{ApiError, AppState};

/// Keys kept per limiter before the idle ones are dropped.
const MAX_KEYS: usize = 100_000;

/// Limits per minute; documented in docs/operations.md.
#[derive(Debug, Clone)]
pub struct AuthLimits {
    /// Login starts per client IP per minute.
    pub login_per_ip: u32,
    /// Login starts per account per minute.
    pub login_per_account: u32,
    /// Registration steps per client IP per minute.
    pub register_per_ip: u32,
    /// Peers whose `X-Forwarded-For` is believed (gateways, load balancers).
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            login_per_ip: 30,
            login_per_account: 10,
            register_per_ip: 10,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The limiters of one node.
pub(crate) struct AuthLimiter {
    trusted_proxies: Vec<IpNet>,
    login_ip: DefaultKeyedRateLimiter<IpAddr>,
    login_account: DefaultKeyedRateLimiter<(ZoneId, AccountId)>,
    register_ip: DefaultKeyedRateLimiter<IpAddr>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1"))
}

impl AuthLimiter {
    pub(crate) fn new(limits: &AuthLimits) -> Self {
        Self {
            trusted_proxies: limits.trusted_proxies.clone(),
            login_ip: RateLimiter::keyed(per_minute(limits.login_per_ip)),
            login_account: RateLimiter::keyed(per_minute(limits.login_per_account)),
            register_ip: RateLimiter::keyed(per_minute(limits.register_per_ip)),
        }
    }

    /// A login start from `ip` for `account`.
    pub(crate) fn login(
        &self,
        ip: IpAddr,
        zone: &ZoneId,
        account: &AccountId,
    ) -> Result<(), ApiError> {
        check(&self.login_ip, &ip)?;
        check(&self.login_account, &(zone.clone(), account.clone()))
    }

    /// A registration step from `ip`.
    pub(crate) fn register(&self, ip: IpAddr) -> Result<(), ApiError> {
        check(&self.register_ip, &ip)
    }

    fn trusted(&self, ip: &IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }
}

fn check<K>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), ApiError>
where
    K: Clone + Eq + std::hash::Hash,
{
    if limiter.len() > MAX_KEYS {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::RateLimited(wait.max(Duration::from_secs(1)))
    })
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
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        let limiter = &state.auth_limiter;
        if !limiter.trusted(&peer) {
            return Ok(ClientIp(peer));
        }
        let forwarded: Vec<IpAddr> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        let client = forwarded
            .into_iter()
            .rev()
            .find(|ip| !limiter.trusted(ip))
            .unwrap_or(peer);
        Ok(ClientIp(client))
    }
}
