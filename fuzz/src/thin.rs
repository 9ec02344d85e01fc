//! Owns the fuzz check of thin-pack completion (`thin_pack`): a pack of REF_DELTAs against a
//! base that is in the local repository or absent everywhere, through
//! `index_pack::index_thin_pack` with small limits.
//!
//! Input layout (built into a well-formed pack by the check, so the fuzzer spends its time on
//! completion, not on checksums; `received_pack` fuzzes raw pack bytes):
//!
//! ```text
//! byte 0        flags: bit 0 set = the base blob is a loose object of the local repository
//! byte 1        n, the base blob's length; then n bytes of base
//! then entries  [selector][len][len bytes], selector % 4:
//!                 0  REF_DELTA against the base (thin: the base is never in the pack)
//!                 1  REF_DELTA against the previous object the model knows (in the pack,
//!                    or the base), else against an id taken from the bytes
//!                 2  REF_DELTA against an id taken from the bytes: absent everywhere
//!                 3  a whole blob of the bytes
//! ```
//!
//! Asserted besides "no panic": an error leaves `objects/pack` empty; a delta whose base is
//! absent everywhere makes it an error (a `MissingBase` names an absent id); a success is a
//! self-contained pack (every object reads back from it alone, hashing to its id), whose
//! trailer verifies, whose count is the entries plus the bases appended (at most the one local
//! blob, and only when it is local), and which holds every object the model built.

use std::path::Path;

use gix_object::Kind;

use gitmq::{
    git::hash::{object_id, Hasher},
    git::odb::{
        pack::{
            delta,
            format::{encode_entry_header, EntryKind, MAX_ENTRY_HEADER_LEN},
            index_pack::{index_thin_pack, Error, Limits},
            read::{DeltaBaseCache, Options, PackFile},
            write::append_zlib_stored,
        },
        LooseStore, Odb,
    },
    ObjectId,
};

const LIMITS: Limits = Limits {
    max_object_size: 1 << 16,
    max_pack_size: 1 << 22,
    max_objects: 1 << 10,
    max_chain_len: 32,
    max_resolve_memory: 1 << 20,
};

/// An id from up to 20 input bytes, never the id of anything the check writes (those are
/// SHA-1s of blobs; a collision would be news).
fn id_from(bytes: &[u8]) -> ObjectId {
    let mut raw = [0xa5u8; 20];
    for (slot, byte) in raw.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    ObjectId::Sha1(raw)
}

struct Built {
    pack: Vec<u8>,
    /// Objects the model knows, (id, body): the base, whole blobs and delta results.
    known: Vec<(ObjectId, Vec<u8>)>,
    /// Ids named as bases that exist nowhere (unless the pack holds them after all).
    absent: Vec<ObjectId>,
    /// Whether some REF_DELTA names a base that is neither local nor in the pack.
    needs_absent: bool,
    entries: u32,
}

/// Build the pack the input describes.
fn build(base: &[u8], base_is_local: bool, mut rest: &[u8]) -> Built {
    let base_id = object_id(Kind::Blob, base);
    let mut built = Built {
        pack: Vec::new(),
        known: Vec::new(),
        absent: Vec::new(),
        needs_absent: false,
        entries: 0,
    };
    if base_is_local {
        built.known.push((base_id, base.to_vec()));
    } else {
        built.absent.push(base_id);
    }
    let mut body = Vec::new();
    let mut targets = Vec::new();
    while let [selector, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        let target = match selector % 4 {
            0 => Some(base_id),
            1 => built.known.last().map(|(id, _)| *id),
            3 => None,
            _ => Some(id_from(bytes)),
        };
        let mut header = [0u8; MAX_ENTRY_HEADER_LEN];
        let kind = if target.is_some() {
            EntryKind::RefDelta
        } else {
            EntryKind::Base(Kind::Blob)
        };
        let n = encode_entry_header(&mut header, kind, bytes.len() as u64);
        body.extend_from_slice(&header[..n]);
        match target {
            Some(target) => {
                targets.push(target);
                body.extend_from_slice(target.as_bytes());
                let base_body = built
                    .known
                    .iter()
                    .find(|(id, _)| *id == target)
                    .map(|(_, b)| b.clone());
                match base_body {
                    Some(base_body) => {
                        let mut result = Vec::new();
                        if delta::apply(&base_body, bytes, LIMITS.max_object_size, &mut result)
                            .is_ok()
                        {
                            built.known.push((object_id(Kind::Blob, &result), result));
                        }
                    }
                    None if target == base_id => {}
                    None => built.absent.push(target),
                }
            }
            None => built
                .known
                .push((object_id(Kind::Blob, bytes), bytes.to_vec())),
        }
        append_zlib_stored(&mut body, bytes);
        built.entries += 1;
    }
    // A base named before the pack's whole blob with the same content still resolves in the
    // pack: what counts is whether the pack or the repository holds it at all.
    built.needs_absent = targets
        .iter()
        .any(|target| !built.known.iter().any(|(id, _)| id == target));
    let mut pack = b"PACK\0\0\0\x02".to_vec();
    pack.extend_from_slice(&built.entries.to_be_bytes());
    pack.extend_from_slice(&body);
    let mut hasher = Hasher::new();
    hasher.update(&pack);
    pack.extend_from_slice(hasher.finalize().as_bytes());
    built.pack = pack;
    built
}

fn listing(pack_dir: &Path) -> usize {
    std::fs::read_dir(pack_dir)
        .expect("list the pack directory")
        .count()
}

/// `thin_pack`: see the module documentation for the input layout and what is asserted.
pub fn thin_pack(data: &[u8]) {
    let [flags, base_len, rest @ ..] = data else {
        return;
    };
    let base_len = usize::from(*base_len).min(rest.len());
    let (base, rest) = rest.split_at(base_len);
    let base_is_local = flags & 1 == 1;
    let built = build(base, base_is_local, rest);

    let dir = super::scratch_dir();
    let objects = dir.path().join("objects");
    let pack_dir = objects.join("pack");
    std::fs::create_dir_all(&pack_dir).expect("create objects/pack");
    if base_is_local {
        LooseStore::at(&objects)
            .write(Kind::Blob, base, false, &mut Vec::new())
            .expect("write the local base");
    }
    let mut local = Odb::at(&objects);
    let result = index_thin_pack(&built.pack[..], &mut local, &LIMITS, false);
    let indexed = match result {
        Err(err) => {
            assert_eq!(
                listing(&pack_dir),
                0,
                "an error leaves nothing behind: {err}"
            );
            if let Error::MissingBase { base, .. } = &err {
                assert!(
                    built.absent.contains(base),
                    "a missing base is one that exists nowhere: {base}"
                );
            }
            return;
        }
        Ok(indexed) => indexed,
    };
    assert!(
        !built.needs_absent,
        "a delta on a base that exists nowhere cannot index"
    );
    assert!(
        indexed.local_bases <= u32::from(base_is_local),
        "only the one local blob can be appended"
    );
    assert_eq!(indexed.objects, built.entries + indexed.local_bases);
    let Some(written) = indexed.written else {
        assert_eq!(indexed.objects, 0);
        return;
    };
    let options = Options {
        verify_ids: true,
        max_object_size: LIMITS.max_object_size,
        ..Options::default()
    };
    let mut file = PackFile::open_with(&written.pack_path, options)
        .expect("gitmq reads the pack it completed");
    file.verify_checksum().expect("the new trailer matches");
    assert_eq!(file.index().len(), indexed.objects);
    let mut cache = DeltaBaseCache::default();
    let mut out = Vec::new();
    for position in 0..file.index().len() {
        file.read_nth(position, &mut out, &mut cache)
            .expect("every object reads back from this pack alone, with its id");
    }
    for (id, body) in &built.known {
        let base_only = *id == object_id(Kind::Blob, base) && indexed.local_bases == 0;
        if base_only {
            continue;
        }
        let kind = file
            .read(id, &mut out, &mut cache)
            .expect("read a known object")
            .expect("every object the model built is in the pack");
        assert_eq!((kind, &out), (Kind::Blob, body));
    }
}
