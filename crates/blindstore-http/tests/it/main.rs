//! HTTP API v1 tested through the router, against a real node on a temporary data dir.

mod accounts;
mod api;
mod credentials;
mod live;
mod openapi;
mod sites;
mod support;
