//! Owns what "acknowledged" means on disk: the [`Durability`] modes (the fsync helpers they
//! call are `git::fs`'s).
//!
//! Invariant (the order every writer follows): write the object data, sync it (when the mode
//! asks), rename it into place, sync its directory, and only then move the ref, whose lock
//! file is synced before its rename and whose directory is synced after. A ref therefore never
//! names an object that a power loss could take away, in the modes that promise that.

/// How much of a write must reach the disk before gitmq acknowledges it.
///
/// | mode | survives a crash of the process | survives a power loss or kernel crash |
/// |---|---|---|
/// | [`None`](Durability::None) | yes: the data is in the page cache when acknowledged | no: the last few seconds of messages may be lost; the repository stays consistent unless the file system reorders writes |
/// | [`Batch`](Durability::Batch) | yes | yes: objects, ref and directories are fsynced before a batch is acknowledged; all messages of a batch share one flush |
/// | [`Each`](Durability::Each) | yes | yes: every message is its own batch, flushed before its call returns |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledge once the data is written to the operating system (page cache).
    None,
    /// Acknowledge a batch once it and the ref naming it are fsynced (group commit).
    #[default]
    Batch,
    /// Acknowledge each message once it is fsynced on its own.
    Each,
}

impl Durability {
    /// Whether acknowledging requires an fsync.
    pub fn syncs(self) -> bool {
        !matches!(self, Durability::None)
    }

    /// Parse `none`, `batch` or `each`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Durability::None),
            "batch" => Some(Durability::Batch),
            "each" => Some(Durability::Each),
            _ => None,
        }
    }
}
