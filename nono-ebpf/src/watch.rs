//! Name watches: deny rules on objects that do not exist yet, bound the moment they appear.
//!
//! A deny binds by (device, inode) (see `fs`), so a rule on `~/.aws/credentials` has nothing to
//! bind while the file does not exist. The loader then watches the name instead: an entry of
//! [`NONO_FS_WATCH`] keyed by (sandbox, device, inode of the nearest existing directory, next
//! missing name). The loader also watches the last name of every rule whose object does exist,
//! so an object replaced under that name (git's credential store and editors save by rename)
//! is bound too.
//!
//! When an entry of a watched name appears in a watched directory, whoever makes it (a task of
//! any sandbox or none), the programs here bind it before the new name can be used:
//! - `d_instantiate` runs when a dentry gets its inode: for every create (`open(O_CREAT)`,
//!   `mknod`, `mkdir`, `symlink`) before the new entry is visible to lookups, and when a lookup
//!   brings an existing entry into the dentry cache. The new inode goes into `NONO_FS_DENY` at
//!   once, so the first open of it already finds it.
//! - `inode_rename` and `inode_link` run before an existing object gets the watched name
//!   (`RENAME_EXCHANGE` passes both ways); its inode is bound before the rename or link happens.
//!   Should the operation then fail, the object stays denied to the sandbox (fail closed).
//!
//! Deeper missing paths (`~/.config/gcloud` with no `~/.config`) chain: the watch on the first
//! missing name (`.config`) points at the templates (`NONO_FS_WATCH_NEXT`) of the names below
//! it (`gcloud`, `gh`: siblings, at most [`MAX_WATCH_SIBLINGS`]); when a directory of that name
//! is created, the programs watch each of them in it, and so on down to the rules' objects. Nothing above the object is denied, so the agent can still create
//! `~/.config` and use it. An existing directory renamed or linked into a missing directory's
//! place may already hold the protected path, which no program can look up by name: that whole
//! directory is denied to the sandbox instead (fail closed).
//!
//! Inside the sandbox, every operation on a watched name is denied outright (`fs` calls
//! [`own_watch`]): creating, renaming or linking anything to it, renaming it away, unlinking or
//! removing it. So the agent can't plant the object, nor make the programs bind or watch over
//! and over (each watched name is instantiated by the agent at most once per directory, which
//! bounds what it can add to the shared maps). The one exception is `mkdir` of a missing
//! directory above a rule's object: the agent may create `~/.config`, and the chain follows.
//!
//! Cost: tasks outside every sandbox leave on `NONO_ACTIVE == 0`, as in every program. With a
//! sandbox live, `d_instantiate`, `inode_rename` and `inode_link` (creates, renames, links and
//! dentry-cache misses, never opens of cached files) scan the [`MAX_WATCHERS`] watcher slots;
//! with a watcher present they read the name once and make one lookup per watching sandbox.
//!
//! If binding fails (a full map), the sandbox's marker for the device is poisoned
//! ([`access::POISONED`]) and the rule generation bumped, so no cached "clean" directory lets
//! a check skip the marker: every access of that sandbox on that filesystem is denied from then
//! on, and the failure is reported.

use aya_ebpf::{
    helpers::gen::bpf_probe_read_kernel_str,
    macros::{lsm, map},
    maps::{Array, HashMap},
    programs::LsmContext,
};
use nono_common::{
    access, FsDeny, Hook, InodeKey, NameKey, NameTemplate, NameWatch, SandboxInfo,
    TemplateKey, MAX_WATCHERS, MAX_WATCH_SIBLINGS, NO_VERDICT_RULE, SANDBOX_HAS_WATCHES,
    WATCH_NAME_LEN,
};

use crate::{
    events::{emit, Decision},
    fs::read_at,
    kernel_offset, NONO_ACTIVE, NONO_FS_DENY,
};

/// (sandbox, device, directory inode, name) -> what to do when that entry appears.
#[map]
static NONO_FS_WATCH: HashMap<NameKey, NameWatch> = HashMap::pinned(16384, 0);

/// (sandbox, index) -> a missing component further down a watched path.
#[map]
static NONO_FS_WATCH_NEXT: HashMap<TemplateKey, NameTemplate> = HashMap::pinned(4096, 0);

/// Sandbox ids that hold watches (0: free slot). Only the loader writes it, under its lock.
#[map]
static NONO_FS_WATCHERS: Array<u32> = Array::pinned(MAX_WATCHERS, 0);

/// Is any sandbox watching names? The fast path of the binding hooks.
#[inline(always)]
fn watching() -> bool {
    match NONO_ACTIVE.get(0) {
        Some(active) if *active != 0 => {}
        _ => return false,
    }
    for i in 0..MAX_WATCHERS {
        if let Some(id) = NONO_FS_WATCHERS.get(i) {
            if *id != 0 {
                return true;
            }
        }
    }
    false
}

/// `dentry`'s name into `name` (zeroed by the caller); false when it can't be watched: empty,
/// [`WATCH_NAME_LEN`] bytes or longer (no watch holds such a name), or unreadable.
#[inline(always)]
unsafe fn dentry_name(
    dentry: *const u8,
    name: &mut [u8; WATCH_NAME_LEN],
) -> bool {
    let Ok(len) = read_at::<u32>(dentry, kernel_offset!(dentry_name_len)) else {
        return false;
    };
    if len == 0 || len as usize >= WATCH_NAME_LEN {
        return false;
    }
    let Ok(ptr) = read_at::<*const u8>(dentry, kernel_offset!(dentry_name)) else {
        return false;
    };
    // Copies up to and including the NUL, never past the buffer.
    let copied = bpf_probe_read_kernel_str(
        name.as_mut_ptr() as *mut core::ffi::c_void,
        WATCH_NAME_LEN as u32,
        ptr as *const core::ffi::c_void,
    );
    copied == i64::from(len) + 1
}

/// (device, inode) of an inode.
#[inline(always)]
unsafe fn inode_id(inode: *const u8) -> Result<(u32, u64), i64> {
    let sb: *const u8 = read_at(inode, kernel_offset!(inode_sb))?;
    Ok((read_at(sb, kernel_offset!(sb_dev))?, read_at(inode, kernel_offset!(inode_ino))?))
}

/// The key a new entry `dentry` gets: its parent directory and its name. `None` when the name
/// can't be watched.
#[inline(always)]
unsafe fn entry_key(
    dev: u32,
    parent_ino: u64,
    dentry: *const u8,
) -> Option<NameKey> {
    let mut key = NameKey {
        sandbox_id: 0,
        dev,
        parent_ino,
        name: [0; WATCH_NAME_LEN],
    };
    if dentry_name(dentry, &mut key.name) {
        Some(key)
    } else {
        None
    }
}

/// Binding failed: deny the sandbox everything on this device from now on, and say so.
#[inline(always)]
fn poison(sandbox_id: u32, dev: u32, hook: Hook) {
    let marker = InodeKey {
        sandbox_id,
        dev,
        ino: 0,
    };
    if let Some(m) = NONO_FS_DENY.get_ptr_mut(&marker) {
        // SAFETY: a map value of this sandbox; a racing reader sees the old or the new word.
        unsafe {
            (*m).access |= access::POISONED;
            (*m).rule_id = NO_VERDICT_RULE;
        }
    }
    // A cache hit skips the marker (`fs::check_dentry`): void every entry made before.
    crate::cache::rules_changed();
    let mut decision = Decision::file(sandbox_id, hook as u16);
    decision.denied = true;
    decision.rule_id = NO_VERDICT_RULE;
    decision.dev = dev;
    emit(&decision);
}

/// Deny `ino` to the sandbox with the watch's rule.
#[inline(always)]
fn bind_inode(sandbox_id: u32, dev: u32, ino: u64, watch: &NameWatch, hook: Hook) {
    let key = InodeKey {
        sandbox_id,
        dev,
        ino,
    };
    // Another rule may already deny this object: deny the union, report the first rule.
    let value = match unsafe { NONO_FS_DENY.get(&key) } {
        Some(existing) => FsDeny {
            rule_id: existing.rule_id,
            access: existing.access | watch.access,
        },
        None => FsDeny {
            rule_id: watch.rule_id,
            access: watch.access,
        },
    };
    if NONO_FS_DENY.insert(&key, &value, 0).is_err() {
        poison(sandbox_id, dev, hook);
        return;
    }
    // A directory cached as clean may lie below the object just bound.
    crate::cache::rules_changed();
}

/// How the object came to have the watched name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Just created (or looked up into the dentry cache): a new directory is empty.
    Instantiated,
    /// An existing object renamed or linked there: a directory may hold anything.
    Moved,
}

/// The object `inode` appears under `key`'s name, which sandbox `key.sandbox_id` watches.
#[inline(always)]
unsafe fn arrive(
    key: &NameKey,
    watch: NameWatch,
    inode: *const u8,
    how: Arrival,
    hook: Hook,
) {
    let sandbox_id = key.sandbox_id;
    let dev = key.dev;
    let Ok(ino) = read_at::<u64>(inode, kernel_offset!(inode_ino)) else {
        poison(sandbox_id, dev, hook);
        return;
    };
    if watch.child == 0 || how == Arrival::Moved {
        // The rule's object, or a whole directory moved into a missing directory's place.
        bind_inode(sandbox_id, dev, ino, &watch, hook);
        return;
    }
    // A missing directory was created: watch the components below it in it.
    let mut index = watch.child;
    for _ in 0..MAX_WATCH_SIBLINGS {
        let Some(template) = NONO_FS_WATCH_NEXT.get(&TemplateKey { sandbox_id, index }) else {
            // No template (torn down with its sandbox): deny the directory rather than guess.
            bind_inode(sandbox_id, dev, ino, &watch, hook);
            return;
        };
        let template: NameTemplate = *template;
        let next_key = NameKey {
            sandbox_id,
            dev,
            parent_ino: ino,
            name: template.name,
        };
        let next = NameWatch {
            rule_id: template.rule_id,
            access: template.access,
            child: template.child,
            _pad: 0,
        };
        if NONO_FS_WATCH.insert(&next_key, &next, 0).is_err() {
            poison(sandbox_id, dev, hook);
        }
        if template.sibling == 0 {
            return;
        }
        index = template.sibling;
    }
}

/// `inode` gets the name of `dentry` in the directory (`dev`, `parent_ino`): bind it for every
/// sandbox that watches that name.
#[inline(always)]
unsafe fn match_watches(
    dev: u32,
    parent_ino: u64,
    dentry: *const u8,
    inode: *const u8,
    how: Arrival,
    hook: Hook,
) {
    let Some(mut key) = entry_key(dev, parent_ino, dentry) else {
        return;
    };
    for i in 0..MAX_WATCHERS {
        let Some(id) = NONO_FS_WATCHERS.get(i) else {
            continue;
        };
        if *id == 0 {
            continue;
        }
        key.sandbox_id = *id;
        if let Some(watch) = NONO_FS_WATCH.get(&key) {
            let watch: NameWatch = *watch;
            arrive(&key, watch, inode, how, hook);
        }
    }
}

/// A dentry gets its inode: a new object, or an existing one entering the dentry cache. Void
/// hook: it never refuses anything, for anyone.
#[lsm(hook = "d_instantiate")]
pub fn d_instantiate(ctx: LsmContext) -> i32 {
    if !watching() {
        return 0;
    }
    let dentry: *const u8 = unsafe { ctx.arg(0) };
    let inode: *const u8 = unsafe { ctx.arg(1) };
    if dentry.is_null() || inode.is_null() {
        return 0;
    }
    unsafe {
        let Ok(parent) = read_at::<*const u8>(dentry, kernel_offset!(dentry_parent)) else {
            return 0;
        };
        if parent.is_null() || parent == dentry {
            return 0; // a filesystem root
        }
        let Ok(dir) = read_at::<*const u8>(parent, kernel_offset!(dentry_inode)) else {
            return 0;
        };
        if dir.is_null() {
            return 0;
        }
        let Ok((dev, parent_ino)) = inode_id(dir) else {
            return 0;
        };
        match_watches(
            dev,
            parent_ino,
            dentry,
            inode,
            Arrival::Instantiated,
            Hook::DInstantiate,
        );
    }
    0
}

/// An existing object is about to be renamed to `new_dentry` in `new_dir`. Never refuses: the
/// sandbox's own renames are judged by `path_rename`.
#[lsm(hook = "inode_rename")]
pub fn inode_rename(ctx: LsmContext) -> i32 {
    if !watching() {
        return 0;
    }
    unsafe {
        let old_dentry: *const u8 = ctx.arg(1);
        let new_dir: *const u8 = ctx.arg(2);
        let new_dentry: *const u8 = ctx.arg(3);
        moved(old_dentry, new_dir, new_dentry, Hook::InodeRename);
    }
    0
}

/// An existing file is about to be linked as `new_dentry` in `dir`. Never refuses: the
/// sandbox's own links are judged by `path_link`.
#[lsm(hook = "inode_link")]
pub fn inode_link(ctx: LsmContext) -> i32 {
    if !watching() {
        return 0;
    }
    unsafe {
        let old_dentry: *const u8 = ctx.arg(0);
        let dir: *const u8 = ctx.arg(1);
        let new_dentry: *const u8 = ctx.arg(2);
        moved(old_dentry, dir, new_dentry, Hook::InodeLink);
    }
    0
}

#[inline(always)]
unsafe fn moved(
    old_dentry: *const u8,
    new_dir: *const u8,
    new_dentry: *const u8,
    hook: Hook,
) {
    if old_dentry.is_null() || new_dir.is_null() || new_dentry.is_null() {
        return;
    }
    let Ok(inode) = read_at::<*const u8>(old_dentry, kernel_offset!(dentry_inode)) else {
        return;
    };
    if inode.is_null() {
        return;
    }
    let Ok((dev, parent_ino)) = inode_id(new_dir) else {
        return;
    };
    match_watches(dev, parent_ino, new_dentry, inode, Arrival::Moved, hook);
}

/// The sandbox's own watch on the name `dentry` (a name about to be created, or a rename or
/// link target) has in its parent directory, if any. Used by `fs` to refuse creating,
/// renaming or linking to a watched name from inside.
#[inline(always)]
pub(crate) unsafe fn own_watch(
    sandbox: &SandboxInfo,
    dentry: *const u8,
) -> Result<Option<(NameKey, NameWatch)>, i64> {
    if sandbox.flags & SANDBOX_HAS_WATCHES == 0 {
        return Ok(None);
    }
    let parent: *const u8 = read_at(dentry, kernel_offset!(dentry_parent))?;
    if parent.is_null() {
        return Err(0);
    }
    let dir: *const u8 = read_at(parent, kernel_offset!(dentry_inode))?;
    if dir.is_null() {
        return Err(0);
    }
    let (dev, parent_ino) = inode_id(dir)?;
    let Some(mut key) = entry_key(dev, parent_ino, dentry) else {
        return Ok(None);
    };
    key.sandbox_id = sandbox.sandbox_id;
    Ok(NONO_FS_WATCH.get(&key).map(|w| (key, *w)))
}
