//! Raw bytes as a segment file: the reader must never panic, never allocate beyond the
//! file, and return only records that re-encode.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmeter::log::fuzzing::check_segment_bytes(data);
});
