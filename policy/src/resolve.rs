//! Resolution: a profile document and everything it `extends` and `use`s, validated and merged
//! into one canonical [`Policy`].
//!
//! Merge rules (README "Profiles"):
//! - Parents are merged left to right, depth first, before the profile itself; a profile reached
//!   twice through different parents (a diamond) is merged once. Cycles are errors, and so is a
//!   chain deeper than [`MAX_EXTENDS_DEPTH`].
//! - Rules are unions: a child can add rules, never remove a parent's. Denies win over grants
//!   at enforcement time, so a child cannot widen what a parent denies.
//! - Settings (network `allow_all`, IPC scoping, env mode, audit level, rollback switches,
//!   overrides) take the last value set, parents first, the profile itself last.
//! - Metadata (name, version, description) is the profile's own.
//!
//! All validation errors of all files are collected; the result is all or nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::diag::{close_matches, Diagnostic, Loc, PolicyError, SourceText};
use crate::doc::{DomainEntry, EnvModeDoc, ExecDoc, FsDoc, GroupDoc, Located, NetDoc, ProfileDoc};
use crate::ir::*;
use crate::load;
use crate::net::{parse_cidr, DomainPattern, PortSet, PortSpec, Protocol};
use crate::path::PolicyPath;
use crate::source::{ProfileSource, SourceFile};

/// How long an `extends` chain may be. Deep enough for any real hierarchy, shallow enough that
/// a generated chain cannot make resolution expensive.
pub const MAX_EXTENDS_DEPTH: usize = 16;

/// The most rules (values in rule lists, over every file) one compile accepts.
pub const MAX_RULES: usize = 250_000;

/// Compile a profile file (or built-in) and everything it extends.
pub fn compile(root: &SourceFile, source: &dyn ProfileSource) -> Result<Policy, PolicyError> {
    let doc = load::parse(root)?;
    let mut r = Resolver::new(source);
    r.texts
        .insert(root.name.clone(), Cow::Borrowed(root.text.as_str()));
    r.finish(doc, &root.name, default_name(&root.name))
}

/// Compile a document built in memory (for example the command line's `--allow` flags layered
/// on a profile); `source_name` is what provenance and errors call it.
pub fn compile_doc(
    doc: ProfileDoc,
    source_name: &str,
    source: &dyn ProfileSource,
) -> Result<Policy, PolicyError> {
    Resolver::new(source).finish(doc, source_name, default_name(source_name))
}

/// A profile's name when it does not state one: the file name without directory or extension.
fn default_name(source_name: &str) -> String {
    let base = source_name.strip_prefix("builtin:").unwrap_or(source_name);
    let file = base.rsplit('/').next().unwrap_or(base);
    match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => file.to_string(),
    }
}

/// One parsed document in merge order, with the name its errors and provenance use.
struct Layer {
    /// Shared by the origin of every rule the layer adds.
    source: Arc<str>,
    doc: ProfileDoc,
}

struct Resolver<'a> {
    source: &'a dyn ProfileSource,
    /// Source texts by name, for diagnostics' snippets: the root's borrowed, the files read
    /// on the way owned.
    texts: HashMap<String, Cow<'a, str>>,
    layers: Vec<Layer>,
    /// Profiles already merged (diamonds are merged once).
    merged: BTreeSet<String>,
    errors: Vec<Diagnostic>,
    rule_count: usize,
}

impl<'a> Resolver<'a> {
    fn new(source: &'a dyn ProfileSource) -> Self {
        Resolver {
            source,
            texts: HashMap::new(),
            layers: Vec::new(),
            merged: BTreeSet::new(),
            errors: Vec::new(),
            rule_count: 0,
        }
    }

    fn diag(&self, source: &str, loc: Option<Loc>, message: impl Into<String>) -> Diagnostic {
        match self.texts.get(source) {
            Some(text) => SourceText::new(source, text).error(loc, message),
            None => Diagnostic::new(source, loc, message),
        }
    }

    fn finish(
        mut self,
        doc: ProfileDoc,
        source_name: &str,
        fallback_name: String,
    ) -> Result<Policy, PolicyError> {
        let name = doc.name.clone().unwrap_or(fallback_name);
        let meta_doc = (doc.version.clone(), doc.description.clone());
        let mut chain = vec![name.clone()];
        self.push_with_parents(doc, source_name, &mut chain);
        if !self.errors.is_empty() {
            return Err(PolicyError {
                diagnostics: self.errors,
            });
        }
        let ordered_parents: Vec<String> = self
            .layers
            .iter()
            .filter_map(|l| l.doc.name.clone().or_else(|| Some(default_name(&l.source))))
            .filter(|n| n != &name)
            .collect();
        let layers = std::mem::take(&mut self.layers);
        let mut acc = Accumulator::default();
        for layer in &layers {
            self.merge_layer(layer, &mut acc);
        }
        if self.rule_count > MAX_RULES {
            self.errors.clear();
            return Err(PolicyError::one(
                Diagnostic::new(
                    source_name,
                    None,
                    format!(
                        "too many rules: {} (the limit is {MAX_RULES})",
                        self.rule_count
                    ),
                )
                .with_help("use subtree grants (`/**`) instead of listing files one by one"),
            ));
        }
        let fs = merge_fs(std::mem::take(&mut acc.fs));
        self.check_broad_writes(&acc, &fs);
        if !self.errors.is_empty() {
            return Err(PolicyError {
                diagnostics: self.errors,
            });
        }
        let meta = Meta {
            name,
            version: meta_doc.0,
            description: meta_doc.1,
            extends: ordered_parents,
        };
        Ok(acc.into_policy(meta, fs))
    }

    /// Depth-first: parents (in order) before the document itself.
    fn push_with_parents(&mut self, doc: ProfileDoc, source_name: &str, chain: &mut Vec<String>) {
        for parent in &doc.extends {
            let pname = parent.value.trim();
            if let Some(pos) = chain.iter().position(|n| n == pname) {
                let cycle: Vec<&str> = chain[pos..]
                    .iter()
                    .map(String::as_str)
                    .chain([pname])
                    .collect();
                let d = self.diag(
                    source_name,
                    parent.loc,
                    format!("`extends` cycle: {}", cycle.join(" → ")),
                );
                self.errors.push(d.with_span(pname.chars().count()));
                continue;
            }
            if self.merged.contains(pname) {
                continue;
            }
            if chain.len() >= MAX_EXTENDS_DEPTH {
                let d = self.diag(
                    source_name,
                    parent.loc,
                    format!(
                        "`extends` chain is deeper than {MAX_EXTENDS_DEPTH} profiles: {} → {pname}",
                        chain.join(" → ")
                    ),
                );
                self.errors.push(d);
                continue;
            }
            let Some(file) = self.source.profile(pname) else {
                let names = self.source.profile_names();
                let close = close_matches(pname, names.iter().map(String::as_str), 3);
                let mut d = self
                    .diag(
                        source_name,
                        parent.loc,
                        format!("unknown profile `{pname}`"),
                    )
                    .with_span(pname.chars().count());
                d = if close.is_empty() {
                    d.with_help(format!("available profiles: {}", names.join(", ")))
                } else {
                    d.with_help(format!(
                        "did you mean {}?",
                        close
                            .iter()
                            .map(|c| format!("`{c}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ))
                };
                self.errors.push(d);
                continue;
            };
            self.texts
                .insert(file.name.clone(), Cow::Owned(file.text.clone()));
            match load::parse(&file) {
                Ok(pdoc) => {
                    chain.push(pname.to_string());
                    self.push_with_parents(pdoc, &file.name, chain);
                    chain.pop();
                    self.merged.insert(pname.to_string());
                }
                Err(e) => self.errors.extend(e.diagnostics),
            }
        }
        self.layers.push(Layer {
            source: Arc::from(source_name),
            doc,
        });
    }

    fn merge_layer(&mut self, layer: &Layer, acc: &mut Accumulator) {
        let src = &layer.source;
        let doc = &layer.doc;
        // Groups this layer uses: its own definitions first, then built-in/user groups.
        for used in &doc.use_groups {
            let gname = used.value.trim();
            if let Some(group) = doc.groups.get(gname) {
                self.merge_group(group, src, acc);
                continue;
            }
            let Some(file) = self.source.group(gname) else {
                let mut names = self.source.group_names();
                names.extend(doc.groups.keys().cloned());
                let close = close_matches(gname, names.iter().map(String::as_str), 3);
                let d = self
                    .diag(src, used.loc, format!("unknown group `{gname}`"))
                    .with_span(gname.chars().count());
                let d = match close.first() {
                    Some(c) => d.with_help(format!("did you mean `{c}`?")),
                    None => d.with_help(format!("available groups: {}", names.join(", "))),
                };
                self.errors.push(d);
                continue;
            };
            let parsed = load::parse(&file);
            // Kept for diagnostics' snippets (moved, not copied: the file is done with).
            let SourceFile { name, text, .. } = file;
            self.texts.insert(name.clone(), Cow::Owned(text));
            let file_name: Arc<str> = Arc::from(name);
            match parsed {
                Ok(mut gdoc) => match gdoc.groups.remove(gname) {
                    Some(group) => self.merge_group(&group, &file_name, acc),
                    None => {
                        let d = self.diag(
                            &file_name,
                            None,
                            format!("group file does not define group `{gname}`"),
                        );
                        self.errors.push(d);
                    }
                },
                Err(e) => self.errors.extend(e.diagnostics),
            }
        }
        self.merge_rules(&doc.filesystem, &doc.exec, &doc.network, &doc.env, src, acc);

        if let Some(all) = doc.network.allow_all {
            acc.net_mode = if all {
                NetMode::Unrestricted
            } else {
                NetMode::Blocked
            };
        }
        if let Some(v) = doc.ipc.scope_signals {
            acc.ipc.scope_signals = v;
        }
        if let Some(v) = doc.ipc.scope_abstract_unix {
            acc.ipc.scope_abstract_unix = v;
        }
        for s in &doc.ipc.unix_sockets {
            if let Some(p) = self.path(s, src) {
                acc.unix_sockets
                    .entry(p)
                    .or_default()
                    .push(origin(src, s.loc));
            }
        }
        if let Some(level) = doc.audit.level {
            acc.audit.level = level;
        }
        if let Some(v) = doc.rollback.enabled {
            acc.rollback.enabled = v;
        }
        if let Some(v) = doc.rollback.gitignore {
            acc.rollback.gitignore = v;
        }
        for ex in &doc.rollback.exclude {
            let name = ex.value.trim();
            let problem = if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                Some(format!(
                    "rollback exclude `{name}` must be a file or directory name or a pattern \
                     for one (`*.log`), not a path"
                ))
            } else if name.contains(['*', '?', '[', '{']) {
                // A pattern is matched against one name, as the snapshot walk does.
                globset::GlobBuilder::new(name)
                    .literal_separator(true)
                    .build()
                    .err()
                    .map(|e| {
                        format!(
                            "rollback exclude `{name}` is not a valid pattern: {}",
                            e.kind()
                        )
                    })
            } else {
                None
            };
            match problem {
                Some(msg) => {
                    let d = self.diag(src, ex.loc, msg);
                    self.errors.push(d);
                }
                None => acc.rollback.exclude.push(name.to_string()),
            }
        }
        // After this document's own excludes: a document that both excludes and includes a
        // name ends up including it.
        for inc in &doc.rollback.include {
            let name = inc.value.trim();
            if !acc.rollback.exclude.iter().any(|e| e == name) {
                let d = self.diag(
                    src,
                    inc.loc,
                    format!(
                        "rollback include `{name}`: no exclusion by that name to take back \
                         (excluded so far: {})",
                        acc.rollback.exclude.join(" ")
                    ),
                );
                self.errors.push(d);
            }
            acc.rollback.exclude.retain(|e| e != name);
        }
        if let Some(v) = doc.overrides.allow_broad_write {
            acc.overrides.allow_broad_write = v;
        }
    }

    fn merge_group(&mut self, group: &GroupDoc, src: &Arc<str>, acc: &mut Accumulator) {
        self.merge_rules(
            &group.filesystem,
            &group.exec,
            &group.network,
            &group.env,
            src,
            acc,
        );
    }

    fn path(&mut self, v: &Located<String>, src: &str) -> Option<PolicyPath> {
        self.rule_count += 1;
        match PolicyPath::parse(&v.value) {
            Ok(p) => Some(p),
            Err(e) => {
                let d = self
                    .diag(src, v.loc, e.to_string())
                    .with_span(v.value.chars().count());
                self.errors.push(d);
                None
            }
        }
    }

    fn ports(&mut self, specs: &[PortSpec], src: &str, loc: Option<Loc>) -> Option<PortSet> {
        let mut ranges = Vec::new();
        for s in specs {
            match s.to_range() {
                Ok(r) => ranges.push(r),
                Err(e) => {
                    let d = self.diag(src, loc, e.to_string());
                    self.errors.push(d);
                    return None;
                }
            }
        }
        Some(PortSet::new(ranges))
    }

    fn merge_rules(
        &mut self,
        fs: &FsDoc,
        exec: &ExecDoc,
        net: &NetDoc,
        env: &crate::doc::EnvDoc,
        src: &Arc<str>,
        acc: &mut Accumulator,
    ) {
        let fs_lists: [(&Vec<Located<String>>, Effect, Access); 8] = [
            (&fs.read, Effect::Allow, Access::READ),
            (&fs.write, Effect::Allow, Access::WRITE),
            (&fs.readwrite, Effect::Allow, Access::READ_WRITE),
            (&fs.exec, Effect::Allow, Access::EXEC),
            (&fs.deny, Effect::Deny, Access::ALL),
            (&fs.deny_read, Effect::Deny, Access::READ),
            (&fs.deny_write, Effect::Deny, Access::WRITE),
            (&fs.deny_exec, Effect::Deny, Access::EXEC),
        ];
        acc.fs
            .reserve(fs_lists.iter().map(|(list, _, _)| list.len()).sum());
        for (list, effect, access) in fs_lists {
            for v in list {
                if let Some(path) = self.path(v, src) {
                    acc.fs.push(FsWritten {
                        path,
                        effect,
                        access,
                        origin: origin(src, v.loc),
                    });
                }
            }
        }
        for v in &exec.deny {
            if let Some(p) = self.path(v, src) {
                acc.exec_deny.entry(p).or_default().push(origin(src, v.loc));
            }
        }
        if let Some(only) = &exec.allow_only {
            let mut parsed = Vec::new();
            for v in only {
                if let Some(p) = self.path(v, src) {
                    parsed.push((p, origin(src, v.loc)));
                }
            }
            let set = acc.exec_only.get_or_insert_with(BTreeMap::new);
            for (p, o) in parsed {
                set.entry(p).or_default().push(o);
            }
        }
        for d in &net.domains {
            self.rule_count += 1;
            let text = d.value.domain();
            let pattern = match DomainPattern::parse(text) {
                Ok(p) => p,
                Err(e) => {
                    let diag = self
                        .diag(src, d.loc, e.to_string())
                        .with_span(text.chars().count());
                    self.errors.push(diag);
                    continue;
                }
            };
            let ports = match d.value {
                DomainEntry::Name(_) => PortSet::web_default(),
                DomainEntry::WithPorts { ref ports, .. } if ports.is_empty() => {
                    PortSet::web_default()
                }
                DomainEntry::WithPorts { ref ports, .. } => match self.ports(ports, src, d.loc) {
                    Some(p) => p,
                    None => continue,
                },
            };
            let o = origin(src, d.loc);
            match acc.domains.entry(pattern) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert((ports, vec![o]));
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let (set, origins) = e.get_mut();
                    *set = set.union(&ports);
                    origins.push(o);
                }
            }
        }
        for c in &net.cidrs {
            self.rule_count += 1;
            let net = match parse_cidr(c.value.cidr.trim()) {
                Ok(n) => n,
                Err(e) => {
                    let diag = self.diag(src, c.loc, e.to_string());
                    self.errors.push(diag);
                    continue;
                }
            };
            let Some(ports) = self.ports(&c.value.ports, src, c.loc) else {
                continue;
            };
            // An empty port list means every port, which absorbs any other list.
            let every = ports.is_empty();
            let o = origin(src, c.loc);
            match acc.cidrs.entry((net, c.value.protocol)) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert((if every { None } else { Some(ports) }, vec![o]));
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let (set, origins) = e.get_mut();
                    *set = match (set.take(), every) {
                        (Some(prev), false) => Some(prev.union(&ports)),
                        _ => None,
                    };
                    origins.push(o);
                }
            }
        }
        for l in &net.listen {
            self.rule_count += 1;
            if l.value.ports.is_empty() {
                let d = self.diag(src, l.loc, "a listen rule needs at least one port");
                self.errors.push(d);
                continue;
            }
            let Some(ports) = self.ports(&l.value.ports, src, l.loc) else {
                continue;
            };
            let e = acc
                .listen
                .entry(l.value.protocol)
                .or_insert_with(|| (PortSet::default(), Vec::new()));
            e.0 = e.0.union(&ports);
            e.1.push(origin(src, l.loc));
        }
        if let Some(mode) = env.mode {
            acc.env.mode = match mode {
                EnvModeDoc::Inherit => EnvMode::Inherit,
                EnvModeDoc::Clean => EnvMode::Clean,
            };
        }
        for (list, out) in [
            (&env.pass, &mut acc.env.pass),
            (&env.strip, &mut acc.env.strip),
        ] {
            for v in list {
                let name = v.value.trim();
                if valid_env_pattern(name) {
                    out.insert(name.to_string());
                } else {
                    let d = self
                        .diag(src, v.loc, format!("`{name}` is not an environment variable name or a `PREFIX*` pattern"))
                        .with_span(name.chars().count());
                    self.errors.push(d);
                }
            }
        }
    }

    fn check_broad_writes(&mut self, acc: &Accumulator, fs: &[MergedFs]) {
        if acc.overrides.allow_broad_write {
            return;
        }
        for MergedFs {
            path,
            effect,
            access,
            origins,
        } in fs
        {
            if *effect == Effect::Allow && access.contains(Access::WRITE) && path.is_broad() {
                let o = &origins[0];
                let loc = (o.line > 0).then_some(Loc {
                    line: o.line,
                    column: o.column,
                });
                let d = self
                    .diag(&o.source, loc, format!("`{path}` granted writable: that hands the agent every file of {}", if path.root().is_some() { "your home directory" } else { "the machine" }))
                    .with_help("grant the project directories the agent needs, or set `override allow-broad-write` (JSON: \"overrides\": {\"allow_broad_write\": true}) if you really mean it");
                self.errors.push(d);
            }
        }
    }
}

fn valid_env_pattern(name: &str) -> bool {
    let body = name.strip_suffix('*').unwrap_or(name);
    let mut chars = body.chars();
    match chars.next() {
        None => false,
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        Some(_) => false,
    }
}

fn origin(source: &Arc<str>, loc: Option<Loc>) -> Origin {
    let loc = loc.unwrap_or_default();
    Origin {
        source: source.clone(),
        line: loc.line,
        column: loc.column,
    }
}

/// Rules gathered from every layer, keyed so that duplicates merge; BTreeMaps keep the order
/// canonical whatever order the rules were written in.
#[derive(Default)]
struct Accumulator {
    /// Filesystem rules as written, in merge order; [`merge_fs`] puts them in canonical order
    /// and merges duplicates once every layer is in.
    fs: Vec<FsWritten>,
    exec_deny: BTreeMap<PolicyPath, Vec<Origin>>,
    exec_only: Option<BTreeMap<PolicyPath, Vec<Origin>>>,
    net_mode: NetMode,
    domains: BTreeMap<DomainPattern, (PortSet, Vec<Origin>)>,
    /// `None` ports: every port.
    cidrs: BTreeMap<(IpNetKey, Protocol), (Option<PortSet>, Vec<Origin>)>,
    listen: BTreeMap<Protocol, (PortSet, Vec<Origin>)>,
    ipc: IpcPolicy,
    unix_sockets: BTreeMap<PolicyPath, Vec<Origin>>,
    env: EnvAcc,
    audit: AuditPolicy,
    rollback: RollbackPolicy,
    overrides: Overrides,
}

type IpNetKey = crate::net::IpNet;

/// One filesystem rule as a profile wrote it.
struct FsWritten {
    path: PolicyPath,
    effect: Effect,
    access: Access,
    origin: Origin,
}

/// One filesystem rule of the policy: every written rule with its path and effect, merged.
#[derive(Debug, PartialEq)]
struct MergedFs {
    path: PolicyPath,
    effect: Effect,
    /// The union of what each written rule gives or takes.
    access: Access,
    /// Where each was written, in merge order.
    origins: Vec<Origin>,
}

/// The filesystem rules in canonical order (path text, then allow before deny), duplicates
/// merged. One sort of the whole list: with thousands of rules that costs far less than a
/// map lookup per rule as it is written, each comparing path texts scattered over the heap.
/// What is sorted is a small key per rule (text, effect, position written) rather than the
/// rules themselves, which a sort would move about many times each; the position keeps the
/// order total, so a merged rule's origins stay in the order they were written.
fn merge_fs(written: Vec<FsWritten>) -> Vec<MergedFs> {
    let mut keys: Vec<(&str, Effect, usize)> = written
        .iter()
        .enumerate()
        .map(|(i, w)| (w.path.as_str(), w.effect, i))
        .collect();
    keys.sort_unstable();
    let order: Vec<usize> = keys.into_iter().map(|(_, _, i)| i).collect();
    let mut slots: Vec<Option<FsWritten>> = written.into_iter().map(Some).collect();
    let mut merged: Vec<MergedFs> = Vec::with_capacity(slots.len());
    for i in order {
        let w = slots[i].take().expect("each position is in the order once");
        match merged.last_mut() {
            Some(last) if last.effect == w.effect && last.path == w.path => {
                last.access = last.access.union(w.access);
                last.origins.push(w.origin);
            }
            _ => merged.push(MergedFs {
                path: w.path,
                effect: w.effect,
                access: w.access,
                origins: vec![w.origin],
            }),
        }
    }
    merged
}

#[derive(Default)]
struct EnvAcc {
    mode: EnvMode,
    pass: BTreeSet<String>,
    strip: BTreeSet<String>,
}

impl Accumulator {
    fn into_policy(self, meta: Meta, fs: Vec<MergedFs>) -> Policy {
        // Ids are handed out in increasing order, so the provenance map is built in one go
        // from the finished list (a bulk build) rather than by an insert per rule.
        let mut origins_by_id: Vec<(RuleId, Vec<Origin>)> = Vec::with_capacity(fs.len());
        let mut id = |origins: Vec<Origin>| {
            let count = u32::try_from(origins_by_id.len()).expect("rules are limited to MAX_RULES");
            let rid = RuleId(count + 1);
            origins_by_id.push((rid, origins));
            rid
        };
        let fs = fs
            .into_iter()
            .map(|rule| FsRule {
                id: id(rule.origins),
                path: rule.path,
                effect: rule.effect,
                access: rule.access,
            })
            .collect();
        let deny = self
            .exec_deny
            .into_iter()
            .map(|(path, o)| ExecRule { id: id(o), path })
            .collect();
        let allow_only = self.exec_only.map(|m| {
            m.into_iter()
                .map(|(path, o)| ExecRule { id: id(o), path })
                .collect()
        });
        let domains = self
            .domains
            .into_iter()
            .map(|(domain, (ports, o))| DomainRule {
                id: id(o),
                domain,
                ports,
            })
            .collect();
        let cidrs = self
            .cidrs
            .into_iter()
            .map(|((net, protocol), (ports, o))| CidrRule {
                id: id(o),
                net,
                protocol,
                ports: ports.unwrap_or_default(),
            })
            .collect();
        let listen = self
            .listen
            .into_iter()
            .map(|(protocol, (ports, o))| ListenRule {
                id: id(o),
                protocol,
                ports,
            })
            .collect();
        let unix_sockets = self
            .unix_sockets
            .into_iter()
            .map(|(path, o)| UnixSocketRule { id: id(o), path })
            .collect();
        let provenance = Provenance {
            rules: origins_by_id.into_iter().collect(),
        };
        let mut rollback = self.rollback;
        rollback.exclude.sort();
        rollback.exclude.dedup();
        Policy {
            meta,
            fs,
            exec: ExecPolicy { deny, allow_only },
            net: NetPolicy {
                mode: self.net_mode,
                domains,
                cidrs,
                listen,
            },
            ipc: IpcPolicy {
                unix_sockets,
                ..self.ipc
            },
            env: EnvPolicy {
                mode: self.env.mode,
                pass: self.env.pass.into_iter().collect(),
                strip: self.env.strip.into_iter().collect(),
            },
            audit: self.audit,
            rollback,
            overrides: self.overrides,
            provenance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`merge_fs`] replaced, kept as the reference: a map keyed by path text and effect,
    /// filled rule by rule.
    fn merge_fs_by_map(written: Vec<FsWritten>) -> Vec<MergedFs> {
        let mut map: BTreeMap<(Arc<str>, Effect), MergedFs> = BTreeMap::new();
        for w in written {
            let e = map
                .entry((w.path.shared_text(), w.effect))
                .or_insert_with(|| MergedFs {
                    path: w.path,
                    effect: w.effect,
                    access: w.access,
                    origins: Vec::new(),
                });
            e.access = e.access.union(w.access);
            e.origins.push(w.origin);
        }
        map.into_values().collect()
    }

    /// Rules drawn from a small set of paths (so many repeat, with either effect and any
    /// access), from a few sources, in a fixed pseudo-random order.
    fn generated_rules(count: usize, seed: u64) -> Vec<FsWritten> {
        const PATHS: &[&str] = &[
            "/",
            "/**",
            "/a",
            "/a/**",
            "/a/b",
            "/a-b",
            "/a/b/**",
            "/ab",
            "$HOME",
            "$HOME/**",
            "$HOME/.ssh/**",
            "$HOME/.ssh",
            "$WORKDIR/x",
            "$TMPDIR/**",
            "/tmp/**",
            "/tmp",
        ];
        const SOURCES: &[&str] = &["a.nono", "builtin:groups/g", "b.json"];
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let sources: Vec<Arc<str>> = SOURCES.iter().map(|s| Arc::from(*s)).collect();
        (0..count)
            .map(|i| FsWritten {
                path: PolicyPath::parse(PATHS[(next() % PATHS.len() as u64) as usize]).unwrap(),
                effect: if next() % 3 == 0 {
                    Effect::Deny
                } else {
                    Effect::Allow
                },
                access: Access::from_bits((next() % 7 + 1) as u8).unwrap(),
                origin: Origin {
                    source: sources[(next() % sources.len() as u64) as usize].clone(),
                    line: i as u32 + 1,
                    column: (next() % 5) as u32 + 1,
                },
            })
            .collect()
    }

    #[test]
    fn merging_by_sort_agrees_with_merging_by_map() {
        for (count, seed) in [(0, 1), (1, 2), (2, 3), (10, 4), (100, 5), (5_000, 6)] {
            let sorted = merge_fs(generated_rules(count, seed));
            let mapped = merge_fs_by_map(generated_rules(count, seed));
            assert_eq!(sorted, mapped, "{count} rules, seed {seed}");
            if count >= 100 {
                // Duplicates were there to merge.
                assert!(sorted.len() < count);
                assert!(sorted.iter().any(|r| r.origins.len() > 1));
            }
        }
    }
}
