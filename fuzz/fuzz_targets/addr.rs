//! The address parser on arbitrary text: what parses prints as text that
//! parses back to the same endpoint, and printing is stable from then on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketkit::Endpoint;

fuzz_target!(|text: &str| {
    let Ok(endpoint) = text.parse::<Endpoint>() else {
        return;
    };
    let _ = (
        endpoint.kind(),
        endpoint.host_port().map(|hp| hp.host.is_loopback()),
    );
    let printed = endpoint.to_string();
    let again: Endpoint = printed
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
    assert_eq!(again, endpoint, "{text:?} printed as {printed:?}");
    assert_eq!(again.to_string(), printed);
});
