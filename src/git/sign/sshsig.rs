//! Owns OpenSSH's signature format (`SSHSIG`, what `ssh-keygen -Y sign` writes and git
//! stores in `gpgsig`): the binary blob, the armor around it, and the blob that is signed.
//! Specification: [PROTOCOL.sshsig] at OpenSSH 9.2 (the version Debian 12 ships).
//!
//! Byte layout (`string` = u32 big-endian length, then the bytes):
//!
//! ```text
//! signature blob                          signed data (what ed25519 signs)
//! byte[6]  "SSHSIG"                       byte[6]  "SSHSIG"
//! uint32   1 (version)                    string   namespace ("git")
//! string   public key blob                string   reserved ("")
//!            string "ssh-ed25519"         string   hash algorithm ("sha512")
//!            string key (32 bytes)        string   H(message) (64 bytes)
//! string   namespace
//! string   reserved
//! string   hash algorithm
//! string   signature
//!            string "ssh-ed25519"
//!            string R || S (64 bytes)
//! ```
//!
//! Armor: `-----BEGIN SSH SIGNATURE-----\n`, the blob in standard base64 (padded) cut into
//! lines of [`ARMOR_WIDTH`] characters, `-----END SSH SIGNATURE-----\n`, byte for byte as
//! `ssh-keygen` writes it (ed25519 signatures are deterministic, so the tests compare ours
//! with its output).
//!
//! Invariants: parsing reads through bounds-checked cursors, refuses any length beyond the
//! input and any trailing byte, and allocates at most the input's size; keys other than
//! ed25519 parse (their algorithm name is kept) but can never verify.
//!
//! [PROTOCOL.sshsig]: https://github.com/openssh/openssh-portable/blob/V_9_2_P1/PROTOCOL.sshsig

#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used))]

use base64ct::{Base64, Encoding};

/// The magic that opens a signature blob and the signed data.
pub const MAGIC: &[u8; 6] = b"SSHSIG";
/// The only signature version.
pub const VERSION: u32 = 1;
/// The armor's first line (without its newline).
pub const BEGIN: &[u8] = b"-----BEGIN SSH SIGNATURE-----";
/// The armor's last line (without its newline).
pub const END: &[u8] = b"-----END SSH SIGNATURE-----";
/// Base64 characters per armor line, as `ssh-keygen` writes them.
pub const ARMOR_WIDTH: usize = 70;
/// The namespace git signs commits in.
pub const GIT_NAMESPACE: &str = "git";
/// The ed25519 key and signature algorithm name.
pub const ED25519: &str = "ssh-ed25519";
/// The longest blob [`SshSig::from_armor()`] decodes.
pub const MAX_BLOB_LEN: usize = 8 * 1024;

const ED25519_KEY_LEN: usize = 32;
const ED25519_SIG_LEN: usize = 64;

/// Why a signature does not parse (a zero-size reason: the hot path allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed SSH signature: {0}")]
pub struct Malformed(pub &'static str);

/// The hash an SSH signature signs the message through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// `sha256`.
    Sha256,
    /// `sha512` (what git and `ssh-keygen` use by default).
    Sha512,
}

impl HashAlg {
    /// Its name in the blob.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha512 => "sha512",
        }
    }

    fn from_name(name: &[u8]) -> Result<Self, Malformed> {
        match name {
            b"sha256" => Ok(HashAlg::Sha256),
            b"sha512" => Ok(HashAlg::Sha512),
            _ => Err(Malformed("unknown hash algorithm")),
        }
    }
}

/// A public key as an SSH key blob names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PublicKey {
    /// An ed25519 key.
    Ed25519([u8; ED25519_KEY_LEN]),
    /// Another kind of key (RSA, ECDSA, a certificate, a security key): kept whole to
    /// compare, never verified.
    Other {
        /// The key's algorithm name, e.g. `ssh-rsa`.
        algorithm: String,
        /// The whole key blob.
        blob: Vec<u8>,
    },
}

impl PublicKey {
    /// Parse an SSH public key blob (`string algorithm`, then the algorithm's fields).
    pub fn from_blob(blob: &[u8]) -> Result<Self, Malformed> {
        let mut cursor = Cursor(blob);
        let algorithm = cursor.string()?;
        if algorithm == ED25519.as_bytes() {
            let key = <[u8; ED25519_KEY_LEN]>::try_from(cursor.string()?)
                .map_err(|_| Malformed("ed25519 key is not 32 bytes"))?;
            cursor.finish()?;
            return Ok(PublicKey::Ed25519(key));
        }
        Ok(PublicKey::Other {
            algorithm: String::from_utf8_lossy(algorithm).into_owned(),
            blob: blob.to_vec(),
        })
    }

    /// Parse the text form `<algorithm> <base64 blob>` (what a `.pub` file and an
    /// allowed-signers line hold); the algorithm must match the blob's.
    pub fn from_openssh(algorithm: &str, base64: &str) -> Result<Self, Malformed> {
        if base64.len() > MAX_BLOB_LEN * 2 {
            return Err(Malformed("key too long"));
        }
        let blob = Base64::decode_vec(base64).map_err(|_| Malformed("key is not base64"))?;
        let key = Self::from_blob(&blob)?;
        if key.algorithm() != algorithm {
            return Err(Malformed("key type does not match the key"));
        }
        Ok(key)
    }

    /// The algorithm name.
    pub fn algorithm(&self) -> &str {
        match self {
            PublicKey::Ed25519(_) => ED25519,
            PublicKey::Other { algorithm, .. } => algorithm,
        }
    }

    /// Append the key blob to `out`.
    pub fn write_blob(&self, out: &mut Vec<u8>) {
        match self {
            PublicKey::Ed25519(key) => {
                put_string(out, ED25519.as_bytes());
                put_string(out, key);
            }
            PublicKey::Other { blob, .. } => out.extend_from_slice(blob),
        }
    }

    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut blob = Vec::new();
        self.write_blob(&mut blob);
        let digest = sha2::Sha256::digest(&blob);
        format!(
            "SHA256:{}",
            base64ct::Base64Unpadded::encode_string(&digest)
        )
    }

    /// `<algorithm> <base64 blob>`, as a `.pub` file holds it.
    pub fn to_openssh(&self) -> String {
        let mut blob = Vec::new();
        self.write_blob(&mut blob);
        format!("{} {}", self.algorithm(), Base64::encode_string(&blob))
    }
}

/// A parsed SSH signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSig {
    /// The key that claims to have signed.
    pub key: PublicKey,
    /// The namespace (git signs in [`GIT_NAMESPACE`]).
    pub namespace: String,
    /// The hash the message went through.
    pub hash: HashAlg,
    /// `R || S` when the signature is ed25519 (and so is the key); `None` otherwise.
    pub ed25519: Option<[u8; ED25519_SIG_LEN]>,
}

/// Lifecycle
impl SshSig {
    /// Parse an armored signature (the value of a `gpgsig` header, continuation spaces
    /// removed). The lines between the armor lines are joined; a trailing newline is optional.
    pub fn from_armor(text: &[u8]) -> Result<Self, Malformed> {
        let mut blob = Vec::new();
        Self::from_armor_with(text, &mut blob)
    }

    /// [`from_armor()`](Self::from_armor) decoding into `scratch` (cleared first).
    pub fn from_armor_with(text: &[u8], scratch: &mut Vec<u8>) -> Result<Self, Malformed> {
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        let mut lines = text.split(|b| *b == b'\n');
        if lines.next() != Some(BEGIN) {
            return Err(Malformed("no BEGIN SSH SIGNATURE line"));
        }
        scratch.clear();
        let mut ended = false;
        for line in lines {
            if ended {
                return Err(Malformed("text after the END line"));
            }
            if line == END {
                ended = true;
            } else if scratch.len() + line.len() > MAX_BLOB_LEN * 4 / 3 + 4 {
                return Err(Malformed("signature too long"));
            } else {
                scratch.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            }
        }
        if !ended {
            return Err(Malformed("no END SSH SIGNATURE line"));
        }
        let len = scratch.len();
        scratch.resize(len + len / 4 * 3 + 3, 0);
        let (text, out) = scratch.split_at_mut(len);
        let blob = Base64::decode(&*text, out).map_err(|_| Malformed("not base64"))?;
        Self::from_blob(blob)
    }

    /// Parse a signature blob.
    pub fn from_blob(blob: &[u8]) -> Result<Self, Malformed> {
        let mut cursor = Cursor(blob);
        if cursor.fixed::<6>()? != *MAGIC {
            return Err(Malformed("no SSHSIG magic"));
        }
        if cursor.u32()? != VERSION {
            return Err(Malformed("unsupported version"));
        }
        let key = PublicKey::from_blob(cursor.string()?)?;
        let namespace = std::str::from_utf8(cursor.string()?)
            .map_err(|_| Malformed("namespace is not UTF-8"))?
            .to_owned();
        let _reserved = cursor.string()?;
        let hash = HashAlg::from_name(cursor.string()?)?;
        let mut signature = Cursor(cursor.string()?);
        cursor.finish()?;
        let algorithm = signature.string()?;
        let ed25519 = if algorithm == ED25519.as_bytes() && matches!(key, PublicKey::Ed25519(_)) {
            let bytes = signature.string()?;
            Some(
                <[u8; ED25519_SIG_LEN]>::try_from(bytes)
                    .map_err(|_| Malformed("ed25519 signature is not 64 bytes"))?,
            )
        } else {
            None
        };
        Ok(Self {
            key,
            namespace,
            hash,
            ed25519,
        })
    }
}

/// Encoding
impl SshSig {
    /// Append the signature blob to `out` (the signature field is empty unless it is
    /// ed25519: other kinds are parsed only to be refused).
    pub fn write_blob(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        let mut key = Vec::with_capacity(64);
        self.key.write_blob(&mut key);
        put_string(out, &key);
        put_string(out, self.namespace.as_bytes());
        put_string(out, b"");
        put_string(out, self.hash.name().as_bytes());
        let mut signature = Vec::with_capacity(96);
        if let Some(sig) = &self.ed25519 {
            put_string(&mut signature, ED25519.as_bytes());
            put_string(&mut signature, sig);
        }
        put_string(out, &signature);
    }

    /// Append the armored signature (ending in a newline) to `out`.
    pub fn write_armor(&self, out: &mut Vec<u8>) {
        let mut blob = Vec::with_capacity(200);
        self.write_blob(&mut blob);
        armor(&blob, out);
    }
}

/// Append `blob` armored (ending in a newline) to `out`.
pub fn armor(blob: &[u8], out: &mut Vec<u8>) {
    // 70 base64 characters are 52.5 bytes: encode 105 bytes (two lines) at a time.
    const CHUNK: usize = ARMOR_WIDTH / 4 * 3 * 2 + 3;
    out.reserve(blob.len() * 4 / 3 + blob.len() / 52 + BEGIN.len() + END.len() + 8);
    out.extend_from_slice(BEGIN);
    out.push(b'\n');
    let mut text = [0u8; (CHUNK / 3) * 4];
    let mut column = 0;
    for chunk in blob.chunks(CHUNK) {
        let encoded = Base64::encode(chunk, &mut text).expect("BUG: the buffer fits a chunk");
        for byte in encoded.bytes() {
            out.push(byte);
            column += 1;
            if column == ARMOR_WIDTH {
                out.push(b'\n');
                column = 0;
            }
        }
    }
    if column != 0 {
        out.push(b'\n');
    }
    out.extend_from_slice(END);
    out.push(b'\n');
}

/// Append to `out` the data an SSH signature in `namespace` signs: the magic, the namespace,
/// the hash's name and the message's `digest` under it.
pub fn write_signed_data(out: &mut Vec<u8>, namespace: &str, hash: HashAlg, digest: &[u8]) {
    out.extend_from_slice(MAGIC);
    put_string(out, namespace.as_bytes());
    put_string(out, b"");
    put_string(out, hash.name().as_bytes());
    put_string(out, digest);
}

/// Append `bytes` as an SSH `string`.
pub fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("BUG: SSH strings here are small");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A bounds-checked reader of SSH wire data.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        if len > self.0.len() {
            return Err(Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let bytes = self.take(N)?;
        <[u8; N]>::try_from(bytes).map_err(|_| Malformed("truncated"))
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(self.fixed::<4>()?))
    }

    fn string(&mut self) -> Result<&'a [u8], Malformed> {
        let len = usize::try_from(self.u32()?).map_err(|_| Malformed("length overflows"))?;
        self.take(len)
    }

    fn finish(&self) -> Result<(), Malformed> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Malformed("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `git commit -S` with `gpg.format=ssh` (ssh-keygen 9.2), continuation
    /// spaces removed.
    const FROM_GIT: &[u8] = b"-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgmrriY0q+MsXRVUpas4Y6NwU5zS
V8SJB3ztqmRxpQT8EAAAADZ2l0AAAAAAAAAAZzaGE1MTIAAABTAAAAC3NzaC1lZDI1NTE5
AAAAQJZ7W9KGqjr0AO/Wd3qSyBG36G1lcyNzhJxFr1OEqVwr1EH50u06tuHeFT6MbNeZT9
6s/7nBDpVn2cxGYiIYhw8=
-----END SSH SIGNATURE-----
";

    #[test]
    fn a_signature_git_wrote_parses_and_armors_back_byte_for_byte() {
        let sig = SshSig::from_armor(FROM_GIT).expect("git's signature parses");
        assert_eq!(sig.namespace, "git");
        assert_eq!(sig.hash, HashAlg::Sha512);
        assert!(matches!(sig.key, PublicKey::Ed25519(_)));
        assert!(sig.ed25519.is_some());
        assert_eq!(
            sig.key.fingerprint(),
            "SHA256:cXpSkNoVJoiULNN8AYITghvbYJ+nnxpQRDoT5rehJVs",
            "as git verify-commit printed it"
        );
        let mut out = Vec::new();
        sig.write_armor(&mut out);
        assert_eq!(out, FROM_GIT, "same armor as ssh-keygen: 70 columns");
    }

    #[test]
    fn broken_armor_and_blobs_are_errors_not_panics() {
        let good = SshSig::from_armor(FROM_GIT).unwrap();
        let mut blob = Vec::new();
        good.write_blob(&mut blob);
        for cut in 0..blob.len() {
            assert!(SshSig::from_blob(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = blob.clone();
        trailing.push(0);
        assert!(SshSig::from_blob(&trailing).is_err());
        for bad in [
            &b""[..],
            b"-----BEGIN SSH SIGNATURE-----\n",
            b"-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n",
            b"-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\nx",
        ] {
            assert!(SshSig::from_armor(bad).is_err());
        }
        // A huge length field is refused before any allocation.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(SshSig::from_blob(&huge), Err(Malformed("truncated")));
    }

    #[test]
    fn keys_round_trip_through_their_text_form() {
        let key = PublicKey::Ed25519([7; 32]);
        let text = key.to_openssh();
        let (algorithm, base64) = text.split_once(' ').unwrap();
        assert_eq!(PublicKey::from_openssh(algorithm, base64), Ok(key));
        assert!(PublicKey::from_openssh("ssh-rsa", base64).is_err());
    }
}
