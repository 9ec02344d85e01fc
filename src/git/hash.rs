//! Owns object hashing: the one place that knows which SHA-1 implementation gitmq uses.
//!
//! Invariant: every object id gitmq computes comes from [`Hasher`], over git's canonical
//! `"<kind> <size>\0<body>"` framing, so ids always match what `git hash-object` prints.
//!
//! The default is RustCrypto's `sha1`, which uses the CPU's SHA extensions where present
//! (about 350 ns per 357-byte commit here, against 850-1,270 ns for `sha1_smol`).
//! It does not detect SHA-1 collision attacks; gitmq only hashes objects it builds itself
//! or reads from its own repository, so the collision-detecting variant buys nothing on the
//! hot path.

use gix_hash::ObjectId;
use sha1::Digest;

/// The hash kind of every repository gitmq reads or writes (SHA-1).
pub const OBJECT_HASH: gix_hash::Kind = gix_hash::Kind::Sha1;

/// The length in bytes of an object id.
pub const ID_LEN: usize = 20;

/// An incremental SHA-1 hasher producing git object ids.
#[derive(Clone, Default)]
pub struct Hasher(sha1::Sha1);

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher with nothing fed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A hasher already fed git's object header for an object of `kind` with `size` body bytes.
    pub fn for_object(kind: gix_object::Kind, size: usize) -> Self {
        let mut hasher = Self::new();
        let mut header = [0u8; 32];
        let len = write_object_header(&mut header, kind, size);
        hasher.update(&header[..len]);
        hasher
    }

    /// Feed `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed so far, as raw bytes.
    pub fn finalize_bytes(self) -> [u8; ID_LEN] {
        self.0.finalize().into()
    }

    /// The digest of everything fed so far, as an object id.
    pub fn finalize(self) -> ObjectId {
        ObjectId::Sha1(self.finalize_bytes())
    }
}

/// The id of an object of `kind` whose body is `body`.
pub fn object_id(kind: gix_object::Kind, body: &[u8]) -> ObjectId {
    let mut hasher = Hasher::for_object(kind, body.len());
    hasher.update(body);
    hasher.finalize()
}

/// The SHA-1 of `bytes` as a whole (a pack's or an index's checksum, its trailer).
pub fn pack_checksum(bytes: &[u8]) -> ObjectId {
    let mut hasher = Hasher::new();
    hasher.update(bytes);
    hasher.finalize()
}

/// Write `"<kind> <size>\0"` into `out` and return its length. 32 bytes always suffice.
pub fn write_object_header(out: &mut [u8; 32], kind: gix_object::Kind, size: usize) -> usize {
    let kind = kind.as_bytes();
    let mut digits = [0u8; 20];
    let digits = decimal(size as u64, &mut digits);
    let total = kind.len() + 1 + digits.len() + 1;
    out[..kind.len()].copy_from_slice(kind);
    out[kind.len()] = b' ';
    out[kind.len() + 1..total - 1].copy_from_slice(digits);
    out[total - 1] = 0;
    total
}

/// Format `value` in decimal into `buf`, returning the digits.
pub(crate) fn decimal(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_tree_hashes_to_gits_well_known_id() {
        assert_eq!(
            object_id(gix_object::Kind::Tree, b""),
            ObjectId::empty_tree(OBJECT_HASH),
            "the empty tree's id is fixed by git"
        );
    }

    #[test]
    fn a_blob_hashes_like_git_hash_object() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            object_id(gix_object::Kind::Blob, b"hello\n").to_string(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn decimal_formats_zero_and_large_numbers() {
        let mut buf = [0u8; 20];
        assert_eq!(decimal(0, &mut buf), b"0");
        assert_eq!(decimal(u64::MAX, &mut buf), u64::MAX.to_string().as_bytes());
    }
}
