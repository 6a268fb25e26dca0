//! Embeds nono's eBPF object when it has been built (`cargo xtask ebpf`), so a plain
//! `cargo build` works without the eBPF toolchain: nono is then built without the kernel layer,
//! and `nono --version` says so.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nono_ebpf)");
    println!("cargo::rerun-if-env-changed=NONO_EBPF_OBJECT");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let ebpf_dir = manifest.join("../nono-ebpf");
    // A directory is scanned recursively, so a newly built object triggers a rebuild.
    if ebpf_dir.is_dir() {
        println!("cargo::rerun-if-changed={}", ebpf_dir.display());
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let candidates: Vec<PathBuf> = match std::env::var_os("NONO_EBPF_OBJECT") {
        Some(p) => vec![PathBuf::from(p)],
        None => ["release", "debug"]
            .iter()
            .map(|p| {
                ebpf_dir
                    .join("target/bpfel-unknown-none")
                    .join(p)
                    .join("nono")
            })
            .collect(),
    };
    let Some(object) = candidates.iter().find(|p| p.is_file()) else {
        return;
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("nono.bpf.o");
    copy(object, &out);
    println!("cargo::rustc-cfg=nono_ebpf");
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!(
            "copying the eBPF object {} to {}: {e}",
            from.display(),
            to.display()
        );
    }
}
