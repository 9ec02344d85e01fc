//! Criterion bench of the hand-written reads of a compressed commit (issue 11 item 4), on
//! 1,000 commits laid out as `git fast-import` writes messages, each deflated on its own by
//! zlib at git's default level (6: one dynamic Huffman block each). Group `commit prefix`:
//! the walk's read of the first 94 bytes (`tree` and `parent` lines),
//! `odb::hand_inflate::PrefixDecoder` (hand-written, reused as a pack reader reuses it)
//! against flate2/zlib-rs's `Decompress` reset and run until 94 bytes, as
//! `PackFile::inflate_prefix` did before. Group `whole commit`: delivery's read of the
//! whole commit, `WholeDecoder` against zlib-rs. Throughput is per commit.

use std::{hint::black_box, io::Write};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::{Decompress, FlushDecompress};
use gitmq::git::{message::parent::FIRST_PARENT_PREFIX_LEN, odb::hand_inflate};

const COMMITS: usize = 1000;

/// A commit like fast-import's for message `i`: empty tree, a parent, author, committer and
/// a JSON payload of about 150 bytes (about 320 bytes in all).
fn commit(i: usize) -> Vec<u8> {
    let parent = format!(
        "{:040x}",
        (i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)
    );
    let parent = &parent[parent.len() - 40..];
    format!(
        "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nparent {parent}\nauthor gitmq bench <bench@gitmq.invalid> {t} +0000\ncommitter gitmq bench <bench@gitmq.invalid> {t} +0000\n\n{{\"id\":{i},\"type\":\"order.created\",\"customer\":\"c-{i:06}\",\"items\":[{{\"sku\":\"SKU-{}\",\"qty\":{}}}],\"total\":{}.{:02},\"ts\":\"2026-11-27T12:00:00Z\"}}\n",
        i % 9973,
        i % 7 + 1,
        i % 1000,
        i % 100,
        t = 1_700_000_000 + i,
    )
    .into_bytes()
}

fn streams() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let commits: Vec<Vec<u8>> = (0..COMMITS).map(commit).collect();
    let streams = commits
        .iter()
        .map(|c| {
            let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
            zlib.write_all(c).expect("deflate into memory");
            zlib.finish().expect("deflate into memory")
        })
        .collect();
    (commits, streams)
}

/// What `PackFile::inflate_prefix` did with zlib alone.
fn zlib_prefix_of(inflater: &mut Decompress, stream: &[u8], want: usize, out: &mut Vec<u8>) {
    out.clear();
    inflater.reset(true);
    let mut at = 0;
    while out.len() < want {
        let before = inflater.total_in();
        inflater
            .decompress_vec(&stream[at..], out, FlushDecompress::None)
            .expect("inflate");
        at += usize::try_from(inflater.total_in() - before).expect("fits");
    }
}

fn prefix(c: &mut Criterion) {
    let (commits, streams) = streams();
    let want = FIRST_PARENT_PREFIX_LEN;
    let mean_in = streams.iter().map(Vec::len).sum::<usize>() / COMMITS;
    let mean_out = commits.iter().map(Vec::len).sum::<usize>() / COMMITS;
    eprintln!("{COMMITS} commits: {mean_out} bytes each on average, {mean_in} deflated; prefix {want} bytes");
    let mut out = Vec::with_capacity(4096);
    let mut inflater = Decompress::new(true);
    // Checked once, outside the timed loops: both give the commit's first bytes.
    for (stream, commit) in streams.iter().zip(&commits) {
        hand_inflate::inflate_prefix(stream, want, &mut out).expect("decodes by hand");
        assert_eq!(out, commit[..want]);
        zlib_prefix_of(&mut inflater, stream, want, &mut out);
        assert_eq!(out[..want], commit[..want]);
    }
    let mut group = c.benchmark_group("commit prefix (94 bytes)");
    group.throughput(Throughput::Elements(COMMITS as u64));
    let mut decoder = hand_inflate::PrefixDecoder::new();
    group.bench_function("hand_inflate (hand-written)", |b| {
        b.iter(|| {
            for stream in &streams {
                decoder
                    .inflate_prefix(black_box(stream), want, &mut out)
                    .expect("decodes by hand");
                black_box(out.len());
            }
        });
    });
    group.bench_function("flate2/zlib-rs Decompress", |b| {
        b.iter(|| {
            for stream in &streams {
                zlib_prefix_of(&mut inflater, black_box(stream), want, &mut out);
                black_box(out.len());
            }
        });
    });
    group.finish();
}

/// Delivery's read of a whole compressed commit: `odb::hand_inflate::WholeDecoder` (Adler-32
/// checked) against flate2/zlib-rs's `Decompress`, as `PackFile::inflate` read them before.
fn whole(c: &mut Criterion) {
    let (commits, streams) = streams();
    let mut out = Vec::with_capacity(4096);
    let mut inflater = Decompress::new(true);
    let mut whole = hand_inflate::WholeDecoder::new();
    // Checked once, outside the timed loops.
    for (stream, commit) in streams.iter().zip(&commits) {
        let len = whole
            .inflate(stream, commit.len(), &mut out)
            .expect("decodes by hand");
        assert_eq!((&out, len), (commit, stream.len()));
    }
    let mut group = c.benchmark_group("whole commit");
    group.throughput(Throughput::Elements(COMMITS as u64));
    group.bench_function("WholeDecoder (hand-written)", |b| {
        b.iter(|| {
            for (stream, commit) in streams.iter().zip(&commits) {
                whole
                    .inflate(black_box(stream), commit.len(), &mut out)
                    .expect("decodes by hand");
                black_box(out.len());
            }
        });
    });
    group.bench_function("flate2/zlib-rs Decompress", |b| {
        b.iter(|| {
            for stream in &streams {
                out.clear();
                inflater.reset(true);
                let status = inflater
                    .decompress_vec(black_box(stream), &mut out, FlushDecompress::Finish)
                    .expect("inflate");
                assert_eq!(status, flate2::Status::StreamEnd);
            }
        });
    });
    group.finish();
}

criterion_group!(benches, prefix, whole);
criterion_main!(benches);
