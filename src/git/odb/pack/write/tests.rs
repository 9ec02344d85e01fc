//! Unit tests of the pack writers: every sink writes the same bytes for the same objects, the
//! index is sorted and complete, and nothing is left behind on an error.

use std::io::Read;

use super::*;
use crate::git::{fs::real, hash::object_id, odb::Odb};

fn blobs(n: usize) -> Vec<(ObjectId, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let body = format!("blob {i}").into_bytes();
            (object_id(gix_object::Kind::Blob, &body), body)
        })
        .collect()
}

#[test]
fn finished_packs_have_the_right_count_trailer_and_sorted_index() {
    for compression in [Compression::Stored, Compression::Deflate(1)] {
        let mut builder = PackBuilder::new(compression);
        for (id, body) in blobs(50) {
            builder.push(&id, gix_object::Kind::Blob, &body);
        }
        let sealed = builder.seal(Vec::new());
        assert!(builder.is_empty(), "ready for the next batch");
        let files = sealed.finish();
        assert_eq!(&sealed.bytes[..4], b"PACK");
        assert_eq!(&sealed.bytes[8..12], &50u32.to_be_bytes());
        let mut hasher = Hasher::new();
        hasher.update(&sealed.bytes);
        assert_eq!(hasher.finalize(), files.checksum);
        let index = &files.index;
        let ids = &index[8 + 1024..8 + 1024 + 50 * 20];
        let mut sorted: Vec<&[u8]> = ids.chunks(20).collect();
        sorted.sort_unstable();
        assert_eq!(sorted.concat(), ids, "ids are sorted");
        assert_eq!(&index[8 + 255 * 4..8 + 256 * 4], &50u32.to_be_bytes());
    }
}

#[test]
fn a_streamed_pack_reads_back_and_a_short_count_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let pack_dir = objects.join("pack");
    std::fs::create_dir_all(&pack_dir).unwrap();
    for compression in [Compression::Stored, Compression::Deflate(6)] {
        let mut stream = PackStream::create(&real(), &pack_dir, 20, compression).unwrap();
        for (id, body) in blobs(20) {
            stream.add(&id, gix_object::Kind::Blob, &body).unwrap();
        }
        stream.finish(&pack_dir, true).unwrap();
        let mut odb = Odb::at(&objects);
        let mut out = Vec::new();
        for (id, body) in blobs(20) {
            assert_eq!(odb.read(&id, &mut out).unwrap(), gix_object::Kind::Blob);
            assert_eq!(out, body);
        }
    }
    let before = std::fs::read_dir(&pack_dir).unwrap().count();
    let stream = PackStream::create(&real(), &pack_dir, 2, Compression::Stored).unwrap();
    assert!(matches!(
        stream.finish(&pack_dir, false),
        Err(Error::Count { .. })
    ));
    assert_eq!(
        std::fs::read_dir(&pack_dir).unwrap().count(),
        before,
        "tmp removed"
    );
}

#[test]
fn a_spooled_pack_is_what_the_in_memory_builder_writes_and_goes_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let objects: [(gix_object::Kind, &[u8]); 2] = [
        (gix_object::Kind::Tree, b""),
        (gix_object::Kind::Blob, b"hello\n"),
    ];
    let mut spool = PackStream::spool(&real(), dir.path()).unwrap();
    let mut builder = PackBuilder::new(Compression::Stored);
    for (kind, body) in objects {
        let id = object_id(kind, body);
        spool.add(&id, kind, body).unwrap();
        builder.push(&id, kind, body);
    }
    let spooled = spool.spool_finish().unwrap();
    let mut bytes = Vec::new();
    spooled.reader().unwrap().read_to_end(&mut bytes).unwrap();
    let sealed = builder.seal(Vec::new());
    let files = sealed.finish();
    let mut expected = sealed.bytes.clone();
    expected.extend_from_slice(files.checksum.as_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(spooled.len, bytes.len() as u64);
    assert_eq!(spooled.count, 2);
    drop(spooled);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn the_memory_and_file_sinks_write_the_same_pack() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let pack_dir = objects.join("pack");
    std::fs::create_dir_all(&pack_dir).unwrap();
    let mut builder = PackBuilder::new(Compression::Stored);
    let mut stream = PackStream::create(&real(), &pack_dir, 30, Compression::Stored).unwrap();
    for (id, body) in blobs(30) {
        builder.push(&id, gix_object::Kind::Blob, &body);
        stream.add(&id, gix_object::Kind::Blob, &body).unwrap();
    }
    let (written, checksum) = stream.finish(&pack_dir, false).unwrap();
    let sealed = builder.seal(Vec::new());
    let files = sealed.finish();
    assert_eq!(files.checksum, checksum);
    assert_eq!(std::fs::read(&written.index_path).unwrap(), files.index);
    let mut expected = sealed.bytes.clone();
    expected.extend_from_slice(checksum.as_bytes());
    assert_eq!(std::fs::read(&written.pack_path).unwrap(), expected);
}
