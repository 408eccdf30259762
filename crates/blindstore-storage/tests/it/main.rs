mod chunks;
mod log;
mod raft_suite;
mod state;
