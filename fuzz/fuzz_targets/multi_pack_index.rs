//! libFuzzer entry for [`gitmq_fuzz::multi_pack_index`]; the check itself lives in the library so
//! the stable replay test (`tests/integration/fuzz_replay.rs`) runs exactly the same code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitmq_fuzz::multi_pack_index(data));
