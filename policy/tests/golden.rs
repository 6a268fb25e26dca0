//! Golden files for the report, the Seatbelt profile and the artifact. Rewrite them with
//! `UPDATE_GOLDEN=1 cargo test -p nono-policy --test golden` and review the diff.

mod common;

use common::{assert_compiled_goldens, default_like, PolicyBuilder};
use nono_policy::backend::Target;
use nono_policy::ir::Access;
use nono_policy::net::Protocol;

#[test]
fn default_like_landlock_only() {
    assert_compiled_goldens(
        "default-like-abi7",
        &default_like(),
        Target::landlock_only(7),
    );
}

#[test]
fn default_like_with_kernel_layer() {
    assert_compiled_goldens(
        "default-like-abi7-kernel",
        &default_like(),
        Target {
            landlock_abi: 7,
            kernel_layer: true,
        },
    );
}

/// An older kernel, exec-only, UDP, a wide listen range and a grant shadowed by a deny.
#[test]
fn mixed_on_abi_3() {
    let policy = PolicyBuilder::new("mixed")
        .version("0.3")
        .exec("/usr/**")
        .readwrite("$WORKDIR/**")
        .read("$XDG_CONFIG_HOME/**")
        .deny("$XDG_CONFIG_HOME/gcloud/**")
        .read("$XDG_CONFIG_HOME/gcloud/configurations/config_default")
        .deny_access(Access::WRITE, "$WORKDIR/.git/**")
        .exec_only("/usr/bin/**")
        .exec_deny("/usr/bin/curl")
        .domain("github.com", "")
        .cidr("10.0.0.0/8", Protocol::Tcp, "22,443")
        .cidr("1.1.1.1", Protocol::Udp, "53")
        .listen(Protocol::Tcp, "8000-9999")
        .unix_socket("/var/run/docker.sock")
        .build();
    assert_compiled_goldens("mixed-abi3", &policy, Target::landlock_only(3));
}

/// Every built-in profile, compiled from its embedded source, on the newest Landlock ABI: a
/// change to a built-in profile or to a back-end shows up here as a reviewable diff.
#[test]
fn builtin_profiles() {
    use nono_policy::builtin::Builtins;
    use nono_policy::source::ProfileSource;
    for name in Builtins.profile_names() {
        let root = Builtins.profile(&name).unwrap();
        let policy = nono_policy::resolve::compile(&root, &Builtins)
            .unwrap_or_else(|e| panic!("{name}:\n{e}"));
        assert_compiled_goldens(
            &format!("builtin-{name}"),
            &policy,
            Target::landlock_only(7),
        );
    }
}
