//! Fuzz checks of the two index files gitmq reads beside packs: git's commit-graph
//! (`objects/info/commit-graph`, read by gitmq's own reader for first-parent walks) and the
//! multi-pack-index (the single file and the chain's layers: the header and tables read by
//! gitmq's MIDX merge, lookups by gix-pack through `midx::read`).

use gitmq::{
    git::odb::{
        commit_graph::{CommitGraph, FirstParent},
        pack::midx::{
            chain_path, layer_path,
            read::{Layer, MultiPackIndex},
            write::{write_midx, Source},
            MIDX_FILE,
        },
    },
    ObjectId,
};

/// Ids to ask about: the all-zero id and every 20-byte window of the input at 4-byte steps
/// (a graph's or MIDX's own ids sit at such offsets when the input is a real file), at most 512.
fn probe_ids(data: &[u8]) -> Vec<ObjectId> {
    let mut ids = vec![ObjectId::from_bytes_or_panic(&[0; 20])];
    ids.extend(
        (0..data.len().saturating_sub(19))
            .step_by(4)
            .take(512)
            .filter_map(|at| data.get(at..at + 20))
            .map(ObjectId::from_bytes_or_panic),
    );
    ids
}

/// `commit_graph`: the input as `objects/info/commit-graph`. Opening returns a graph, no
/// graph, or an I/O error, never panics; a graph's answers are the same with and without a
/// position hint, and a walk from any answer ends (bounded here) without a panic.
pub fn commit_graph(data: &[u8]) {
    let dir = super::scratch_dir();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(objects.join("info")).expect("objects/info");
    // The reader believes a graph only when its trailer is the SHA-1 of the rest: seal the
    // input (when it is long enough) so that the parser behind that check is what is fuzzed.
    let mut sealed = data.to_vec();
    if let Some(body) = sealed.len().checked_sub(20) {
        let trailer = gitmq::git::hash::pack_checksum(&sealed[..body]);
        sealed[body..].copy_from_slice(trailer.as_bytes());
    }
    let data = &sealed[..];
    std::fs::write(objects.join("info").join("commit-graph"), data).expect("write the input");
    let Ok(Some(graph)) = CommitGraph::open(&objects) else {
        return;
    };
    let mut hint = None;
    for id in probe_ids(data) {
        let plain = graph.first_parent(&id);
        assert_eq!(plain, graph.first_parent_near(&id, &mut None));
        // A stale hint (the previous answer's parent) never changes the answer.
        assert_eq!(plain, graph.first_parent_near(&id, &mut hint));
        if let FirstParent::Some(parent) = plain {
            let mut walk = parent;
            // Walk on from the parent a few steps.
            for _ in 0..8 {
                // A root ends it, and so does Unknown: listed with a parent outside the
                // graph, or not found; either way the walk reads the commit itself.
                let FirstParent::Some(next) = graph.first_parent(&walk) else {
                    break;
                };
                walk = next;
            }
        }
    }
}

/// `multi_pack_index`: the input as a MIDX file, read three ways: by gitmq's merge
/// (`Source::midx`, then merged alone into a new MIDX), by gix-pack (`Layer::open`, lookups),
/// and through `MultiPackIndex::open` both as the single file and as the only layer of a
/// chain. Errors, never panics; a merge of a readable MIDX writes one that gix-pack opens,
/// with no more objects than its source.
pub fn multi_pack_index(data: &[u8]) {
    let dir = super::scratch_dir();
    let pack_dir = dir.path().join("pack");
    std::fs::create_dir_all(&pack_dir).expect("objects/pack");
    let single = pack_dir.join(MIDX_FILE);
    std::fs::write(&single, data).expect("write the input");
    let probes = probe_ids(data);

    if let Ok(source) = Source::midx(&single) {
        let out_path = dir.path().join("merged.midx");
        let mut out = Vec::new();
        if let Ok(written) = write_midx(std::slice::from_ref(&source), &mut out, &out_path) {
            assert!(written.objects <= source.len());
            std::fs::write(&out_path, &out).expect("write the merged MIDX");
            let merged = Layer::open(&out_path).expect("gix-pack opens what gitmq's merge wrote");
            assert_eq!(merged.len(), written.objects as usize);
        }
    }
    if let Ok(layer) = Layer::open(&single) {
        for id in &probes {
            let _ = layer.lookup(id);
        }
    }
    if let Ok(midx) = MultiPackIndex::open(&pack_dir) {
        for id in &probes {
            let _ = midx.lookup(id);
        }
    }

    // The same bytes as a chain's only layer, named by their last 20 bytes (a checksum).
    std::fs::remove_file(&single).expect("remove the single MIDX");
    let Some(tail) = data.len().checked_sub(20).and_then(|at| data.get(at..)) else {
        return;
    };
    let checksum = ObjectId::from_bytes_or_panic(tail);
    let chain = chain_path(&pack_dir);
    std::fs::create_dir_all(chain.parent().expect("the chain's directory")).expect("mkdir");
    std::fs::write(layer_path(&pack_dir, &checksum), data).expect("write the layer");
    std::fs::write(&chain, format!("{checksum}\n")).expect("write the chain");
    if let Ok(midx) = MultiPackIndex::open(&pack_dir) {
        assert!(midx.layers().len() <= 1);
        for id in &probes {
            let _ = midx.lookup(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_reach_the_ids_of_a_real_graph() {
        // Built in the fuzz crate or included by gitmq's replay test.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let fuzz = if root.ends_with("fuzz") {
            root.to_owned()
        } else {
            root.join("fuzz")
        };
        let seed = std::fs::read(fuzz.join("corpus/commit_graph/seed-git"))
            .expect("fuzz/corpus/commit_graph/seed-git (fuzz/seed.sh writes it)");
        let dir = super::super::scratch_dir();
        let objects = dir.path().join("objects");
        std::fs::create_dir_all(objects.join("info")).unwrap();
        std::fs::write(objects.join("info").join("commit-graph"), &seed).unwrap();
        let graph = CommitGraph::open(&objects)
            .unwrap()
            .expect("git's graph reads");
        let known = probe_ids(&seed)
            .iter()
            .filter(|id| graph.first_parent(id) != FirstParent::Unknown)
            .count();
        assert_eq!(known, graph.len(), "every listed commit is probed");
    }
}
