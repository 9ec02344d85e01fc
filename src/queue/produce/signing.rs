//! Owns a producer's signing setting ([`Signing`]: a key and a [`SignMode`]) and where a
//! batch applies it: each message as it is encoded (`each`), or the batch's last message
//! when the batch is sealed (`tip`).
//!
//! What a good signature proves (checked by `git verify-commit` and by verifying consumers):
//!
//! - `each`: the key holder signed this exact message: payload, headers, author, dates and
//!   its parent, hence (by the hash chain) the whole history below it.
//! - `tip`: only the last message of each batch is signed. Its signature covers every message
//!   below it through the parent ids (SHA-1, as every git signature does): the key holder
//!   **endorsed the whole history as of that tip**, exactly those bytes in that order. It
//!   does not say the key holder wrote each message below (another producer's messages on
//!   the same topic are endorsed too; a verifying consumer still requires, per message, a
//!   signature by a key allowed for *that message's* author), and messages above the last
//!   signed tip are not covered until a signed descendant arrives (a producer's batch moves the
//!   topic only with its signed tip, so a reader never sees a tip-mode batch half covered).
//!
//! Invariants: signing happens before a message is hashed, so its id names the signed bytes;
//! in `tip` mode the id [`Producer::append()`](super::Producer::append) returned for the
//! message that ends a batch is provisional (signing at seal time gives it its final id, which
//! the flush reports, as for a rebuild); a rebuilt batch is re-signed with the same key
//! ([`crate::git::sign::copy`]).

use std::sync::Arc;

use super::Producer;
use crate::git::sign::Signer;

/// Which messages a producer signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignMode {
    /// Every message (one ed25519 signature each).
    #[default]
    Each,
    /// The last message of each batch (one signature per batch; see the module docs for what
    /// it proves).
    Tip,
}

impl std::str::FromStr for SignMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "each" => Ok(SignMode::Each),
            "tip" => Ok(SignMode::Tip),
            other => Err(format!("unknown signing mode {other:?} (each, tip)")),
        }
    }
}

/// A producer's key and mode.
#[derive(Debug, Clone)]
pub struct Signing {
    /// The key (shared: batches carry it to the flush thread, which re-signs rebuilds).
    pub key: Arc<Signer>,
    /// Which messages it signs.
    pub mode: SignMode,
}

impl Signing {
    /// Sign every message with `key`.
    pub fn each(key: Arc<Signer>) -> Self {
        Self {
            key,
            mode: SignMode::Each,
        }
    }

    /// Sign the last message of each batch with `key`.
    pub fn tip(key: Arc<Signer>) -> Self {
        Self {
            key,
            mode: SignMode::Tip,
        }
    }

    /// The key, if this setting signs every message.
    pub(crate) fn each_key(this: Option<&Self>) -> Option<&Signer> {
        this.filter(|s| s.mode == SignMode::Each).map(|s| &*s.key)
    }

    /// The key, if this setting signs batch tips.
    pub(crate) fn tip_key(this: Option<&Self>) -> Option<&Signer> {
        this.filter(|s| s.mode == SignMode::Tip).map(|s| &*s.key)
    }
}

/// Signing
impl Producer {
    /// The producer's signing setting, if it signs ([`super::ProducerConfig::with_signing()`]).
    ///
    /// ```
    /// # #[cfg(feature = "sign")]
    /// # fn main() -> Result<(), gitmq::Error> {
    /// use std::sync::Arc;
    /// use gitmq::{produce::Signing, sign::{check_commit, Signature, Signer}};
    /// use gitmq::{ProducerConfig, Repository, TopicName};
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let repo = Repository::init(dir.path())?;
    /// let key = Arc::new(Signer::from_seed([9; 32]));   // or Signer::open("~/.ssh/id_ed25519")
    /// let mut producer = ProducerConfig::default()
    ///     .with_signing(Signing::each(key))
    ///     .open(&repo, &TopicName::new("orders")?);
    /// assert!(producer.signing().is_some());
    /// producer.publish(b"signed")?;
    /// # Ok(()) }
    /// # #[cfg(not(feature = "sign"))]
    /// # fn main() {}
    /// ```
    pub fn signing(&self) -> Option<&Signing> {
        self.batch.signing.as_ref()
    }
}
