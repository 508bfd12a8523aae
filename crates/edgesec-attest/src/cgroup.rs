//! Which cgroups a process is in, and which container that makes it part of.
//!
//! `/proc/<pid>/cgroup` has one line per hierarchy, `hierarchy-id:controllers:path`. cgroup v1
//! lines have a non-zero id and a comma-separated controller list (or `name=systemd`); the v2
//! line is `0::/path`. On a hybrid machine like this one both kinds appear. The path may itself
//! contain `:`, so a line is split at the first two colons only.
//!
//! Container engines name the cgroup after the full 64-hex container id:
//! docker (cgroupfs driver) `/docker/<id>`, docker (systemd driver) `.../docker-<id>.scope`,
//! podman `.../libpod-<id>` or `libpod-<id>.scope` (cgroupfs or systemd; `libpod_parent/` on
//! v1). `libpod-conmon-<id>` is podman's monitor process, outside the container, and must not
//! be attributed to it.

use crate::error::AttestError;

/// One line of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEntry {
    /// Hierarchy id; 0 is the cgroup v2 unified hierarchy.
    pub hierarchy: u32,
    /// Controllers bound to the hierarchy (`pids`, `cpu`, `name=systemd`, ...); empty for v2.
    pub controllers: Vec<String>,
    /// Path relative to the hierarchy root, as seen from the reader's cgroup namespace.
    pub path: String,
}

impl CgroupEntry {
    pub fn is_v2(&self) -> bool {
        self.hierarchy == 0 && self.controllers.is_empty()
    }

    pub fn has_controller(&self, name: &str) -> bool {
        self.controllers.iter().any(|c| c == name)
    }
}

/// Parses the content of `/proc/<pid>/cgroup`, skipping lines that do not parse.
pub fn parse_cgroup_file(text: &str) -> Vec<CgroupEntry> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?.parse().ok()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            if !path.starts_with('/') {
                return None;
            }
            Some(CgroupEntry {
                hierarchy,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// Reads and parses `/proc/<pid>/cgroup`.
pub fn cgroup_paths(pid: i32) -> Result<Vec<CgroupEntry>, AttestError> {
    if pid <= 0 {
        return Err(AttestError::ProcessGone { pid });
    }
    let path = format!("/proc/{pid}/cgroup");
    let text = crate::procstat::read_proc_file(&path)
        .map_err(|e| AttestError::from_proc_io(pid, format!("read {path}"), e))?;
    Ok(parse_cgroup_file(&text))
}

/// The container id of process `pid`, if it runs in a docker or podman container. Any read
/// error (process gone, no permission) gives `None`: no container is claimed.
pub fn container_id(pid: i32) -> Option<String> {
    container_id_from_entries(&cgroup_paths(pid).ok()?)
}

/// The container id named by a set of cgroup lines. Every hierarchy that names a container
/// must name the same one; if two disagree the answer is `None` (fail closed).
pub fn container_id_from_entries(entries: &[CgroupEntry]) -> Option<String> {
    let mut found: Option<&str> = None;
    for e in entries {
        if let Some(id) = container_id_in_path(&e.path) {
            match found {
                None => found = Some(id),
                Some(prev) if prev == id => {}
                Some(_) => return None,
            }
        }
    }
    found.map(str::to_owned)
}

/// The container id in one cgroup path. The outermost match wins: when a container runs its
/// own engine inside (`/docker/<outer>/docker/<inner>`), the host engine knows only the outer.
pub fn container_id_in_path(path: &str) -> Option<&str> {
    let mut prev: Option<&str> = None;
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        if prev == Some("docker") && is_container_id(comp) {
            return Some(comp);
        }
        if let Some(id) = scoped_id(comp, "docker-") {
            return Some(id);
        }
        if !comp.starts_with("libpod-conmon-")
            && let Some(id) = scoped_id(comp, "libpod-")
        {
            return Some(id);
        }
        prev = Some(comp);
    }
    None
}

/// `<prefix><64 hex>` or `<prefix><64 hex>.scope`.
fn scoped_id<'a>(comp: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = comp.strip_prefix(prefix)?;
    let id = rest.strip_suffix(".scope").unwrap_or(rest);
    is_container_id(id).then_some(id)
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "915acfc6d2c1b7a3e4f5061728394a5b6c7d8e9f00112233445566778899aabb";
    const ID2: &str = "f6e0aa11223344556677889900aabbccddeeff00112233445566778899aabbcc";

    #[test]
    fn parses_v1_and_v2_lines() {
        let text = "9:name=systemd:/\n8:pids:/edgesec/m1\n2:cpu,cpuacct:/a:b\n0::/\nbogus\n";
        let e = parse_cgroup_file(text);
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].controllers, vec!["name=systemd"]);
        assert!(e[1].has_controller("pids"));
        assert_eq!(e[1].path, "/edgesec/m1");
        assert_eq!(e[2].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(e[2].path, "/a:b", "colons in the path survive");
        assert!(e[3].is_v2());
        assert!(!e[1].is_v2());
    }

    #[test]
    fn docker_cgroupfs_v1() {
        let text = format!("12:pids:/docker/{ID}\n9:name=systemd:/docker/{ID}\n0::/\n");
        assert_eq!(
            container_id_from_entries(&parse_cgroup_file(&text)).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn docker_systemd_scope_v2() {
        let text = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(
            container_id_from_entries(&parse_cgroup_file(&text)).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn podman_cgroupfs_v1_and_systemd_v2() {
        let v1 = format!("9:name=systemd:/libpod_parent/libpod-{ID}\n");
        assert_eq!(
            container_id_from_entries(&parse_cgroup_file(&v1)).as_deref(),
            Some(ID)
        );
        let v2 = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
        assert_eq!(
            container_id_from_entries(&parse_cgroup_file(&v2)).as_deref(),
            Some(ID)
        );
    }

    #[test]
    fn conmon_is_not_the_container() {
        let text = format!("0::/machine.slice/libpod-conmon-{ID}.scope\n");
        assert_eq!(container_id_from_entries(&parse_cgroup_file(&text)), None);
    }

    #[test]
    fn rejects_short_upper_and_unprefixed_ids() {
        assert_eq!(container_id_in_path("/docker/abc123"), None);
        assert_eq!(
            container_id_in_path(&format!("/docker/{}", ID.to_uppercase())),
            None
        );
        assert_eq!(container_id_in_path(&format!("/other/{ID}")), None);
        assert_eq!(
            container_id_in_path(&format!("/x/mydocker-{ID}.scope")),
            None
        );
        assert_eq!(container_id_in_path("/"), None);
    }

    #[test]
    fn nested_engine_gives_outer_id() {
        let p = format!("/docker/{ID}/docker/{ID2}");
        assert_eq!(container_id_in_path(&p), Some(ID));
    }

    #[test]
    fn disagreeing_hierarchies_fail_closed() {
        let text = format!("8:pids:/docker/{ID}\n0::/docker/{ID2}\n");
        assert_eq!(container_id_from_entries(&parse_cgroup_file(&text)), None);
    }

    #[test]
    fn own_process_is_no_container() {
        let me = std::process::id() as i32;
        assert!(!cgroup_paths(me).unwrap().is_empty());
    }
}
