//! Owns the file-system steps every writer shares: flushing a file or a directory to the disk.
//!
//! Invariant (the order every writer follows): write the data, sync it (when the caller's
//! durability asks), rename it into place, sync its directory, and only then move a ref that
//! names it.

use std::{fs::File, io, path::Path};

/// Flush a written file's data (and the metadata needed to read it back) to the disk.
pub(crate) fn sync_file(file: &File) -> io::Result<()> {
    file.sync_data()
}

/// Flush a directory, so that names created or renamed in it survive a power loss.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
