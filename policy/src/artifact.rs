//! The compiled policy artifact: the IR (with provenance), every back-end's plan, and a digest.
//!
//! # Canonical JSON and the digest
//!
//! `digest` is `sha256:<hex>` over the *canonical JSON* of every other field: compact
//! `serde_json` output (no whitespace) of the fields in declaration order, `digest` left out.
//! That form is deterministic because every struct serialises its fields in declaration
//! order, every map in the IR is a `BTreeMap` (keys in key order), every list is sorted by the
//! back-end that produced it, and there are no floating-point values. Verification parses the
//! artifact, re-serialises it canonically and hashes that, so the pretty-printed file may be
//! re-indented without breaking it, while any change of meaning does.
//!
//! The digest proves integrity, not authorship; signing the digest is the distribution
//! layer's job. [`CompiledPolicy::verify`] also recompiles the plans from the embedded policy,
//! so a plan edited by hand (with a recomputed digest) is refused as well.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::ebpf::{self, EbpfPlan};
use crate::backend::landlock::{self, LandlockPlan};
use crate::backend::{seatbelt, Target};
use crate::ir::Policy;

pub const FORMAT: &str = "nono.compiled-policy";
pub const FORMAT_VERSION: u32 = 1;

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

/// The digested fields, borrowed, in the artifact's order.
#[derive(Serialize)]
struct Digested<'a> {
    format: &'a str,
    format_version: u32,
    compiler: &'a str,
    target: &'a Target,
    policy: &'a Policy,
    landlock: &'a LandlockPlan,
    ebpf: &'a EbpfPlan,
    seatbelt: &'a str,
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
        let mut compiled = CompiledPolicy {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            compiler: compiler_id(),
            target,
            policy: policy.clone(),
            landlock: landlock::plan(policy, &target),
            ebpf: ebpf::plan(policy, &target),
            seatbelt: seatbelt::profile(policy),
            digest: String::new(),
        };
        compiled.digest = compiled.compute_digest();
        compiled
    }

    /// The canonical JSON of everything but the digest (see the module doc).
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(&Digested {
            format: &self.format,
            format_version: self.format_version,
            compiler: &self.compiler,
            target: &self.target,
            policy: &self.policy,
            landlock: &self.landlock,
            ebpf: &self.ebpf,
            seatbelt: &self.seatbelt,
        })
        .expect("plans serialise: no non-string map keys, no floats")
    }

    /// `sha256:<hex>` of [`Self::canonical_json`].
    pub fn compute_digest(&self) -> String {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(self.canonical_json()))
        )
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

    /// The digest, and that every plan is what this compiler makes of the embedded policy.
    pub fn verify(&self) -> Result<(), ArtifactError> {
        self.verify_digest()?;
        let fresh = CompiledPolicy::build(&self.policy, self.target);
        let stale = |what| ArtifactError::Stale(what, self.compiler.clone(), compiler_id());
        if fresh.landlock != self.landlock {
            return Err(stale("Landlock"));
        }
        if fresh.ebpf != self.ebpf {
            return Err(stale("eBPF"));
        }
        if fresh.seatbelt != self.seatbelt {
            return Err(stale("Seatbelt"));
        }
        Ok(())
    }
}
