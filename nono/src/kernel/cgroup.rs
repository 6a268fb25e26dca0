//! cgroup v2 plumbing: where the hierarchy is mounted, nono's own cgroup, the per-sandbox
//! cgroups, and attaching cgroup BPF programs to them.
//!
//! Privileges: reading is unprivileged; creating cgroups under nono's own and moving a process
//! into one needs write access there (root, or a delegated subtree); attaching programs needs
//! CAP_BPF + CAP_NET_ADMIN (root here).

use std::fs;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The cgroup2 mount point, from `/proc/self/mountinfo` (never hard-coded: it is
/// `/sys/fs/cgroup` on most systems, `/sys/fs/cgroup/unified` on hybrid layouts).
pub fn cgroup2_mount() -> Result<PathBuf> {
    let info =
        fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    for line in info.lines() {
        // id parent maj:min root mount-point options [optional...] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        if let Some(mount_point) = left.split_whitespace().nth(4) {
            return Ok(PathBuf::from(unescape_mountinfo(mount_point)));
        }
    }
    bail!("no cgroup2 filesystem is mounted (see /proc/self/mountinfo); the kernel layer needs cgroup v2")
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 directory of the calling process.
pub fn own_cgroup(mount: &Path) -> Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("/proc/self/cgroup has no cgroup v2 entry")?;
    Ok(mount.join(rel.trim_start_matches('/')))
}

/// A cgroup's id, as `bpf_get_current_cgroup_id` returns it: the directory's inode number.
pub fn cgroup_id(dir: &Path) -> Result<u64> {
    Ok(fs::metadata(dir)
        .with_context(|| format!("stat {}", dir.display()))?
        .ino())
}

/// Every cgroup at or below `dir`, deepest first (the order `rmdir` needs).
pub fn subtree_deepest_first(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(subtree_deepest_first(&e.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

/// Whether any process is left in the cgroup or below it.
pub fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Kill everything in the cgroup subtree and remove it. Processes left in a sandbox after its
/// supervisor is gone must not outlive the rules that confine them.
pub fn kill_and_remove(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if populated(dir) {
        // cgroup.kill exists since 5.14; fall back to signalling every listed process.
        if fs::write(dir.join("cgroup.kill"), "1").is_err() {
            for cg in subtree_deepest_first(dir) {
                if let Ok(procs) = fs::read_to_string(cg.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                        // SAFETY: plain kill(2).
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while populated(dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    for cg in subtree_deepest_first(dir) {
        fs::remove_dir(&cg).with_context(|| format!("removing cgroup {}", cg.display()))?;
    }
    Ok(())
}

/// `bpf(cmd, attr, sizeof attr)`: the call's result, or -1 with errno set.
///
/// # Safety
/// `A` must be the `repr(C)` layout of `union bpf_attr` for `cmd`, padded with zeroes, and any
/// pointer in it must be valid for the call.
unsafe fn sys_bpf<A>(cmd: libc::c_long, attr: &A) -> libc::c_long {
    // SAFETY: per the contract; the kernel reads at most `size_of::<A>()` bytes of `attr`.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const A,
            std::mem::size_of::<A>() as u32,
        )
    }
}

/// The descriptor of the BPF object pinned at `path` (`BPF_OBJ_GET`).
pub fn open_pinned(path: &Path) -> Result<OwnedFd> {
    let name = std::ffi::CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("a pin path with a NUL byte: {}", path.display()))?;
    // union bpf_attr for BPF_OBJ_GET: pathname, bpf_fd, file_flags, path_fd.
    #[repr(C)]
    #[derive(Default)]
    struct ObjGetAttr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        _pad: [u32; 27],
    }
    const BPF_OBJ_GET: libc::c_long = 7;
    let attr = ObjGetAttr {
        pathname: name.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the union's path string outlives the call.
    let fd = unsafe { sys_bpf(BPF_OBJ_GET, &attr) };
    if fd < 0 {
        bail!(
            "opening the pinned object {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: on success the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Attach a loaded cgroup program to a cgroup with `BPF_PROG_ATTACH` and `BPF_F_ALLOW_MULTI`.
///
/// Deliberately not a `bpf_link`: a link lives only as long as its fd or pin, and the sandbox
/// must stay confined even if nono is killed. A legacy attachment lives as long as the cgroup,
/// which nono removes on exit (or the next start removes after a crash).
pub fn attach_program(cgroup: &Path, prog_fd: impl AsFd, attach_type: u32) -> Result<()> {
    let dir = fs::File::open(cgroup).with_context(|| format!("opening {}", cgroup.display()))?;
    // union bpf_attr for BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags.
    #[repr(C)]
    #[derive(Default)]
    struct ProgAttachAttr {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
        _pad: [u32; 27],
    }
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
    let attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_fd().as_raw_fd() as u32,
        attach_type,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: the union holds descriptors only, no pointers.
    let rc = unsafe { sys_bpf(BPF_PROG_ATTACH, &attr) };
    if rc != 0 {
        bail!(
            "attaching a cgroup program (attach type {attach_type}) to {}: {}",
            cgroup.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/sys/fs/cgroup"), "/sys/fs/cgroup");
    }

    #[test]
    fn finds_the_cgroup2_mount_when_there_is_one() {
        if let Ok(m) = cgroup2_mount() {
            assert!(m.is_absolute());
            assert!(own_cgroup(&m).is_ok());
        }
    }
}
