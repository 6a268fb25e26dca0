mod ebpf;
mod lab;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        // `cargo xtask ebpf [--setup] [--debug]`: build the eBPF object nono embeds.
        Some("ebpf") => {
            if args.iter().any(|a| a == "--setup") {
                ebpf::setup_toolchain()?;
            }
            let object = ebpf::build_ebpf(!args.iter().any(|a| a == "--debug"))?;
            println!("{}", object.display());
            Ok(())
        }
        // `cargo xtask vm-test [6.12] [6.1]`: the kernel-layer tests in VMs (both by default).
        Some("vm-test") => {
            let kernels: Vec<&str> = args[1..].iter().map(String::as_str).collect();
            lab::vm_test(&kernels)
        }
        _ => anyhow::bail!(
            "usage: cargo xtask ebpf [--setup] [--debug] | cargo xtask vm-test [6.12] [6.1]"
        ),
    }
}
