//! Resource quantities: parsing any string, and scaling what parses, must not panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(quantity) = skiff_api::quantity::Quantity::parse(text) {
        let _ = quantity.value();
        let _ = quantity.milli_value();
        let _ = quantity.is_zero();
    }
});
