//! One operation serving many callers: linearizable reads share read-index rounds.
//!
//! A linearizable read needs a read index obtained *after* the read arrived (a round that
//! started earlier may miss a write acknowledged in between). [`Rounds::join`] gives each caller
//! the result of the first round that starts after it arrived: while a round runs, arrivals
//! wait; the next round then serves all of them at once. Under load, one heartbeat round (or one
//! read-index call to the leader) serves every read that arrived during the previous one.
//!
//! A round holds the lock the next callers wait on, so every round is bounded: past its
//! limit it ends as [`RoundTimedOut`], the answer of everyone it serves, and a caller waits at
//! most two rounds.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A round did not finish within its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundTimedOut(pub Duration);

impl std::fmt::Display for RoundTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer within {:?}", self.0)
    }
}

/// Rounds of an operation with result `T`.
pub(crate) struct Rounds<T> {
    /// Callers arrived so far.
    arrivals: AtomicU64,
    /// Held while a round runs; the last round's arrival count when it started, and its result.
    last: tokio::sync::Mutex<Option<(u64, Result<T, RoundTimedOut>)>>,
}

impl<T: Clone> Rounds<T> {
    pub(crate) fn new() -> Self {
        Self {
            arrivals: AtomicU64::new(0),
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The result of a round that started after this call: the last one if it did, else a
    /// new one running `operation` for at most `limit`.
    pub(crate) async fn join<F, Fut>(
        &self,
        limit: Duration,
        operation: F,
    ) -> Result<T, RoundTimedOut>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let me = self.arrivals.fetch_add(1, Ordering::SeqCst) + 1;
        // tokio's mutex is fair: callers take it in arrival order.
        let mut last = self.last.lock().await;
        if let Some((started_after, result)) = &*last {
            if *started_after >= me {
                return result.clone();
            }
        }
        let started_after = self.arrivals.load(Ordering::SeqCst);
        let result = tokio::time::timeout(limit, operation())
            .await
            .map_err(|_| RoundTimedOut(limit));
        *last = Some((started_after, result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::Rounds;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn callers_share_a_round_that_started_after_they_arrived_and_never_an_earlier_one() {
        let rounds = Arc::new(Rounds::<u64>::new());
        let started = Arc::new(AtomicU64::new(0));
        let round = |rounds: Arc<Rounds<u64>>, started: Arc<AtomicU64>| async move {
            rounds
                .join(Duration::from_secs(10), || async {
                    let n = started.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    n
                })
                .await
                .unwrap()
        };
        // One caller starts round 1; 20 arrive while it runs.
        let first = tokio::spawn(round(rounds.clone(), started.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiting: Vec<_> = (0..20)
            .map(|_| tokio::spawn(round(rounds.clone(), started.clone())))
            .collect();
        assert_eq!(first.await.unwrap(), 1);
        for w in waiting {
            assert_eq!(
                w.await.unwrap(),
                2,
                "arrived during round 1: served by round 2, not by round 1"
            );
        }
        assert_eq!(started.load(Ordering::SeqCst), 2, "21 callers, two rounds");
        // A caller arriving after every round ended starts its own.
        assert_eq!(round(rounds.clone(), started.clone()).await, 3);
    }

    #[tokio::test]
    async fn a_round_that_hangs_ends_at_its_limit_and_the_next_callers_are_served() {
        let rounds = Arc::new(Rounds::<u64>::new());
        let limit = Duration::from_millis(100);
        let hung = {
            let rounds = rounds.clone();
            tokio::spawn(async move { rounds.join(limit, std::future::pending::<u64>).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let started = std::time::Instant::now();
        let next = rounds.join(limit, || async { 7 }).await;
        assert_eq!(hung.await.unwrap(), Err(super::RoundTimedOut(limit)));
        assert_eq!(next, Ok(7));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
}
