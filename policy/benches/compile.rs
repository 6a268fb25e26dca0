//! Compile-time cost of the whole pipeline, of the back-ends and of the artifact.
//!
//! `cargo bench -p nono-policy --bench compile`. Targets (median):
//! - `pipeline/builtin-default`: the built-in default profile from its embedded text through
//!   the language front-end, `use` of its groups, resolution and every back-end, under 200 µs;
//! - `pipeline/generated-5000-rules`: a generated 5,000-rule profile text the same way, under
//!   5 ms.
//!
//! `backends/*` time the back-ends and the artifact alone on a resolved IR, `frontend/*` the
//! front-end and resolution alone, `phases-5000/*` each step for the large policy.
//!
//! On a shared machine the medians move with the load; `examples/compile_count.rs` runs the
//! two `pipeline/*` cases a fixed number of times for instruction counts (callgrind) that do
//! not.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use nono_policy::artifact::CompiledPolicy;
use nono_policy::backend::{ebpf, landlock, seatbelt, Target};
use nono_policy::builtin::Builtins;
use nono_policy::source::{Format, MemorySource, ProfileSource, SourceFile};
use nono_policy::{resolve, Policy};

/// The target `nono policy compile` uses by default.
const TARGET: Target = Target {
    landlock_abi: 7,
    kernel_layer: false,
};

/// Everything `nono policy compile` does after the front-end: every plan, the Seatbelt
/// profile, the canonical JSON and its digest.
pub fn compile_all(policy: &Policy, target: Target) -> CompiledPolicy {
    CompiledPolicy::build(policy, target)
}

/// The whole pipeline: profile text to sealed artifact.
fn pipeline(root: &SourceFile, source: &dyn ProfileSource) -> CompiledPolicy {
    let policy = resolve::compile(root, source).expect("profile compiles");
    CompiledPolicy::from_policy(policy, TARGET)
}

fn benches(c: &mut Criterion) {
    // The built-in default profile, from its text.
    c.bench_function("pipeline/builtin-default", |b| {
        b.iter(|| {
            let root = Builtins.profile("default").expect("built-in default");
            pipeline(black_box(&root), &Builtins)
        })
    });
    let default_root = Builtins.profile("default").unwrap();
    c.bench_function("frontend/builtin-default", |b| {
        b.iter(|| resolve::compile(black_box(&default_root), &Builtins).unwrap())
    });
    let default = resolve::compile(&default_root, &Builtins).unwrap();
    c.bench_function("backends/builtin-default", |b| {
        b.iter(|| compile_all(black_box(&default), TARGET))
    });

    // A generated 5,000-rule profile, from its text.
    let text = common::generated_text(5_000);
    let root = SourceFile {
        name: "generated.nono".into(),
        text,
        format: Format::Lang,
    };
    let source = MemorySource::default();
    let resolved = resolve::compile(&root, &source).unwrap();
    assert_eq!(resolved.rule_summaries().len(), 5_000);
    let compiled = compile_all(&resolved, TARGET);
    assert!(
        compiled.landlock.gaps.len() >= 500,
        "the generated denies must lie inside grants"
    );
    c.bench_function("pipeline/generated-5000-rules", |b| {
        b.iter(|| pipeline(black_box(&root), &source))
    });
    c.bench_function("frontend/generated-5000-rules", |b| {
        b.iter(|| resolve::compile(black_box(&root), &source).unwrap())
    });
    c.bench_function("backends/generated-5000-rules", |b| {
        b.iter(|| compile_all(black_box(&resolved), TARGET))
    });

    // The IR-built policies of the earlier benches, for comparison across versions.
    let default_like = common::default_like();
    assert_eq!(default_like.rule_summaries().len(), 63);
    c.bench_function("compile/default-like-63-rules", |b| {
        b.iter(|| compile_all(black_box(&default_like), TARGET))
    });
    let generated = common::generated(5_000);
    c.bench_function("compile/generated-5000-rules", |b| {
        b.iter(|| compile_all(black_box(&generated), TARGET))
    });

    // Where the time goes, for the large policy.
    let mut phases = c.benchmark_group("phases-5000");
    phases.sample_size(20);
    phases.bench_function("landlock", |b| {
        b.iter(|| landlock::plan(black_box(&resolved), &TARGET))
    });
    phases.bench_function("ebpf", |b| {
        b.iter(|| ebpf::plan(black_box(&resolved), &TARGET))
    });
    phases.bench_function("seatbelt", |b| {
        b.iter(|| seatbelt::profile(black_box(&resolved)))
    });
    phases.bench_function("canonical-json", |b| {
        b.iter(|| black_box(&compiled).canonical_json())
    });
    phases.bench_function("digest", |b| {
        b.iter(|| black_box(&compiled).compute_digest())
    });
    phases.finish();
}

criterion_group!(compile, benches);
criterion_main!(compile);
