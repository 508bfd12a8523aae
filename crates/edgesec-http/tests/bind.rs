//! Creating the socket file: permissions, stale sockets, refusing to delete data.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use edgesec_http::bind_unix_socket;
use tokio::net::UnixStream;

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn creates_parent_and_sets_mode_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/edgesec/keyd.sock");
    // SAFETY: only reads the calling process's group id.
    let gid = unsafe { libc::getegid() };
    let listener = bind_unix_socket(&path, 0o660, Some(gid)).unwrap();

    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(mode_of(&path), 0o660);
    assert_eq!(meta.gid(), gid);
    assert_eq!(mode_of(path.parent().unwrap()), 0o755);
    // No temporary names left behind.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(names.len(), 1);

    let (connected, accepted) = tokio::join!(UnixStream::connect(&path), listener.accept());
    connected.unwrap();
    accepted.unwrap();
}

#[tokio::test]
async fn existing_parent_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("private");
    std::fs::create_dir(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _listener = bind_unix_socket(&parent.join("s.sock"), 0o600, None).unwrap();
    assert_eq!(mode_of(&parent), 0o700);
    assert_eq!(mode_of(&parent.join("s.sock")), 0o600);
}

#[tokio::test]
async fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let old = bind_unix_socket(&path, 0o600, None).unwrap();
    drop(old); // the file stays behind, like after a crash
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert!(UnixStream::connect(&path).await.is_err());

    let listener = bind_unix_socket(&path, 0o666, None).unwrap();
    assert_eq!(mode_of(&path), 0o666);
    let (connected, accepted) = tokio::join!(UnixStream::connect(&path), listener.accept());
    connected.unwrap();
    accepted.unwrap();
}

#[tokio::test]
async fn empty_directory_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    std::fs::create_dir(&path).unwrap();
    let _listener = bind_unix_socket(&path, 0o600, None).unwrap();
    assert!(
        std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket()
    );
}

#[tokio::test]
async fn regular_file_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    std::fs::write(&path, b"precious").unwrap();
    let err = bind_unix_socket(&path, 0o600, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "refusing to replace {}: it is a regular file, not a socket",
            path.display()
        )
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[tokio::test]
async fn non_empty_directory_and_symlink_are_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("keep"), b"x").unwrap();
    let err = bind_unix_socket(&path, 0o600, None).unwrap_err();
    assert!(
        err.to_string().contains("it is a non-empty directory"),
        "{err}"
    );
    assert!(path.join("keep").exists());

    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = bind_unix_socket(&link, 0o600, None).unwrap_err();
    assert!(err.to_string().contains("it is a symbolic link"), "{err}");
}
