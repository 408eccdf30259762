//! Nodes in one process, talking gRPC over 127.0.0.1 on port 0: forwarding, follower reads,
//! repair and garbage collection, checked in seconds (the multi-process tests of the binary
//! are in blindstore-node).

mod inprocess;
