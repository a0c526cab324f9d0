//! Tests of the pure parsers: index, DIGESTS, clear-signed wrapper.

use super::*;

const NAME: &str = "stage3-amd64-openrc-20260811T083102Z.tar.xz";

const LATEST_BODY: &str = "# Latest as of Sat, 15 Aug 2026 09:15:01 +0000\n\
# ts=1786785301\n\
20260811T083102Z/stage3-amd64-openrc-20260811T083102Z.tar.xz 496363884\n";

fn hex_of(c: char) -> String {
    std::iter::repeat_n(c, 128).collect()
}

fn digests_body() -> String {
    format!(
        "# BLAKE2B HASH\n{b}  {NAME}\n# SHA512 HASH\n{s}  {NAME}\n\
         # BLAKE2B HASH\n{c}  {NAME}.CONTENTS.gz\n# SHA512 HASH\n{d}  {NAME}.CONTENTS.gz\n",
        b = hex_of('b'),
        s = hex_of('5'),
        c = hex_of('c'),
        d = hex_of('d'),
    )
}

/// `body` clear-signed as Gentoo's release files are (RFC 4880 §7: dash-escaped lines), with
/// a dummy signature block; also the fuzz campaign's clear-signed samples.
pub(crate) fn clearsign(body: &str) -> String {
    let escaped: String = body
        .split_inclusive('\n')
        .map(|l| {
            if l.starts_with('-') {
                format!("- {l}")
            } else {
                l.to_string()
            }
        })
        .collect();
    format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{escaped}\
         -----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n=abcd\n-----END PGP SIGNATURE-----\n"
    )
}

#[test]
fn parse_latest_reads_spec_example() {
    let l = parse_latest(LATEST_BODY).unwrap();
    assert_eq!(l.rel_path, format!("20260811T083102Z/{NAME}"));
    assert_eq!(l.file_name, NAME);
    assert_eq!(l.stamp, "20260811T083102Z");
    assert_eq!(l.size, 496363884);
}

#[test]
fn parse_latest_reads_clearsigned_index() {
    let l = parse_latest(&clearsign(LATEST_BODY)).unwrap();
    assert_eq!(l.size, 496363884);
}

#[test]
fn parse_latest_ignores_text_outside_signed_part() {
    let evil = "20990101T000000Z/stage3-amd64-openrc-20990101T000000Z.tar.xz 1000\n";
    let text = format!("{evil}{}{evil}", clearsign(LATEST_BODY));
    let l = parse_latest(&text).unwrap();
    assert_eq!(l.file_name, NAME);
    assert_eq!(l.size, 496363884);
}

#[test]
fn parse_latest_accepts_crlf_lines() {
    let l = parse_latest(&clearsign(LATEST_BODY).replace('\n', "\r\n")).unwrap();
    assert_eq!(l.file_name, NAME);
}

#[test]
fn parse_latest_skips_other_files() {
    let text = format!("20150101/stage3-amd64-20150101.tar.bz2 1234\n{LATEST_BODY}");
    assert_eq!(parse_latest(&text).unwrap().file_name, NAME);
}

#[test]
fn parse_latest_without_tar_xz_line_is_an_error() {
    let err = parse_latest("# ts=1\n20150101/stage3-amd64-20150101.tar.bz2 1234\n").unwrap_err();
    assert!(matches!(err, Stage3Error::NoTarball { .. }), "{err}");
    assert!(err.to_string().contains("no .tar.xz"), "{err}");
}

#[test]
fn parse_latest_malformed_size_is_an_error() {
    for size in ["49636x884", "+5", "-1", "0", "99999999999999999999999"] {
        let text = format!("20260811T083102Z/{NAME} {size}\n");
        let err = parse_latest(&text).unwrap_err();
        assert!(
            matches!(err, Stage3Error::BadIndex { line: 1, .. }),
            "{size}: {err}"
        );
    }
    let err = parse_latest(&format!("20260811T083102Z/{NAME}\n")).unwrap_err();
    assert!(err.to_string().contains("no size"), "{err}");
}

#[test]
fn parse_latest_refuses_unsafe_paths() {
    for path in [
        format!("/20260811T083102Z/{NAME}"),
        format!("../{NAME}"),
        format!("20260811T083102Z/../{NAME}"),
        NAME.to_string(),
        format!("2026?x/{NAME}"),
    ] {
        let err = parse_latest(&format!("{path} 100\n")).unwrap_err();
        assert!(matches!(err, Stage3Error::BadIndex { .. }), "{path}: {err}");
    }
}

#[test]
fn parse_latest_refuses_two_different_tarballs() {
    let text =
        format!("{LATEST_BODY}20260812T083102Z/stage3-amd64-openrc-20260812T083102Z.tar.xz 5\n");
    let err = parse_latest(&text).unwrap_err();
    assert!(err.to_string().contains("second .tar.xz"), "{err}");
}

#[test]
fn parse_latest_malformed_clearsigned_is_an_error() {
    let text = format!("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{LATEST_BODY}");
    let err = parse_latest(&text).unwrap_err();
    assert!(matches!(err, Stage3Error::BadSignedText { .. }), "{err}");
}

#[test]
fn parse_digests_reads_spec_example() {
    let d = parse_digests(&digests_body(), NAME).unwrap();
    assert_eq!(d.blake2b, Some(hex_of('b')));
    assert_eq!(d.sha512, Some(hex_of('5')));
}

#[test]
fn parse_digests_ignores_contents_gz_entries() {
    let only_contents = format!(
        "# SHA512 HASH\n{}  {NAME}.CONTENTS.gz\n# BLAKE2B HASH\n{}  {NAME}.CONTENTS.gz\n",
        hex_of('d'),
        hex_of('c')
    );
    let err = parse_digests(&only_contents, NAME).unwrap_err();
    assert!(matches!(err, Stage3Error::NoDigests { .. }), "{err}");
    let d = parse_digests(&digests_body(), &format!("{NAME}.CONTENTS.gz")).unwrap();
    assert_eq!(d.sha512, Some(hex_of('d')));
}

#[test]
fn parse_digests_reads_old_b2sum_header_and_absolute_names() {
    let text = format!(
        "# BLAKE2 (b2sum) HASH\n{}  /var/tmp/catalyst/builds/default/{NAME}\n",
        hex_of('A')
    );
    let d = parse_digests(&text, NAME).unwrap();
    assert_eq!(d.blake2b, Some(hex_of('a')));
    assert_eq!(d.sha512, None);
}

#[test]
fn parse_digests_accepts_a_path_as_file_name() {
    let d = parse_digests(&digests_body(), &format!("/x/distfiles/{NAME}")).unwrap();
    assert_eq!(d.sha512, Some(hex_of('5')));
}

#[test]
fn parse_digests_ignores_other_hash_kinds() {
    let text = format!(
        "# MD5 HASH\n{}  {NAME}\n# SHA1 HASH\nabc  {NAME}\n",
        "0".repeat(32)
    );
    let err = parse_digests(&text, NAME).unwrap_err();
    assert!(matches!(err, Stage3Error::NoDigests { .. }), "{err}");
    assert!(err.to_string().contains("no SHA512 or BLAKE2B"), "{err}");
}

#[test]
fn parse_digests_without_digests_is_an_error() {
    assert!(matches!(
        parse_digests("", NAME),
        Err(Stage3Error::NoDigests { .. })
    ));
}

#[test]
fn parse_digests_malformed_hex_is_an_error() {
    let text = format!("# SHA512 HASH\n{}  {NAME}\n", "zz".repeat(64));
    let err = parse_digests(&text, NAME).unwrap_err();
    assert!(
        matches!(err, Stage3Error::BadDigests { line: 2, .. }),
        "{err}"
    );
}

#[test]
fn parse_digests_conflicting_entries_are_an_error() {
    let text = format!(
        "# SHA512 HASH\n{}  {NAME}\n# SHA512 HASH\n{}  {NAME}\n",
        hex_of('1'),
        hex_of('2')
    );
    assert!(matches!(
        parse_digests(&text, NAME),
        Err(Stage3Error::BadDigests { .. })
    ));
}

#[test]
fn parse_digests_ignores_text_outside_signed_part() {
    let evil = format!("# SHA512 HASH\n{}  {NAME}\n", hex_of('e'));
    let text = format!("{evil}{}{evil}", clearsign(&digests_body()));
    let d = parse_digests(&text, NAME).unwrap();
    assert_eq!(d.sha512, Some(hex_of('5')));
}

#[test]
fn signed_body_undoes_dash_escaping() {
    let body = "line one\n-----BEGIN PGP SIGNATURE----- fake\n- dash\nlast";
    let text = clearsign(&format!("{body}\n"));
    assert!(text.contains("- -----BEGIN PGP SIGNATURE----- fake"));
    assert_eq!(signed_body(&text).as_deref(), Some(body));
}

#[test]
fn signed_body_borrows_when_nothing_is_escaped() {
    let text = clearsign(LATEST_BODY);
    let body = signed_body(&text).unwrap();
    assert!(matches!(body, std::borrow::Cow::Borrowed(_)));
    assert_eq!(&*body, LATEST_BODY.trim_end_matches('\n'));
}

#[test]
fn signed_body_is_none_for_plain_or_broken_text() {
    assert_eq!(signed_body(LATEST_BODY), None);
    assert_eq!(
        signed_body("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n"),
        None
    );
    assert_eq!(
        signed_body("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nbody\n"),
        None
    );
}

#[test]
fn parsers_never_panic_on_odd_input() {
    let samples = [
        "",
        "\n",
        "#",
        " \t ",
        "\u{feff}x.tar.xz 5",
        "a/b.tar.xz 1 2",
        "-----BEGIN PGP SIGNED MESSAGE-----",
        "-----BEGIN PGP SIGNED MESSAGE-----\n\n-----BEGIN PGP SIGNATURE-----",
        "# SHA512 HASH\n\u{e9}\u{e9}  x",
        "# SHA512 HASH\nabc",
        "- \n- ",
    ];
    for s in samples {
        let _ = parse_latest(s);
        let _ = parse_digests(s, "x");
        let _ = signed_body(s);
    }
    assert_eq!(
        signed_body("-----BEGIN PGP SIGNED MESSAGE-----\n\n-----BEGIN PGP SIGNATURE-----")
            .as_deref(),
        Some("")
    );
}

/// Deterministic xorshift, for the mutation tests.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn parsers_never_panic_on_mutated_input() {
    let seeds = [
        clearsign(LATEST_BODY),
        clearsign(&digests_body()),
        digests_body(),
    ];
    let pieces: [&[u8]; 8] = [
        b"\n",
        b"\r",
        b"- ",
        b"#",
        b" ",
        b"/",
        b"\xc3\xa9",
        b"-----BEGIN PGP SIGNATURE-----\n",
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for seed in &seeds {
        for _ in 0..2000 {
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..(next(&mut x) % 4 + 1) {
                let at = (next(&mut x) as usize) % (bytes.len() + 1);
                match next(&mut x) % 3 {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 => {
                        let p = pieces[(next(&mut x) as usize) % pieces.len()];
                        bytes.splice(at..at, p.iter().copied());
                    }
                    _ => bytes.truncate(at),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse_latest(&text);
            let _ = parse_digests(&text, NAME);
            let _ = signed_body(&text);
        }
    }
}
