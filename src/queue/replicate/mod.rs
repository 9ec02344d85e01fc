//! Owns moving a queue between repositories over smart HTTP: [`mod@fetch`] (a remote's topics and
//! positions into this repository) and [`push`] (this repository's topics and positions onto
//! the remote, rebuilding on a lost race). The wire protocol itself is [`crate::git::wire`]'s.

pub mod fetch;
mod order;
pub mod push;

#[cfg(feature = "http")]
pub use crate::git::wire::http;
pub use crate::git::wire::{
    Body, Error, HttpClient, Method, Progress, RemoteUrl, Request, Response,
};
#[cfg(feature = "http")]
pub use fetch::fetch;
pub use fetch::{fetch_with, FetchOptions, FetchReport, RefUpdate, UpdateKind};
