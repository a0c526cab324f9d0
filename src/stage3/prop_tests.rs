//! Property tests of the pure parsers: [`parse_latest`], [`parse_digests`] and
//! [`signed_body`] never panic, whatever the input (arbitrary strings, and strings built from
//! the pieces of real files so that the deeper branches are reached too).

use proptest::prelude::*;

use super::*;

/// Lines that look like parts of an index, a DIGESTS file or a clear-signed wrapper.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-----BEGIN PGP SIGNED MESSAGE-----".to_string()),
        Just("Hash: SHA512".to_string()),
        Just(String::new()),
        Just("-----BEGIN PGP SIGNATURE-----".to_string()),
        Just("-----END PGP SIGNATURE-----".to_string()),
        Just("# BLAKE2B HASH".to_string()),
        Just("# SHA512 HASH".to_string()),
        Just("# BLAKE2 (b2sum) HASH".to_string()),
        "[0-9a-fA-F]{120,130}  (/[a-z]+/)?stage3-[a-z0-9-]{0,12}\\.tar\\.xz\\*?",
        "[0-9T]{0,17}Z?/stage3-[a-z0-9./-]{0,20}\\.tar\\.xz( [0-9]{0,21})?( x)?",
        "- .{0,20}",
        "# .{0,30}",
        ".{0,40}",
    ]
}

fn document() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..24).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parse_latest_never_panics(text in document()) {
        let _ = parse_latest(&text);
    }

    #[test]
    fn parse_latest_never_panics_on_any_string(text in ".*") {
        let _ = parse_latest(&text);
    }

    #[test]
    fn parse_digests_never_panics(text in document(), name in "[a-z0-9./-]{0,30}") {
        let _ = parse_digests(&text, &name);
        let _ = parse_digests(&text, "stage3-amd64-musl-hardened.tar.xz");
    }

    #[test]
    fn parse_digests_never_panics_on_any_string(text in ".*", name in ".*") {
        let _ = parse_digests(&text, &name);
    }

    #[test]
    fn signed_body_never_panics(text in document()) {
        let _ = signed_body(&text);
        let _ = is_clearsigned(&text);
    }

    #[test]
    fn a_parsed_index_is_always_safe(text in document()) {
        if let Ok(latest) = parse_latest(&text) {
            prop_assert!(latest.size > 0);
            prop_assert!(!latest.rel_path.starts_with('/'));
            prop_assert!(!latest.rel_path.split('/').any(|c| c == ".." || c.is_empty()));
            prop_assert!(latest.file_name.ends_with(".tar.xz"));
        }
    }
}
