//! Structured records: encode then decode gives the record back (see
//! `fuzz/common/roundtrip.rs`, which `cargo test` runs on stable too).
#![no_main]

#[path = "../common/roundtrip.rs"]
mod roundtrip;

libfuzzer_sys::fuzz_target!(|input: roundtrip::Input| {
    roundtrip::check(input);
});
