//! gitmq's integration tests, one binary (gitoxide/ripgrep style): the real `git` reads what
//! gitmq wrote and gitmq reads what git wrote; the `gitmq` binary is driven as a user would.

mod cli;
mod concurrency;
mod consume_fast;
mod crash;
mod faults;
mod fuzz_replay;
mod githost;
mod interop;
mod messages;
mod model;
mod pack_read;
mod produce;
mod prune;
mod push;
mod replay;
#[cfg(feature = "serve")]
mod serve;
mod server;
#[cfg(feature = "sign")]
mod sign;
mod sync_cli;
mod topology;
mod topology_model;
mod transport;
mod util;
