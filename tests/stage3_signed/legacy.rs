//! Older mirror forms: the pre-2022 release whose `.DIGESTS` is plain and whose signed copy
//! is a separate clear-signed `.DIGESTS.asc`.

use super::*;

#[test]
fn pre_2022_digests_asc_is_verified_and_kept() {
    let Some(case) = Case::new() else {
        return;
    };
    let digests = case.file_ending(".DIGESTS");
    let signed = std::fs::read_to_string(&digests).unwrap();
    let plain = build_helper::stage3::signed_body(&signed)
        .unwrap()
        .into_owned();
    std::fs::write(&digests, format!("{plain}\n")).unwrap();
    std::fs::write(digests.with_extension("DIGESTS.asc"), &signed).unwrap();
    let srv = serve(case.mirror(), None);
    let (result, lines) = case.obtain(&srv.url, &case.key());
    let v = result.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("good signature") && l.contains(".DIGESTS.asc by")),
        "{lines:#?}"
    );
    // The kept DIGESTS is the signed copy, so the offline reuse checks its signature.
    let kept = std::fs::read_to_string(v.tarball.with_extension("xz.DIGESTS")).unwrap();
    assert_eq!(kept, signed);
}

#[test]
fn plain_digests_without_a_signed_copy_are_refused() {
    let Some(case) = Case::new() else {
        return;
    };
    let digests = case.file_ending(".DIGESTS");
    let signed = std::fs::read_to_string(&digests).unwrap();
    let plain = build_helper::stage3::signed_body(&signed)
        .unwrap()
        .into_owned();
    std::fs::write(&digests, format!("{plain}\n")).unwrap();
    let srv = serve(case.mirror(), None);
    expect_err(case.obtain(&srv.url, &case.key()).0, "not clear-signed");
    case.assert_nothing_kept();
}
