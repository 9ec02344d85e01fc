//! Owns the one step that finishes every pack gitmq writes: a complete pack in a temporary
//! file, and its index, put in place as `objects/pack/pack-<checksum>.{pack,idx}`.
//!
//! Order (git's `finish_tmp_packfile`): write the index to a temporary file, sync pack and
//! index (when asked), rename the pack, then the index (readers look for the index, so a pack
//! is never seen without its objects), then sync `objects/pack/` (when asked). Every writer
//! that moves a ref afterwards names only objects in a complete, indexed pack.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use gix_hash::ObjectId;

use super::{io_err, Error};
use crate::git::fs::{SharedFs, TempFile};

/// Where a written pack landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPack {
    /// `objects/pack/pack-<checksum>.pack`.
    pub pack_path: PathBuf,
    /// `objects/pack/pack-<checksum>.idx`.
    pub index_path: PathBuf,
}

impl WrittenPack {
    /// The paths of the pack named `checksum` in `pack_dir`.
    pub fn at(pack_dir: &Path, checksum: &ObjectId) -> Self {
        let name = format!("pack-{checksum}");
        Self {
            pack_path: pack_dir.join(format!("{name}.pack")),
            index_path: pack_dir.join(format!("{name}.idx")),
        }
    }
}

/// Put `pack` (a temporary file in `pack_dir` holding a complete pack: header, entries, the
/// trailer `checksum`) and its `index` in place. A pack of the same name already in place
/// holds the same bytes: it is kept, and `pack` dropped.
pub fn install(
    fs: &SharedFs,
    pack_dir: &Path,
    pack: TempFile,
    checksum: &ObjectId,
    index: &[u8],
    sync: bool,
) -> Result<WrittenPack, Error> {
    let written = WrittenPack::at(pack_dir, checksum);
    if written.pack_path.is_file() && written.index_path.is_file() {
        return Ok(written);
    }
    let mut index_file = TempFile::create_in(fs, pack_dir, "idx").map_err(io_err(pack_dir))?;
    let index_tmp = index_file.path().to_owned();
    index_file.write_all(index).map_err(io_err(&index_tmp))?;
    if sync {
        pack.sync().map_err(io_err(pack.path()))?;
        index_file.sync().map_err(io_err(&index_tmp))?;
    }
    pack.persist(&written.pack_path)
        .map_err(io_err(&written.pack_path))?;
    if let Err(err) = index_file.persist(&written.index_path) {
        // A pack without its index is never read; do not leave it behind.
        let _ = fs.remove_file(&written.pack_path);
        return Err(io_err(&written.index_path)(err));
    }
    if sync {
        fs.sync_dir(pack_dir).map_err(io_err(pack_dir))?;
    }
    Ok(written)
}
