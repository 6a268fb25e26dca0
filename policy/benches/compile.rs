//! Compile-time cost of the back-ends and the artifact.
//!
//! `cargo bench -p nono-policy --bench compile`. Targets: the default-like policy (63 rules)
//! under 200 µs, a generated 5,000-rule policy under 5 ms (median).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use nono_policy::artifact::CompiledPolicy;
use nono_policy::backend::{ebpf, landlock, seatbelt, Target};
use nono_policy::Policy;

/// Everything `nono policy compile` does after the front-end: every plan, the Seatbelt
/// profile, the canonical JSON and its digest.
pub fn compile_all(policy: &Policy, target: Target) -> CompiledPolicy {
    CompiledPolicy::build(policy, target)
}

/// Bench one policy; reusable once policies come from the real front-end.
pub fn bench_policy(c: &mut Criterion, name: &str, policy: &Policy) {
    let target = Target::landlock_only(Target::LATEST_ABI);
    c.bench_function(name, |b| {
        b.iter(|| compile_all(black_box(policy), black_box(target)))
    });
}

fn benches(c: &mut Criterion) {
    let default_like = common::default_like();
    assert_eq!(default_like.rule_summaries().len(), 63);
    bench_policy(c, "compile/default-like-63-rules", &default_like);

    let generated = common::generated(5_000);
    let compiled = compile_all(&generated, Target::landlock_only(7));
    assert!(
        compiled.landlock.gaps.len() >= 500,
        "the generated denies must lie inside grants"
    );
    bench_policy(c, "compile/generated-5000-rules", &generated);

    // Where the time goes, for the large policy.
    let target = Target::landlock_only(7);
    let mut phases = c.benchmark_group("phases-5000");
    phases.sample_size(20);
    phases.bench_function("landlock", |b| {
        b.iter(|| landlock::plan(black_box(&generated), &target))
    });
    phases.bench_function("ebpf", |b| {
        b.iter(|| ebpf::plan(black_box(&generated), &target))
    });
    phases.bench_function("seatbelt", |b| {
        b.iter(|| seatbelt::profile(black_box(&generated)))
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
