//! Owns upload-pack, the server side of clone and fetch: protocol v2 (`ls-refs`, `fetch` with
//! negotiation rounds) in `v2.rs`, the v0 stateless exchange in `v0.rs`, and what both
//! share here: the state of one fetch ([`Fetch`]: the client's view of the refs, its wants
//! and haves, the commit walk), deciding `ready`, and turning it into a [`PackResponse`].
//!
//! Data flow of one fetch request:
//!
//! ```text
//! body -> parse (v0 or v2) -> objects::check_wants (readable refs, reachability)
//!      -> objects::add_have per have (acknowledged if we have it)
//!      -> walk::walk (wants against common commits)  -> ready? / acknowledgments
//!      -> objects::enumerate (commits, trees, blobs, tags the client lacks)
//!      -> pack::PackResponse (streamed by Response::write_body)
//! ```
//!
//! Invariants: every request is stateless (HTTP): a round's answer depends only on its body
//! and the repository; nothing is sent unless every want passed [`objects::check_wants()`].

mod depth;
mod objects;
mod pack;
pub(crate) mod v0;
pub(crate) mod v2;
mod walk;

use std::collections::HashSet;

use gix_hash::ObjectId;

pub(crate) use self::pack::PackResponse;
use self::{
    objects::{Haves, Wants},
    walk::CommitWalk,
};
use super::{view::RefView, Error, GitHost};
use crate::git::odb::Odb;

/// One fetch being negotiated.
pub(crate) struct Fetch<'h> {
    host: &'h GitHost,
    odb: Odb,
    view: RefView,
    wants: Wants,
    haves: Haves,
    client_shallow: HashSet<ObjectId>,
    /// `deepen <n>`: only the commits within `n` of the wants.
    depth: Option<u32>,
    /// The last walk and how many common commits it was made with.
    walk: Option<(usize, CommitWalk)>,
    body: Vec<u8>,
}

/// Lifecycle
impl<'h> Fetch<'h> {
    /// Check `wants` against what the client may read; `Err(refusal)` names one it may not
    /// have.
    pub(crate) fn new(
        host: &'h GitHost,
        mut odb: Odb,
        view: RefView,
        wants: &[ObjectId],
        client_shallow: HashSet<ObjectId>,
    ) -> Result<Result<Self, objects::Refusal>, Error> {
        let wants = match objects::check_wants(&mut odb, &view, wants)? {
            Ok(wants) => wants,
            Err(refusal) => return Ok(Err(refusal)),
        };
        Ok(Ok(Self {
            host,
            odb,
            view,
            wants,
            haves: Haves::default(),
            client_shallow,
            depth: None,
            walk: None,
            body: Vec::new(),
        }))
    }

    /// Send only the commits within `depth` of the wants (`deepen <depth>`).
    pub(crate) fn with_depth(mut self, depth: Option<u32>) -> Self {
        self.depth = depth;
        self
    }
}

/// Negotiating
impl Fetch<'_> {
    /// Record a `have`; `true` if we have the object too (acknowledge it).
    pub(crate) fn have(&mut self, id: ObjectId) -> Result<bool, Error> {
        objects::add_have(&mut self.odb, &mut self.haves, id, &mut self.body)
    }

    /// Whether the common commits found so far suffice to cut the pack: some exist, and the
    /// walk from the wants ends at them (or at shallow boundaries), never at a root the
    /// client did not mention (git's `ok_to_give_up`).
    pub(crate) fn ready(&mut self) -> Result<bool, Error> {
        if self.depth.is_some() {
            return Ok(true); // the depth bounds the pack; more haves save little
        }
        if self.haves.commits.is_empty() {
            return Ok(false);
        }
        Ok(!self.walk()?.reached_root)
    }

    fn walk(&mut self) -> Result<&CommitWalk, Error> {
        let commons = self.haves.commits.len();
        if self.walk.as_ref().is_none_or(|(n, _)| *n != commons) {
            let walk = match self.depth {
                Some(depth) => depth::walk(
                    &mut self.odb,
                    &self.wants.commits,
                    depth,
                    &self.haves.commits,
                )?,
                None => walk::walk(
                    &mut self.odb,
                    &self.wants.commits,
                    &self.haves.commits,
                    &self.client_shallow,
                )?,
            };
            self.walk = Some((commons, walk));
        }
        Ok(&self.walk.as_ref().expect("BUG: set above").1)
    }

    /// The commits the pack sends without their parents: the repository's shallow commits
    /// it reaches, and with a depth, the commits at that depth.
    pub(crate) fn boundaries(&mut self) -> Result<Vec<ObjectId>, Error> {
        Ok(self.walk()?.boundaries.clone())
    }

    /// The pack answer: `prefix` packets, then the pack.
    pub(crate) fn into_pack(
        mut self,
        prefix: Vec<u8>,
        sideband: Option<usize>,
        progress: bool,
        include_tag: bool,
    ) -> Result<PackResponse, Error> {
        self.walk()?;
        let (_, walk) = self.walk.take().expect("BUG: walked above");
        let objects = objects::enumerate(
            &mut self.odb,
            &walk,
            &self.wants,
            &self.haves,
            include_tag.then_some(&self.view),
        )?;
        Ok(PackResponse {
            prefix,
            odb: self.odb,
            objects,
            sideband,
            progress,
            compression: self.host.options.compression,
        })
    }
}

/// What a refusal looks like on the wire: one `ERR` packet (git prints "remote error: ...").
pub(crate) fn refusal_body(refusal: &objects::Refusal) -> Vec<u8> {
    let mut out = Vec::new();
    crate::git::wire::pktline::encode_text(&mut out, &format!("ERR {}", refusal.0));
    out
}

pub(crate) use objects::Refusal;
