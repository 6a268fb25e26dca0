//! The directory verdict cache of the file hooks: "no rule of this sandbox on this directory or
//! above it", so a check below a directory seen clean stops there instead of walking to the
//! root (one hash lookup per ancestor).
//!
//! Only that negative answer is cached, only for directories (a file may have other names,
//! hard links, that lead through other directories; a directory has one parent), and an entry
//! counts only while everything it was computed from still holds:
//! - the rule generation `NONO_FS_GEN`: the programs bump it after every rule they add (the
//!   name watches) and after they poison a device marker, which a cache hit never looks at
//!   (`fs::check_dentry` looks the marker up only past the cache). The loader adds rules only
//!   before a sandbox is registered, and deletes the cache entries of a sandbox id when it
//!   creates and when it removes that sandbox.
//! - the `rename_lock` sequence: the kernel bumps it around every change of any dentry's parent
//!   (rename, `RENAME_EXCHANGE`, a directory alias spliced), by any process. A walk runs with
//!   the sequence even and unchanged from its start to the store, else nothing is stored; a
//!   lookup needs the current sequence to equal the entry's. So a directory moved under a denied
//!   tree never keeps a stale "clean": every rename anywhere empties the cache in effect.
//! - the directory's `i_generation`: an inode number freed by rmdir and reused for a new
//!   directory (under a denied tree, say) has another generation. Filesystems that leave it 0
//!   are not cached.
//!
//! Off (nothing cached, nothing looked up) when the loader found no `rename_lock` in
//! `/proc/kallsyms` (a kernel without `CONFIG_KALLSYMS_ALL`) or `nono kernel-cache off` cleared
//! it (both in the config map, `LayerConfig`). Ordering: the sequence is read before and after
//! the walk through helper calls (`bpf_probe_read_kernel`: aya can't name a kernel variable for
//! a direct load), which the compiler can't move loads across; the walk's own loads are
//! volatile; and x86-64 does not reorder loads with loads.

use aya_ebpf::{
    helpers::bpf_probe_read_kernel,
    macros::map,
    maps::{Array, LruHashMap},
};
use nono_common::{FsCache, InodeKey};

use crate::NONO_CONFIG;

#[map]
static NONO_FS_CACHE: LruHashMap<InodeKey, FsCache> = LruHashMap::pinned(16384, 0);

/// Entry 0: the rule generation.
#[map]
static NONO_FS_GEN: Array<u64> = Array::pinned(1, 0);

/// The state a walk starts from; `usable` is false when nothing may be cached or looked up.
#[derive(Clone, Copy)]
pub(crate) struct Snapshot {
    pub usable: bool,
    seq: u32,
    gen: u64,
    /// Where the sequence count is (a kernel address), to read it again before a store.
    seq_address: u64,
}

#[inline(always)]
fn rename_seq(address: u64) -> Option<u32> {
    unsafe { bpf_probe_read_kernel(address as *const u32) }.ok()
}

#[inline(always)]
pub(crate) fn snapshot() -> Snapshot {
    let off = Snapshot {
        usable: false,
        seq: 0,
        gen: 0,
        seq_address: 0,
    };
    let seq_address = match NONO_CONFIG.get(0) {
        Some(config) if config.cache_enabled != 0 && config.rename_seq != 0 => config.rename_seq,
        _ => return off,
    };
    let gen = match NONO_FS_GEN.get(0) {
        Some(g) => *g,
        None => return off,
    };
    match rename_seq(seq_address) {
        // Odd: a rename is in progress; the walk may see a half-moved tree.
        Some(seq) if seq & 1 == 0 => Snapshot {
            usable: true,
            seq,
            gen,
            seq_address,
        },
        _ => off,
    }
}

/// Was the directory `key` (with generation `i_generation`) clean, with nothing changed since?
#[inline(always)]
pub(crate) fn clean(key: &InodeKey, snap: &Snapshot, i_generation: u32) -> bool {
    if !snap.usable || i_generation == 0 {
        return false;
    }
    match unsafe { NONO_FS_CACHE.get(key) } {
        Some(e) => {
            e.rule_gen == snap.gen && e.rename_seq == snap.seq && e.i_generation == i_generation
        }
        None => false,
    }
}

/// Remember the directory `key` as clean, if no rename happened during the walk.
#[inline(always)]
pub(crate) fn store(key: &InodeKey, snap: &Snapshot, i_generation: u32) {
    if !snap.usable || i_generation == 0 {
        return;
    }
    if rename_seq(snap.seq_address) != Some(snap.seq) {
        return;
    }
    let entry = FsCache {
        rule_gen: snap.gen,
        rename_seq: snap.seq,
        i_generation,
    };
    let _ = NONO_FS_CACHE.insert(key, &entry, 0);
}

/// A rule was added: every cached "clean" is void. Called after the rule is in the map.
#[inline(always)]
pub(crate) fn rules_changed() {
    if let Some(gen) = NONO_FS_GEN.get_ptr_mut(0) {
        // SAFETY: a u64 in an array map value, aligned. An atomic add (BPF_ATOMIC), as other
        // CPUs may bump it at once: a lost increment could leave an entry made between the two
        // bumps valid. (`AtomicU64::fetch_add` is not offered for the BPF target.)
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::SeqCst }>(
                gen, 1,
            );
        }
    }
}
