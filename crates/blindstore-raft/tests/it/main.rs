mod log;
mod raft_suite;
mod state;
