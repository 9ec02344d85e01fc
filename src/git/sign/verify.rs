//! Owns checking one commit's signature: whether its own `gpgsig` is a good SSH signature
//! ([`Verifier::check()`]), and whether the allowed-signers file lets that key sign as the
//! commit's author ([`Verifier::verdict()`]).
//!
//! The rules are git's (`git verify-commit` with `gpg.format=ssh`): the signature must be an
//! SSH signature in namespace `git` over the commit without its `gpgsig` header; the
//! allowed-signers entry's validity window is checked at the committer date. One rule is
//! gitmq's own, and stricter: the principal is the commit's **author email**. git only asks
//! whether *some* principal allows the key (and prints it, `%GS`), so a commit signed by
//! one producer's key with another producer's name passes `git verify-commit`; gitmq refuses it.
//!
//! Invariants: never panics on any input (fuzzed); only ed25519 signatures can be good.

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use std::collections::HashMap;

use sha2::Digest;

use super::{
    allowed::AllowedSigners,
    gpgsig::{self, Found},
    sshsig::{self, HashAlg, PublicKey, SshSig},
};

/// What a commit's own signature says, before any allowed-signers policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// No `gpgsig` header.
    Unsigned,
    /// A signature that does not verify (or cannot be read).
    Bad {
        /// The key it claims, if it could be read.
        key: Option<PublicKey>,
        /// Why.
        reason: &'static str,
    },
    /// A good signature by `key`, in namespace `git`.
    Good {
        /// The signing key.
        key: PublicKey,
    },
}

/// The verdict on a commit under an allowed-signers file, its author email the principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A good signature by a key allowed for the author.
    Good {
        /// The author email the key is allowed for.
        principal: String,
        /// The key.
        key: PublicKey,
    },
    /// No signature.
    Unsigned,
    /// A signature that does not verify.
    Bad {
        /// Why.
        reason: &'static str,
    },
    /// A good signature by a key the file does not name.
    UnknownKey {
        /// The key.
        key: PublicKey,
    },
    /// A good signature by a key the file names, but not for this author (or not in namespace
    /// `git`, or not at the committer date).
    NotAllowed {
        /// The key.
        key: PublicKey,
        /// The author email.
        principal: String,
    },
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Good { principal, key } => {
                write!(f, "good signature for {principal} by {}", key.fingerprint())
            }
            Verdict::Unsigned => f.write_str("unsigned"),
            Verdict::Bad { reason } => write!(f, "bad signature: {reason}"),
            Verdict::UnknownKey { key } => write!(f, "unknown key {}", key.fingerprint()),
            Verdict::NotAllowed { key, principal } => write!(
                f,
                "key {} is not allowed to sign as {principal}",
                key.fingerprint()
            ),
        }
    }
}

/// Checks commit signatures; keeps decoded keys and buffers between calls.
#[derive(Default)]
pub struct Verifier {
    keys: HashMap<[u8; 32], ed25519_dalek::VerifyingKey>,
    signature: Vec<u8>,
    payload: Vec<u8>,
    scratch: Vec<u8>,
    signed: Vec<u8>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// What [`Verifier::claim()`] reads without any cryptography.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No `gpgsig` header.
    Unsigned,
    /// A `gpgsig` header that does not parse.
    Malformed(&'static str),
    /// A signature claiming `key`.
    Signed(SshSig),
}

impl Verifier {
    /// A verifier with no key decoded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read the signature `body` claims, without checking it (cheap: base64 and parsing).
    pub fn claim(&mut self, body: &[u8]) -> Claim {
        match gpgsig::split(body, &mut self.signature, &mut self.payload) {
            Found::Unsigned => Claim::Unsigned,
            Found::Malformed => Claim::Malformed("two or oversized gpgsig headers"),
            Found::Signed => match SshSig::from_armor_with(&self.signature, &mut self.scratch) {
                Ok(sig) => Claim::Signed(sig),
                Err(err) => Claim::Malformed(err.0),
            },
        }
    }

    /// Check the commit `body`'s own signature.
    pub fn check(&mut self, body: &[u8]) -> Signature {
        let sig = match self.claim(body) {
            Claim::Unsigned => return Signature::Unsigned,
            Claim::Malformed(reason) => return Signature::Bad { key: None, reason },
            Claim::Signed(sig) => sig,
        };
        // `claim` left the signed payload in `self.payload`.
        match self.verify_claim(&sig) {
            Ok(()) => Signature::Good { key: sig.key },
            Err(reason) => Signature::Bad {
                key: Some(sig.key),
                reason,
            },
        }
    }

    /// Verify `sig`, the signature the last [`claim()`](Self::claim) read, over that
    /// commit's signed payload: the ed25519 check, which [`claim()`](Self::claim) skips.
    pub fn verify_claim(&mut self, sig: &SshSig) -> Result<(), &'static str> {
        if sig.namespace != sshsig::GIT_NAMESPACE {
            return Err("not in namespace git");
        }
        let (PublicKey::Ed25519(key_bytes), Some(signature)) = (&sig.key, &sig.ed25519) else {
            return Err("not an ed25519 signature (the only kind gitmq verifies)");
        };
        let key = if let Some(key) = self.keys.get(key_bytes) {
            *key
        } else {
            let key = ed25519_dalek::VerifyingKey::from_bytes(key_bytes)
                .map_err(|_| "the key is not a valid ed25519 point")?;
            if self.keys.len() > 4096 {
                self.keys.clear();
            }
            self.keys.insert(*key_bytes, key);
            key
        };
        self.signed.clear();
        match sig.hash {
            HashAlg::Sha512 => {
                let digest = sha2::Sha512::digest(&self.payload);
                sshsig::write_signed_data(&mut self.signed, &sig.namespace, sig.hash, &digest);
            }
            HashAlg::Sha256 => {
                let digest = sha2::Sha256::digest(&self.payload);
                sshsig::write_signed_data(&mut self.signed, &sig.namespace, sig.hash, &digest);
            }
        }
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        // Cofactorless, as OpenSSH's ed25519 verifies (no checks beyond it: git's verdicts).
        ed25519_dalek::Verifier::verify(&key, &self.signed, &signature)
            .map_err(|_| "the signature does not match the commit")
    }

    /// The verdict on the commit `body` under `signers`: its own signature checked, then its
    /// key looked up for the author email at the committer date.
    pub fn verdict(&mut self, body: &[u8], signers: &AllowedSigners) -> Verdict {
        let key = match self.check(body) {
            Signature::Unsigned => return Verdict::Unsigned,
            Signature::Bad { reason, .. } => return Verdict::Bad { reason },
            Signature::Good { key } => key,
        };
        let Some(identity) = identities(body) else {
            return Verdict::Bad {
                reason: "no author or committer line",
            };
        };
        let principal = String::from_utf8_lossy(identity.author_email).into_owned();
        if signers.allows(
            &principal,
            &key,
            sshsig::GIT_NAMESPACE,
            Some(identity.committer_time),
        ) {
            Verdict::Good { principal, key }
        } else if signers.knows(&key) {
            Verdict::NotAllowed { key, principal }
        } else {
            Verdict::UnknownKey { key }
        }
    }
}

/// Check the commit `body`'s own signature (see [`Verifier::check()`]).
pub fn check_commit(body: &[u8]) -> Signature {
    Verifier::new().check(body)
}

/// The identities of a commit that verification reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identities<'a> {
    /// The author's email (between `<` and `>`).
    pub author_email: &'a [u8],
    /// The committer date, unix seconds.
    pub committer_time: i64,
}

/// The author email and committer date of the commit `body`, from its header lines.
pub fn identities(body: &[u8]) -> Option<Identities<'_>> {
    let end = gpgsig::header_end(body).unwrap_or(body.len());
    let header = body.get(..end)?;
    let mut author_email = None;
    let mut committer_time = None;
    for line in header.split(|b| *b == b'\n') {
        if let Some(ident) = line.strip_prefix(b"author ") {
            author_email = author_email.or_else(|| email_and_time(ident).map(|(e, _)| e));
        } else if let Some(ident) = line.strip_prefix(b"committer ") {
            committer_time = committer_time.or_else(|| email_and_time(ident).map(|(_, t)| t));
        }
    }
    Some(Identities {
        author_email: author_email?,
        committer_time: committer_time?,
    })
}

/// `Name <email> seconds +hhmm` -> (email, seconds).
fn email_and_time(ident: &[u8]) -> Option<(&[u8], i64)> {
    let open = ident.iter().position(|b| *b == b'<')?;
    let close = open + ident.get(open..)?.iter().position(|b| *b == b'>')?;
    let email = ident.get(open + 1..close)?;
    let rest = ident.get(close + 1..)?;
    let seconds = rest
        .split(|b| *b == b' ')
        .find(|word| !word.is_empty())
        .and_then(|word| std::str::from_utf8(word).ok())
        .and_then(|word| word.parse().ok())?;
    Some((email, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::sign::Signer;

    fn body(author: &str) -> Vec<u8> {
        format!("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor {author} 1700000000 +0100\ncommitter {author} 1700000001 +0100\ngitmq-id x\n\npayload\n").into_bytes()
    }

    fn signers(entries: &[(&str, &Signer)]) -> AllowedSigners {
        let mut text = String::new();
        for (principal, signer) in entries {
            text.push_str(principal);
            text.push(' ');
            text.push_str(&signer.public_key().to_openssh());
            text.push('\n');
        }
        AllowedSigners::parse(&text).unwrap()
    }

    #[test]
    fn signed_commits_verify_and_every_kind_of_refusal_is_told_apart() {
        let (alice, bob) = (Signer::from_seed([1; 32]), Signer::from_seed([2; 32]));
        let allowed = signers(&[("alice@x", &alice), ("bob@x", &bob)]);
        let mut verifier = Verifier::new();

        let mut signed = body("Alice <alice@x>");
        alice.sign_commit(&mut signed);
        assert!(matches!(
            verifier.verdict(&signed, &allowed),
            Verdict::Good { ref principal, .. } if principal == "alice@x"
        ));
        assert_eq!(
            verifier.verdict(&body("A <alice@x>"), &allowed),
            Verdict::Unsigned
        );

        let tampered = String::from_utf8(signed.clone())
            .unwrap()
            .replace("payload", "PAYLOAD")
            .into_bytes();
        assert!(matches!(
            verifier.verdict(&tampered, &allowed),
            Verdict::Bad { .. }
        ));

        let mut swapped = body("Bob <bob@x>");
        alice.sign_commit(&mut swapped);
        assert!(matches!(
            verifier.verdict(&swapped, &allowed),
            Verdict::NotAllowed { .. }
        ));

        let mut unknown = body("Alice <alice@x>");
        Signer::from_seed([3; 32]).sign_commit(&mut unknown);
        assert!(matches!(
            verifier.verdict(&unknown, &allowed),
            Verdict::UnknownKey { .. }
        ));
    }

    #[test]
    fn identities_come_from_the_header_only() {
        let ids = identities(b"tree x\nauthor A B <a@x> 12 +0000\ncommitter C <c@x> 34 -0100\n\nauthor X <x@x> 1 +0000").unwrap();
        assert_eq!(ids.author_email, b"a@x");
        assert_eq!(ids.committer_time, 34);
        assert!(identities(b"tree x\n\nauthor A <a@x> 1 +0000\n").is_none());
    }
}
