mod chunks;
mod raft_wal;
mod state;
