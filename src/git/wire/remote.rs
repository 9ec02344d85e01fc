//! Owns one conversation with a smart-HTTP `git-upload-pack`: the ref discovery request, then
//! `ls-refs` and `fetch` (protocol v2), or the v0 equivalents when the server ignored
//! `Git-Protocol: version=2`.
//!
//! Invariants: every response's content type is checked (a dumb-HTTP or HTML answer is
//! [`Error::NotSmartHttp`], not a parse error deep inside); bodies read whole are bounded by
//! [`MAX_REFS_RESPONSE`]; the pack is streamed from the body into the indexer, so it is never
//! held in memory; a band-3 error from the server wins over the indexer's "truncated".

use std::io::Read;

use gix_hash::ObjectId;

use super::{
    pktline, sideband, v0,
    v2::{self, Advertisement, Capabilities, RemoteRef},
    Body, Error, HttpClient, Method, RemoteUrl, Request, Response, AGENT,
};
use crate::git::odb::{
    pack::index_pack::{self, IndexedPack, Limits},
    Odb,
};

/// The largest ref advertisement or `ls-refs` answer read (64 MiB).
pub const MAX_REFS_RESPONSE: u64 = 64 << 20;

const SERVICE_PATH: &str = "git-upload-pack";
const DISCOVERY_PATH: &str = "info/refs?service=git-upload-pack";
const ADVERTISEMENT_TYPE: &str = "application/x-git-upload-pack-advertisement";
const REQUEST_TYPE: &str = "application/x-git-upload-pack-request";
const RESULT_TYPE: &str = "application/x-git-upload-pack-result";

#[derive(Debug)]
enum Protocol {
    V2(Capabilities),
    V0(v0::Advertisement),
}

/// A git server's `upload-pack` service, after ref discovery.
#[derive(Debug)]
pub struct Remote<C> {
    client: C,
    url: RemoteUrl,
    protocol: Protocol,
}

/// Lifecycle
impl<C: HttpClient> Remote<C> {
    /// Discover the server's protocol and capabilities (`GET info/refs`).
    pub fn connect(client: C, url: RemoteUrl) -> Result<Self, Error> {
        let response = client.send(Request {
            method: Method::Get,
            url: &url,
            path: DISCOVERY_PATH,
            headers: &[("Git-Protocol", v2::PROTOCOL_HEADER_VALUE)],
            body: Body::Empty,
        })?;
        check_type(&url, &response, ADVERTISEMENT_TYPE)?;
        let body = read_limited(&url, response.body, MAX_REFS_RESPONSE)?;
        let protocol = match v2::parse_advertisement(&body)? {
            Advertisement::V2(caps) => Protocol::V2(caps),
            Advertisement::V0(rest) => Protocol::V0(v0::parse_advertisement(&rest)?),
        };
        Ok(Self {
            client,
            url,
            protocol,
        })
    }
}

/// Access
impl<C: HttpClient> Remote<C> {
    /// The remote's URL.
    pub fn url(&self) -> &RemoteUrl {
        &self.url
    }

    /// The protocol version in use: 2, or 0 when the server did not speak v2.
    pub fn protocol_version(&self) -> u8 {
        match self.protocol {
            Protocol::V2(_) => 2,
            Protocol::V0(_) => 0,
        }
    }

    /// The refs under `prefixes` (each ending in `/`), as the server lists them.
    pub fn list_refs(&self, prefixes: &[&str]) -> Result<Vec<RemoteRef>, Error> {
        match &self.protocol {
            Protocol::V2(caps) => {
                let request = v2::ls_refs_request(caps, AGENT, prefixes)?;
                let response = self.post(request, true)?;
                let body = read_limited(&self.url, response.body, MAX_REFS_RESPONSE)?;
                Ok(v2::parse_ls_refs(&body)?)
            }
            Protocol::V0(advertisement) => Ok(advertisement
                .refs
                .iter()
                .filter(|r| prefixes.iter().any(|p| r.name.starts_with(p)))
                .cloned()
                .collect()),
        }
    }

    /// Ask for `wants` (telling the server about `haves`), and index the pack it sends into
    /// `pack_dir` within `limits`, fsynced when `sync`. With `thin` (the repository's objects,
    /// which hold everything `haves` reach), ask for a thin pack and complete it from them
    /// ([`index_pack::index_thin_pack()`]). Progress text goes to `progress`. `None` if the
    /// server sent no pack.
    #[allow(clippy::too_many_arguments)] // one request's inputs; a struct would only rename them
    pub fn fetch_pack(
        &self,
        wants: &[ObjectId],
        haves: &[ObjectId],
        odb: &mut Odb,
        limits: &Limits,
        sync: bool,
        thin: bool,
        progress: Option<super::Progress<'_>>,
    ) -> Result<Option<IndexedPack>, Error> {
        let no_progress = progress.is_none();
        let thin_pack = thin;
        let (request, v2) = match &self.protocol {
            Protocol::V2(caps) => {
                let request = v2::FetchRequest {
                    wants,
                    haves,
                    no_progress,
                    thin_pack,
                };
                (v2::fetch_request(caps, AGENT, &request)?, true)
            }
            Protocol::V0(advertisement) => (
                v0::fetch_request(advertisement, AGENT, wants, haves, no_progress, thin_pack)?,
                false,
            ),
        };
        let response = self.post(request, v2)?;
        let mut lines = pktline::Reader::new(response.body);
        if v2 {
            if !v2::read_fetch_response(&mut lines)?.has_pack {
                return Ok(None);
            }
        } else {
            v0::read_fetch_response(&mut lines)?;
        }
        let mut ignore = |_: &[u8]| {};
        let mut pack = match progress {
            Some(progress) => sideband::Reader::new(&mut lines, progress).with_receive_progress(),
            None => sideband::Reader::new(&mut lines, &mut ignore),
        };
        let indexed = if thin {
            index_pack::index_thin_pack(&mut pack, odb, limits, sync)
        } else {
            let pack_dir = odb.objects_dir().join("pack");
            index_pack::index_pack(odb.fs(), &mut pack, &pack_dir, limits, sync)
        };
        if let Some(err) = pack.take_error() {
            return Err(err.into());
        }
        Ok(Some(indexed?))
    }

    fn post(&self, body: Vec<u8>, v2: bool) -> Result<Response, Error> {
        let mut headers = vec![("Content-Type", REQUEST_TYPE), ("Accept", RESULT_TYPE)];
        if v2 {
            headers.push(("Git-Protocol", v2::PROTOCOL_HEADER_VALUE));
        }
        let response = self.client.send(Request {
            method: Method::Post,
            url: &self.url,
            path: SERVICE_PATH,
            headers: &headers,
            body: Body::Bytes(body),
        })?;
        check_type(&self.url, &response, RESULT_TYPE)?;
        Ok(response)
    }
}

pub(crate) fn check_type(
    url: &RemoteUrl,
    response: &Response,
    expected: &str,
) -> Result<(), Error> {
    let actual = response
        .content_type
        .as_deref()
        .map(|t| t.split(';').next().unwrap_or_default().trim());
    if actual == Some(expected) {
        Ok(())
    } else {
        Err(Error::NotSmartHttp {
            url: url.redacted().to_owned(),
            content_type: response.content_type.clone(),
        })
    }
}

/// Read a whole body of at most `limit` bytes.
pub(crate) fn read_limited(url: &RemoteUrl, body: impl Read, limit: u64) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    body.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|source| Error::Body {
            url: url.redacted().to_owned(),
            source,
        })?;
    if out.len() as u64 > limit {
        return Err(Error::ResponseTooLarge {
            url: url.redacted().to_owned(),
            limit,
        });
    }
    Ok(out)
}
