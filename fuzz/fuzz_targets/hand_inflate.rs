//! libFuzzer entry for [`gitmq_fuzz::hand_inflate`]; the check itself lives in the library so the
//! stable replay test (`tests/integration/fuzz_replay.rs`) runs exactly the same code.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitmq_fuzz::hand_inflate(data));
