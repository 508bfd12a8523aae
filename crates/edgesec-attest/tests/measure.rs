//! Executable measurement: correctness against sha256sum, caching, replacement, size cap.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use edgesec_attest::{AttestError, MeasureConfig, Measurement, Measurer, PinnedProcess};

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn write_file(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn own_exe_matches_sha256sum() {
    let m = Measurer::default();
    let me = std::process::id() as i32;
    let got = m.exe(me).unwrap();
    let exe = std::env::current_exe().unwrap();
    assert_eq!(got.hex(), sha256sum(&exe));
    assert_eq!(got.size, std::fs::metadata(&exe).unwrap().len());
    assert_eq!(got.to_string(), format!("sha256:{}", got.hex()));

    let pinned = PinnedProcess::pin(me, None).unwrap();
    assert_eq!(pinned.exe_measurement_with(&m).unwrap(), got);
}

#[test]
fn cache_hit_does_not_rehash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bin");
    write_file(&path, b"#!/bin/sh\necho one\n");
    let m = Measurer::default();
    let a = m.file(&path).unwrap();
    let b = m.file(&path).unwrap();
    assert_eq!(a, b);
    let stats = m.stats();
    assert_eq!(stats.hashes, 1);
    assert_eq!(stats.cache_hits, 1);
}

#[test]
fn replaced_file_is_measured_anew() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bin");
    write_file(&path, b"first version");
    let m = Measurer::default();
    let a = m.file(&path).unwrap();

    // A new file put at the same path (new inode), same size.
    let tmp = dir.path().join("bin.new");
    write_file(&tmp, b"other version");
    std::fs::rename(&tmp, &path).unwrap();
    let b = m.file(&path).unwrap();
    assert_ne!(a, b);
    assert_eq!(b.hex(), sha256sum(&path));
    assert_eq!(m.stats().hashes, 2);
}

#[test]
fn running_exe_is_measured_as_the_process_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mysleep");
    std::fs::copy("/bin/sleep", &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let original = sha256sum(&path);
    let mut child = Command::new(&path)
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();

    // Delete the file and put something else at its path: /proc/<pid>/exe still yields the
    // file the process runs.
    std::fs::remove_file(&path).unwrap();
    write_file(&path, b"not the program");
    let m = Measurer::default();
    let got = m.exe(child.id() as i32).unwrap();
    assert_eq!(got.hex(), original);

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cached_lookup_never_hashes_and_agrees_with_a_full_measurement() {
    let mut child = Command::new("/bin/sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let m = Measurer::default();
    assert_eq!(m.exe_cached(pid).unwrap(), None);
    assert_eq!(m.stats().hashes, 0);
    let full = m.exe(pid).unwrap();
    assert_eq!(m.exe_cached(pid).unwrap(), Some(full));
    assert_eq!(m.stats().hashes, 1);
    assert!(m.exe_cached(0).is_err());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn size_cap_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    write_file(&path, &[7u8; 100]);
    let m = Measurer::new(MeasureConfig {
        max_size: 10,
        ..MeasureConfig::default()
    });
    let err = m.file(&path).unwrap_err();
    assert!(
        matches!(err, AttestError::TooLarge { size: 100, max: 10 }),
        "{err}"
    );
    m.set_max_size(100);
    assert_eq!(m.file(&path).unwrap().size, 100);
}

#[test]
fn directories_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = Measurer::default();
    assert!(matches!(m.file(dir.path()), Err(AttestError::Io { .. })));
    assert!(matches!(
        m.file(&dir.path().join("nope")),
        Err(AttestError::Io { .. })
    ));
    // A FIFO is refused at once instead of blocking the open until a writer comes.
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(matches!(m.file(&fifo), Err(AttestError::Io { .. })));
}

#[test]
fn text_form_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    write_file(&path, b"abc");
    let m = Measurer::default().file(&path).unwrap();
    assert_eq!(
        m.to_string(),
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(json, format!("\"{m}\""));
    let back: Measurement = serde_json::from_str(&json).unwrap();
    assert_eq!(back, m);
    assert!(serde_json::from_str::<Measurement>("\"md5:abc\"").is_err());
    assert!("sha256:00".parse::<Measurement>().is_err());
}
