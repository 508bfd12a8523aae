//! Resolving a module's `user` setting to numeric ids, once at create time.
//!
//! The lookups go through the C library (getpwnam_r, getgrnam_r, getgrouplist) so that NSS
//! sources besides /etc/passwd work. They cannot run in the forked child (not
//! async-signal-safe), which is why the ids, including the supplementary group list, are
//! resolved here and the child only makes the raw set*id calls.

use std::ffi::{CStr, CString};
use std::io;

/// Numeric identity a module runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (from the group database for a named user, else empty).
    pub groups: Vec<libc::gid_t>,
}

struct PwEntry {
    name: CString,
    uid: u32,
    gid: u32,
}

/// Resolves `user[:group]`, each part a name or a number. `Ok(None)` means the user or group
/// does not exist. A number with no passwd entry is accepted (as container runtimes do) and
/// then runs with gid = uid and no supplementary groups, never with the root group by default.
pub(crate) fn resolve_user(spec: &str) -> io::Result<Option<ResolvedUser>> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() || group_part.is_some_and(str::is_empty) {
        return Ok(None);
    }
    let numeric_uid = user_part.parse::<u32>().ok();
    let entry = match numeric_uid {
        Some(uid) => getpw(Lookup::Uid(uid))?,
        None => getpw(Lookup::Name(cstring(user_part)?))?,
    };
    let (uid, mut gid, mut groups) = match (&entry, numeric_uid) {
        (Some(pw), _) => (pw.uid, pw.gid, group_list(&pw.name, pw.gid)?),
        (None, Some(uid)) => (uid, uid, Vec::new()),
        (None, None) => return Ok(None),
    };
    if let Some(g) = group_part {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => match getgr_gid(&cstring(g)?)? {
                Some(n) => n,
                None => return Ok(None),
            },
        };
        // An explicit group replaces the primary group; the supplementary list stays that of
        // the user, as `su`/`docker --user u:g` do.
        if !groups.contains(&gid) {
            groups.insert(0, gid);
        }
    }
    if groups.is_empty() {
        groups.push(gid);
    }
    Ok(Some(ResolvedUser { uid, gid, groups }))
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in user name"))
}

enum Lookup {
    Name(CString),
    Uid(u32),
}

/// Buffer sizes for the *_r calls grow on ERANGE up to this bound.
const MAX_BUF: usize = 1 << 20;

fn getpw(by: Lookup) -> io::Result<Option<PwEntry>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: passwd is plain old data; an all-zero value is valid before the call fills it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let buf_ptr = buf.as_mut_ptr().cast::<libc::c_char>();
        // SAFETY: every pointer is valid for the call; buf outlives the reads below, which
        // copy out of it before it is dropped or resized.
        let rc = unsafe {
            match &by {
                Lookup::Name(n) => {
                    libc::getpwnam_r(n.as_ptr(), &mut pwd, buf_ptr, buf.len(), &mut result)
                }
                Lookup::Uid(u) => libc::getpwuid_r(*u, &mut pwd, buf_ptr, buf.len(), &mut result),
            }
        };
        if rc == libc::ERANGE && buf.len() < MAX_BUF {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_name points into buf as a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }.to_owned();
        return Ok(Some(PwEntry {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }));
    }
}

fn getgr_gid(name: &CStr) -> io::Result<Option<u32>> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: group is plain old data; zeroed is a valid initial value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: pointers valid for the call, as in getpw.
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < MAX_BUF {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

/// The user's groups from the group database, primary group first.
fn group_list(name: &CStr, gid: u32) -> io::Result<Vec<libc::gid_t>> {
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut count = n;
        // SAFETY: groups has room for `count` entries; getgrouplist writes at most that many
        // and reports the needed number in `count` when it returns -1.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            return Ok(groups);
        }
        if count <= n || count > 65536 {
            return Err(io::Error::other("getgrouplist failed"));
        }
        n = count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_by_name_and_number() {
        let by_name = resolve_user("root").unwrap().unwrap();
        assert_eq!((by_name.uid, by_name.gid), (0, 0));
        assert!(by_name.groups.contains(&0));
        let by_num = resolve_user("0").unwrap().unwrap();
        assert_eq!(by_num.uid, 0);
    }

    #[test]
    fn numeric_without_entry_uses_gid_equal_uid() {
        let u = resolve_user("54321").unwrap().unwrap();
        assert_eq!(
            (u.uid, u.gid, u.groups.clone()),
            (54321, 54321, vec![54321])
        );
        let g = resolve_user("54321:777").unwrap().unwrap();
        assert_eq!((g.uid, g.gid), (54321, 777));
    }

    #[test]
    fn missing_user_or_group_is_none() {
        assert_eq!(resolve_user("no-such-user-edgesec").unwrap(), None);
        assert_eq!(resolve_user("root:no-such-group-edgesec").unwrap(), None);
        assert_eq!(resolve_user("").unwrap(), None);
        assert_eq!(resolve_user("root:").unwrap(), None);
    }
}
