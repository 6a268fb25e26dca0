//! The reviewer's text report (`nono policy compile --format text`): every rule with where it
//! was written and which kernel mechanism enforces it on the target, then every gap, the notes,
//! and what older Landlock ABIs would lose. Deterministic: the same artifact always renders
//! the same text.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::artifact::CompiledPolicy;
use crate::backend::landlock::{self, Gap, GapDirection, NetRight};
use crate::backend::{linux_release_for_abi, Target};
use crate::ir::{Effect, Policy, RuleId};
use crate::net::IpNet;

/// For each Landlock ABI from 1 to 7, the gaps a Landlock-only target has there and not on the
/// newest ABI. The entry for the newest ABI is always empty.
pub fn abi_losses(policy: &Policy) -> Vec<(u8, Vec<Gap>)> {
    abi_losses_with(policy, false)
}

/// [`abi_losses`] for a target with or without the kernel layer.
pub fn abi_losses_with(policy: &Policy, kernel_layer: bool) -> Vec<(u8, Vec<Gap>)> {
    let gaps = |abi| {
        landlock::plan(
            policy,
            &Target {
                landlock_abi: abi,
                kernel_layer,
            },
        )
        .gaps
    };
    // A gap is the same loss whatever its reason says (the rights listed differ by ABI).
    let key = |g: &Gap| (g.rule, g.rule_text.clone(), g.feature.clone());
    let newest: Vec<_> = gaps(Target::LATEST_ABI).iter().map(key).collect();
    (1..=Target::LATEST_ABI)
        .map(|abi| {
            let lost = gaps(abi)
                .into_iter()
                .filter(|g| !newest.contains(&key(g)))
                .collect();
            (abi, lost)
        })
        .collect()
}

/// Render the report.
pub fn render_text(compiled: &CompiledPolicy) -> String {
    let mut out = String::new();
    let policy = &compiled.policy;
    let target = compiled.target;
    let ll = &compiled.landlock;

    // ---- header
    let version = policy
        .meta
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    let _ = writeln!(out, "nono compiled policy: {}{version}", policy.meta.name);
    if !policy.meta.extends.is_empty() {
        let _ = writeln!(out, "  extends:      {}", policy.meta.extends.join(", "));
    }
    let _ = writeln!(out, "  digest:       {}", compiled.digest);
    let _ = writeln!(out, "  compiler:     {}", compiled.compiler);
    let landlock_text = if ll.abi == 0 {
        "no Landlock".to_string()
    } else {
        format!(
            "Landlock ABI {} (Linux {}+)",
            ll.abi,
            linux_release_for_abi(ll.abi)
        )
    };
    let _ = writeln!(
        out,
        "  target:       {landlock_text}, eBPF kernel layer: {}",
        if target.kernel_layer { "yes" } else { "no" }
    );
    if policy.overrides.allow_broad_write {
        let _ = writeln!(
            out,
            "  OVERRIDE:     allow_broad_write (write on / or $HOME permitted)"
        );
    }

    // ---- rules
    let mechanisms = mechanisms(compiled);
    let mut gaps_by_rule: BTreeMap<RuleId, Vec<&Gap>> = BTreeMap::new();
    for g in &ll.gaps {
        if let Some(id) = g.rule {
            gaps_by_rule.entry(id).or_default().push(g);
        }
    }
    let _ = writeln!(out, "\nRULES");
    let summaries = policy.rule_summaries();
    if summaries.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (id, text) in &summaries {
        let _ = writeln!(out, "  {:<5} {text}", id.to_string());
        let origins = policy
            .provenance
            .rules
            .get(id)
            .map(|o| {
                o.iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "(unknown)".into());
        let _ = writeln!(out, "        source:   {origins}");
        let mut lines: Vec<String> = mechanisms.get(id).cloned().unwrap_or_default();
        for g in &ll.covered_by_kernel_layer {
            if g.rule == Some(*id) {
                lines.push(format!(
                    "Landlock alone cannot ({}); the eBPF kernel layer closes this",
                    g.feature
                ));
            }
        }
        for g in gaps_by_rule.get(id).into_iter().flatten() {
            lines.push(format!("NOT AS WRITTEN: {} ({})", g.feature, direction(g)));
        }
        if lines.is_empty() {
            lines.push("no kernel rule (see notes)".into());
        }
        for (i, l) in lines.iter().enumerate() {
            let label = if i == 0 { "enforced:" } else { "         " };
            let _ = writeln!(out, "        {label} {l}");
        }
    }

    // ---- defaults
    let _ = writeln!(out, "\nDEFAULTS");
    if ll.abi > 0 {
        let _ = writeln!(
            out,
            "  filesystem:   Landlock default deny of {}",
            ll.handled_fs.names().join("|")
        );
    } else {
        let _ = writeln!(out, "  filesystem:   none (no Landlock)");
    }
    let mut net = Vec::new();
    if !ll.handled_net.is_empty() {
        let rights: Vec<&str> = ll.handled_net.iter().map(net_right_name).collect();
        net.push(format!("Landlock default deny of {}", rights.join("|")));
    }
    if ll.seccomp.deny_inet {
        net.push("seccomp refuses inet sockets".into());
    } else if ll.seccomp.deny_udp_and_raw {
        net.push("seccomp refuses UDP and raw sockets".into());
    }
    if ll.seccomp.deny_tcp_fastopen && !ll.seccomp.deny_inet {
        net.push("seccomp refuses TCP Fast Open sends (MSG_FASTOPEN)".into());
    }
    if ll.seccomp.deny_listen {
        net.push("seccomp refuses listen(2)".into());
    }
    if target.kernel_layer && compiled.ebpf.net.is_some() {
        net.push("eBPF cgroup/connect4+connect6 allowlist (link-local and metadata denied)".into());
    }
    if net.is_empty() {
        net.push("unrestricted".into());
    }
    let _ = writeln!(out, "  network:      {}", net.join("; "));
    if ll.seccomp.deny_other_families {
        let _ = writeln!(
            out,
            "  sockets:      seccomp refuses AF_PACKET, AF_NETLINK (except route queries), AF_VSOCK and other families"
        );
    }
    let mut scopes = Vec::new();
    if ll.scope_signals {
        scopes.push("signals");
    }
    if ll.scope_abstract_unix {
        scopes.push("abstract unix sockets");
    }
    if !scopes.is_empty() {
        let _ = writeln!(out, "  ipc:          Landlock scopes {}", scopes.join(", "));
    }
    if ll.seccomp.deny_exec_memfd {
        let _ = writeln!(
            out,
            "  exec:         seccomp refuses memfd_create without MFD_NOEXEC_SEAL (exec only)"
        );
    }
    if ll.seccomp.deny_escape_syscalls {
        let _ = writeln!(
            out,
            "  syscalls:     seccomp refuses io_uring, ptrace, process_vm_*, TIOCSTI, bpf, module, kexec and mount calls"
        );
    }

    // ---- warnings
    let _ = writeln!(out, "\nWARNINGS ({})", ll.gaps.len());
    if ll.gaps.is_empty() {
        let _ = writeln!(
            out,
            "  none: every rule is enforced as written on this target"
        );
    }
    if !ll.covered_by_kernel_layer.is_empty() {
        let _ = writeln!(
            out,
            "  ({} more closed by the eBPF kernel layer; they become warnings if it fails to load)",
            ll.covered_by_kernel_layer.len()
        );
    }
    for g in &ll.gaps {
        let label = match g.rule {
            Some(id) => format!("{id} {}", g.rule_text),
            None => g.rule_text.clone(),
        };
        let _ = writeln!(out, "  ! {label}");
        let _ = writeln!(out, "      feature: {}", g.feature);
        let _ = writeln!(out, "      needs:   {}", g.needs);
        let _ = writeln!(out, "      effect:  {}", direction(g));
        let _ = writeln!(out, "      why:     {}", g.reason);
    }

    // ---- notes
    if !ll.notes.is_empty() {
        let _ = writeln!(out, "\nNOTES");
        for n in &ll.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }

    // ---- older kernels
    let _ = writeln!(
        out,
        "\nOLDER KERNELS (what this policy loses compared with Landlock ABI {})",
        Target::LATEST_ABI
    );
    let _ = writeln!(out, "  ABI  Linux  lost");
    for (abi, lost) in abi_losses_with(policy, target.kernel_layer)
        .into_iter()
        .rev()
        .filter(|(abi, _)| *abi < Target::LATEST_ABI)
    {
        let mut labels: Vec<String> = lost
            .iter()
            .map(|g| match g.rule {
                Some(id) => id.to_string(),
                None => g.rule_text.clone(),
            })
            .collect();
        labels.dedup();
        let lost_text = if labels.is_empty() {
            "nothing".to_string()
        } else {
            labels.join(", ")
        };
        let _ = writeln!(
            out,
            "  {abi:<4} {:<6} {lost_text}",
            linux_release_for_abi(abi)
        );
    }
    out
}

fn direction(g: &Gap) -> &'static str {
    match g.direction {
        GapDirection::AllowsMore => "the sandbox allows more than the rule says",
        GapDirection::AllowsLess => "the sandbox allows less than the rule says",
    }
}

fn net_right_name(r: &NetRight) -> &'static str {
    match r {
        NetRight::BindTcp => "bind_tcp",
        NetRight::ConnectTcp => "connect_tcp",
    }
}

/// `80,443,8000-8002` from a sorted port list.
fn port_ranges(ports: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let start = ports[i];
        let mut end = start;
        while i + 1 < ports.len() && ports[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = ports[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// For each rule, the kernel mechanisms that enforce it on the artifact's target.
fn mechanisms(compiled: &CompiledPolicy) -> BTreeMap<RuleId, Vec<String>> {
    let policy = &compiled.policy;
    let ll = &compiled.landlock;
    let kernel = compiled.target.kernel_layer;
    let mut m: BTreeMap<RuleId, Vec<String>> = BTreeMap::new();
    let mut add = |id: RuleId, text: String| m.entry(id).or_default().push(text);

    let mut carved: BTreeMap<RuleId, Vec<String>> = BTreeMap::new();
    for r in &ll.path_rules {
        let split = if r.carve_outs.is_empty() {
            String::new()
        } else {
            format!(
                ", split at run time around {} carve-out(s)",
                r.carve_outs.len()
            )
        };
        for id in &r.rules {
            add(
                *id,
                format!(
                    "Landlock path-beneath {} on {}{split}",
                    r.rights.names().join("|"),
                    r.path
                ),
            );
        }
        for c in &r.carve_outs {
            carved.entry(c.rule).or_default().push(format!(
                "Landlock: {} carved out of the grant on {} (no {} beneath it; the directories on the way cannot be listed)",
                c.path,
                r.path,
                c.rights.names().join("|")
            ));
        }
    }
    let mut ports: BTreeMap<(RuleId, NetRight), Vec<u16>> = BTreeMap::new();
    for p in &ll.port_rules {
        for id in &p.rules {
            for right in &p.rights {
                ports.entry((*id, *right)).or_default().push(p.port);
            }
        }
    }
    for ((id, right), list) in ports {
        add(
            id,
            format!(
                "Landlock net port {} {}",
                net_right_name(&right),
                port_ranges(&list)
            ),
        );
    }

    // Landlock's default deny holds a deny only when no grant above it reaches it.
    let has_gap = |id: RuleId| {
        ll.gaps
            .iter()
            .chain(&ll.covered_by_kernel_layer)
            .any(|g| g.rule == Some(id))
    };
    let landlock_denies = ll.abi > 0;
    for r in policy.fs.iter().filter(|r| r.effect == Effect::Deny) {
        if let Some(texts) = carved.get(&r.id) {
            texts.iter().for_each(|t| add(r.id, t.clone()));
        } else if landlock_denies && !has_gap(r.id) {
            add(r.id, "Landlock default deny (no grant above it)".into());
        }
    }
    for r in &policy.exec.deny {
        if let Some(texts) = carved.get(&r.id) {
            texts.iter().for_each(|t| add(r.id, t.clone()));
        } else if landlock_denies && !has_gap(r.id) {
            add(r.id, "Landlock default deny of execute".into());
        }
    }
    if landlock_denies {
        for r in policy.exec.allow_only.iter().flatten() {
            add(r.id, "Landlock execute granted only on listed paths".into());
        }
    }

    if kernel {
        let ebpf = &compiled.ebpf;
        for e in &ebpf.fs_denies {
            add(
                e.rule,
                format!(
                    "eBPF LSM deny {} (file_open, inode_*, path_*)",
                    e.ops.names().join("|")
                ),
            );
        }
        for e in &ebpf.exec_denies {
            add(e.rule, "eBPF LSM bprm_check_security deny".into());
        }
        for e in ebpf.exec_allow_only.iter().flatten() {
            add(e.rule, "eBPF LSM bprm_check_security allowlist".into());
        }
        if ebpf.net.is_some() {
            for r in &policy.net.cidrs {
                let family = match r.net {
                    IpNet::V4(_) => "4",
                    IpNet::V6(_) => "6",
                };
                let hooks = match r.protocol {
                    crate::net::Protocol::Tcp => format!("cgroup/connect{family}"),
                    crate::net::Protocol::Udp => {
                        format!("cgroup/connect{family}+sendmsg{family}")
                    }
                };
                add(r.id, format!("eBPF {hooks} LPM allowlist"));
            }
            for r in &policy.net.domains {
                add(
                    r.id,
                    "eBPF cgroup/connect4+connect6 (addresses resolved at run time)".into(),
                );
            }
            for r in &policy.net.listen {
                add(r.id, "eBPF cgroup/bind4+bind6".into());
            }
        }
        for e in &ebpf.unix_socket_grants {
            add(e.rule, "eBPF LSM unix_stream_connect allowlist".into());
        }
    }
    m
}
