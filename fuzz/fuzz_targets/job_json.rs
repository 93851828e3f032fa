//! Any bytes as a JSON API body: decoding and validation never panic, and a definition that
//! validates survives the round trip back to a spec unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::spec::JobSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<JobSpec>(data) else {
        return;
    };
    if let Ok(def) = spec.validate() {
        let again = def.to_spec().validate();
        assert_eq!(again.as_ref(), Ok(&def), "round trip changed {spec:?}");
    }
});
