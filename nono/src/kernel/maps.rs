//! Handles on the pinned maps, opened from bpffs so that a sandbox owns its handles and needs
//! no borrow of the loader.
//!
//! Privileges: opening pinned maps needs CAP_BPF (root here).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap, LpmTrie, Map, MapData, PerCpuArray, PerCpuValues};
use nono_common::{
    cgroup_filter_bit, event_slot, names, FsCache, FsDeny, InodeKey, NameKey, NameTemplate,
    NameWatch, NetAllow, NetKeyV4, NetKeyV6, RuleDevices, SandboxInfo, TemplateKey,
    CGROUP_FILTER_WORDS, EVENT_SLOTS, LISTED_RULE_DEVICES, RULE_DEVICES_UNLISTED,
};

pub struct Maps {
    dir: PathBuf,
    pub sandboxes: HashMap<MapData, u64, SandboxInfo>,
    pub fs_deny: HashMap<MapData, InodeKey, FsDeny>,
    pub net_v4: LpmTrie<MapData, NetKeyV4, NetAllow>,
    pub net_v6: LpmTrie<MapData, NetKeyV6, NetAllow>,
    pub dropped: PerCpuArray<MapData, u64>,
    active: Array<MapData, u32>,
    /// The programs' registered-cgroup filter (see [`nono_common::CGROUP_FILTER_WORDS`]).
    cgroup_filter: Array<MapData, u64>,
    /// Per event slot, the devices its sandbox has markers on (see [`RuleDevices`]).
    rule_devices: Array<MapData, RuleDevices>,
    /// Name watches, their templates and the watcher slots (see `super::watch`).
    pub fs_watch: HashMap<MapData, NameKey, NameWatch>,
    pub fs_watch_next: HashMap<MapData, TemplateKey, NameTemplate>,
    pub watchers: Array<MapData, u32>,
    /// The file hooks' directory verdict cache (LRU; see `nono-ebpf/src/cache.rs`).
    pub fs_cache: HashMap<MapData, InodeKey, FsCache>,
}

fn pinned(dir: &Path, name: &str) -> Result<MapData> {
    let path = dir.join(name);
    MapData::from_pin(&path).with_context(|| format!("opening pinned map {}", path.display()))
}

impl Maps {
    pub fn open(dir: &Path) -> Result<Maps> {
        Ok(Maps {
            dir: dir.to_path_buf(),
            sandboxes: HashMap::try_from(Map::HashMap(pinned(dir, names::SANDBOXES)?))?,
            fs_deny: HashMap::try_from(Map::HashMap(pinned(dir, names::FS_DENY)?))?,
            net_v4: LpmTrie::try_from(Map::LpmTrie(pinned(dir, names::NET_RULES_V4)?))?,
            net_v6: LpmTrie::try_from(Map::LpmTrie(pinned(dir, names::NET_RULES_V6)?))?,
            dropped: PerCpuArray::try_from(Map::PerCpuArray(pinned(dir, names::DROPPED)?))?,
            active: Array::try_from(Map::Array(pinned(dir, names::ACTIVE)?))?,
            cgroup_filter: Array::try_from(Map::Array(pinned(dir, names::CGROUP_FILTER)?))?,
            rule_devices: Array::try_from(Map::Array(pinned(dir, names::RULE_DEVICES)?))?,
            fs_watch: HashMap::try_from(Map::HashMap(pinned(dir, names::FS_WATCH)?))?,
            fs_watch_next: HashMap::try_from(Map::HashMap(pinned(dir, names::FS_WATCH_NEXT)?))?,
            watchers: Array::try_from(Map::Array(pinned(dir, names::FS_WATCHERS)?))?,
            fs_cache: HashMap::try_from(Map::LruHashMap(pinned(dir, names::FS_CACHE)?))?,
        })
    }

    /// A second set of handles on the same maps (for a sandbox to own).
    pub fn reopen(&self) -> Result<Maps> {
        Maps::open(&self.dir)
    }

    /// A reader of the event ring buffer of one event slot.
    pub(crate) fn event_ring(&self, slot: u32) -> Result<super::events::RingReader> {
        let name = names::EVENT_RINGS
            .get(slot as usize)
            .with_context(|| format!("event slot {slot} is out of range"))?;
        super::events::RingReader::new(pinned(&self.dir, name)?)
    }

    /// Set the programs' count of registered cgroups. Callers hold the load lock.
    pub(crate) fn set_active(&mut self, count: u32) -> Result<()> {
        self.active
            .set(0, count, 0)
            .context("writing the active-sandbox count")
    }

    /// Recount the registered cgroups and publish the count and the cgroup filter. Callers hold
    /// the load lock.
    pub(crate) fn publish_active(&mut self) -> Result<()> {
        let registered = self.registered_cgroups()?;
        self.publish_cgroup_filter(registered.iter().copied())?;
        self.set_active(registered.len() as u32)
    }

    /// Recount the registered cgroups and publish the count: after registering a cgroup whose
    /// filter bit [`Maps::admit_to_cgroup_filter`] set first, and after a sweep that removed
    /// nothing. The filter already holds every registered cgroup's bit then (a bit left by a run
    /// that died between admitting and registering costs that cgroup's tasks a map lookup, never
    /// enforcement), so it is rewritten only when the published count was off: a cleanup that
    /// could not take the lock removed its sandbox without rewriting its word. Callers hold the
    /// load lock.
    pub(crate) fn publish_count(&mut self) -> Result<()> {
        let registered = self.registered_cgroups()?;
        let published = self
            .active
            .get(&0, 0)
            .context("reading the active-sandbox count")?;
        if published != registered.len() as u32 {
            self.publish_cgroup_filter(registered.iter().copied())?;
        }
        self.set_active(registered.len() as u32)
    }

    /// After `removed` is unregistered: rewrite its filter word alone, from the cgroups still
    /// registered, then publish the count. No other word held its bit, and every registered
    /// cgroup of this word keeps its bit (a program reads the old word or the new one, both
    /// with it). One map update instead of the whole filter's. Callers hold the load lock.
    pub(crate) fn publish_removal(&mut self, removed: u64) -> Result<()> {
        let registered = self.registered_cgroups()?;
        let (word, _) = cgroup_filter_bit(removed);
        self.cgroup_filter
            .set(word, cgroup_filter_word(&registered, word), 0)
            .context("writing the cgroup filter")?;
        self.set_active(registered.len() as u32)
    }

    /// Set the filter bit of `cgroup_id` before it is registered. Only its word changes: the
    /// filter already holds every registered cgroup's bit ([`Maps::publish_active`] rewrites
    /// it after every change, under the same lock). Callers hold the load lock.
    pub(crate) fn admit_to_cgroup_filter(&mut self, cgroup_id: u64) -> Result<()> {
        let (word, bit) = cgroup_filter_bit(cgroup_id);
        let current = self
            .cgroup_filter
            .get(&word, 0)
            .context("reading the cgroup filter")?;
        self.cgroup_filter
            .set(word, current | bit, 0)
            .context("writing the cgroup filter")
    }

    /// Every cgroup id in the sandbox map. A key that can't be read fails the whole call: a
    /// filter written without it could turn its cgroup's tasks away as outside.
    fn registered_cgroups(&self) -> Result<Vec<u64>> {
        self.sandboxes
            .keys()
            .collect::<Result<Vec<u64>, _>>()
            .context("reading the registered cgroups")
    }

    /// Rewrite the filter to hold exactly the bits of `cgroup_ids`. Word by word, so a program
    /// may see old and new words mixed: still sound, because only the lock holder registers
    /// cgroups, so every cgroup registered during the rewrite has its bit in both.
    fn publish_cgroup_filter(&mut self, cgroup_ids: impl Iterator<Item = u64>) -> Result<()> {
        let words = cgroup_filter_words(cgroup_ids);
        for (index, word) in words.into_iter().enumerate() {
            self.cgroup_filter
                .set(index as u32, word, 0)
                .context("writing the cgroup filter")?;
        }
        Ok(())
    }

    /// Tell the file hooks which devices `sandbox_id` has markers on. Called before the
    /// sandbox's cgroup is registered, so no program reads the entry half-written for it.
    pub(crate) fn set_rule_devices(
        &mut self,
        sandbox_id: u32,
        devices: &HashSet<u32>,
    ) -> Result<()> {
        self.rule_devices
            .set(event_slot(sandbox_id), rule_devices(sandbox_id, devices), 0)
            .context("writing the sandbox's rule devices")
    }

    /// Turn the directory verdict cache on or off (the overhead benchmark compares both). On
    /// only where the loader found `rename_lock`.
    pub fn set_cache(&self, on: bool) -> Result<bool> {
        let mut config: Array<MapData, nono_common::LayerConfig> =
            Array::try_from(Map::Array(pinned(&self.dir, names::CONFIG)?))?;
        let mut layer_config = config.get(&0, 0).context("reading the config map")?;
        let on = on && layer_config.rename_seq != 0;
        layer_config.cache_enabled = u32::from(on);
        config
            .set(0, layer_config, 0)
            .context("writing the config map")?;
        Ok(on)
    }

    /// Events the programs could not write to the ring of `slot` since the slot was last
    /// claimed, all CPUs.
    pub fn dropped_events(&self, slot: u32) -> Result<u64> {
        let per_cpu = self
            .dropped
            .get(&slot, 0)
            .with_context(|| format!("reading the dropped-events counter of event slot {slot}"))?;
        Ok(per_cpu.iter().sum())
    }

    /// Dropped events of every slot: what still counts from the sandboxes that last held them.
    pub fn dropped_events_all(&self) -> Result<u64> {
        (0..EVENT_SLOTS).map(|slot| self.dropped_events(slot)).sum()
    }

    /// Zero the drop counter of `slot`, on every CPU: a new sandbox's count starts at 0.
    /// Callers hold the load lock and have not registered the sandbox's cgroup yet.
    pub(crate) fn reset_dropped(&mut self, slot: u32) -> Result<()> {
        let cpus = aya::util::nr_cpus()
            .map_err(|(_, e)| anyhow::anyhow!("counting possible CPUs: {e}"))?;
        let zeros = PerCpuValues::try_from(vec![0u64; cpus])
            .context("building per-CPU zeros for the drop counter")?;
        self.dropped
            .set(slot, zeros, 0)
            .with_context(|| format!("resetting the drop counter of event slot {slot}"))
    }
}

/// The rule-device entry of a sandbox with markers on `devices`: listed when they fit, else
/// marked unlisted (the programs look markers up).
fn rule_devices(sandbox_id: u32, devices: &HashSet<u32>) -> RuleDevices {
    let mut entry = RuleDevices {
        sandbox_id,
        count: RULE_DEVICES_UNLISTED,
        devs: [0; LISTED_RULE_DEVICES],
    };
    if devices.len() <= LISTED_RULE_DEVICES {
        for (slot, dev) in entry.devs.iter_mut().zip(devices) {
            *slot = *dev;
        }
        entry.count = devices.len() as u32;
    }
    entry
}

/// Filter word `word` with the bit of each of `cgroup_ids` that falls in it set.
fn cgroup_filter_word(cgroup_ids: &[u64], word: u32) -> u64 {
    cgroup_ids
        .iter()
        .map(|&id| cgroup_filter_bit(id))
        .filter(|&(w, _)| w == word)
        .fold(0, |acc, (_, bit)| acc | bit)
}

/// The filter words with the bit of each of `cgroup_ids` set.
fn cgroup_filter_words(
    cgroup_ids: impl Iterator<Item = u64>,
) -> [u64; CGROUP_FILTER_WORDS as usize] {
    let mut words = [0u64; CGROUP_FILTER_WORDS as usize];
    for id in cgroup_ids {
        let (word, bit) = cgroup_filter_bit(id);
        words[word as usize] |= bit;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_holds_the_bit_of_every_registered_cgroup() {
        let registered = [2u64, 65, 4096 + 2, 1 << 40, u64::MAX];
        let words = cgroup_filter_words(registered.iter().copied());
        for id in registered {
            let (word, bit) = cgroup_filter_bit(id);
            assert_ne!(words[word as usize] & bit, 0, "cgroup {id}");
        }
        // 2 and 4096 + 2 share a bit; 3 and 66 are clear: the programs return for them at once.
        assert_eq!(words.iter().map(|w| w.count_ones()).sum::<u32>(), 4);
        for outside in [3u64, 66] {
            let (word, bit) = cgroup_filter_bit(outside);
            assert_eq!(words[word as usize] & bit, 0, "cgroup {outside}");
        }
    }

    #[test]
    fn one_word_is_rewritten_as_the_whole_filter_would_write_it() {
        // 2 and 4096 + 2 share word 0 and a bit; 65 is in word 1.
        let before = [2u64, 65, 4096 + 2, 1 << 40];
        let after = [65u64, 4096 + 2, 1 << 40];
        let whole = cgroup_filter_words(after.iter().copied());
        for removed in [2u64, 65, 1 << 40] {
            let (word, _) = cgroup_filter_bit(removed);
            assert_eq!(cgroup_filter_word(&after, word), whole[word as usize]);
        }
        // Removing 2 leaves its shared bit set for 4096 + 2, which is still registered.
        let (word, bit) = cgroup_filter_bit(2);
        assert_ne!(cgroup_filter_word(&after, word) & bit, 0);
        assert_eq!(cgroup_filter_word(&[], word), 0);
        assert_eq!(
            cgroup_filter_words(before.iter().copied())[1],
            cgroup_filter_word(&before, 1)
        );
    }

    #[test]
    fn rule_devices_are_listed_only_when_they_all_fit() {
        let few: HashSet<u32> = [7, 9].into();
        let entry = rule_devices(3, &few);
        assert_eq!((entry.sandbox_id, entry.count), (3, 2));
        let listed: HashSet<u32> = entry.devs[..2].iter().copied().collect();
        assert_eq!(listed, few);
        let many: HashSet<u32> = (1..=LISTED_RULE_DEVICES as u32 + 1).collect();
        assert_eq!(rule_devices(3, &many).count, RULE_DEVICES_UNLISTED);
    }
}
