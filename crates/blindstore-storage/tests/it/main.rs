mod chunks;
mod raft_suite;
mod state;
