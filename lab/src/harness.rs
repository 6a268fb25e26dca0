//! A tiny test runner: named tests, each `Result<(), String>`, results to a file.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Extra lines a test reports (benchmark figures), written after its result line.
static INFO: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub fn info(line: String) {
    eprintln!("INFO {line}");
    if let Ok(mut v) = INFO.lock() {
        v.push(line);
    }
}

/// Where a test can run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// BPF LSM programs must load: only in the VM lab.
    Lsm,
    /// Only cgroup socket programs: natively on the host as well.
    CgroupSock,
    /// Only cgroup socket programs, but the whole machine's kernel-layer state (the event slot
    /// pool is machine-wide, and the host's is shared with every other nono running there):
    /// only in the VM lab.
    OwnMachine,
}

pub struct Test {
    pub name: &'static str,
    pub needs: Needs,
    pub run: fn(&Ctx) -> Result<(), String>,
}

/// What every test gets.
pub struct Ctx {
    /// The real nono binary under test.
    pub nono: PathBuf,
    /// A writable scratch directory of this test's own.
    pub scratch: PathBuf,
    /// The kernel series the lab booted (`6.12`, `6.1`) or `host`.
    pub kernel: String,
}

struct Args {
    nono: PathBuf,
    results: Option<PathBuf>,
    kernel: String,
    host: bool,
    filter: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        nono: PathBuf::from("target/debug/nono"),
        results: None,
        kernel: "host".into(),
        host: false,
        filter: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--nono" => args.nono = PathBuf::from(value()?),
            "--results" => args.results = Some(PathBuf::from(value()?)),
            "--kernel" => args.kernel = value()?,
            "--host" => args.host = true,
            "--filter" => args.filter = Some(value()?),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

pub fn main() -> i32 {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("nono-lab-tests: {e}\nusage: nono-lab-tests [--nono PATH] [--results FILE] [--kernel NAME] [--host] [--filter SUBSTRING[,SUBSTRING..]]");
            return 2;
        }
    };
    let base = std::env::temp_dir().join(format!("nono-lab.{}", std::process::id()));
    let mut lines = Vec::new();
    let mut failed = 0;
    for test in crate::tests::ALL {
        if args.host && test.needs != Needs::CgroupSock {
            continue;
        }
        if let Some(f) = &args.filter {
            // Comma-separated substrings: a test runs if its name contains any of them.
            if !f.split(',').any(|part| test.name.contains(part)) {
                continue;
            }
        }
        let scratch = base.join(test.name);
        let _ = std::fs::create_dir_all(&scratch);
        let ctx = Ctx {
            nono: args.nono.clone(),
            scratch,
            kernel: args.kernel.clone(),
        };
        let started = Instant::now();
        let line = match (test.run)(&ctx) {
            Ok(()) => format!("PASS {}", test.name),
            Err(e) if e.starts_with("SKIP") => format!("SKIP {}: {}", test.name, &e[4..].trim()),
            Err(e) => {
                failed += 1;
                format!("FAIL {}: {}", test.name, e.replace('\n', " | "))
            }
        };
        eprintln!("{line} ({} ms)", started.elapsed().as_millis());
        lines.push(line);
        if let Ok(mut v) = INFO.lock() {
            lines.extend(v.drain(..).map(|l| format!("INFO {l}")));
        }
        // Results go out as they come, so a hang still shows how far the run got.
        if let Some(path) = &args.results {
            let _ = std::fs::write(path, lines.join("\n") + "\n");
        }
    }
    let _ = std::fs::remove_dir_all(&base);
    let passed = lines.iter().filter(|l| l.starts_with("PASS")).count();
    println!("{passed} passed, {failed} failed");
    let _ = std::io::stdout().flush();
    i32::from(failed > 0)
}
