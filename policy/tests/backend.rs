//! Back-end mapping tests on policies built in code.

mod common;

use common::{default_like, path, PolicyBuilder};
use nono_policy::artifact::{ArtifactError, CompiledPolicy};
use nono_policy::backend::ebpf::{self, FsOps, ImplicitDeny};
use nono_policy::backend::landlock::{
    self, FsRights, Gap, GapDirection, LandlockPlan, NetRight, MAX_PORTS_PER_RULE,
};
use nono_policy::backend::{seatbelt, Target};
use nono_policy::ir::{Access, Policy, RuleId};
use nono_policy::net::Protocol;
use nono_policy::report::{abi_losses, render_text};

fn ll(policy: &Policy, abi: u8, kernel_layer: bool) -> LandlockPlan {
    landlock::plan(
        policy,
        &Target {
            landlock_abi: abi,
            kernel_layer,
        },
    )
}

fn rights(plan: &LandlockPlan, p: &str) -> FsRights {
    plan.path_rules
        .iter()
        .find(|r| r.path.to_string() == p)
        .unwrap_or_else(|| panic!("no rule on {p}: {:#?}", plan.path_rules))
        .rights
}

fn features(plan: &LandlockPlan) -> Vec<(Option<u32>, String)> {
    plan.gaps
        .iter()
        .map(|g| (g.rule.map(|r| r.0), g.feature.clone()))
        .collect()
}

/// The denies carved out of the grant on `grant`, as (deny path, rule id).
fn carved(plan: &LandlockPlan, grant: &str) -> Vec<(String, u32)> {
    plan.path_rules
        .iter()
        .filter(|r| r.path.to_string() == grant)
        .flat_map(|r| r.carve_outs.iter().map(|c| (c.path.to_string(), c.rule.0)))
        .collect()
}

fn gaps_for(plan: &LandlockPlan, id: u32) -> Vec<&Gap> {
    plan.gaps
        .iter()
        .filter(|g| g.rule == Some(RuleId(id)))
        .collect()
}

const READ: FsRights = FsRights::READ_FILE.union(FsRights::READ_DIR);
const WRITE_ABI1: FsRights = FsRights::WRITE_FILE
    .union(FsRights::REMOVE_FILE)
    .union(FsRights::REMOVE_DIR)
    .union(FsRights::MAKE_REG)
    .union(FsRights::MAKE_DIR)
    .union(FsRights::MAKE_SYM)
    .union(FsRights::MAKE_FIFO)
    .union(FsRights::MAKE_SOCK);

// -------------------------------------------------------------------------------------------
// Landlock: filesystem rights per ABI

#[test]
fn handled_rights_follow_the_abi() {
    let p = PolicyBuilder::new("t").read("/usr/**").build();
    for abi in 0..=7 {
        assert_eq!(
            ll(&p, abi, false).handled_fs,
            FsRights::for_abi(abi),
            "abi {abi}"
        );
        assert_eq!(ll(&p, abi, false).abi, abi);
    }
    // A newer kernel than the compiler knows is planned as the newest known ABI.
    let plan = ll(&p, 9, false);
    assert_eq!(plan.abi, Target::LATEST_ABI);
    assert_eq!(plan.handled_fs, FsRights::for_abi(7));
}

#[test]
fn grant_rights_at_each_abi_boundary() {
    let p = PolicyBuilder::new("t")
        .read("/usr/**")
        .read("/etc/hosts")
        .readwrite("$WORKDIR/**")
        .exec("/opt/bin/**")
        .write("/dev/pts/**")
        .build();
    let write = |abi: u8| {
        let mut w = WRITE_ABI1;
        if abi >= 2 {
            w = w.union(FsRights::REFER);
        }
        if abi >= 3 {
            w = w.union(FsRights::TRUNCATE);
        }
        w
    };
    for abi in 1..=7 {
        let plan = ll(&p, abi, false);
        assert_eq!(rights(&plan, "/usr/**"), READ, "abi {abi}");
        // Exact paths keep read_dir: the runtime masks directory-only rights on files.
        assert_eq!(rights(&plan, "/etc/hosts"), READ, "abi {abi}");
        assert_eq!(
            rights(&plan, "$WORKDIR/**"),
            READ.union(write(abi)),
            "abi {abi}"
        );
        assert_eq!(
            rights(&plan, "/opt/bin/**"),
            READ.union(FsRights::EXECUTE),
            "abi {abi}"
        );
        let dev = if abi >= 5 {
            write(abi).union(FsRights::IOCTL_DEV)
        } else {
            write(abi)
        };
        assert_eq!(rights(&plan, "/dev/pts/**"), dev, "abi {abi}");
        for r in &plan.path_rules {
            assert!(
                plan.handled_fs.contains(r.rights),
                "abi {abi}: {r:?} asks for rights the ABI lacks"
            );
            assert!(!r
                .rights
                .intersects(FsRights::MAKE_CHAR.union(FsRights::MAKE_BLOCK)));
        }
    }
    // ioctl_dev only under /dev.
    assert!(!rights(&ll(&p, 7, false), "$WORKDIR/**").contains(FsRights::IOCTL_DEV));
}

#[test]
fn rules_on_one_path_merge_and_sort_by_path() {
    let p = PolicyBuilder::new("t")
        .write("/srv/data/**")
        .read("/etc/**")
        .read("/srv/data")
        .read("/bin/**")
        .build();
    let plan = ll(&p, 7, false);
    let paths: Vec<String> = plan.path_rules.iter().map(|r| r.path.to_string()).collect();
    assert_eq!(paths, ["/bin/**", "/etc/**", "/srv/data/**"]);
    let data = &plan.path_rules[2];
    assert_eq!(data.rules, vec![RuleId(1), RuleId(3)]);
    assert!(data.rights.contains(READ.union(FsRights::WRITE_FILE)));
}

#[test]
fn exact_grants_are_noted() {
    let plan = ll(&PolicyBuilder::new("t").read("$HOME").build(), 7, false);
    assert!(plan
        .notes
        .iter()
        .any(|n| n.contains("exact-path grants (r1)")));
}

#[test]
fn no_landlock_means_every_fs_rule_is_a_gap() {
    let p = PolicyBuilder::new("t")
        .read("/usr/**")
        .deny("$HOME/.ssh/**")
        .exec_deny("/usr/bin/sudo")
        .build();
    let plan = ll(&p, 0, false);
    assert!(plan.path_rules.is_empty());
    assert!(plan.handled_fs.is_empty());
    let fs_gaps: Vec<_> = features(&plan)
        .into_iter()
        .filter(|(_, f)| f == "Landlock (Linux 5.13)")
        .map(|(r, _)| r.unwrap())
        .collect();
    assert_eq!(fs_gaps, [1, 2, 3]);
    // The kernel layer carries the denies, not the default deny around the grant.
    let plan = ll(&p, 0, true);
    let fs_gaps: Vec<_> = features(&plan)
        .into_iter()
        .filter(|(_, f)| f == "Landlock (Linux 5.13)")
        .map(|(r, _)| r.unwrap())
        .collect();
    assert_eq!(fs_gaps, [1]);
}

#[test]
fn truncate_is_a_default_deny_gap_below_abi_3() {
    let p = PolicyBuilder::new("t").read("/usr/**").build();
    for abi in 1..=7 {
        let has = ll(&p, abi, false)
            .gaps
            .iter()
            .any(|g| g.rule.is_none() && g.feature == "Landlock ABI 3 (Linux 6.2)");
        assert_eq!(has, abi < 3, "abi {abi}");
    }
    assert!(ll(&p, 1, false)
        .notes
        .iter()
        .any(|n| n.contains("no `refer`")));
    assert!(!ll(&p, 2, false)
        .notes
        .iter()
        .any(|n| n.contains("no `refer`")));
}

// -------------------------------------------------------------------------------------------
// Landlock: denies

#[test]
fn deny_inside_grant_is_a_gap_naming_both_rules() {
    let p = PolicyBuilder::new("t")
        .readwrite("$HOME/**")
        .deny("$HOME/.ssh/**")
        .build();
    let plan = ll(&p, 7, false);
    let gaps = gaps_for(&plan, 2);
    assert_eq!(gaps.len(), 1, "{:#?}", plan.gaps);
    let g = gaps[0];
    assert_eq!(
        g.rule_text,
        "deny $HOME/.ssh/** (inside readwrite $HOME/**)"
    );
    assert_eq!(g.related, vec![RuleId(1)]);
    assert_eq!(g.feature, "deny inside an allowed tree");
    assert_eq!(g.needs, "the eBPF kernel layer (run nono as root)");
    assert_eq!(g.direction, GapDirection::AllowsMore);

    // With the kernel layer the eBPF deny map carries it.
    let plan = ll(&p, 7, true);
    assert!(plan.gaps.is_empty(), "{:#?}", plan.gaps);
    let e = ebpf::plan(&p, &Target::landlock_only(7));
    assert_eq!(e.fs_denies.len(), 1);
    assert_eq!(e.fs_denies[0].path, path("$HOME/.ssh/**"));
}

#[test]
fn deny_outside_every_grant_is_landlocks_default_deny() {
    let p = PolicyBuilder::new("t")
        .readwrite("$WORKDIR/**")
        .deny("$HOME/.ssh/**")
        .deny("/etc/shadow")
        .build();
    assert!(ll(&p, 7, false).gaps.is_empty());
}

#[test]
fn only_intersecting_rights_matter() {
    // A write deny under a read grant takes away nothing Landlock granted.
    let p = PolicyBuilder::new("t")
        .read("/srv/**")
        .deny_access(Access::WRITE, "/srv/db/**")
        .build();
    assert!(ll(&p, 7, false).gaps.is_empty());
    // An exec grant carries read_file, so a read deny under it needs the grant split.
    let p = PolicyBuilder::new("t")
        .exec("/opt/**")
        .deny_access(Access::READ, "/opt/secret")
        .build();
    let plan = ll(&p, 7, false);
    assert!(plan.gaps.is_empty(), "{:#?}", plan.gaps);
    assert_eq!(carved(&plan, "/opt/**"), [("/opt/secret".to_string(), 2)]);
    assert_eq!(plan.path_rules[0].carve_outs[0].rights, READ);
    // Under a writable grant, splitting would cost creating entries: a gap instead.
    let p = PolicyBuilder::new("t")
        .readwrite("/opt/**")
        .deny_access(Access::READ, "/opt/secret")
        .build();
    assert_eq!(
        features(&ll(&p, 7, false)),
        [(Some(2), "deny inside an allowed tree".into())]
    );
    assert!(carved(&ll(&p, 7, false), "/opt/**").is_empty());
}

#[test]
fn read_only_grants_are_split_and_the_kernel_layer_needs_no_split() {
    let p = PolicyBuilder::new("t")
        .read("/etc/**")
        .deny("/etc/shadow")
        .deny("/etc/ssh/**")
        .build();
    let plan = ll(&p, 7, false);
    assert!(plan.gaps.is_empty(), "{:#?}", plan.gaps);
    assert_eq!(
        carved(&plan, "/etc/**"),
        [
            ("/etc/shadow".to_string(), 2),
            ("/etc/ssh/**".to_string(), 3)
        ]
    );
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("carved out of read /etc/**")),
        "{:#?}",
        plan.notes
    );
    let with = ll(&p, 7, true);
    assert!(carved(&with, "/etc/**").is_empty());
    assert_eq!(with.covered_by_kernel_layer.len(), 2);
}

#[test]
fn containment_sees_xdg_defaults_and_the_root() {
    // "Seen inside" means the plan had to do something about it: split the grant, or report.
    let inside = |grant: &str, deny: &str| {
        let p = PolicyBuilder::new("t").read(grant).deny(deny).build();
        let plan = ll(&p, 7, false);
        !plan.gaps.is_empty() || plan.path_rules.iter().any(|r| !r.carve_outs.is_empty())
    };
    assert!(inside("$HOME/**", "$XDG_CONFIG_HOME/gcloud/**"));
    assert!(inside("$XDG_CONFIG_HOME/**", "$HOME/.config/gcloud/**"));
    assert!(inside("$HOME/.local/**", "$XDG_DATA_HOME/keyrings/**"));
    assert!(inside("/tmp/**", "$TMPDIR/secret"));
    assert!(inside("/**", "$HOME/.ssh/**"));
    assert!(
        inside("/", "/etc/shadow"),
        "an exact grant on a directory covers it too"
    );
    assert!(
        inside("$HOME", "$HOME/.ssh/**"),
        "exact grants are subtrees for Landlock"
    );
    assert!(!inside("$HOME/.cache/**", "$XDG_CONFIG_HOME/x"));
    assert!(!inside("$WORKDIR/**", "$HOME/.ssh/**"));
    assert!(!inside("/usr/lib/**", "/usr/libexec/x"));
}

#[test]
fn grants_inside_denies_lose_the_denied_rights() {
    let p = PolicyBuilder::new("t")
        .deny("$HOME/.ssh/**")
        .read("$HOME/.ssh/known_hosts")
        .readwrite("/srv/**")
        .deny_access(Access::WRITE, "/srv/**")
        .build();
    let plan = ll(&p, 7, false);
    assert!(plan.gaps.is_empty(), "{:#?}", plan.gaps);
    assert!(plan
        .path_rules
        .iter()
        .all(|r| r.path.to_string() != "$HOME/.ssh/known_hosts"));
    assert!(plan
        .notes
        .iter()
        .any(|n| n.contains("read $HOME/.ssh/known_hosts grants nothing")));
    assert_eq!(rights(&plan, "/srv/**"), READ);
}

#[test]
fn exact_deny_on_a_granted_directory_is_a_gap() {
    // `deny /srv/x` names the directory only; the grant on its content keeps it reachable.
    let p = PolicyBuilder::new("t")
        .read("/srv/x/**")
        .deny("/srv/x")
        .build();
    assert_eq!(gaps_for(&ll(&p, 7, false), 2).len(), 1);
}

// -------------------------------------------------------------------------------------------
// Landlock: exec

#[test]
fn exec_deny_inside_exec_grant() {
    let p = PolicyBuilder::new("t")
        .exec("/usr/**")
        .exec_deny("/usr/bin/sudo")
        .build();
    let plan = ll(&p, 7, false);
    assert!(plan.gaps.is_empty(), "{:#?}", plan.gaps);
    assert_eq!(carved(&plan, "/usr/**"), [("/usr/bin/sudo".to_string(), 2)]);
    assert_eq!(plan.path_rules[0].carve_outs[0].rights, FsRights::EXECUTE);
    assert!(ll(&p, 7, true).gaps.is_empty());
    // Inside a writable exec grant it is a gap naming both rules.
    let p = PolicyBuilder::new("t")
        .readwrite("$WORKDIR/**")
        .exec("$WORKDIR/**")
        .exec_deny("$WORKDIR/tool")
        .build();
    let plan = ll(&p, 7, false);
    let g = gaps_for(&plan, 3);
    assert_eq!(g.len(), 1, "{:#?}", plan.gaps);
    assert!(
        g[0].rule_text
            .starts_with("exec deny $WORKDIR/tool (inside "),
        "{}",
        g[0].rule_text
    );
    // Outside any exec grant it is the default deny.
    let p = PolicyBuilder::new("t")
        .read("/usr/**")
        .exec_deny("/usr/bin/sudo")
        .build();
    assert!(ll(&p, 7, false).gaps.is_empty());
}

#[test]
fn exec_only_intersects_the_exec_grants() {
    let p = PolicyBuilder::new("t")
        .exec("/usr/**")
        .exec("$HOME/.cargo/bin/**")
        .exec_only("/usr/bin/git")
        .exec_only("$HOME/.cargo/**")
        .exec_only("/opt/elsewhere/**")
        .build();
    let plan = ll(&p, 7, false);
    // The paths are all representable; the one gap is code mapped without execve (the dynamic
    // loader run as a program), which only the kernel layer's mapping hooks hold.
    let features: Vec<&str> = plan.gaps.iter().map(|g| g.feature.as_str()).collect();
    assert_eq!(features, ["exec allowlist for code mapped without execve"]);
    assert_eq!(plan.gaps[0].direction, GapDirection::AllowsMore);
    let kernel = ll(&p, 7, true);
    assert!(kernel.gaps.is_empty(), "{:#?}", kernel.gaps);
    // Outside the list: read stays, execute goes.
    assert_eq!(rights(&plan, "/usr/**"), READ);
    // The listed binary inside the grant gets execute back.
    let git = plan
        .path_rules
        .iter()
        .find(|r| r.path.to_string() == "/usr/bin/git")
        .unwrap();
    assert_eq!(git.rights, FsRights::EXECUTE);
    assert_eq!(git.rules, vec![RuleId(1), RuleId(3)]);
    // A grant inside a listed subtree keeps execute.
    assert!(rights(&plan, "$HOME/.cargo/bin/**").contains(FsRights::EXECUTE));
    // A listed path no grant covers grants nothing.
    assert!(plan
        .path_rules
        .iter()
        .all(|r| !r.path.to_string().starts_with("/opt")));
}

#[test]
fn exec_deny_inside_an_exec_only_path() {
    let p = PolicyBuilder::new("t")
        .exec("/usr/**")
        .exec_only("/usr/bin/**")
        .exec_deny("/usr/bin/sudo")
        .build();
    let plan = ll(&p, 7, false);
    assert!(gaps_for(&plan, 3).is_empty());
    assert!(plan
        .path_rules
        .iter()
        .any(|r| r.carve_outs.iter().any(|c| c.rule == RuleId(3))));
}

// -------------------------------------------------------------------------------------------
// Landlock: network

fn port(plan: &LandlockPlan, port: u16) -> Option<&landlock::PortRule> {
    plan.port_rules.iter().find(|p| p.port == port)
}

#[test]
fn unrestricted_network() {
    let p = PolicyBuilder::new("t")
        .net_all()
        .domain("github.com", "")
        .build();
    for abi in [3, 7] {
        let plan = ll(&p, abi, false);
        assert!(plan.handled_net.is_empty());
        assert!(plan.port_rules.is_empty());
        assert!(!plan.seccomp.deny_inet && !plan.seccomp.deny_udp_and_raw);
        assert!(plan.seccomp.deny_other_families && plan.seccomp.deny_escape_syscalls);
        assert!(plan.gaps.iter().all(|g| g.rule != Some(RuleId(1))));
        assert!(plan.notes.iter().any(|n| n.contains("`net allow all`")));
    }
    assert!(ebpf::plan(&p, &Target::landlock_only(7)).net.is_none());
}

#[test]
fn blocked_network_without_rules() {
    let p = PolicyBuilder::new("t").build();
    let plan = ll(&p, 7, false);
    assert_eq!(plan.handled_net, [NetRight::BindTcp, NetRight::ConnectTcp]);
    assert!(plan.port_rules.is_empty());
    assert!(plan.seccomp.deny_udp_and_raw && !plan.seccomp.deny_inet);
    // Below ABI 4 seccomp refuses inet sockets instead, and nothing is lost.
    for abi in 0..4 {
        let plan = ll(&p, abi, false);
        assert!(plan.handled_net.is_empty());
        assert!(plan.seccomp.deny_inet, "abi {abi}");
        assert!(!plan.gaps.iter().any(|g| g.feature.contains("ABI 4")));
    }
}

#[test]
fn tcp_cidr_is_a_port_rule_and_an_address_gap() {
    let p = PolicyBuilder::new("t")
        .cidr("10.0.0.0/8", Protocol::Tcp, "443,8000-8002")
        .build();
    let plan = ll(&p, 7, false);
    let ports: Vec<u16> = plan.port_rules.iter().map(|p| p.port).collect();
    assert_eq!(ports, [443, 8000, 8001, 8002]);
    assert_eq!(port(&plan, 443).unwrap().rights, [NetRight::ConnectTcp]);
    let g = gaps_for(&plan, 1);
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].feature, "TCP address filtering");
    assert!(g[0].reason.contains("Landlock filters TCP by port only"));
    assert_eq!(g[0].direction, GapDirection::AllowsMore);
    assert!(plan.notes.iter().any(|n| n.contains("169.254.169.254")));

    let plan = ll(&p, 7, true);
    assert!(plan.gaps.is_empty());
    assert_eq!(plan.port_rules.len(), 4);
}

#[test]
fn zero_prefix_needs_both_families() {
    let v4 = PolicyBuilder::new("t")
        .cidr("0.0.0.0/0", Protocol::Tcp, "443")
        .build();
    assert_eq!(gaps_for(&ll(&v4, 7, false), 1).len(), 1);
    let both = PolicyBuilder::new("t")
        .cidr("0.0.0.0/0", Protocol::Tcp, "443")
        .cidr("::/0", Protocol::Tcp, "80,443")
        .build();
    let plan = ll(&both, 7, false);
    assert!(gaps_for(&plan, 1).is_empty());
    // ::/0 allows port 80 that 0.0.0.0/0 does not: IPv4 would get it too.
    assert_eq!(gaps_for(&plan, 2).len(), 1);
}

#[test]
fn every_tcp_port_everywhere_unhandles_connect() {
    let p = PolicyBuilder::new("t")
        .cidr("0.0.0.0/0", Protocol::Tcp, "")
        .cidr("::/0", Protocol::Tcp, "")
        .listen(Protocol::Tcp, "8080")
        .build();
    let plan = ll(&p, 7, false);
    // Only the listen rule's unbound-listen gap (see `unbound_listen_...` below).
    let features: Vec<&str> = plan.gaps.iter().map(|g| g.feature.as_str()).collect();
    assert_eq!(
        features,
        ["listen(2) on an unbound TCP socket"],
        "{:#?}",
        plan.gaps
    );
    assert_eq!(plan.handled_net, [NetRight::BindTcp]);
    assert_eq!(port(&plan, 8080).unwrap().rights, [NetRight::BindTcp]);
}

/// `exec only` cannot name a memfd: without the kernel layer's exec hook, seccomp keeps
/// executable memfds from being made; with it (or without an allowlist) memfds stay open.
#[test]
fn exec_only_closes_executable_memfds_without_the_exec_hook() {
    let only = PolicyBuilder::new("t").exec_only("/usr/**").build();
    assert!(ll(&only, 7, false).seccomp.deny_exec_memfd);
    assert!(!ll(&only, 7, true).seccomp.deny_exec_memfd);
    let plain = PolicyBuilder::new("t").exec("/usr/**").build();
    assert!(!ll(&plain, 7, false).seccomp.deny_exec_memfd);
}

/// `listen(2)` on a TCP socket never bound takes an ephemeral port without Landlock's bind
/// check. Without a TCP listen rule (and with unix sockets closed) seccomp refuses `listen`
/// outright; a TCP listen rule keeps `listen` open, so its plan names the unbound case as a
/// gap that only the kernel layer's `socket_listen` program closes.
#[test]
fn unbound_listen_is_refused_or_named() {
    let none = PolicyBuilder::new("t").build();
    let plan = ll(&none, 7, false);
    assert!(plan.seccomp.deny_listen);
    assert!(plan.gaps.is_empty(), "{:#?}", plan.gaps);
    // With the kernel layer unix sockets are open (servers need listen): its program decides.
    assert!(!ll(&none, 7, true).seccomp.deny_listen);
    // Unrestricted network: nothing to protect.
    let all = PolicyBuilder::new("t").net_all().build();
    assert!(!ll(&all, 7, false).seccomp.deny_listen);

    let listens = PolicyBuilder::new("t")
        .listen(Protocol::Tcp, "3000")
        .build();
    let plan = ll(&listens, 7, false);
    assert!(!plan.seccomp.deny_listen);
    let gaps: Vec<(&str, GapDirection)> = plan
        .gaps
        .iter()
        .map(|g| (g.feature.as_str(), g.direction))
        .collect();
    assert_eq!(
        gaps,
        [(
            "listen(2) on an unbound TCP socket",
            GapDirection::AllowsMore
        )]
    );
    let kernel = ll(&listens, 7, true);
    assert!(kernel.gaps.is_empty(), "{:#?}", kernel.gaps);
    assert!(kernel
        .covered_by_kernel_layer
        .iter()
        .any(|g| g.feature == "listen(2) on an unbound TCP socket"));
    // A UDP listen rule needs no listen(2): seccomp may still refuse it.
    let udp = PolicyBuilder::new("t")
        .listen(Protocol::Udp, "5353")
        .build();
    assert!(ll(&udp, 7, false).seccomp.deny_listen);
}

#[test]
fn ports_too_wide_for_landlock() {
    let every = PolicyBuilder::new("t")
        .cidr("10.0.0.0/8", Protocol::Tcp, "")
        .build();
    let plan = ll(&every, 7, false);
    assert_eq!(
        features(&plan),
        [(Some(1), "port range too wide for Landlock rules".into())]
    );
    assert_eq!(plan.gaps[0].direction, GapDirection::AllowsLess);
    assert!(plan.port_rules.is_empty());
    assert_eq!(plan.handled_net, [NetRight::BindTcp, NetRight::ConnectTcp]);
    // The kernel layer takes TCP connect over.
    let plan = ll(&every, 7, true);
    assert!(plan.gaps.is_empty());
    assert_eq!(plan.handled_net, [NetRight::BindTcp]);
    assert!(plan
        .notes
        .iter()
        .any(|n| n.contains("TCP connect is left to the eBPF")));

    let limit = PolicyBuilder::new("t")
        .cidr(
            "10.0.0.0/8",
            Protocol::Tcp,
            &format!("2000-{}", 2000 + MAX_PORTS_PER_RULE - 1),
        )
        .build();
    assert_eq!(
        ll(&limit, 7, true).port_rules.len() as u32,
        MAX_PORTS_PER_RULE
    );
    let over = PolicyBuilder::new("t")
        .listen(
            Protocol::Tcp,
            &format!("2000-{}", 2000 + MAX_PORTS_PER_RULE),
        )
        .build();
    assert_eq!(features(&ll(&over, 7, false)).len(), 1);
    assert_eq!(ll(&over, 7, true).handled_net, [NetRight::ConnectTcp]);
}

#[test]
fn listen_and_connect_share_port_rules() {
    let p = PolicyBuilder::new("t")
        .listen(Protocol::Tcp, "8080")
        .cidr("127.0.0.0/8", Protocol::Tcp, "8080")
        .build();
    let plan = ll(&p, 7, true);
    let r = port(&plan, 8080).unwrap();
    assert_eq!(r.rights, [NetRight::BindTcp, NetRight::ConnectTcp]);
    assert_eq!(r.rules, [RuleId(1), RuleId(2)]);
}

#[test]
fn udp_needs_the_kernel_layer() {
    let p = PolicyBuilder::new("t")
        .cidr("1.1.1.1", Protocol::Udp, "53")
        .listen(Protocol::Udp, "5353")
        .build();
    let plan = ll(&p, 7, false);
    assert!(plan.seccomp.deny_udp_and_raw, "UDP stays blocked");
    assert_eq!(features(&plan).len(), 2);
    assert!(plan
        .gaps
        .iter()
        .all(|g| g.direction == GapDirection::AllowsLess));
    let plan = ll(&p, 7, true);
    assert!(!plan.seccomp.deny_udp_and_raw);
    assert!(plan.gaps.is_empty());
}

#[test]
fn domains_need_the_kernel_layer_or_proxy() {
    let p = PolicyBuilder::new("t").domain("github.com", "").build();
    let plan = ll(&p, 7, false);
    let g = gaps_for(&plan, 1);
    assert_eq!(g[0].feature, "domain allowlist");
    assert_eq!(
        g[0].needs,
        "the eBPF kernel layer's network programs (root) or nono's local proxy (Landlock ABI 4)"
    );
    assert!(port(&plan, 80).is_some() && port(&plan, 443).is_some());
    assert!(plan
        .notes
        .iter()
        .any(|n| n.contains("port 80 (the metadata service)")));
    assert!(ll(&p, 7, true).gaps.is_empty());
}

#[test]
fn tcp_below_abi_4() {
    let p = PolicyBuilder::new("t")
        .domain("github.com", "443")
        .listen(Protocol::Tcp, "8080")
        .build();
    let plan = ll(&p, 3, false);
    assert_eq!(
        features(&plan),
        [
            (Some(1), "Landlock ABI 4 (Linux 6.7)".into()),
            (Some(2), "Landlock ABI 4 (Linux 6.7)".into()),
            (None, "Landlock ABI 6 (Linux 6.12)".into()),
            (None, "Landlock ABI 6 (Linux 6.12)".into()),
        ]
    );
    assert!(plan.seccomp.deny_inet);
    // The kernel layer's cgroup programs filter TCP instead; inet must stay open for them.
    let plan = ll(&p, 3, true);
    assert!(!plan.seccomp.deny_inet);
    assert!(plan.gaps.iter().all(|g| !g.feature.contains("ABI 4")));
}

// -------------------------------------------------------------------------------------------
// Landlock: scopes, unix sockets

#[test]
fn scopes_need_abi_6_even_with_the_kernel_layer() {
    let p = PolicyBuilder::new("t").build();
    for abi in 0..=7 {
        for kernel in [false, true] {
            let plan = ll(&p, abi, kernel);
            let scope_gaps = plan
                .gaps
                .iter()
                .filter(|g| g.feature == "Landlock ABI 6 (Linux 6.12)")
                .count();
            assert_eq!(scope_gaps, if abi < 6 { 2 } else { 0 }, "abi {abi}");
            assert_eq!(plan.scope_signals, abi >= 6);
            assert_eq!(plan.scope_abstract_unix, abi >= 6);
        }
    }
    let off = PolicyBuilder::new("t").scopes(false, false).build();
    assert!(ll(&off, 5, false).gaps.is_empty());
    assert!(!ll(&off, 7, false).scope_signals);
}

#[test]
fn path_unix_sockets_close_the_family_without_the_kernel_layer() {
    let p = PolicyBuilder::new("t")
        .unix_socket("/var/run/docker.sock")
        .build();
    let plan = ll(&p, 7, false);
    assert!(plan.seccomp.deny_unix_sockets);
    assert_eq!(
        features(&plan),
        [(Some(1), "path unix socket filtering".into())]
    );
    assert_eq!(plan.gaps[0].direction, GapDirection::AllowsLess);
    assert!(plan
        .notes
        .iter()
        .any(|n| n.contains("AF_UNIX sockets are closed")));
    let with = ll(&p, 7, true);
    assert!(with.gaps.is_empty() && !with.seccomp.deny_unix_sockets);
    assert_eq!(with.covered_by_kernel_layer.len(), 1);
    assert!(!with.notes.iter().any(|n| n.contains("AF_UNIX")));
    // Without any grant the family is simply closed: no gap.
    let none = ll(&PolicyBuilder::new("t").build(), 7, false);
    assert!(none.gaps.is_empty() && none.seccomp.deny_unix_sockets);
}

// -------------------------------------------------------------------------------------------
// Whole plans at each ABI, determinism

#[test]
fn default_like_policy_at_every_abi() {
    let p = default_like();
    let summary = |abi: u8, kernel: bool| {
        let mut f: Vec<String> = ll(&p, abi, kernel)
            .gaps
            .iter()
            .map(|g| g.feature.clone())
            .collect();
        f.sort();
        f.dedup();
        f
    };
    // With the kernel layer only the kernel's own limits remain.
    assert!(summary(7, true).is_empty());
    assert!(summary(6, true).is_empty());
    assert_eq!(summary(5, true), ["Landlock ABI 6 (Linux 6.12)"]);
    assert_eq!(
        summary(2, true),
        ["Landlock ABI 3 (Linux 6.2)", "Landlock ABI 6 (Linux 6.12)"]
    );
    assert_eq!(
        summary(7, false),
        [
            "TCP address filtering",
            "deny inside an allowed tree",
            "domain allowlist",
            "listen(2) on an unbound TCP socket",
            "path unix socket filtering"
        ]
    );
    assert_eq!(
        summary(3, false),
        [
            "Landlock ABI 4 (Linux 6.7)",
            "Landlock ABI 6 (Linux 6.12)",
            "deny inside an allowed tree",
            "path unix socket filtering"
        ]
    );
    assert_eq!(summary(0, false)[0], "Landlock (Linux 5.13)");
}

#[test]
fn deny_inside_grants_in_the_default_like_policy() {
    let plan = ll(&default_like(), 7, false);
    let texts: Vec<&str> = plan
        .gaps
        .iter()
        .filter(|g| g.feature == "deny inside an allowed tree")
        .map(|g| g.rule_text.as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "deny $WORKDIR/.env (inside readwrite $WORKDIR/**)",
            "deny $WORKDIR/.git/hooks/** (inside readwrite $WORKDIR/**)",
            "deny write $HOME/.cargo/registry/cache/** (inside readwrite $HOME/.cargo/registry/**)",
        ]
    );
    // The read/exec-only trees are split around their denies instead.
    let etc: Vec<String> = carved(&plan, "/etc/**").into_iter().map(|c| c.0).collect();
    assert_eq!(etc, ["/etc/shadow", "/etc/ssl/private/**", "/etc/sudoers"]);
    let usr: Vec<String> = carved(&plan, "/usr/**").into_iter().map(|c| c.0).collect();
    assert_eq!(usr, ["/usr/bin/pkexec", "/usr/bin/su", "/usr/bin/sudo"]);
}

fn reversed(p: &Policy) -> Policy {
    let mut r = p.clone();
    r.fs.reverse();
    r.exec.deny.reverse();
    r.net.domains.reverse();
    r.net.cidrs.reverse();
    r.net.listen.reverse();
    r.ipc.unix_sockets.reverse();
    r
}

#[test]
fn plans_do_not_depend_on_rule_order() {
    let p = default_like();
    let r = reversed(&p);
    for abi in [0, 1, 3, 4, 7] {
        for kernel in [false, true] {
            let t = Target {
                landlock_abi: abi,
                kernel_layer: kernel,
            };
            assert_eq!(landlock::plan(&p, &t), landlock::plan(&r, &t));
            assert_eq!(ebpf::plan(&p, &t), ebpf::plan(&r, &t));
        }
    }
}

// -------------------------------------------------------------------------------------------
// eBPF

#[test]
fn ebpf_fs_denies_pin_their_object() {
    let p = PolicyBuilder::new("t")
        .deny_access(Access::READ, "/b/**")
        .deny("/a")
        .build();
    let e = ebpf::plan(&p, &Target::landlock_only(7));
    let paths: Vec<String> = e.fs_denies.iter().map(|d| d.path.to_string()).collect();
    assert_eq!(paths, ["/a", "/b/**"]);
    assert_eq!(
        e.fs_denies[1].ops,
        FsOps::READ.union(FsOps::RENAME).union(FsOps::LINK)
    );
    assert_eq!(
        e.fs_denies[0].ops.names(),
        [
            "read", "write", "exec", "create", "unlink", "rename", "link", "truncate", "chmod",
            "setattr"
        ]
    );
}

#[test]
fn ebpf_lpm_entries_fold_and_keep_implicit_denies() {
    let p = PolicyBuilder::new("t")
        .cidr("0.0.0.0/0", Protocol::Tcp, "443")
        .cidr("10.0.0.0/8", Protocol::Tcp, "22")
        .cidr("10.1.0.0/16", Protocol::Udp, "53")
        .cidr("169.254.10.0/24", Protocol::Tcp, "80")
        .cidr("::/0", Protocol::Tcp, "443")
        .build();
    let net = ebpf::plan(&p, &Target::landlock_only(7)).net.unwrap();
    /// (LPM key, TCP (first port, rule), UDP (first port, rule), implicit deny)
    type V4Entry = (
        String,
        Vec<(u16, u32)>,
        Vec<(u16, u32)>,
        Option<ImplicitDeny>,
    );
    let v4: Vec<V4Entry> = net
        .v4
        .iter()
        .map(|e| {
            (
                format!("{:?}", e.key),
                e.tcp.iter().map(|g| (g.first, g.rule.0)).collect(),
                e.udp.iter().map(|g| (g.first, g.rule.0)).collect(),
                e.implicit_deny,
            )
        })
        .collect();
    assert_eq!(
        v4,
        [
            ("LpmKey(0.0.0.0/0)".into(), vec![(443, 1)], vec![], None),
            (
                "LpmKey(10.0.0.0/8)".into(),
                vec![(22, 2), (443, 1)],
                vec![],
                None
            ),
            (
                "LpmKey(10.1.0.0/16)".into(),
                vec![(22, 2), (443, 1)],
                vec![(53, 3)],
                None
            ),
            (
                "LpmKey(100.100.100.200/32)".into(),
                vec![],
                vec![],
                Some(ImplicitDeny::CloudMetadata)
            ),
            (
                "LpmKey(169.254.0.0/16)".into(),
                vec![],
                vec![],
                Some(ImplicitDeny::LinkLocal)
            ),
            // Folding stops at the implicit deny: 443 from 0.0.0.0/0 does not reach in.
            (
                "LpmKey(169.254.10.0/24)".into(),
                vec![(80, 4)],
                vec![],
                None
            ),
            (
                "LpmKey(169.254.169.254/32)".into(),
                vec![],
                vec![],
                Some(ImplicitDeny::CloudMetadata)
            ),
        ]
    );
    assert_eq!(net.v6.len(), 4);
    assert_eq!(net.v6[0].key.prefix_len, 0);
    assert_eq!(net.v6[0].key.addr, [0; 16]);
}

#[test]
fn naming_a_metadata_address_exactly_lifts_its_deny() {
    let p = PolicyBuilder::new("t")
        .cidr("169.254.169.254", Protocol::Tcp, "80")
        .build();
    let net = ebpf::plan(&p, &Target::landlock_only(7)).net.unwrap();
    let md = net
        .v4
        .iter()
        .find(|e| e.key.addr == [169, 254, 169, 254])
        .unwrap();
    assert_eq!(md.implicit_deny, None);
    assert_eq!(md.tcp.len(), 1);
    assert!(net
        .v4
        .iter()
        .any(|e| e.implicit_deny == Some(ImplicitDeny::LinkLocal)));
}

#[test]
fn ebpf_rule_table_and_other_maps() {
    let p = default_like();
    let e = ebpf::plan(&p, &Target::landlock_only(7));
    assert_eq!(e.rule_table.len(), 63);
    assert_eq!(e.rule_table[0].text, "exec /usr/**");
    assert_eq!(
        e.rule_table[0].origin.as_ref().unwrap().to_string(),
        "profiles/default-like.nono:1:1"
    );
    assert_eq!(e.exec_denies.len(), 3);
    assert!(e.exec_allow_only.is_none());
    assert_eq!(e.unix_socket_grants.len(), 2);
    let net = e.net.as_ref().unwrap();
    assert_eq!(net.runtime_resolved_domains.len(), 10);
    assert_eq!(net.listen.len(), 2);
    let json = serde_json::to_string(&e).unwrap();
    assert_eq!(serde_json::from_str::<ebpf::EbpfPlan>(&json).unwrap(), e);
}

/// The rule table pairs each rule with its first origin however the provenance is shaped:
/// rules without one, origins of ids that are not rules, several origins for one rule.
#[test]
fn ebpf_rule_table_origins_match_a_lookup_per_rule() {
    use nono_policy::ir::{Origin, RuleId};
    let mut p = default_like();
    let origin = |line| Origin {
        source: "extra.nono".into(),
        line,
        column: 1,
    };
    p.provenance.rules.remove(&RuleId(1));
    p.provenance.rules.remove(&RuleId(30));
    p.provenance.rules.remove(&RuleId(63));
    p.provenance.rules.insert(RuleId(0), vec![origin(1)]);
    p.provenance.rules.insert(RuleId(500), vec![origin(2)]);
    p.provenance
        .rules
        .insert(RuleId(2), vec![origin(3), origin(4)]);
    p.provenance.rules.insert(RuleId(31), Vec::new());
    let e = ebpf::plan(&p, &Target::landlock_only(7));
    assert_eq!(e.rule_table.len(), 63);
    for entry in &e.rule_table {
        assert_eq!(
            entry.origin.as_ref(),
            p.provenance.origin(entry.id),
            "{}",
            entry.id
        );
    }
    assert!(e.rule_table[0].origin.is_none());
    assert_eq!(e.rule_table[1].origin, Some(origin(3)));
}

// -------------------------------------------------------------------------------------------
// Seatbelt

#[test]
fn seatbelt_puts_denies_after_grants() {
    let sb = seatbelt::profile(&default_like());
    let grant = sb
        .find("(allow file-read* file-write* (subpath (param \"WORKDIR\")))")
        .unwrap();
    let deny = sb
        .find("(deny file-read* file-write* process-exec (subpath (string-append (param \"HOME\") \"/.ssh\")))")
        .unwrap();
    assert!(grant < deny);
    assert!(sb.starts_with(";; nono policy default-like 1.0\n"));
    assert!(sb.contains("(version 1)\n(deny default)\n"));
    assert!(sb.contains(";; r1 exec /usr/** from profiles/default-like.nono:1:1\n"));
    assert!(sb.contains("(allow network-outbound (remote tcp \"localhost:5432\"))"));
    assert!(sb.contains("(allow file-read* file-write* (subpath \"/private/tmp\"))"));
}

#[test]
fn seatbelt_exec_only_and_net_all() {
    let p = PolicyBuilder::new("t")
        .exec("/usr/**")
        .exec_only("/usr/bin/git")
        .net_all()
        .build();
    let sb = seatbelt::profile(&p);
    assert!(sb.contains(
        "(deny process-exec (require-not (require-any\n  (literal \"/usr/bin/git\")\n)))"
    ));
    assert!(sb.contains("(allow network*)"));
}

#[test]
fn seatbelt_cannot_be_injected_through_a_path() {
    let p = PolicyBuilder::new("t")
        .read("/x\n(allow default)\n;")
        .build();
    let sb = seatbelt::profile(&p);
    assert!(
        !sb.lines().any(|l| l.starts_with("(allow default)")),
        "{sb}"
    );
}

// -------------------------------------------------------------------------------------------
// Artifact

#[test]
fn artifacts_are_byte_identical_and_round_trip() {
    let p = default_like();
    let t = Target::landlock_only(7);
    let a = CompiledPolicy::build(&p, t);
    let b = CompiledPolicy::build(&reversed(&p), t);
    assert_eq!(
        a.to_json_pretty(),
        CompiledPolicy::build(&p, t).to_json_pretty()
    );
    assert_eq!(a.landlock, b.landlock);
    assert_eq!(a.ebpf, b.ebpf);
    assert!(a.digest.starts_with("sha256:") && a.digest.len() == 7 + 64);
    assert_eq!(a.format, "nono.compiled-policy");
    assert_eq!(a.format_version, 2);
    assert_eq!(
        a.compiler,
        format!("nono-policy {}", env!("CARGO_PKG_VERSION"))
    );

    let back = CompiledPolicy::from_json(&a.to_json_pretty()).unwrap();
    assert_eq!(back, a);
    back.verify().unwrap();
    // Whitespace is not part of the digest.
    let compact = serde_json::to_string(&a).unwrap();
    CompiledPolicy::from_json(&compact)
        .unwrap()
        .verify()
        .unwrap();
}

#[test]
fn tampering_is_detected() {
    let a = CompiledPolicy::build(&default_like(), Target::landlock_only(7));
    let json = a.to_json_pretty();

    let edited = json.replacen("\"$HOME/.ssh/**\"", "\"$HOME/.ssh2/**\"", 1);
    assert_ne!(edited, json);
    let e = CompiledPolicy::from_json(&edited).unwrap().verify_digest();
    assert!(matches!(e, Err(ArtifactError::Digest { .. })), "{e:?}");

    // The digest covers the inputs only; a plan edited by hand (digest recomputed or not)
    // is refused by verify(), which recompiles every plan from the digested policy.
    let mut forged = a.clone();
    forged.landlock.gaps.clear();
    forged.digest = forged.compute_digest();
    forged.verify_digest().unwrap();
    assert!(matches!(
        forged.verify(),
        Err(ArtifactError::Stale("Landlock", ..))
    ));
    let mut forged = a.clone();
    forged.landlock.gaps.clear();
    assert_eq!(forged.digest, a.digest);
    assert!(matches!(
        forged.verify(),
        Err(ArtifactError::Stale("Landlock", ..))
    ));
    let edited = json.replacen("(deny file-read*", "(allow file-read*", 1);
    assert_ne!(edited, json, "the Seatbelt profile has a deny to flip");
    assert!(matches!(
        CompiledPolicy::from_json(&edited).unwrap().verify(),
        Err(ArtifactError::Stale("Seatbelt", ..))
    ));
    let mut forged = a.clone();
    forged.ebpf.fs_denies.pop();
    assert!(matches!(
        forged.verify(),
        Err(ArtifactError::Stale("eBPF", ..))
    ));
    // And an edited input breaks the digest, so the plans cannot be matched to another
    // policy or target behind the digest's back.
    let mut forged = a.clone();
    forged.target = Target::landlock_only(3);
    assert!(matches!(forged.verify(), Err(ArtifactError::Digest { .. })));

    let wrong = json.replacen("\"format_version\": 2", "\"format_version\": 3", 1);
    assert!(matches!(
        CompiledPolicy::from_json(&wrong),
        Err(ArtifactError::Version(3))
    ));
    let old = json.replacen("\"format_version\": 2", "\"format_version\": 1", 1);
    assert!(matches!(
        CompiledPolicy::from_json(&old),
        Err(ArtifactError::Version(1))
    ));
    let wrong = json.replacen("nono.compiled-policy", "something-else", 1);
    assert!(matches!(
        CompiledPolicy::from_json(&wrong),
        Err(ArtifactError::Format(_))
    ));
}

// -------------------------------------------------------------------------------------------
// Report

#[test]
fn abi_losses_compare_with_the_newest_abi() {
    let p = PolicyBuilder::new("t")
        .readwrite("$HOME/**")
        .deny("$HOME/.ssh/**")
        .cidr("127.0.0.1", Protocol::Tcp, "8080")
        .build();
    let losses = abi_losses(&p);
    assert_eq!(
        losses.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 7]
    );
    let lost = |abi: usize| -> Vec<String> {
        losses[abi - 1]
            .1
            .iter()
            .map(|g| g.feature.clone())
            .collect()
    };
    assert!(lost(7).is_empty());
    assert!(lost(6).is_empty());
    assert_eq!(
        lost(5),
        ["Landlock ABI 6 (Linux 6.12)", "Landlock ABI 6 (Linux 6.12)"]
    );
    assert_eq!(lost(4), lost(5));
    // Below 4 the cidr rule is not granted at all; its ABI-7 address gap is not a loss.
    assert_eq!(
        lost(3),
        [
            "Landlock ABI 4 (Linux 6.7)",
            "Landlock ABI 6 (Linux 6.12)",
            "Landlock ABI 6 (Linux 6.12)"
        ]
    );
    assert!(lost(2).contains(&"Landlock ABI 3 (Linux 6.2)".to_string()));
}

#[test]
fn report_lists_rules_mechanisms_and_warnings() {
    let a = CompiledPolicy::build(&default_like(), Target::landlock_only(7));
    let text = render_text(&a);
    assert_eq!(text, render_text(&a));
    for needle in [
        "nono compiled policy: default-like 1.0",
        "target:       Landlock ABI 7 (Linux 6.15+), eBPF kernel layer: no",
        "source:   profiles/default-like.nono:1:1",
        "Landlock path-beneath execute|read_file|read_dir on /usr/**",
        "NOT AS WRITTEN: deny inside an allowed tree",
        "Landlock net port connect_tcp 3000-3010,5432,8080",
        "WARNINGS (",
        "OLDER KERNELS",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in\n{text}");
    }
    let k = CompiledPolicy::build(
        &default_like(),
        Target {
            landlock_abi: 7,
            kernel_layer: true,
        },
    );
    let text = render_text(&k);
    assert!(text.contains(
        "eBPF LSM deny read|write|exec|create|unlink|rename|link|truncate|chmod|setattr"
    ));
    assert!(text.contains("WARNINGS (0)"));
}

#[test]
fn kernel_layer_closes_gaps_and_says_which() {
    let p = default_like();
    let without = ll(&p, 7, false);
    let with = ll(&p, 7, true);
    assert!(with.gaps.is_empty());
    // Everything that is a gap without the kernel layer is covered with it; so are the denies
    // that Landlock alone enforces by splitting a read-only grant.
    for g in &without.gaps {
        assert!(with.covered_by_kernel_layer.contains(g), "{g:#?}");
    }
    let carved_rules: usize = without.path_rules.iter().map(|r| r.carve_outs.len()).sum();
    assert!(carved_rules > 0);
    assert!(with.covered_by_kernel_layer.len() > without.gaps.len());
    assert!(without.covered_by_kernel_layer.is_empty());
    // The report must not claim Landlock's default deny holds a deny inside a grant.
    let text = render_text(&CompiledPolicy::build(
        &p,
        Target {
            landlock_abi: 7,
            kernel_layer: true,
        },
    ));
    let r40 = text
        .split("  r40 ")
        .nth(1)
        .unwrap()
        .split("  r41 ")
        .next()
        .unwrap();
    assert!(!r40.contains("Landlock default deny"), "{r40}");
    assert!(r40.contains("Landlock alone cannot (deny inside an allowed tree)"));
}

/// The runtime probes each part of the kernel layer on its own: a gap counts as covered only
/// when the part that closes it is active. Network part alone (a kernel that refuses BPF LSM):
/// address and UDP rules are covered, a deny inside a writable grant stays a gap, unix sockets
/// stay closed by seccomp.
#[test]
fn kernel_coverage_is_per_part() {
    use nono_policy::backend::landlock::{plan_with_coverage, KernelCoverage};
    let p = PolicyBuilder::new("parts")
        .readwrite("/home/u/**")
        .exec("/home/u/**")
        .deny("/home/u/.ssh/**")
        .exec_deny("/home/u/bin/tool")
        .cidr("10.0.0.0/8", Protocol::Tcp, "443")
        .cidr("10.0.0.53/32", Protocol::Udp, "53")
        .unix_socket("/run/agent.sock")
        .build();
    let gap_rules = |plan: &LandlockPlan| -> Vec<u32> {
        plan.gaps
            .iter()
            .filter_map(|g| g.rule)
            .map(|r| r.0)
            .collect()
    };
    let covered_rules = |plan: &LandlockPlan| -> Vec<u32> {
        plan.covered_by_kernel_layer
            .iter()
            .filter_map(|g| g.rule)
            .map(|r| r.0)
            .collect()
    };
    let none = plan_with_coverage(&p, 7, KernelCoverage::NONE);
    let net_only = plan_with_coverage(
        &p,
        7,
        KernelCoverage {
            net: true,
            keep_splits: true,
            ..KernelCoverage::NONE
        },
    );
    let files_only = plan_with_coverage(
        &p,
        7,
        KernelCoverage {
            files: true,
            exec: true,
            keep_splits: true,
            ..KernelCoverage::NONE
        },
    );
    let id_of = |text: &str| -> u32 {
        p.rule_summaries()
            .into_iter()
            .find(|(_, t)| t.contains(text))
            .unwrap_or_else(|| panic!("no rule {text}"))
            .0
             .0
    };
    let (ssh, tool, tcp, udp, sock) = (
        id_of(".ssh"),
        id_of("tool"),
        id_of("10.0.0.0/8"),
        id_of("10.0.0.53"),
        id_of("agent.sock"),
    );
    for id in [ssh, tool, tcp, udp, sock] {
        assert!(gap_rules(&none).contains(&id), "r{id} without the layer");
    }
    // Network part only.
    assert!(covered_rules(&net_only).contains(&tcp) && covered_rules(&net_only).contains(&udp));
    for id in [ssh, tool, sock] {
        assert!(
            gap_rules(&net_only).contains(&id),
            "r{id} with the network part only"
        );
    }
    assert!(
        !net_only.seccomp.deny_udp_and_raw,
        "UDP rules need UDP sockets"
    );
    assert!(net_only.seccomp.deny_unix_sockets);
    // File (and exec) hooks only.
    assert!(covered_rules(&files_only).contains(&ssh));
    assert!(covered_rules(&files_only).contains(&tool));
    for id in [tcp, udp, sock] {
        assert!(
            gap_rules(&files_only).contains(&id),
            "r{id} with the file hooks only"
        );
    }
    assert!(files_only.seccomp.deny_udp_and_raw);
}

/// Seatbelt rule comments name each rule's first origin, looked up by id: also for ids that
/// are not dense (a policy edited or built by hand) and rules without provenance.
#[test]
fn seatbelt_comments_name_origins_for_sparse_ids_and_missing_provenance() {
    let mut p = default_like();
    // No provenance for r2; r63 renumbered to r1000 with its own origin.
    p.provenance.rules.remove(&RuleId(2));
    let socket = p
        .ipc
        .unix_sockets
        .last_mut()
        .expect("default_like has sockets");
    let old = socket.id;
    socket.id = RuleId(1000);
    let origins = p
        .provenance
        .rules
        .remove(&old)
        .expect("origin of the last rule");
    p.provenance.rules.insert(RuleId(1000), origins);
    let sb = seatbelt::profile(&p);
    for (id, text) in p.rule_summaries() {
        let expected = match p.provenance.origin(id) {
            Some(o) => format!(";; {id} {text} from {o}"),
            None => format!(";; {id} {text}"),
        };
        assert!(
            sb.lines().any(|l| l == expected),
            "missing `{expected}` in\n{sb}"
        );
    }
    assert!(sb
        .lines()
        .any(|l| l.starts_with(";; r1000 ipc unix-socket ")));
}

/// A policy large enough to be hashed on a second thread seals the same digest as the
/// one-thread path (`policy_digest`) and as recomputing it from the artifact.
#[test]
fn parallel_digest_equals_the_sequential_one() {
    let mut b = PolicyBuilder::new("big");
    for i in 0..1500 {
        b = b.read(&format!("/srv/data/d{i}/**"));
        if i % 10 == 0 {
            b = b.deny(&format!("/srv/data/d{i}/secret"));
        }
    }
    let policy = b.build();
    assert!(
        policy.max_rule_id() >= 1000,
        "large enough for the parallel path"
    );
    let target = Target {
        landlock_abi: 7,
        kernel_layer: false,
    };
    let sequential = nono_policy::artifact::policy_digest(&policy, target);
    let compiled = CompiledPolicy::from_policy(policy, target);
    assert_eq!(compiled.digest, sequential);
    assert_eq!(compiled.compute_digest(), compiled.digest);
}
