//! Deliberate bugs for proving that the fault-injection checker can fail. They can only be
//! switched on in a build with the `negative-controls` feature, which no normal build enables
//! ([`on`] is a constant `false` without it); even then a control is off unless
//! `BLINDSTORE_NEGATIVE_CONTROL` names it when the process starts.
//!
//! Each control breaks one guarantee, and the checker must report the matching anomaly:
//!
//! - `stale-reads`: linearizable reads are served from local state, without the read index
//!   (stale reads);
//! - `early-ack`: appends are acknowledged once checked, before they are committed, let alone
//!   durable (lost acknowledged appends when a node is killed);
//! - `skip-cas`: the compare-and-set of index and prev is skipped, an append lands at the
//!   index it names (forks).

use std::sync::OnceLock;

/// Whether this build has the `negative-controls` feature.
pub const COMPILED: bool = cfg!(feature = "negative-controls");

/// The environment variable that switches a control on.
pub const ENV: &str = "BLINDSTORE_NEGATIVE_CONTROL";

/// One deliberate bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    StaleReads,
    EarlyAck,
    SkipCas,
}

impl Control {
    pub fn parse(name: &str) -> Option<Control> {
        match name {
            "stale-reads" => Some(Control::StaleReads),
            "early-ack" => Some(Control::EarlyAck),
            "skip-cas" => Some(Control::SkipCas),
            _ => None,
        }
    }
}

/// The control switched on for this process, read once from [`ENV`].
pub fn active() -> Option<Control> {
    static ACTIVE: OnceLock<Option<Control>> = OnceLock::new();
    *ACTIVE.get_or_init(|| std::env::var(ENV).ok().as_deref().and_then(Control::parse))
}

/// True if `control` is switched on; always false without the `negative-controls` feature.
pub fn on(control: Control) -> bool {
    COMPILED && active() == Some(control)
}
