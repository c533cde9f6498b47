//! Raw bytes as a log directory of up to 8 segment files (split at
//! `ringmeter::log::fuzzing::SEGMENT_SEPARATOR`), read as a finished and as a live log: the
//! reader must never panic, hang or allocate beyond its caps, and both reads must agree.
//! Inputs over 1 MiB are ignored; run with a time limit per input:
//! `cargo +nightly fuzz run log_dir_reader corpus/log_dir_reader seeds/log_dir_reader -- -max_len=1048576 -timeout=10`
//! (new inputs go to the first directory, `corpus/`, which is not committed).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmeter::log::fuzzing::check_dir_bytes(data);
});
