//! Any text as a cron expression: parsing never panics or hangs, an accepted expression always
//! has a next fire (the parser refuses those that never fire), and its fires move forward.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shoal::schedule::cron_expr;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = cron_expr::parse(text) else {
        return;
    };
    // The normalized source parses to the same thing.
    let again = cron_expr::parse(&parsed.source).expect("normalized source parses");
    assert_eq!(again.source, parsed.source);
    let mut last = None;
    for fire in parsed.schedule.upcoming(chrono::Utc).take(3) {
        if let Some(previous) = last {
            assert!(fire > previous, "fires go backwards in {text:?}");
        }
        last = Some(fire);
    }
    assert!(last.is_some(), "{text:?} was accepted but never fires");
});
