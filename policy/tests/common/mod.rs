//! Shared by the integration tests and the bench (`#[path]`-included there): a builder for IR
//! policies written in code, and golden-file comparison.
#![allow(dead_code)]

use std::path::PathBuf;

use nono_policy::ir::*;
use nono_policy::net::{parse_cidr, DomainPattern, PortRange, PortSet, Protocol};
use nono_policy::path::PolicyPath;

/// Builds a [`Policy`] rule by rule. Ids follow the order rules are added, and each rule gets
/// an origin `<source>:<id>:1`, as if every rule were on its own line.
pub struct PolicyBuilder {
    policy: Policy,
    next: u32,
    source: String,
}

pub fn ports(spec: &str) -> PortSet {
    if spec.is_empty() {
        return PortSet::default();
    }
    PortSet::new(
        spec.split(',')
            .map(|p| PortSet::parse_range(p).expect("valid port"))
            .collect::<Vec<PortRange>>(),
    )
}

pub fn path(text: &str) -> PolicyPath {
    PolicyPath::parse(text).expect("valid path")
}

impl PolicyBuilder {
    pub fn new(name: &str) -> PolicyBuilder {
        PolicyBuilder {
            policy: Policy {
                meta: Meta {
                    name: name.to_string(),
                    ..Meta::default()
                },
                fs: Vec::new(),
                exec: ExecPolicy::default(),
                net: NetPolicy::default(),
                ipc: IpcPolicy::default(),
                env: EnvPolicy::default(),
                audit: AuditPolicy::default(),
                rollback: RollbackPolicy::default(),
                overrides: Overrides::default(),
                provenance: Provenance::default(),
            },
            next: 1,
            source: format!("profiles/{name}.nono"),
        }
    }

    fn id(&mut self) -> RuleId {
        let id = RuleId(self.next);
        self.next += 1;
        self.policy.provenance.rules.insert(
            id,
            vec![Origin {
                source: self.source.as_str().into(),
                line: id.0,
                column: 1,
            }],
        );
        id
    }

    pub fn version(mut self, v: &str) -> Self {
        self.policy.meta.version = Some(v.to_string());
        self
    }

    pub fn fs(mut self, effect: Effect, access: Access, p: &str) -> Self {
        let id = self.id();
        self.policy.fs.push(FsRule {
            id,
            path: path(p),
            effect,
            access,
        });
        self
    }
    pub fn read(self, p: &str) -> Self {
        self.fs(Effect::Allow, Access::READ, p)
    }
    pub fn write(self, p: &str) -> Self {
        self.fs(Effect::Allow, Access::WRITE, p)
    }
    pub fn readwrite(self, p: &str) -> Self {
        self.fs(Effect::Allow, Access::READ_WRITE, p)
    }
    pub fn exec(self, p: &str) -> Self {
        self.fs(Effect::Allow, Access::EXEC, p)
    }
    /// Deny every access.
    pub fn deny(self, p: &str) -> Self {
        self.fs(Effect::Deny, Access::ALL, p)
    }
    pub fn deny_access(self, access: Access, p: &str) -> Self {
        self.fs(Effect::Deny, access, p)
    }

    pub fn exec_deny(mut self, p: &str) -> Self {
        let id = self.id();
        self.policy.exec.deny.push(ExecRule { id, path: path(p) });
        self
    }
    pub fn exec_only(mut self, p: &str) -> Self {
        let id = self.id();
        self.policy
            .exec
            .allow_only
            .get_or_insert_with(Vec::new)
            .push(ExecRule { id, path: path(p) });
        self
    }

    pub fn net_all(mut self) -> Self {
        self.policy.net.mode = NetMode::Unrestricted;
        self
    }
    /// `ports` like `"80,443"`; empty means the web default.
    pub fn domain(mut self, d: &str, p: &str) -> Self {
        let id = self.id();
        self.policy.net.domains.push(DomainRule {
            id,
            domain: DomainPattern::parse(d).expect("valid domain"),
            ports: if p.is_empty() {
                PortSet::web_default()
            } else {
                ports(p)
            },
        });
        self
    }
    /// `ports` like `"443"` or `"8000-8100"`; empty means every port.
    pub fn cidr(mut self, net: &str, protocol: Protocol, p: &str) -> Self {
        let id = self.id();
        self.policy.net.cidrs.push(CidrRule {
            id,
            net: parse_cidr(net).expect("valid cidr"),
            protocol,
            ports: ports(p),
        });
        self
    }
    pub fn listen(mut self, protocol: Protocol, p: &str) -> Self {
        let id = self.id();
        self.policy.net.listen.push(ListenRule {
            id,
            protocol,
            ports: ports(p),
        });
        self
    }

    pub fn unix_socket(mut self, p: &str) -> Self {
        let id = self.id();
        self.policy
            .ipc
            .unix_sockets
            .push(UnixSocketRule { id, path: path(p) });
        self
    }
    pub fn scopes(mut self, signals: bool, abstract_unix: bool) -> Self {
        self.policy.ipc.scope_signals = signals;
        self.policy.ipc.scope_abstract_unix = abstract_unix;
        self
    }

    pub fn build(self) -> Policy {
        self.policy
    }
}

/// A policy shaped like nono's default profile for a coding agent: system read/exec, the
/// project read-write, caches, toolchains, secrets denied, a web allowlist. 63 rules.
pub fn default_like() -> Policy {
    let mut b = PolicyBuilder::new("default-like").version("1.0");
    for p in [
        "/usr/**",
        "/bin/**",
        "/sbin/**",
        "/lib/**",
        "/lib64/**",
        "/opt/**",
        "/nix/store/**",
    ] {
        b = b.exec(p);
    }
    for p in [
        "/etc/**",
        "/proc/self/**",
        "/sys/devices/system/cpu/**",
        "/dev/urandom",
        "/dev/random",
        "/run/systemd/resolve/**",
        "$HOME/.gitconfig",
        "$XDG_CONFIG_HOME/git/**",
        "$HOME/.npmrc",
        "$HOME/.rustup/**",
        "$XDG_CONFIG_HOME/gh/**",
        "$HOME/.local/bin/**",
    ] {
        b = b.read(p);
    }
    for p in [
        "$WORKDIR/**",
        "$TMPDIR/**",
        "/tmp/**",
        "$XDG_CACHE_HOME/**",
        "$HOME/.cargo/registry/**",
        "$HOME/.cargo/git/**",
        "$HOME/.npm/**",
        "$HOME/.cache/pip/**",
        "/dev/null",
        "/dev/tty",
        "/dev/pts/**",
    ] {
        b = b.readwrite(p);
    }
    b = b.exec("$HOME/.cargo/bin/**").exec("$HOME/.local/bin/**");
    for p in [
        "$HOME/.ssh/**",
        "$HOME/.aws/**",
        "$HOME/.gnupg/**",
        "$HOME/.kube/**",
        "$HOME/.docker/config.json",
        "$HOME/.netrc",
        "$XDG_CONFIG_HOME/gcloud/**",
        "$WORKDIR/.env",
        "$WORKDIR/.git/hooks/**",
        "/etc/shadow",
        "/etc/sudoers",
        "/etc/ssl/private/**",
    ] {
        b = b.deny(p);
    }
    b = b
        .deny_access(Access::WRITE, "$HOME/.cargo/registry/cache/**")
        .exec_deny("/usr/bin/sudo")
        .exec_deny("/usr/bin/su")
        .exec_deny("/usr/bin/pkexec");
    for d in [
        "github.com",
        "api.github.com",
        "objects.githubusercontent.com",
        "registry.npmjs.org",
        "crates.io",
        "static.crates.io",
        "index.crates.io",
        "pypi.org",
        "files.pythonhosted.org",
        "api.anthropic.com",
    ] {
        b = b.domain(d, "443");
    }
    b = b
        .cidr("127.0.0.0/8", Protocol::Tcp, "3000-3010,5432,8080")
        .cidr("::1", Protocol::Tcp, "3000-3010,5432,8080")
        .listen(Protocol::Tcp, "3000-3010,8080")
        .unix_socket("$XDG_RUNTIME_DIR/ssh-agent.socket")
        .unix_socket("/var/run/docker.sock");
    b.build()
}

/// A generated policy with `n` rules of every kind, for the bench: grants, denies inside them
/// (so the containment search has work to do), exec, domains and CIDRs.
pub fn generated(n: u32) -> Policy {
    let dir = |i: u32| format!("$HOME/projects/p{}/m{}", i % 97, i % 13);
    let mut b = PolicyBuilder::new("generated");
    for i in 0..n {
        b = match i % 10 {
            0..=2 => b.read(&format!("{}/r{i}/**", dir(i))),
            3 | 4 => b.readwrite(&format!("{}/w{i}/**", dir(i))),
            5 => b.exec(&format!("/opt/tool{i}/bin/**")),
            // Inside the readwrite grant made three rules earlier.
            6 => b.deny(&format!("{}/w{}/secret/**", dir(i - 3), i - 3)),
            // Inside the read grant made seven rules earlier: no intersecting right.
            7 => b.deny_access(Access::WRITE, &format!("{}/r{}/lock", dir(i - 7), i - 7)),
            8 => b.domain(&format!("h{i}.example.com"), "443"),
            _ => b.cidr(
                &format!("10.{}.{}.0/24", (i / 256) % 256, i % 256),
                Protocol::Tcp,
                &format!("{}", 1000 + i % 5000),
            ),
        };
    }
    b.build()
}

// ---------------------------------------------------------------------------------------------
// Golden files

pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compare `actual` with `tests/golden/<name>`; with `UPDATE_GOLDEN=1`, write it instead.
pub fn assert_golden(name: &str, actual: &str) {
    let file = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_else(|_| {
        panic!(
            "missing golden file {}; run with UPDATE_GOLDEN=1 to create it",
            file.display()
        )
    });
    if expected != actual {
        let first_diff = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output (first difference at line {}):\n--- expected\n{}\n--- actual\n{}\n\
             run with UPDATE_GOLDEN=1 to accept the new output",
            file.display(),
            first_diff + 1,
            expected.lines().nth(first_diff).unwrap_or("<end of file>"),
            actual.lines().nth(first_diff).unwrap_or("<end of output>"),
        );
    }
}

/// Compile `policy` for `target` and compare the text report, the Seatbelt profile and the
/// artifact JSON with `tests/golden/<stem>.report.txt`, `<stem>.sb` and `<stem>.json`. Also
/// checks that the artifact verifies after a round trip. For built-in profiles, pass the
/// loaded IR and a stem such as `builtin-default-abi7`.
pub fn assert_compiled_goldens(stem: &str, policy: &Policy, target: nono_policy::backend::Target) {
    use nono_policy::artifact::CompiledPolicy;
    let compiled = CompiledPolicy::build(policy, target);
    let json = compiled.to_json_pretty();
    CompiledPolicy::from_json(&json)
        .expect("artifact parses")
        .verify()
        .expect("artifact verifies");
    assert_golden(
        &format!("{stem}.report.txt"),
        &nono_policy::report::render_text(&compiled),
    );
    assert_golden(&format!("{stem}.sb"), &compiled.seatbelt);
    assert_golden(&format!("{stem}.json"), &json);
}

/// The text of a generated profile in the policy language with `n` rules (one per line), for
/// the front-end-to-artifact bench: read/readwrite/exec grants at realistic depth, denies and
/// deny-writes inside grants, domains and CIDRs. It resolves to `n` IR rules.
pub fn generated_text(n: u32) -> String {
    let dir = |i: u32| format!("$HOME/projects/p{}/m{}", i % 97, i % 13);
    let mut s =
        String::from("# Generated for the compile bench.\nprofile generated\nversion 1.0.0\n\n");
    for i in 0..n {
        let line = match i % 10 {
            0..=2 => format!("read {}/src/r{i}/**", dir(i)),
            3 | 4 => format!("readwrite {}/w{i}/**", dir(i)),
            5 => format!("exec /opt/tool{i}/bin/**"),
            // Inside the readwrite grant made three rules earlier.
            6 => format!("deny {}/w{}/secret/**", dir(i - 3), i - 3),
            // Inside the read grant made seven rules earlier: no intersecting right.
            7 => format!("deny write {}/src/r{}/lock", dir(i - 7), i - 7),
            8 => format!("net allow domain h{i}.example.com port 443"),
            _ => format!(
                "net allow cidr 10.{}.{}.0/24 tcp port {}",
                (i / 256) % 256,
                i % 256,
                1000 + i % 5000
            ),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
}
