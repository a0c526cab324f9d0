//! A `.partial` left in distfiles by an interrupted earlier run is resumed, not restarted.

use super::*;

#[test]
fn partial_of_an_earlier_run_is_resumed_with_range() {
    let Some(case) = Case::new() else {
        return;
    };
    let tarball = case.tarball();
    let bytes = std::fs::read(&tarball).unwrap();
    let third = bytes.len() / 3;
    std::fs::create_dir_all(case.distfiles()).unwrap();
    let name = tarball.file_name().unwrap().to_str().unwrap();
    let partial = case.distfiles().join(format!("{name}.partial"));
    std::fs::write(&partial, &bytes[..third]).unwrap();
    let srv = serve(case.mirror(), None);
    let (result, lines) = case.obtain(&srv.url, &case.key());
    let v = result.unwrap();
    assert_eq!(std::fs::read(&v.tarball).unwrap(), bytes);
    assert!(!partial.exists());
    let log = srv.log.lock().unwrap().clone();
    let tar: Vec<&String> = log.iter().filter(|l| l.contains(".tar.xz range")).collect();
    assert_eq!(tar.len(), 1, "{log:#?}");
    assert!(
        tar[0].ends_with(&format!("range=bytes={third}-")),
        "{log:#?}"
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("resuming the partial download")));
}

#[test]
fn a_corrupt_partial_of_an_earlier_run_fails_the_digests_and_is_deleted() {
    let Some(case) = Case::new() else {
        return;
    };
    let tarball = case.tarball();
    let mut bytes = std::fs::read(&tarball).unwrap();
    let third = bytes.len() / 3;
    bytes[10] ^= 1;
    std::fs::create_dir_all(case.distfiles()).unwrap();
    let name = tarball.file_name().unwrap().to_str().unwrap();
    let partial = case.distfiles().join(format!("{name}.partial"));
    std::fs::write(&partial, &bytes[..third]).unwrap();
    let srv = serve(case.mirror(), None);
    expect_err(case.obtain(&srv.url, &case.key()).0, "digest mismatch");
    assert!(!partial.exists());
    case.assert_nothing_kept();
}
