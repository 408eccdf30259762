//! openraft's own storage test suite against the LMDB log store and state machine.

use blindstore_raft::TypeConfig;
use blindstore_raft::{LogStore, StateMachine};
use blindstore_storage::StateMachineStore;
use blindstore_types::raft::NodeId;
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

struct LmdbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for LmdbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(dir.path(), 1 << 26).expect("open log store");
        let sm = StateMachine::new(
            StateMachineStore::open(&dir.path().join("state"), 1 << 26)
                .expect("open state machine"),
        );
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(LmdbBuilder).expect("openraft storage suite passes");
}
