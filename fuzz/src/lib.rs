//! Owns the fuzz checks of gitmq: one function per target, taking the fuzzer's raw bytes.
//!
//! Each libFuzzer binary in `fuzz_targets/` is one line calling a function here, and the
//! stable integration test `tests/integration/fuzz_replay.rs` includes this very file (by
//! `#[path]`) to feed every saved crash and corpus input through the same function, so a
//! crash found on nightly stays a regression test on stable. This file and its modules
//! therefore use only what both builds have: `gitmq` (with its `sign` feature), its dependencies `gix-object` and
//! `gix-date`, `tempfile` and `std`; module paths are `super::`-relative, never `crate::`.
//!
//! Invariant checked by every target: gitmq returns an error for bad input and never panics,
//! hangs or allocates without a bound; where a stronger property is cheap, it is asserted
//! too (a round trip, a naive oracle, or a model of the queue).

#![forbid(unsafe_code)]

mod codec;
mod delta;
mod fast;
mod files;
mod graph;
mod hand_inflate;
mod pack;
mod queue_model;
mod signature;
mod thin;
mod transport;

use std::path::PathBuf;

pub use codec::{commit_decode, loose_object, packed_refs, ref_name};
pub use delta::pack_delta;
pub use fast::{fast_decode, first_parent, stored_stream};
pub use files::local_files;
pub use graph::{commit_graph, multi_pack_index};
pub use hand_inflate::hand_inflate;
pub use pack::{pack_entry, pack_index};
pub use queue_model::queue_model;
pub use signature::signature;
pub use thin::thin_pack;
pub use transport::{pktline, received_pack};

/// A fuzz check: runs gitmq on one input and panics if an invariant breaks.
pub type Check = fn(&[u8]);

/// Every target by name, as `fuzz/Cargo.toml`, `fuzz/corpus/<name>/` and
/// `fuzz/artifacts/<name>/` spell it.
pub const TARGETS: [(&str, Check); 19] = [
    ("commit_decode", commit_decode),
    ("loose_object", loose_object),
    ("pack_index", pack_index),
    ("pack_entry", pack_entry),
    ("pack_delta", pack_delta),
    ("packed_refs", packed_refs),
    ("ref_name", ref_name),
    ("queue_model", queue_model),
    ("pktline", pktline),
    ("received_pack", received_pack),
    ("local_files", local_files),
    ("signature", signature),
    ("thin_pack", thin_pack),
    ("stored_stream", stored_stream),
    ("first_parent", first_parent),
    ("fast_decode", fast_decode),
    ("commit_graph", commit_graph),
    ("multi_pack_index", multi_pack_index),
    ("hand_inflate", hand_inflate),
];

/// A fresh temporary directory for targets that need files: in `/dev/shm` when it exists,
/// so that a run costs no disk I/O (`Consumer::commit()` always fsyncs), else the system's.
fn scratch_dir() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    let parent = if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("gitmq-fuzz-")
        .tempdir_in(parent)
        .expect("a temporary directory for the fuzz input")
}
