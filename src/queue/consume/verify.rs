//! Owns verifying consumers (feature `sign`): a [`Consumer`] with [`Verify`] hands out only
//! messages **covered by a good signature of a key allowed for their author**, and sends the
//! others to the dead-letter topic with the reason (or stops, by setting).
//!
//! Covered means: the message itself, or a message above it on the topic's first-parent
//! chain (up to the head read when the consumer planned its backlog), carries a good SSH
//! signature in namespace `git` (see [`crate::sign::verify`]) by a key that the
//! allowed-signers file allows for **this message's author email**, at the signing commit's
//! committer date. A signature covers what is below it because each commit names its
//! parent by hash: that is how one signature per batch (`tip` mode) covers the batch, and how
//! a `git commit -S` on top of unsigned history vouches for it. Another author's key covers
//! nothing of yours: on a topic shared by several producers each message needs its own
//! author's key above it.
//!
//! Cost: one walk from the head down to the position when the backlog is planned, reading
//! each commit once more (no ed25519 work for unsigned ones); a signature is verified only
//! when its key is in the file and does not cover the chain below it already (an `each`
//! topic of one producer costs one ed25519 verification per plan, not per message); keys
//! with a validity window are checked at every signature's date. Memory: 4 bytes per planned
//! message and one entry per covering key. [`verdicts()`] (`gitmq log --verify`) also checks
//! every message's own signature, to report it.
//!
//! Invariants: a refused message is never handed out; it is dead-lettered (acknowledged)
//! before the position can move past it, or the consumer stops before it; the verdict on a
//! message depends only on the chain from it to the planned head, never on dates.

use std::{collections::HashMap, sync::Arc};

use gix_hash::ObjectId;

use super::handler::DeadLetters;
use crate::{
    git::{
        odb::Odb,
        sign::{
            sshsig::{PublicKey, GIT_NAMESPACE},
            verify::{identities, Claim},
            AllowedSigners, Verdict, Verifier,
        },
        walk::{self, Chain},
    },
    Consumer, Message, Producer, Repository, TopicName,
};

/// Returned (inside [`super::Error::Verify`]) by a verifying consumer's reads when a message
/// is refused and refused messages stop the consumer ([`DeadLetters::Off`]), or when a
/// refused message could not be dead-lettered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message is not covered by a good signature of a key allowed for its author.
    #[error("message {id} of topic {topic} refused: {reason}")]
    Refused {
        /// The topic.
        topic: String,
        /// The message.
        id: ObjectId,
        /// Why (unsigned, bad signature, unknown key, key not allowed for the author).
        reason: String,
    },
    /// Publishing a refused message to the dead-letter topic failed: it was not handed out,
    /// and comes again at the next read.
    #[error("dead-lettering refused message {id} failed")]
    DeadLetter {
        /// The message.
        id: ObjectId,
        /// Why.
        source: Box<crate::Error>,
    },
}

/// A consumer's verification setting.
#[derive(Debug, Clone)]
pub struct Verify {
    /// Which keys may sign as which authors.
    pub signers: Arc<AllowedSigners>,
    /// Where refused messages go: the dead-letter topic (`<topic>.dlq` by default, with
    /// `gitmq.dlq.error` saying why and `gitmq.dlq.attempts 0`), or nowhere
    /// ([`DeadLetters::Off`]: the read fails with [`Error::Refused`], the consumer before it).
    pub refused: DeadLetters,
}

impl Verify {
    /// Verify against `signers`, dead-lettering refused messages to `<topic>.dlq`.
    pub fn new(signers: AllowedSigners) -> Self {
        Self {
            signers: Arc::new(signers),
            refused: DeadLetters::Default,
        }
    }

    /// Stop at a refused message instead of dead-lettering it.
    #[must_use]
    pub fn stop_on_refused(mut self) -> Self {
        self.refused = DeadLetters::Off;
        self
    }
}

/// A key whose good signature covers the chain below it.
#[derive(Debug, Clone)]
struct Cover {
    key: PublicKey,
    /// The committer date of the signed commit (validity windows are checked at it).
    time: i64,
    /// The signed commit.
    commit: ObjectId,
}

/// Which messages of a planned run are covered, from the top down.
#[derive(Debug, Default)]
struct Coverage {
    covers: Vec<Cover>,
    /// Per message, newest first: the index of its cover, or [`NOT_COVERED`].
    by: Vec<u32>,
    /// The oldest message walked.
    bottom: Option<ObjectId>,
    /// Per author email: (covers checked, whether one allows it).
    allowed: HashMap<Vec<u8>, (usize, Option<u32>)>,
}

const NOT_COVERED: u32 = u32::MAX;
/// Distinct covers kept (a key with a validity window adds one per signing date); beyond,
/// signatures are still verified but add no cover.
const MAX_COVERS: usize = 4096;

impl Coverage {
    /// Walk from `head` down to `stop` (exclusive) and decide every message. Only
    /// signatures that would add a cover are verified: one that does not (its key already
    /// covers everything below it) changes no verdict.
    fn plan(
        odb: &mut Odb,
        head: ObjectId,
        stop: Option<ObjectId>,
        signers: &AllowedSigners,
        verifier: &mut Verifier,
        scratch: &mut Vec<u8>,
    ) -> Result<Self, walk::Error> {
        let mut coverage = Coverage::default();
        let mut chain = Chain::new(head, stop);
        let mut body = Vec::new();
        while let Some((id, location)) = chain.next(odb, scratch)? {
            let (_, bytes) = odb.object_at(&location, &mut body)?;
            coverage.bottom = Some(id);
            let Some(ids) = identities(bytes) else {
                coverage.by.push(NOT_COVERED);
                continue;
            };
            if let Claim::Signed(sig) = verifier.claim(bytes) {
                let time = ids.committer_time;
                let timed = signers.is_timed(&sig.key);
                let adds = !coverage
                    .covers
                    .iter()
                    .any(|c| c.key == sig.key && (!timed || c.time == time));
                if adds && signers.knows(&sig.key) {
                    let good = verifier.verify_claim(&sig).is_ok();
                    if good && coverage.covers.len() < MAX_COVERS {
                        coverage.covers.push(Cover {
                            key: sig.key,
                            time,
                            commit: id,
                        });
                    }
                }
            }
            let cover = coverage.cover_for(ids.author_email, signers);
            coverage.by.push(cover.unwrap_or(NOT_COVERED));
        }
        chain.finish(odb)?;
        Ok(coverage)
    }

    /// The first cover allowing `email`, using the per-email cache.
    fn cover_for(&mut self, email: &[u8], signers: &AllowedSigners) -> Option<u32> {
        let checked = match self.allowed.get(email) {
            Some((_, Some(found))) => return Some(*found),
            Some((checked, None)) if *checked == self.covers.len() => return None,
            Some((checked, None)) => *checked,
            None => 0,
        };
        let principal = String::from_utf8_lossy(email);
        let found = self
            .covers
            .iter()
            .enumerate()
            .skip(checked)
            .find(|(_, c)| signers.allows(&principal, &c.key, GIT_NAMESPACE, Some(c.time)))
            .and_then(|(i, _)| u32::try_from(i).ok());
        if self.allowed.len() > 65_536 {
            self.allowed.clear();
        }
        self.allowed
            .insert(email.to_vec(), (self.covers.len(), found));
        found
    }
}

/// The verification state of one consumer: its setting, the coverage of its planned
/// backlog, where the next message is in it, and the dead-letter producer.
#[derive(Debug)]
pub(crate) struct ConsumerVerify {
    config: Verify,
    verifier: Verifier,
    coverage: Coverage,
    /// Messages of the plan handed out (or refused) so far.
    next: usize,
    dead_producer: Option<Producer>,
    /// Refused messages and why, since the last [`Consumer::take_refused()`].
    refused: Vec<(ObjectId, String)>,
}

/// What the consumer does with a message.
pub(crate) enum Decision {
    /// Hand it out.
    Deliver,
    /// Refused: dead-letter it (with this reason) and go on.
    DeadLetter(String),
    /// Refused and dead letters are off: stop.
    Stop(String),
}

impl ConsumerVerify {
    pub(crate) fn new(config: Verify) -> Self {
        Self {
            config,
            verifier: Verifier::new(),
            coverage: Coverage::default(),
            next: 0,
            dead_producer: None,
            refused: Vec::new(),
        }
    }

    /// A backlog was planned from `head` down to `stop`: decide its messages.
    pub(crate) fn plan(
        &mut self,
        odb: &mut Odb,
        head: ObjectId,
        stop: Option<ObjectId>,
        scratch: &mut Vec<u8>,
    ) -> Result<(), walk::Error> {
        self.coverage = Coverage::plan(
            odb,
            head,
            stop,
            &self.config.signers,
            &mut self.verifier,
            scratch,
        )?;
        self.next = 0;
        Ok(())
    }

    /// Whether the next message of the plan, `id`, is covered. A message out of step with
    /// the plan (which never happens: both walks follow the same chain) is not.
    fn next_covered(&mut self, id: ObjectId) -> bool {
        let index = self.coverage.by.len().checked_sub(self.next + 1);
        if self.next == 0 && self.coverage.bottom != Some(id) {
            debug_assert!(
                false,
                "BUG: the coverage plan is out of step with the backlog"
            );
            return false;
        }
        self.next += 1;
        index
            .and_then(|i| self.coverage.by.get(i))
            .is_some_and(|by| *by != NOT_COVERED)
    }

    /// Whether the next message of the plan, `id`, is covered (and step past it).
    pub(crate) fn is_covered_next(&mut self, id: ObjectId) -> bool {
        self.next_covered(id)
    }

    /// Decide on `message`, the next one of the plan (`covered`: already looked up with
    /// [`is_covered_next()`](Self::is_covered_next)); `odb` re-reads it to say why when it is
    /// refused.
    pub(crate) fn decide(
        &mut self,
        message_id: ObjectId,
        covered: Option<bool>,
        odb: &mut Odb,
        scratch: &mut Vec<u8>,
    ) -> Result<Decision, walk::Error> {
        if covered.unwrap_or_else(|| self.next_covered(message_id)) {
            return Ok(Decision::Deliver);
        }
        odb.read_commit(&message_id, scratch)?;
        let reason = refusal(
            &self.verifier.verdict(scratch, &self.config.signers),
            scratch,
        );
        Ok(match self.config.refused {
            DeadLetters::Off => Decision::Stop(reason),
            _ => Decision::DeadLetter(reason),
        })
    }

    /// Forget the plan (the backlog was dropped).
    pub(crate) fn reset(&mut self) {
        self.coverage = Coverage::default();
        self.next = 0;
    }
}

/// Why a message that is not covered is refused, from its own signature's verdict.
fn refusal(verdict: &Verdict, body: &[u8]) -> String {
    let email = identities(body)
        .map(|ids| String::from_utf8_lossy(ids.author_email).into_owned())
        .unwrap_or_default();
    match verdict {
        Verdict::Unsigned => {
            format!("unsigned, and no good signature above it by a key allowed for {email}")
        }
        Verdict::Good { key, .. } => format!(
            "signed by {} but not covered (a validity window or more than {MAX_COVERS} keys)",
            key.fingerprint()
        ),
        other => other.to_string(),
    }
}

/// Verification
impl Consumer {
    /// Hand out only messages covered by a good signature of a key `verify` allows for their
    /// author (see [`crate::queue::consume::verify`]); refused messages go to the dead-letter
    /// topic or stop the consumer, per [`Verify::refused`].
    ///
    /// ```
    /// # fn main() -> Result<(), gitmq::Error> {
    /// use std::sync::Arc;
    /// use gitmq::{consume::verify::Verify, produce::Signing, sign::{AllowedSigners, Signer}};
    /// use gitmq::{ConsumerName, Identity, ProducerConfig, Repository, TopicName};
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let repo = Repository::init(dir.path())?;
    /// let orders = TopicName::new("orders")?;
    /// let key = Arc::new(Signer::from_seed([5; 32]));
    /// let shop = Identity::new("shop", "shop@example.com")?;
    /// ProducerConfig::default().with_identity(shop).with_signing(Signing::tip(key.clone()))
    ///     .open(&repo, &orders)
    ///     .publish_batch([&b"signed 1"[..], b"signed 2"])?;
    /// repo.producer(&orders).publish(b"forged")?;           // anyone can write a commit
    ///
    /// let signers = AllowedSigners::parse(&format!("shop@example.com {}", key.public_key().to_openssh()))
    ///     .expect("allowed signers");
    /// let mut billing = repo.consumer(&ConsumerName::new("billing")?, &orders)?
    ///     .with_verify(Verify::new(signers));
    /// let payloads: Vec<_> = billing.poll(10)?.into_iter().map(|m| m.payload).collect();
    /// assert_eq!(payloads, [b"signed 1".to_vec(), b"signed 2".to_vec()]);
    /// assert_eq!(billing.take_refused().len(), 1);          // "forged" is on orders.dlq
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_verify(mut self, verify: Verify) -> Self {
        self.verify = Some(Box::new(ConsumerVerify::new(verify)));
        self.backlog = None;
        self
    }

    /// The messages refused since the last call, with why, oldest first.
    pub fn take_refused(&mut self) -> Vec<(ObjectId, String)> {
        self.verify
            .as_mut()
            .map(|v| std::mem::take(&mut v.refused))
            .unwrap_or_default()
    }

    /// Dead-letter the refused `message` (its commit id `id`) with `reason`, and count it as
    /// handed out: the position may move past it only now that its dead letter is
    /// acknowledged.
    pub(crate) fn dead_letter_refused(
        &mut self,
        message: &Message,
        reason: &str,
    ) -> Result<(), super::Error> {
        let failed = |source| Error::DeadLetter {
            id: message.id,
            source: Box::new(source),
        };
        let verify = self
            .verify
            .as_mut()
            .expect("BUG: only a verifying consumer refuses");
        let dead_topic = match &verify.config.refused {
            DeadLetters::Topic(topic) => topic.clone(),
            _ => super::dlq::default_topic(&self.topic).map_err(failed)?,
        };
        let mut producer = verify
            .dead_producer
            .take()
            .unwrap_or_else(|| self.repo.producer(&dead_topic));
        let published = super::dlq::publish(
            &mut producer,
            self,
            message,
            0,
            &format!("refused by signature verification: {reason}"),
        );
        let verify = self.verify.as_mut().expect("BUG: checked above");
        verify.dead_producer = Some(producer);
        published.map_err(failed)?;
        verify.refused.push((message.id, reason.to_owned()));
        self.delivered = Some(message.id);
        self.uncommitted += 1;
        Ok(())
    }

    /// Whether a verifying consumer hands `message` out (always, when not verifying); a
    /// refused one is dead-lettered (`false`) or stops the consumer (the error).
    /// `already_refused`: the plan lookup was done and said not covered.
    pub(crate) fn accept_verified(
        &mut self,
        message: &Message,
        already_refused: bool,
    ) -> Result<bool, super::Error> {
        let Some(verify) = self.verify.as_mut() else {
            return Ok(true);
        };
        let covered = already_refused.then_some(false);
        match verify.decide(message.id, covered, &mut self.odb, &mut self.buf)? {
            Decision::Deliver => Ok(true),
            Decision::DeadLetter(reason) => {
                self.dead_letter_refused(message, &reason)?;
                Ok(false)
            }
            Decision::Stop(reason) => Err(self.stop_refused(message.id, reason)),
        }
    }

    /// A refused message stops the consumer: plan again from before it next time.
    pub(crate) fn stop_refused(&mut self, id: ObjectId, reason: String) -> super::Error {
        self.backlog = None;
        if let Some(verify) = self.verify.as_mut() {
            verify.reset();
        }
        Error::Refused {
            topic: self.topic.to_string(),
            id,
            reason,
        }
        .into()
    }
}

/// One message's verification, as [`verdicts()`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageVerdict {
    /// The message.
    pub message: Message,
    /// Its own signature's verdict.
    pub own: Verdict,
    /// The signed commit (this one or one above it) whose key covers it, if any: whether a
    /// verifying consumer accepts it.
    pub covered_by: Option<ObjectId>,
}

/// Every message of `topic`, oldest first, with its own signature's verdict (every
/// signature checked) and what covers it: `gitmq log --verify`. Holds the whole topic.
pub fn verdicts(
    repo: &Repository,
    topic: &TopicName,
    signers: &AllowedSigners,
) -> Result<Vec<MessageVerdict>, crate::Error> {
    let Some(head) = repo.head(topic)? else {
        return Ok(Vec::new());
    };
    let mut odb = repo.odb();
    let (mut scratch, mut body) = (Vec::new(), Vec::new());
    let mut verifier = Verifier::new();
    let coverage = Coverage::plan(&mut odb, head, None, signers, &mut verifier, &mut scratch)?;
    let mut out = Vec::with_capacity(coverage.by.len());
    let mut chain = Chain::new(head, None);
    let mut index = 0;
    while let Some((id, _)) = chain.next(&mut odb, &mut scratch)? {
        odb.read_commit(&id, &mut body)?;
        let message = crate::git::message::decode::decode(id, &body)?.into_owned();
        let covered_by = coverage
            .by
            .get(index)
            .and_then(|by| coverage.covers.get(usize::try_from(*by).ok()?))
            .map(|c| c.commit);
        let own = verifier.verdict(&body, signers);
        // A message with its own good signature is its own cover.
        let covered_by = match own {
            Verdict::Good { .. } => Some(id),
            _ => covered_by,
        };
        out.push(MessageVerdict {
            message,
            own,
            covered_by,
        });
        index += 1;
    }
    chain.finish(&mut odb)?;
    out.reverse();
    Ok(out)
}
