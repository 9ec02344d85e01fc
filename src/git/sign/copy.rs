//! Owns what happens to a signature when a message is copied onto another parent (a
//! producer's batch rebuilt after a lost race, a push rebuild, join, split): the copy's bytes
//! differ from what was signed, so its signature would be bad.
//!
//! - The copier holds the key that made the original signature: the copy is **re-signed**
//!   with it (the original's signature is checked first unless the caller made it itself,
//!   so a forged signature is never laundered into a good one).
//! - Otherwise the copy **loses** its `gpgsig` header and gains
//!   `gitmq-unsigned-copy-of <original id>` ([`gpgsig::mark_unsigned_copy()`]): verifiers see
//!   an unsigned message and can look up the signed original by id.
//! - An unsigned original gives an unsigned copy, byte-exact but its parent line.
//!
//! Invariant: a copy never carries a signature that does not verify.

use std::sync::Arc;

use gix_hash::oid;

use super::{gpgsig, Signer};
use crate::Repository;

/// Copies and their signatures
impl Repository {
    /// Re-sign copies with `key` (push rebuilds, join, split through this handle): a copy of
    /// a message `key` signed is signed again, any other signed message's copy is marked
    /// `gitmq-unsigned-copy-of` (see [`crate::git::sign::copy`]).
    #[must_use]
    pub fn with_copy_signer(mut self, key: Arc<Signer>) -> Self {
        self.copy_signer = Some(key);
        self
    }

    /// The key copies are re-signed with, if any.
    pub fn copy_signer(&self) -> Option<&Signer> {
        self.copy_signer.as_deref()
    }

    /// The key copies are re-signed with, shared (to sign with it too).
    pub fn copy_signer_arc(&self) -> Option<&Arc<Signer>> {
        self.copy_signer.as_ref()
    }
}

/// What [`sign_copy()`] did to a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopySignature {
    /// The original was unsigned: nothing to do.
    Unsigned,
    /// Re-signed with the copier's key.
    Resigned,
    /// Signature dropped, `gitmq-unsigned-copy-of` added.
    Marked,
}

/// Fix the signature of `copy`, a copy of the message `original` whose body is
/// `original_body`: re-sign it with `key` when `key` made the original's signature (`trusted`:
/// the caller signed the original itself in this process, skip checking it), else mark it.
pub fn sign_copy(
    original: &oid,
    original_body: &[u8],
    copy: &mut Vec<u8>,
    key: Option<&Signer>,
    trusted: bool,
) -> CopySignature {
    if !gpgsig::is_signed(copy) {
        return CopySignature::Unsigned;
    }
    if let Some(key) = key {
        if resign(original_body, copy, key, trusted) {
            return CopySignature::Resigned;
        }
    }
    gpgsig::mark_unsigned_copy(copy, original);
    CopySignature::Marked
}

#[cfg(feature = "sign")]
fn resign(original_body: &[u8], copy: &mut Vec<u8>, key: &Signer, trusted: bool) -> bool {
    use super::verify::{Signature, Verifier};
    let made_by_key = trusted
        || matches!(
            Verifier::new().check(original_body),
            Signature::Good { key: ref k } if k == key.public_key()
        );
    if !made_by_key {
        return false;
    }
    let mut unsigned = Vec::with_capacity(copy.len());
    gpgsig::strip(copy, &mut unsigned);
    key.sign_commit(&mut unsigned);
    *copy = unsigned;
    true
}

#[cfg(not(feature = "sign"))]
fn resign(_: &[u8], _: &mut Vec<u8>, key: &Signer, _: bool) -> bool {
    match *key {}
}

#[cfg(all(test, feature = "sign"))]
mod tests {
    use super::*;
    use crate::git::sign::{check_commit, Signature};

    #[test]
    fn copies_are_re_signed_by_the_key_that_signed_and_marked_otherwise() {
        let (mine, theirs) = (Signer::from_seed([1; 32]), Signer::from_seed([2; 32]));
        let mut original = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent ce013625030ba8dba906f756967f9e9ca394464a\nauthor a <a@x> 1 +0000\ncommitter a <a@x> 1 +0000\n\nhi".to_vec();
        mine.sign_commit(&mut original);
        let id = crate::git::hash::object_id(gix_object::Kind::Commit, &original);
        let moved = |body: &[u8]| {
            let mut copy = Vec::new();
            crate::git::message::restack::with_first_parent(&id, body, None, &mut copy).unwrap();
            copy
        };

        let mut copy = moved(&original);
        assert!(
            matches!(check_commit(&copy), Signature::Bad { .. }),
            "moved: bad"
        );
        assert_eq!(
            sign_copy(&id, &original, &mut copy, Some(&mine), false),
            CopySignature::Resigned
        );
        assert_eq!(
            check_commit(&copy),
            Signature::Good {
                key: mine.public_key().clone()
            }
        );

        let mut copy = moved(&original);
        assert_eq!(
            sign_copy(&id, &original, &mut copy, Some(&theirs), false),
            CopySignature::Marked
        );
        assert_eq!(check_commit(&copy), Signature::Unsigned);
        assert_eq!(
            gpgsig::unsigned_copy_of(&copy),
            Some(id.to_string().as_bytes())
        );

        let mut forged = original.clone();
        let at = forged.len() - 2;
        forged[at] = b'H';
        let mut copy = moved(&forged);
        assert_eq!(
            sign_copy(&id, &forged, &mut copy, Some(&mine), false),
            CopySignature::Marked,
            "a bad original is never re-signed"
        );
    }
}
