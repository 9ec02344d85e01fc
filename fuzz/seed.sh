#!/usr/bin/env bash
# Writes small seed inputs for every fuzz target into fuzz/corpus/<target>/seed-*, from the
# output of the real git (commits, loose objects, packs, indexes, packed-refs) and a few
# hand-made inputs for the layouts only gitmq's fuzz checks define. Re-running overwrites
# the seeds and leaves other corpus files alone. Needs git and bash.
set -euo pipefail

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
corpus=$fuzz_dir/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export GIT_AUTHOR_NAME=seed GIT_AUTHOR_EMAIL=seed@example.com
export GIT_COMMITTER_NAME=seed GIT_COMMITTER_EMAIL=seed@example.com
export GIT_AUTHOR_DATE='1700000000 +0100' GIT_COMMITTER_DATE='1700000000 +0100'

# Binary from hex on stdin-free bash: "0a1b" -> bytes 0x0a 0x1b.
hex() { printf "$(sed 's/../\\x&/g' <<<"$1")"; }
u32() { hex "$(printf '%08x' "$1")"; }
seed() { mkdir -p "$corpus/$1"; cat >"$corpus/$1/seed-$2"; }

repo=$work/r
git init -q -b main "$repo"
g() { git -C "$repo" -c gc.auto=0 "$@"; }
# A file big enough (and changed little enough) for git to store deltas.
for i in $(seq 1 60); do echo "line $i of a file that changes a little in each commit"; done >"$repo/f"
g add f && g commit -q -m 'first: a plain message'
sed -i 's/line 7 /line seven /' "$repo/f"
g commit -q -am $'second\n\nwith a body\nover lines\n'
g -c i18n.commitEncoding=ISO-8859-1 commit -q --allow-empty -m 'third: encoding header'
g checkout -q -b side HEAD~1
g commit -q --allow-empty -m 'on a side branch'
g checkout -q main
g merge -q --no-ff -m 'a merge: two parents' side
g tag -a -m 'an annotated tag' v1
g tag light HEAD~2

n=0
for id in $(g rev-list --all); do
    n=$((n + 1))
    g cat-file commit "$id" | seed commit_decode "$n"
done
printf 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor gitmq <gitmq@localhost> 1700000000 +0000\ncommitter gitmq <gitmq@localhost> 1700000000 +0000\n\n{"id":1}' |
    seed commit_decode gitmq
# A message with a stable id and headers, and a malformed (continued) gitmq header.
printf 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor a <a@b> 1 +0000\ncommitter a <a@b> 1 +0000\ngitmq-id x-1\ngitmq-header k v\ngitmq-header multi\n line\nencoding latin1\n\npayload' |
    seed commit_decode gitmq-headers
# A payload whose lines become a stable id and headers in the encode round trip.
printf 'order-1:x\ncontent-type application/json\nempty\nbad key\xff v\n{"a":1}' |
    seed commit_decode headers

# Loose objects, before gc packs them: a limit byte (20: 1 MiB), the id, the file.
for kind in commit tree blob tag; do
    id=$(g cat-file --batch-all-objects --batch-check='%(objectname) %(objecttype)' | awk -v k="$kind" '$2 == k { print $1; exit }')
    { printf '\x14'; hex "$id"; cat "$repo/.git/objects/${id:0:2}/${id:2}"; } | seed loose_object "$kind"
done

g pack-refs --all
seed packed_refs git <"$repo/.git/packed-refs"

# One pack with OFS_DELTA entries, and the same objects with REF_DELTA.
g repack -q -adf --window=10 --depth=10
pack=$(ls "$repo"/.git/objects/pack/pack-*.pack)
seed pack_index ofs <"${pack%.pack}.idx"
git index-pack --index-version=2,0 -o "$work/large.idx" "$pack" >/dev/null
seed pack_index large-offsets <"$work/large.idx"

# pack_entry: n, then n x (id, u32 offset), then the pack between header and trailer.
pack_seed() {
    local pack=$1 name=$2 size rows
    size=$(stat -c %s "$pack")
    rows=$(git verify-pack -v "${pack%.pack}.idx" | awk '$2 ~ /^(commit|tree|blob|tag)$/ { print $1, $5 }' | sort -k2 -n | head -16)
    {
        printf "$(printf '\\x%02x' "$(wc -l <<<"$rows")")"
        while read -r id offset; do hex "$id"; u32 "$offset"; done <<<"$rows"
        tail -c +13 "$pack" | head -c $((size - 12 - 20))
    } | seed pack_entry "$name"
}
pack_seed "$pack" ofs
# received_pack: flag 0 (the check appends the trailer), then the pack without its trailer.
received_seed() { { printf '\x00'; head -c $(($(stat -c %s "$1") - 20)) "$1"; } | seed received_pack "$2"; }
received_seed "$pack" ofs
g -c repack.useDeltaBaseOffset=false repack -q -adf --window=10 --depth=10
pack_seed "$(ls "$repo"/.git/objects/pack/pack-*.pack)" ref
received_seed "$(ls "$repo"/.git/objects/pack/pack-*.pack)" ref

# pktline: what a smart-HTTP server answers (v2 advertisement, ls-refs, a fetch response
# with side-band packets, a v0 advertisement).
pkt() { printf '%04x' $((${#1} + 4)); printf '%s' "$1"; }
{ pkt $'# service=git-upload-pack\n'; printf 0000; pkt $'version 2\n'; pkt $'agent=git/2.47\n'
  pkt $'ls-refs=unborn\n'; pkt $'fetch=shallow wait-for-done\n'; pkt $'object-format=sha1\n'; printf 0000; } |
    seed pktline advertisement
head=$(g rev-parse main)
{ pkt "$head HEAD symref-target:refs/heads/main"$'\n'; pkt "$head refs/heads/main"$'\n'
  pkt "$head refs/gitmq/consumers/billing/main"$'\n'; pkt $'unborn refs/heads/x\n'; printf 0000; } |
    seed pktline ls-refs
{ pkt $'acknowledgments\n'; pkt "ACK $head"$'\n'; printf 0001; pkt $'packfile\n'
  pkt $'\x02Enumerating objects: 3\r'; pkt $'\x01PACK\x00\x00\x00\x02'; pkt $'\x03fatal: out of memory\n'
  printf 0000; } | seed pktline fetch
{ pkt "$head HEAD"$'\x00'$'side-band-64k ofs-delta agent=git/2.47\n'; pkt "$head refs/heads/main"$'\n'
  printf 0000; pkt $'NAK\n'; } | seed pktline v0

# pack_delta: u16 base length, base, delta (base size, result size, instructions).
{ u32 11 | tail -c 2; printf 'hello world'; printf '\x0b\x0b\x90\x05\x06 there'; } | seed pack_delta copy-insert
{ u32 4 | tail -c 2; printf 'abcd'; printf '\x04\x08\x91\x00\x04\x91\x00\x04'; } | seed pack_delta copies
{ u32 0 | tail -c 2; printf '\x00\x03\x03new'; } | seed pack_delta insert-only

# ref_name: consumer, newline, topic (or one name for both).
for name in 'billing\neu/orders' 'orders' 'worker-1\nv1.2' 'refs/gitmq/consumers/billing/eu/orders' \
    'a\na/x.lock' '\xc3\xbcmlaut\nteam/\xc3\xbcmlaut' 'x\na/.b' 'c\n..'; do
    printf "$name" | seed ref_name "$(printf "$name" | tr -c 'a-z0-9' '_' | head -c 24)"
done

# queue_model: config byte, then ops (tag % 8 = op, tag / 8 = argument); see queue_model.rs.
# append "ab" (tag 0 | 2<<3), append "c", open, poll 4, commit, flush, reopen, poll, lag.
printf '\x01\x10ab\x08c\x02\x83\x04\x01\x05\x83\x07' | seed queue_model basic
# deflate + consolidation: appends in batches of 4, another producer between, two consumers.
printf '\x0f\x10ab\x10cd\x0eX\x10ef\x01\x02\x02\x83\x8b\x04\x0c\x01\x10gh\x01\x0d\x83\x8b\x07\x0f' |
    seed queue_model rebuild
# a payload with a NUL is refused without poisoning the producer.
printf '\x00\x18a\x00b\x08z\x01\x02\x83' | seed queue_model nul

# thin_pack: flags (bit 0: the base blob is local), base length, base, then entries
# [selector][len][bytes] (selector 0: REF_DELTA on the base, 1: on the previous object,
# 2: on an id absent everywhere, 3: a whole blob); see thin.rs. The base is "hello world";
# the delta copies its 11 bytes and inserts " there" (11 bytes of delta).
base='\x0bhello world'
delta='\x00\x0b\x0b\x11\x90\x0b\x06 there'
printf "\x01$base$delta" | seed thin_pack local-base
printf "\x00$base$delta" | seed thin_pack absent-base
printf "\x01$base\x02\x03abc" | seed thin_pack absent-id
printf "\x01$base$delta\x01\x06\x11\x12\x90\x11\x01!\x03\x01x" | seed thin_pack chain
printf "\x00$base$delta\x03\x0bhello world" | seed thin_pack base-in-pack

# stored_stream: flags 0 (raw), the expected size (u16), then a loose object zlib wrote at
# level 0 (stored blocks); flags 1 (built by zlib), 3 (a byte flipped), 5 (one more expected).
for size in 0 5 70000; do
    head -c "$size" /dev/zero | tr '\0' 'x' >"$work/stored-$size"
    id=$(g -c core.compression=0 -c core.looseCompression=0 hash-object -w "$work/stored-$size")
    header_len=$(printf 'blob %d\0' "$size" | wc -c)
    expected=$((header_len + size))
    if [ "$expected" -lt 65536 ]; then
        { u32 "$expected" | tail -c 2; cat "$repo/.git/objects/${id:0:2}/${id:2}"; } | seed stored_stream "loose-$size"
    fi
done
printf '\x01{"order":1}' | seed stored_stream built
printf '\x03\x09{"order":2}' | seed stored_stream flipped
printf '\x05{"order":3}' | seed stored_stream longer
printf '\x81{"order":4}' | seed stored_stream unverified

# first_parent: flags 0 and a commit as git wrote it; flags 1|parents<<1 (|8: a bad digit)
# and bytes for case bits and ids.
n=0
for id in $(g rev-list --all); do
    n=$((n + 1))
    { printf '\x00'; g cat-file commit "$id"; } | seed first_parent "git-$n"
done
printf '\x03\xff\x00\xf0\x0f\xaa\x55\x01\x80abcdefghijklmnopqrstABCDEFGHIJKLMNOPQRST' | seed first_parent built
printf '\x0d\x00\x00\x00\x00\x00\x00\x00\x00G\x03abcdefghijklmnopqrstABCDEFGHIJKLMNOPQRSTuvwxyz' |
    seed first_parent bad-digit

# fast_decode: flags (parents, committer, uppercase, gpgsig, raw), then NUL-separated name,
# email, seconds, offset, header lines, payload.
printf '\x01gitmq\0gitmq@localhost\0001700000000\0+0100\0gitmq-id order-1\ngitmq-header k v\0{"a":1}' |
    seed fast_decode canonical
printf '\x06A U Thor\0\0009\0-0130\0\0payload\nwith lines\n' | seed fast_decode two-parents
printf '\x19 spaced \0a@b\0-5\0+00000\0encoding x\0p' | seed fast_decode odd
{ printf '\x20'; g cat-file commit "$(g rev-parse main)"; } | seed fast_decode raw-merge

# commit_graph: the graph git writes for the seed repository (with and without Bloom
# filters), and a split graph (its base graph named), which gitmq reads as no graph.
g commit-graph write --reachable
seed commit_graph git <"$repo/.git/objects/info/commit-graph"
g commit-graph write --reachable --changed-paths
seed commit_graph bloom <"$repo/.git/objects/info/commit-graph"
rm -f "$repo/.git/objects/info/commit-graph"

# multi_pack_index: git's single MIDX over two packs, and a layer of its incremental chain.
g commit -q --allow-empty -m 'one more pack'
g repack -q -d
g multi-pack-index write
seed multi_pack_index single <"$repo/.git/objects/pack/multi-pack-index"
rm -f "$repo/.git/objects/pack/multi-pack-index"
g commit -q --allow-empty -m 'a pack for the chain'
g repack -q -d
g multi-pack-index write --incremental
for layer in "$repo"/.git/objects/pack/multi-pack-index.d/*.midx; do
    seed multi_pack_index "layer-$(basename "$layer" .midx | tail -c 9)" <"$layer"
done

# hand_inflate: flags 0 (the stream as is), want 94 (u16, big-endian), then a loose commit as
# git deflated it at levels 1, 6 and 9; flags 0x0d (zlib at level 6 from the data), 0x2d (and
# a byte flipped), want 0xffff (all).
git init -q "$work/z"
n=0
for id in $(g rev-list --all); do
    n=$((n + 1))
    for level in 1 6 9; do
        loose=$(g cat-file commit "$id" | git -C "$work/z" -c core.looseCompression=$level hash-object -t commit -w --stdin)
        { printf '\x00\x00\x5e'; cat "$work/z/.git/objects/${loose:0:2}/${loose:2}"; } | seed hand_inflate "git-$n-$level"
        rm "$work/z/.git/objects/${loose:0:2}/${loose:2}"
    done
done
{ printf '\x0d\x00\x5e'; g cat-file commit main; } | seed hand_inflate built
{ printf '\x2d\xff\xff\x30\x04'; g cat-file commit main; } | seed hand_inflate flipped

du -sh "$corpus"
