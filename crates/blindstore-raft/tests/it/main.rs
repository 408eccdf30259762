mod engine;
mod log;
mod raft_suite;
