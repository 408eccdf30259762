//! Who follows which chain: a watch per followed chain, woken only after a committed batch
//! appended to that chain (or a snapshot replaced the whole state), so an append wakes its
//! own chain's followers and no one else's — ten thousand idle followers of one chain cost an
//! append to another nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use blindstore_types::{ChainId, ZoneId};
use tokio::sync::watch;

type Key = (ZoneId, ChainId);

/// The followed chains and their watches. An entry lives while someone follows the chain.
#[derive(Default)]
pub(crate) struct ChainWatchers {
    chains: Mutex<HashMap<Key, watch::Sender<u64>>>,
}

impl ChainWatchers {
    /// Follows `chain` of `zone`.
    pub(crate) fn follow(self: &Arc<Self>, zone: &ZoneId, chain: &ChainId) -> ChainChanges {
        let key = (zone.clone(), *chain);
        let mut chains = self.chains.lock().expect("chain watchers");
        let receiver = chains
            .entry(key.clone())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe();
        ChainChanges {
            receiver,
            key,
            watchers: self.clone(),
        }
    }

    /// Wakes the followers of each of `changed` (after the batch that appended to them
    /// committed).
    pub(crate) fn wake<'a>(&self, changed: impl IntoIterator<Item = &'a Key>) {
        let chains = self.chains.lock().expect("chain watchers");
        if chains.is_empty() {
            return;
        }
        for key in changed {
            if let Some(sender) = chains.get(key) {
                sender.send_modify(|n| *n += 1);
            }
        }
    }

    /// Wakes every follower (the whole state was replaced).
    pub(crate) fn wake_all(&self) {
        let chains = self.chains.lock().expect("chain watchers");
        for sender in chains.values() {
            sender.send_modify(|n| *n += 1);
        }
    }

    /// How many chains are followed.
    pub(crate) fn followed(&self) -> usize {
        self.chains.lock().expect("chain watchers").len()
    }
}

/// A follower of one chain: [`ChainChanges::changed`] returns after the next committed
/// append to it. Dropping the last follower of a chain forgets the chain.
pub struct ChainChanges {
    receiver: watch::Receiver<u64>,
    key: Key,
    watchers: Arc<ChainWatchers>,
}

impl ChainChanges {
    /// Marks every change so far as seen.
    pub fn mark_seen(&mut self) {
        self.receiver.borrow_and_update();
    }

    /// Waits for a change not yet seen. Never fails while the store lives (the sender is kept
    /// until this follower is dropped).
    pub async fn changed(&mut self) {
        if self.receiver.changed().await.is_err() {
            // The entry was replaced; cannot happen while this receiver is subscribed to it.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for ChainChanges {
    fn drop(&mut self) {
        let mut chains = self.watchers.chains.lock().expect("chain watchers");
        // This receiver still counts: it is the last one if the count is 1.
        if chains
            .get(&self.key)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            chains.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u8) -> ChainId {
        blindstore_types::Hash32([n; 32])
    }

    #[tokio::test]
    async fn only_the_followers_of_a_changed_chain_wake_and_unfollowed_chains_are_forgotten() {
        let watchers = Arc::new(ChainWatchers::default());
        let zone = ZoneId::new("demo").unwrap();
        let mut a1 = watchers.follow(&zone, &chain(1));
        let mut a2 = watchers.follow(&zone, &chain(1));
        let mut b = watchers.follow(&zone, &chain(2));
        assert_eq!(watchers.followed(), 2);
        watchers.wake([&(zone.clone(), chain(2))]);
        let quick = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(quick, a1.changed()).await.is_err());
        assert!(tokio::time::timeout(quick, b.changed()).await.is_ok());
        watchers.wake([&(zone.clone(), chain(1))]);
        assert!(tokio::time::timeout(quick, a1.changed()).await.is_ok());
        assert!(tokio::time::timeout(quick, a2.changed()).await.is_ok());
        a2.mark_seen();
        drop(a1);
        assert_eq!(watchers.followed(), 2, "a2 still follows chain 1");
        drop(a2);
        drop(b);
        assert_eq!(watchers.followed(), 0);
        watchers.wake_all();
    }
}
