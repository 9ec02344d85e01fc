//! Owns the git host's access decisions: a callback the serving layer supplies, asked per
//! service and per ref, so a token can read some topics and write others.
//!
//! Invariants: a ref the client may not read is never advertised, and a want is served only
//! if a readable ref reaches it; a ref the client may not write is refused with
//! `ng <ref> permission denied` before any object of the push is read.

use super::Service;

/// What a client wants to do with a ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// See the ref and fetch what it reaches.
    Read,
    /// Create, move or delete the ref.
    Write,
}

/// Decides what one client may do. The serving layer implements it from the request's
/// credentials (for example a token's read and write globs over topics).
///
/// Any `Fn(Operation, &str) -> bool` is an `Access`:
///
/// ```
/// use gitmq::githost::{Access, Operation};
/// let topics_only = |op: Operation, name: &str| {
///     name.starts_with("refs/heads/") || op == Operation::Read
/// };
/// assert!(topics_only.allows(Operation::Write, "refs/heads/orders"));
/// assert!(!topics_only.allows(Operation::Write, "refs/gitmq/consumers/c/orders"));
/// ```
pub trait Access {
    /// Whether the client may do `operation` on the full ref `name` (`refs/heads/orders`,
    /// `refs/gitmq/consumers/billing/orders`; `HEAD` for a detached `HEAD`).
    fn allows(&self, operation: Operation, name: &str) -> bool;

    /// Whether the client may use `service` at all; when not, the request is refused with
    /// 403 before anything is read (the default allows both).
    fn allows_service(&self, service: Service) -> bool {
        let _ = service;
        true
    }
}

impl<F: Fn(Operation, &str) -> bool> Access for F {
    fn allows(&self, operation: Operation, name: &str) -> bool {
        self(operation, name)
    }
}

/// Every client may read and write everything (a host on loopback, or behind its own gate).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Access for AllowAll {
    fn allows(&self, _: Operation, _: &str) -> bool {
        true
    }
}

/// Every client may read everything and push nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOnly;

impl Access for ReadOnly {
    fn allows(&self, operation: Operation, _: &str) -> bool {
        operation == Operation::Read
    }

    fn allows_service(&self, service: Service) -> bool {
        service == Service::UploadPack
    }
}
