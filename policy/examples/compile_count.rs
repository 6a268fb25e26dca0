//! Run one compile pipeline of the bench a fixed number of times, for instruction counts and
//! profiles that a loaded machine does not blur (criterion's wall-clock medians do).
//!
//! ```text
//! cargo build --release -p nono-policy --example compile_count
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*compile_count*run_once*' \
//!     target/release/examples/compile_count generated-5000 1
//! perf record -g target/release/examples/compile_count generated-5000 200
//! ```
//!
//! Cases: `builtin-default` and `generated-5000` (the two `pipeline/*` benches). `run_once`
//! covers the pipeline up to the sealed artifact; dropping the artifact happens after it (the
//! criterion bench times the drop too). Under valgrind SHA-256 runs its portable code, since
//! valgrind hides the SHA extensions: that part of the count is far cheaper on real hardware.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use nono_policy::artifact::CompiledPolicy;
use nono_policy::backend::Target;
use nono_policy::builtin::Builtins;
use nono_policy::resolve;
use nono_policy::source::{Format, MemorySource, ProfileSource, SourceFile};

const TARGET: Target = Target {
    landlock_abi: 7,
    kernel_layer: false,
};

/// One pipeline run, profile text to sealed artifact; never inlined so a profiler can find it.
#[inline(never)]
fn run_once(root: &SourceFile, source: &dyn ProfileSource) -> CompiledPolicy {
    let policy = resolve::compile(root, source).expect("profile compiles");
    CompiledPolicy::from_policy(policy, TARGET)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "generated-5000".into());
    let n: u32 = args.next().map_or(1, |s| s.parse().expect("iterations"));
    let memory = MemorySource::default();
    let (root, source): (SourceFile, &dyn ProfileSource) = match case.as_str() {
        "builtin-default" => (Builtins.profile("default").expect("built-in"), &Builtins),
        "generated-5000" => (
            SourceFile {
                name: "generated.nono".into(),
                text: common::generated_text(5_000),
                format: Format::Lang,
            },
            &memory,
        ),
        other => panic!("unknown case `{other}`: builtin-default or generated-5000"),
    };
    let mut digest = String::new();
    for _ in 0..n {
        digest = black_box(run_once(black_box(&root), source)).digest;
    }
    println!("{case} x{n}: {digest}");
}
