//! Raw bytes as a record (first byte: kind): decoding must never panic, and a record that
//! decodes must re-encode stably.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmeter::log::fuzzing::check_record_bytes(data);
});
