//! Per-phase costs of one message on the append path, measured in-process over the workload:
//! encode (serialize), hash (the SHA-1 in use, next to `sha1_smol` and gix-hash's
//! collision-detecting SHA-1), frame (stored zlib block + Adler-32, CRC-32; deflate level 1
//! for comparison), seal (pack trailer + index) and flush (the pack's bytes written to the
//! page cache), per message.

#![allow(clippy::cast_precision_loss)] // nanoseconds per message are statistics

use std::{hint::black_box, time::Instant};

use gitmq::{
    git::hash::Hasher,
    git::message::CommitEncoder,
    git::odb::pack::write::{append_zlib_stored, Compression, PackBuilder},
    Identity, ObjectId,
};

/// Nanoseconds per message for each phase.
pub fn measure(messages: &[Vec<u8>]) -> Vec<(&'static str, f64)> {
    let n = messages.len().max(1) as f64;
    let encoder = CommitEncoder::new(&Identity::default(), 0);
    let parent = ObjectId::empty_blob(gitmq::git::hash::OBJECT_HASH);
    let mut body = Vec::with_capacity(4096);
    let start = Instant::now();
    for m in messages {
        body.clear();
        encoder.encode(&mut body, Some(&parent), 1_700_000_000, m);
        black_box(&body);
    }
    let serialize = start.elapsed().as_secs_f64();
    let bodies: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| {
            let mut body = Vec::new();
            encoder.encode(&mut body, Some(&parent), 1_700_000_000, m);
            body
        })
        .collect();

    let start = Instant::now();
    for body in &bodies {
        let mut h = Hasher::for_object(gix_object::Kind::Commit, body.len());
        h.update(body);
        black_box(h.finalize());
    }
    let sha1 = start.elapsed().as_secs_f64();
    let header = |len: usize| format!("commit {len}\0").into_bytes();
    let start = Instant::now();
    for body in &bodies {
        let mut h = sha1_smol::Sha1::new();
        h.update(&header(body.len()));
        h.update(body);
        black_box(h.digest().bytes());
    }
    let smol = start.elapsed().as_secs_f64();
    let start = Instant::now();
    for body in &bodies {
        let mut h = gix_hash::hasher(gix_hash::Kind::Sha1);
        h.update(&header(body.len()));
        h.update(body);
        black_box(h.try_finalize().ok());
    }
    let gix = start.elapsed().as_secs_f64();

    let mut out = Vec::with_capacity(1024);
    let start = Instant::now();
    for body in &bodies {
        out.clear();
        append_zlib_stored(&mut out, body);
        black_box(&out);
    }
    let stored = start.elapsed().as_secs_f64();

    let sample = &bodies[..bodies.len().min(20_000)];
    let mut deflate = flate2::Compress::new(flate2::Compression::fast(), true);
    let start = Instant::now();
    for body in sample {
        out.clear();
        deflate.reset();
        let _ = deflate.compress_vec(body, &mut out, flate2::FlushCompress::Finish);
        black_box(&out);
    }
    let deflate_ns = start.elapsed().as_secs_f64() * 1e9 / sample.len().max(1) as f64;

    let start = Instant::now();
    for body in &bodies {
        let mut crc = flate2::Crc::new();
        crc.update(body);
        black_box(crc.sum());
    }
    let crc = start.elapsed().as_secs_f64();

    let mut builder = PackBuilder::new(Compression::Stored);
    for body in &bodies {
        builder.push(&parent, gix_object::Kind::Commit, body);
    }
    let start = Instant::now();
    let sealed = builder.seal(Vec::new());
    let files = black_box(sealed.finish());
    let seal = start.elapsed().as_secs_f64();
    let scratch = std::env::temp_dir().join(format!("gitmq-phases-{}", std::process::id()));
    let start = Instant::now();
    let written = std::fs::write(&scratch, &sealed.bytes)
        .and_then(|()| std::fs::write(scratch.with_extension("idx"), &files.index));
    let flush = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&scratch);
    let _ = std::fs::remove_file(scratch.with_extension("idx"));
    let flush = if written.is_ok() { flush } else { f64::NAN };

    vec![
        ("encode: serialize the commit", serialize * 1e9 / n),
        ("hash: SHA-1 object id (sha1, in use)", sha1 * 1e9 / n),
        ("hash:   the same with sha1_smol", smol * 1e9 / n),
        ("hash:   the same with gix-hash (sha1dc)", gix * 1e9 / n),
        ("frame: stored zlib block + Adler-32", stored * 1e9 / n),
        ("frame: CRC-32", crc * 1e9 / n),
        ("frame:   deflate level 1 instead", deflate_ns),
        ("seal: trailer SHA-1 + sorted idx", seal * 1e9 / n),
        ("flush: write pack + idx (page cache)", flush * 1e9 / n),
    ]
}
