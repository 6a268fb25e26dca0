//! The compiled policy artifact: the IR (with provenance), every back-end's plan, and a digest.
//!
//! # Canonical JSON and the digest
//!
//! `digest` is `sha256:<hex>` over the *canonical JSON* of the artifact's inputs: `format`,
//! `format_version`, `compiler`, `target` and `policy`, as one object in that order. Canonical
//! means compact `serde_json` output (no whitespace), which is deterministic because every
//! struct serialises its fields in declaration order, every map in the IR is a `BTreeMap` (keys
//! in key order), every list is sorted, and there are no floating-point values. Verification
//! parses the artifact, re-serialises those fields canonically and hashes them, so the
//! pretty-printed file may be re-indented without breaking it, while any change of meaning
//! does.
//!
//! The plans (`landlock`, `ebpf`, `seatbelt`) are not hashed: they are a pure, deterministic
//! function of the digested fields (the compiler named by `compiler` applied to `policy` for
//! `target`), so hashing them again would only repeat what the digest already pins, at several
//! times the cost. The artifact stays tamper-evident as a whole because
//! [`CompiledPolicy::verify`] checks the digest *and* recompiles every plan from the digested
//! policy and target and compares: a plan edited by hand is refused as stale whatever its
//! digest, and an edited input breaks the digest. Code that trusts an artifact must therefore
//! call `verify()`, not only [`CompiledPolicy::verify_digest`].
//!
//! (Format version 1 hashed the plans too; version 2 made the change above. Readers refuse a
//! version they do not know rather than report a misleading digest mismatch.)
//!
//! The digest proves integrity, not authorship; signing the digest is the distribution
//! layer's job.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::ebpf::{self, EbpfPlan};
use crate::backend::landlock::{self, LandlockPlan};
use crate::backend::{seatbelt, Target};
use crate::ir::Policy;

pub const FORMAT: &str = "nono.compiled-policy";
pub const FORMAT_VERSION: u32 = 2;

/// From this many rules on, [`CompiledPolicy::from_policy`] hashes (and may write the Seatbelt
/// profile) on a second thread (a thread costs tens of microseconds; the built-in profiles
/// compile in a few hundred).
const PARALLEL_DIGEST_RULES: u32 = 1000;

/// `nono-policy <crate version>`: the compiler that produced an artifact.
pub fn compiler_id() -> String {
    format!("nono-policy {}", env!("CARGO_PKG_VERSION"))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledPolicy {
    /// Always [`FORMAT`].
    pub format: String,
    pub format_version: u32,
    pub compiler: String,
    pub target: Target,
    pub policy: Policy,
    pub landlock: LandlockPlan,
    pub ebpf: EbpfPlan,
    pub seatbelt: String,
    pub digest: String,
}

/// The digested fields (the artifact's inputs), borrowed, in the artifact's order.
#[derive(Serialize)]
struct Digested<'a> {
    format: &'a str,
    format_version: u32,
    compiler: &'a str,
    target: &'a Target,
    policy: &'a Policy,
}

/// Feeds everything written to it into SHA-256, so the canonical JSON is hashed as it is
/// produced instead of being built in memory first.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `sha256:<hex>` of the digested fields' canonical JSON, hashed as it is serialised.
fn digest_of(digested: &Digested<'_>) -> String {
    // Buffered: serde_json writes token by token, and SHA-256 is cheaper fed in blocks.
    let mut writer = std::io::BufWriter::with_capacity(8192, HashWriter(Sha256::new()));
    serde_json::to_writer(&mut writer, digested)
        .expect("policies serialise: no non-string map keys, no floats");
    let hasher = match writer.into_inner() {
        Ok(w) => w.0,
        Err(_) => unreachable!("hashing cannot fail"),
    };
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    out.push_str(&hex::encode(hasher.finalize()));
    out
}

/// The digest [`CompiledPolicy::build`] would seal `policy` with for `target`, without
/// building any back-end's plan (what `nono run` records in its audit session).
pub fn policy_digest(policy: &Policy, target: Target) -> String {
    let compiler = compiler_id();
    digest_of(&Digested {
        format: FORMAT,
        format_version: FORMAT_VERSION,
        compiler: &compiler,
        target: &target,
        policy,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("not a compiled policy: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a compiled policy: format is `{0}`, expected `{FORMAT}`")]
    Format(String),
    #[error("compiled policy format version {0} is not supported (this nono reads version {FORMAT_VERSION})")]
    Version(u32),
    #[error("digest mismatch: the artifact says {recorded} but its content hashes to {actual}")]
    Digest { recorded: String, actual: String },
    #[error("the {0} plan does not match its policy (compiled by {1}; this is {2}): recompile it")]
    Stale(&'static str, String, String),
}

impl CompiledPolicy {
    /// Compile every back-end for `target` and seal the result.
    pub fn build(policy: &Policy, target: Target) -> CompiledPolicy {
        CompiledPolicy::from_policy(policy.clone(), target)
    }

    /// [`CompiledPolicy::build`] for a policy the caller no longer needs: the artifact takes it
    /// as it is instead of a copy (a deep one: every rule, path and origin).
    pub fn from_policy(policy: Policy, target: Target) -> CompiledPolicy {
        let compiler = compiler_id();
        // The digest reads only the policy and the target, the back-ends only the policy: on
        // a large policy, where hashing its canonical JSON is a fifth of the compile, the work
        // is split over two threads. A small policy is done before a thread could start.
        let parallel = policy.max_rule_id() >= PARALLEL_DIGEST_RULES;
        let digest_input = Digested {
            format: FORMAT,
            format_version: FORMAT_VERSION,
            compiler: &compiler,
            target: &target,
            policy: &policy,
        };
        let linux_plans = || {
            // Both name rules by the same one-line texts: make them once.
            let texts = policy.rule_summaries();
            let landlock = landlock::plan_with_texts(&policy, &target, &texts);
            let ebpf = ebpf::plan_with_texts(&policy, &target, texts);
            (landlock, ebpf)
        };
        let (digest, seatbelt, (landlock, ebpf)) = if parallel {
            // The Seatbelt profile (which writes its own rule texts) goes to whichever thread
            // is free first: the helper once the digest is done, or this one once the Linux
            // plans are. With both cores free the helper takes it and the two halves take
            // about as long; when another process holds the second core, this thread does not
            // sit waiting for the helper to get to it. Either way it is the same text.
            let seatbelt_taken = AtomicBool::new(false);
            let take_seatbelt = || {
                (!seatbelt_taken.swap(true, Ordering::Relaxed)).then(|| seatbelt::profile(&policy))
            };
            std::thread::scope(|scope| {
                let helper = std::thread::Builder::new()
                    .name("nono-digest".into())
                    .spawn_scoped(scope, || (digest_of(&digest_input), take_seatbelt()));
                let linux = linux_plans();
                let here = take_seatbelt();
                let (digest, there) = match helper {
                    Ok(h) => h.join().expect("hashing and Seatbelt do not panic"),
                    // No thread to be had: hash here instead (Seatbelt was not taken).
                    Err(_) => (digest_of(&digest_input), None),
                };
                let seatbelt = here
                    .or(there)
                    .expect("one of the two threads wrote the Seatbelt profile");
                (digest, seatbelt, linux)
            })
        } else {
            (
                digest_of(&digest_input),
                seatbelt::profile(&policy),
                linux_plans(),
            )
        };
        CompiledPolicy {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            compiler,
            target,
            policy,
            landlock,
            ebpf,
            seatbelt,
            digest,
        }
    }

    fn digested(&self) -> Digested<'_> {
        Digested {
            format: &self.format,
            format_version: self.format_version,
            compiler: &self.compiler,
            target: &self.target,
            policy: &self.policy,
        }
    }

    /// The canonical JSON of the digested fields (see the module doc).
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.digested())
            .expect("policies serialise: no non-string map keys, no floats")
    }

    /// `sha256:<hex>` of [`Self::canonical_json`], hashed as it is serialised.
    pub fn compute_digest(&self) -> String {
        digest_of(&self.digested())
    }

    /// The artifact as written to disk: pretty JSON with a trailing newline.
    pub fn to_json_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plans serialise");
        s.push('\n');
        s
    }

    /// Parse an artifact, checking its format and version (not yet its digest).
    pub fn from_json(text: &str) -> Result<CompiledPolicy, ArtifactError> {
        #[derive(Deserialize)]
        struct Header {
            format: String,
            format_version: u32,
        }
        // Read the header alone first, so a future version gets a version error rather than
        // whatever field it changed.
        let header: Header = serde_json::from_str(text)?;
        if header.format != FORMAT {
            return Err(ArtifactError::Format(header.format));
        }
        if header.format_version != FORMAT_VERSION {
            return Err(ArtifactError::Version(header.format_version));
        }
        Ok(serde_json::from_str(text)?)
    }

    /// The digest alone: the inputs are unchanged. Says nothing about the plans; see
    /// [`Self::verify`].
    pub fn verify_digest(&self) -> Result<(), ArtifactError> {
        let actual = self.compute_digest();
        if actual != self.digest {
            return Err(ArtifactError::Digest {
                recorded: self.digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// The digest, and that every plan is what this compiler makes of the embedded policy:
    /// together they make the whole artifact tamper-evident (see the module doc).
    pub fn verify(&self) -> Result<(), ArtifactError> {
        self.verify_digest()?;
        let stale = |what| ArtifactError::Stale(what, self.compiler.clone(), compiler_id());
        if landlock::plan(&self.policy, &self.target) != self.landlock {
            return Err(stale("Landlock"));
        }
        if ebpf::plan(&self.policy, &self.target) != self.ebpf {
            return Err(stale("eBPF"));
        }
        if seatbelt::profile(&self.policy) != self.seatbelt {
            return Err(stale("Seatbelt"));
        }
        Ok(())
    }
}
