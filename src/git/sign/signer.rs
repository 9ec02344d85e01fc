//! Owns signing commits with an ed25519 key, exactly as `git commit -S` does with
//! `gpg.format=ssh`: an SSH signature in namespace `git` with SHA-512 over the commit without
//! its `gpgsig` header, stored in that header at the end of the header block.
//!
//! The key comes from an OpenSSH private key file (`ssh-keygen -t ed25519`, unencrypted: this
//! build has no key-file decryption; use `ssh-keygen -p -N ''` on a copy, kept with the same
//! care). ed25519 signatures are deterministic: the same key and commit give the same bytes as
//! `ssh-keygen -Y sign`.
//!
//! Invariant: [`Signer::sign_commit()`] only signs a body that has no signature yet, and the
//! body it leaves verifies with [`super::verify::check_commit()`] and with git.

use std::path::Path;

use ed25519_dalek::Signer as _;
use sha2::Digest;

use super::{
    gpgsig,
    sshsig::{self, HashAlg, PublicKey},
    Error,
};

/// The bytes of the signed-data blob for a SHA-512 digest in namespace `git`.
const SIGNED_DATA_LEN: usize = 6 + (4 + 3) + 4 + (4 + 6) + (4 + 64);

/// An ed25519 signing key, ready to sign commits.
///
/// ```
/// use gitmq::git::sign::{check_commit, Signature, Signer};
/// let signer = Signer::from_seed([7; 32]);
/// let mut body = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a@x> 1 +0000\ncommitter a <a@x> 1 +0000\n\nhi".to_vec();
/// signer.sign_commit(&mut body);
/// assert!(matches!(check_commit(&body), Signature::Good { .. }));
/// ```
pub struct Signer {
    key: ed25519_dalek::SigningKey,
    public: PublicKey,
    /// The signature blob up to its `signature` field: magic, version, key, namespace,
    /// reserved, hash name. The same for every signature of this key.
    blob_prefix: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("public", &self.public.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Lifecycle
impl Signer {
    /// Read an OpenSSH private key file (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_openssh(&text).map_err(|err| match err {
            Error::Key { reason, .. } => Error::Key {
                path: Some(path.to_owned()),
                reason,
            },
            other => other,
        })
    }

    /// Parse the text of an OpenSSH private key file.
    pub fn from_openssh(text: &[u8]) -> Result<Self, Error> {
        let bad = |reason: String| Error::Key { path: None, reason };
        let key = ssh_key::PrivateKey::from_openssh(text).map_err(|err| bad(err.to_string()))?;
        if key.is_encrypted() {
            return Err(bad(
                "the key file is encrypted (passphrase); this build cannot decrypt it".into(),
            ));
        }
        let pair = key.key_data().ed25519().ok_or_else(|| {
            bad(format!(
                "{} keys are not supported, only ed25519 (ssh-keygen -t ed25519)",
                key.algorithm()
            ))
        })?;
        let signer = Self::from_seed(pair.private.to_bytes());
        if signer.public != PublicKey::Ed25519(pair.public.0) {
            return Err(bad("the public key does not match the private key".into()));
        }
        Ok(signer)
    }

    /// A key from its 32-byte ed25519 seed (the private key proper).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let public = PublicKey::Ed25519(key.verifying_key().to_bytes());
        let mut blob_prefix = Vec::with_capacity(96);
        blob_prefix.extend_from_slice(sshsig::MAGIC);
        blob_prefix.extend_from_slice(&sshsig::VERSION.to_be_bytes());
        let mut key_blob = Vec::with_capacity(51);
        public.write_blob(&mut key_blob);
        sshsig::put_string(&mut blob_prefix, &key_blob);
        sshsig::put_string(&mut blob_prefix, sshsig::GIT_NAMESPACE.as_bytes());
        sshsig::put_string(&mut blob_prefix, b"");
        sshsig::put_string(&mut blob_prefix, HashAlg::Sha512.name().as_bytes());
        Self {
            key,
            public,
            blob_prefix,
        }
    }
}

/// Signing
impl Signer {
    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Append to `out` the armored SSH signature of `message` in namespace `git` (SHA-512).
    pub fn sign_armored(&self, message: &[u8], out: &mut Vec<u8>) {
        let digest = sha2::Sha512::digest(message);
        let mut signed = Vec::with_capacity(SIGNED_DATA_LEN);
        sshsig::write_signed_data(&mut signed, sshsig::GIT_NAMESPACE, HashAlg::Sha512, &digest);
        let signature = self.key.sign(&signed).to_bytes();
        let mut blob = Vec::with_capacity(self.blob_prefix.len() + 96);
        blob.extend_from_slice(&self.blob_prefix);
        blob.extend_from_slice(&(4 + 11 + 4 + 64u32).to_be_bytes());
        sshsig::put_string(&mut blob, sshsig::ED25519.as_bytes());
        sshsig::put_string(&mut blob, &signature);
        sshsig::armor(&blob, out);
    }

    /// Sign the commit `body` (which has no `gpgsig` header) in place: its `gpgsig` header is
    /// added where git puts it.
    pub fn sign_commit(&self, body: &mut Vec<u8>) {
        self.sign_commit_at(body, 0);
    }

    /// [`sign_commit()`](Self::sign_commit) for the commit body `body[start..]` (the last of
    /// several back to back, as a producer's batch holds them).
    pub fn sign_commit_at(&self, body: &mut Vec<u8>, start: usize) {
        let commit = body.get(start..).unwrap_or_default();
        debug_assert!(!gpgsig::is_signed(commit), "BUG: signing a signed commit");
        let mut armored = Vec::with_capacity(320);
        self.sign_armored(commit, &mut armored);
        gpgsig::insert_at(body, start, &armored);
    }
}
