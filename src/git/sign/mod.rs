//! Signed commits in git's SSH format: what `git commit -S` writes with `gpg.format=ssh` and
//! what `git verify-commit` checks against `gpg.ssh.allowedSignersFile`.
//!
//! - [`gpgsig`]: the `gpgsig` header (find, take out, put in; mark a copy that lost its
//!   signature). Always compiled: copies are marked even without the `sign` feature.
//! - [`copy`]: a copy's signature: re-signed by the key that made it, else marked.
//! - [`sshsig`] (feature `sign`): OpenSSH's `SSHSIG` blob, its armor, the signed data.
//! - [`allowed`] (feature `sign`): the allowed-signers file.
//! - [`signer`] (feature `sign`): [`Signer`], an ed25519 key that signs commit bodies.
//! - [`verify`] (feature `sign`): [`Verifier`], a commit's own signature and its [`Verdict`].
//!
//! Data flow: commit body (no `gpgsig`) -> SHA-512 -> signed data (`SSHSIG`, namespace `git`)
//! -> ed25519 -> blob -> armor -> `gpgsig` header at the end of the header block -> SHA-1 of
//! the whole is the commit id. Verifying runs it backwards from the body.
//!
//! Invariants: nothing here reads or writes the repository; every parser is bounded and never
//! panics (fuzz target `signature`); only ed25519 keys sign or verify.

pub mod copy;
pub mod gpgsig;

#[cfg(feature = "sign")]
pub mod allowed;
#[cfg(feature = "sign")]
pub mod signer;
#[cfg(feature = "sign")]
pub mod sshsig;
#[cfg(feature = "sign")]
pub mod verify;

#[cfg(feature = "sign")]
pub use allowed::{AllowedSigners, Error as AllowedSignersError};
#[cfg(feature = "sign")]
pub use signer::Signer;
#[cfg(feature = "sign")]
pub use sshsig::{PublicKey, SshSig};
#[cfg(feature = "sign")]
pub use verify::{check_commit, Signature, Verdict, Verifier};

/// Without the `sign` feature there are no keys: this type has no values, so every
/// `Option<&Signer>` is `None` and copies of signed messages are marked, never re-signed.
#[cfg(not(feature = "sign"))]
#[derive(Debug)]
pub enum Signer {}

#[cfg(not(feature = "sign"))]
impl Signer {
    /// Never called: there is no key without the `sign` feature.
    pub fn sign_commit_at(&self, _body: &mut Vec<u8>, _start: usize) {
        match *self {}
    }
}

/// Returned by [`Signer::open()`] and the loaders of keys and allowed-signers files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A private key file was refused.
    #[error("signing key{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Key {
        /// The key file, if read from one.
        path: Option<std::path::PathBuf>,
        /// Why.
        reason: String,
    },
    /// The allowed-signers file was refused.
    #[cfg(feature = "sign")]
    #[error(transparent)]
    AllowedSigners(#[from] allowed::Error),
}
