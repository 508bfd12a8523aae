//! `/proc/<pid>/stat`: the few fields attestation and the runtime need.
//!
//! The second field is the command name in parentheses, and that name is chosen by the process
//! (prctl PR_SET_NAME, or just its file name): it may hold spaces and `)`. So the line is cut
//! after the LAST `)`; everything after it is kernel-formatted numbers.

use crate::error::AttestError;

/// Fields of `/proc/<pid>/stat` (numbering as in proc(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: state letter (R, S, D, Z, ...).
    pub state: char,
    /// Field 4.
    pub ppid: i32,
    /// Field 5: process group id.
    pub pgrp: i32,
    /// Field 6: session id.
    pub session: i32,
    /// Field 22: start time in clock ticks since boot. Together with the pid it names one
    /// process for the life of the system.
    pub start_time: u64,
}

/// Parses the content of a `/proc/<pid>/stat` file.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let close = text.rfind(')')?;
    let mut fields = text[close + 1..].split_ascii_whitespace();
    // After the cut the first field is field 3.
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    // Fields 7..=21 are skipped: 15 of them, then field 22.
    let start_time = fields.nth(15)?.parse().ok()?;
    Some(ProcStat {
        state,
        ppid,
        pgrp,
        session,
        start_time,
    })
}

/// Reads a small `/proc` file whole. Attestation reads several per request, so this skips what
/// `std::fs::read_to_string` adds for regular files (an fstat for a size hint that procfs
/// reports as 0, a probe read, buffer regrowth): an open, reads into a 1 KiB-granular buffer
/// until end of file, a close.
pub(crate) fn read_proc_file(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1024];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len + 1024, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))
}

/// Reads and parses `/proc/<pid>/stat`. A missing file means the process is gone.
pub fn read_stat(pid: i32) -> Result<ProcStat, AttestError> {
    if pid <= 0 {
        return Err(AttestError::ProcessGone { pid });
    }
    let path = format!("/proc/{pid}/stat");
    let text = read_proc_file(&path)
        .map_err(|e| AttestError::from_proc_io(pid, format!("read {path}"), e))?;
    parse_stat(&text).ok_or(AttestError::Malformed { what: path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_read_whole() {
        let mine = read_proc_file("/proc/self/stat").unwrap();
        assert!(parse_stat(&mine).is_some(), "{mine}");
        // longer than one buffer step
        let maps = read_proc_file("/proc/self/maps").unwrap();
        assert!(maps.len() > 1024 && maps.ends_with('\n'));
        assert!(read_proc_file("/proc/self/no-such-file").is_err());
    }

    #[test]
    fn parses_name_with_spaces_and_parens() {
        let line = "1234 (evil) name (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let st = parse_stat(line).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.ppid, 1);
        assert_eq!(st.pgrp, 1234);
        assert_eq!(st.session, 1234);
        assert_eq!(st.start_time, 987654);
    }

    #[test]
    fn rejects_truncated() {
        assert!(parse_stat("12 (sh) S 1 2 3").is_none());
        assert!(parse_stat("no parens here").is_none());
    }

    #[test]
    fn reads_own_stat() {
        let me = std::process::id() as i32;
        let st = read_stat(me).unwrap();
        assert!(st.start_time > 0);
        // SAFETY: getsid(0) asks about the calling process; no preconditions.
        assert_eq!(st.session, unsafe { libc::getsid(0) });
    }
}
