//! What this kernel offers: the Landlock ABI, seccomp filtering, and the release for messages.
//!
//! Privilege: none. Every probe is a query that an unprivileged process may make and that has
//! no side effect: `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`,
//! `seccomp(SECCOMP_GET_ACTION_AVAIL)` and `uname(2)`.
//! Kernel assumptions: none; a kernel without Landlock answers ENOSYS or EOPNOTSUPP and is
//! reported as ABI 0 (the caller refuses to run), a kernel older than 4.14 is reported as
//! lacking seccomp filters.

use std::ffi::CStr;

use super::landlock::uapi;

/// The kernel features nono's unprivileged sandbox relies on, as found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KernelFeatures {
    /// The Landlock ABI the kernel implements; 0 when Landlock is missing or disabled.
    pub landlock_abi: u8,
    /// Whether `SECCOMP_RET_ERRNO` filters can be loaded.
    pub seccomp_errno: bool,
    /// `uname -r`, for messages that say which kernel is running.
    pub release: String,
}

impl KernelFeatures {
    pub fn probe() -> KernelFeatures {
        KernelFeatures {
            landlock_abi: landlock_abi(),
            seccomp_errno: seccomp_errno_available(),
            release: kernel_release(),
        }
    }
}

/// The Landlock ABI version, 0 when Landlock is unavailable.
pub fn landlock_abi() -> u8 {
    // SAFETY: with a NULL attribute and size 0 the kernel reads no memory; this is the
    // documented version query.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<uapi::RulesetAttr>(),
            0usize,
            uapi::LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r <= 0 {
        0
    } else {
        u8::try_from(r).unwrap_or(u8::MAX)
    }
}

fn seccomp_errno_available() -> bool {
    const SECCOMP_GET_ACTION_AVAIL: libc::c_ulong = 2;
    let action: u32 = libc::SECCOMP_RET_ERRNO;
    // SAFETY: the kernel reads one u32 from a pointer to a live local.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_GET_ACTION_AVAIL,
            0 as libc::c_ulong,
            &action as *const u32,
        )
    };
    r == 0
}

/// The running kernel's release string (`6.18.0-...`), or `unknown`.
pub fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it or fails.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: the kernel NUL-terminates every utsname field.
    unsafe { CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// What each Landlock ABI adds, for `--dry-run` and refusal messages.
pub fn abi_features(abi: u8) -> Vec<&'static str> {
    let all = [
        (1, "filesystem access rights"),
        (2, "rename and link across directories (refer)"),
        (3, "truncate"),
        (4, "TCP bind and connect by port"),
        (5, "ioctl on device files"),
        (6, "signal and abstract unix socket scoping"),
        (7, "audit logging of denials"),
    ];
    all.iter()
        .filter(|(min, _)| abi >= *min)
        .map(|(_, f)| *f)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_do_not_fail() {
        let k = KernelFeatures::probe();
        assert!(!k.release.is_empty());
        // On a kernel with Landlock the ABI is at least 1; elsewhere 0. Either way no panic.
        assert!(k.landlock_abi <= 64);
    }

    #[test]
    fn features_grow_with_the_abi() {
        assert!(abi_features(0).is_empty());
        assert_eq!(abi_features(1).len(), 1);
        assert!(abi_features(7).contains(&"audit logging of denials"));
    }
}
