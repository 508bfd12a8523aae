//! One cgroup per module, where the machine lets us make them.
//!
//! The cgroup is the strongest attribution the process backend has: a process cannot leave it
//! (only root can move it, and `setsid`/double-fork do not), and every descendant starts in
//! it. Only one hierarchy is used, chosen at runtime: the unified tree on a pure cgroup v2
//! machine; on a v1 or hybrid machine (like the test machine) the v1 `pids` hierarchy, else
//! the hybrid unified tree (`/sys/fs/cgroup/unified`). A hierarchy qualifies if we can create
//! `<mount>/<parent>` and write its `cgroup.procs`. Without any, attribution falls back to the
//! module's session (see owner.rs).
//!
//! Directory names are the module names (already validated: no `/`, no NUL, not `.`/`..`).
//! Paths in `/proc/<pid>/cgroup` are relative to the hierarchy root as seen from our cgroup
//! namespace, which is the mount root for the daemon's own mounts.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use edgesec_attest::{CgroupEntry, cgroup_paths};
use rustix::fs::{Access, access};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hierarchy {
    /// A cgroup v1 hierarchy, found in /proc/<pid>/cgroup by this controller name.
    V1(&'static str),
    /// The cgroup v2 unified hierarchy (line `0::`).
    V2,
}

/// The parent cgroup under which module cgroups are made.
#[derive(Debug)]
pub(crate) struct CgroupTree {
    hierarchy: Hierarchy,
    parent: String,
    dir: PathBuf,
}

/// Where a process sits relative to our parent cgroup.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Placement<'a> {
    /// Not under our parent cgroup.
    Outside,
    /// In the parent cgroup itself (no module runs there).
    Parent,
    /// In (or below) the cgroup of this module name.
    Module(&'a str),
}

impl CgroupTree {
    /// Picks the hierarchy (see the module docs). `root` is normally `/sys/fs/cgroup`.
    pub fn detect(root: &Path, parent: &str) -> Option<CgroupTree> {
        let mut candidates = Vec::new();
        if root.join("cgroup.controllers").exists() {
            candidates.push((Hierarchy::V2, root.to_path_buf()));
        } else {
            if root.join("pids/cgroup.procs").exists() {
                candidates.push((Hierarchy::V1("pids"), root.join("pids")));
            }
            if root.join("unified/cgroup.controllers").exists() {
                candidates.push((Hierarchy::V2, root.join("unified")));
            }
        }
        for (hierarchy, mount) in candidates {
            let dir = mount.join(parent);
            let created = match std::fs::create_dir(&dir) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "cgroup tree not usable");
                    continue;
                }
            };
            if access(dir.join("cgroup.procs"), Access::WRITE_OK).is_ok() {
                return Some(CgroupTree {
                    hierarchy,
                    parent: parent.to_owned(),
                    dir,
                });
            }
            if created {
                let _ = std::fs::remove_dir(&dir);
            }
        }
        None
    }

    /// `<mount>/<parent>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn describe(&self) -> String {
        match self.hierarchy {
            Hierarchy::V1(c) => format!("cgroup v1 {c} at {}", self.dir.display()),
            Hierarchy::V2 => format!("cgroup v2 at {}", self.dir.display()),
        }
    }

    /// The module's cgroup, without touching the file system.
    pub fn module(&self, name: &str) -> io::Result<ModuleCgroup> {
        let dir = self.dir.join(name);
        let procs_file = CString::new(
            dir.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in cgroup path"))?;
        Ok(ModuleCgroup {
            dir,
            proc_path: format!("/{}/{name}", self.parent),
            procs_file,
        })
    }

    /// Makes the module's cgroup. An existing empty one (left by a crash) is reused; one that
    /// still has processes is refused, since they are not ours to adopt.
    pub fn create(&self, name: &str) -> io::Result<ModuleCgroup> {
        let cg = self.module(name)?;
        match std::fs::create_dir(&cg.dir) {
            Ok(()) => Ok(cg),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if cg.members()?.is_empty() {
                    Ok(cg)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "a cgroup of that name exists and still has processes",
                    ))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Our hierarchy's line among a process's cgroup lines.
    fn entry<'a>(&self, entries: &'a [CgroupEntry]) -> Option<&'a CgroupEntry> {
        entries.iter().find(|e| match self.hierarchy {
            Hierarchy::V1(c) => e.has_controller(c),
            Hierarchy::V2 => e.is_v2(),
        })
    }

    /// The process's path in our hierarchy; None if it cannot be read (gone, no permission).
    pub fn path_of(&self, pid: i32) -> Option<String> {
        let entries = cgroup_paths(pid).ok()?;
        self.entry(&entries).map(|e| e.path.clone())
    }

    pub fn placement<'a>(&self, path: &'a str) -> Placement<'a> {
        let Some(rest) = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(self.parent.as_str()))
        else {
            return Placement::Outside;
        };
        if rest.is_empty() {
            return Placement::Parent;
        }
        match rest.strip_prefix('/') {
            Some(sub) => match sub.split('/').next() {
                Some(name) if !name.is_empty() => Placement::Module(name),
                _ => Placement::Parent,
            },
            // "/edgesec-other": a sibling that merely shares the prefix.
            None => Placement::Outside,
        }
    }

    /// Names of module cgroups that exist now (used to clean up after a crash).
    pub fn existing_modules(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    /// Removes `<mount>/<parent>` if no module cgroup is left in it.
    pub fn remove_parent_if_empty(&self) {
        if self.existing_modules().is_empty() {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// One module's cgroup.
#[derive(Debug)]
pub(crate) struct ModuleCgroup {
    pub dir: PathBuf,
    /// Path as it appears in /proc/<pid>/cgroup: `/<parent>/<name>`.
    pub proc_path: String,
    /// `<dir>/cgroup.procs`, ready for the forked child to open without allocating.
    pub procs_file: CString,
}

impl ModuleCgroup {
    /// Pids (thread group ids) in the cgroup now. A missing directory has none.
    pub fn members(&self) -> io::Result<Vec<i32>> {
        match std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Whether a cgroup path (from /proc/<pid>/cgroup) is this cgroup or below it.
    pub fn contains_path(&self, path: &str) -> bool {
        path.strip_prefix(self.proc_path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// Removes the directory; a missing one is fine. The kernel refuses (EBUSY) while any
    /// process is still in it.
    pub fn rmdir(&self) -> io::Result<()> {
        match std::fs::remove_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> CgroupTree {
        CgroupTree {
            hierarchy: Hierarchy::V2,
            parent: "edgesec".into(),
            dir: "/sys/fs/cgroup/unified/edgesec".into(),
        }
    }

    #[test]
    fn placement_of_paths() {
        let t = tree();
        assert_eq!(t.placement("/edgesec/m1"), Placement::Module("m1"));
        assert_eq!(
            t.placement("/edgesec/$edgeAgent/sub"),
            Placement::Module("$edgeAgent")
        );
        assert_eq!(t.placement("/edgesec"), Placement::Parent);
        assert_eq!(t.placement("/edgesec/"), Placement::Parent);
        assert_eq!(t.placement("/edgesec-other/m1"), Placement::Outside);
        assert_eq!(t.placement("/"), Placement::Outside);
        assert_eq!(t.placement("/docker/abc"), Placement::Outside);
    }

    #[test]
    fn module_paths() {
        let m = tree().module("m1").unwrap();
        assert_eq!(m.proc_path, "/edgesec/m1");
        assert!(m.contains_path("/edgesec/m1"));
        assert!(m.contains_path("/edgesec/m1/x"));
        assert!(!m.contains_path("/edgesec/m10"));
        assert_eq!(
            m.procs_file.to_str().unwrap(),
            "/sys/fs/cgroup/unified/edgesec/m1/cgroup.procs"
        );
    }
}
