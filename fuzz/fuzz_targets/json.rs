//! The JSON front-end on arbitrary text: it must return a document or diagnostics, and the
//! diagnostics must render, whatever the input.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Profiles are text; non-UTF-8 input is refused before any front-end sees it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = nono_policy::load::parse_json("fuzz", text) {
        let _ = error.to_string();
    }
});
