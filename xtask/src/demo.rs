//! The README's "main job" demo: the real `nono` binary, the built-in default profile, a
//! throw-away `$HOME` and workspace, and three things a user should see:
//!
//! 1. reading a planted (fake) `~/.ssh/id_rsa` is denied;
//! 2. writing in the workspace works;
//! 3. an outbound connection is denied, and the listener the demo started on 127.0.0.1 sees
//!    nothing.
//!
//! It builds nothing: the caller passes the binary. It fails if any of the three doesn't behave.
//! Every packet it can cause goes to 127.0.0.1.

use std::fs;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, ensure, Context};

const FAKE_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nnono-demo-fake-key\n";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A scratch directory removed on drop, whatever happened.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Demo {
    nono: PathBuf,
    home: PathBuf,
    work: PathBuf,
    tmp: PathBuf,
}

impl Demo {
    /// `nono run --allow WORK --workdir WORK -- CMD...` with only HOME, PATH and TMPDIR set.
    fn run(&self, cmd: &[&str]) -> anyhow::Result<Output> {
        let mut c = Command::new(&self.nono);
        c.arg("run")
            .arg("--allow")
            .arg(&self.work)
            .arg("--workdir")
            .arg(&self.work)
            .arg("--")
            .args(cmd)
            .env_clear()
            .env("HOME", &self.home)
            .env("PATH", SYSTEM_PATH)
            // The sandbox's own temp dir, so a `$TMPDIR` grant can't cover the fake home.
            .env("TMPDIR", &self.tmp)
            .env("LC_ALL", "C")
            .current_dir(&self.work);
        let shown: Vec<String> = cmd.iter().map(|a| shell_quote(a)).collect();
        println!(
            "  $ nono run --allow {} -- {}",
            self.work.display(),
            shown.join(" ")
        );
        c.output()
            .with_context(|| format!("could not start {}", self.nono.display()))
    }
}

/// Quotes an argument for display the way a shell would need it.
fn shell_quote(arg: &str) -> String {
    if arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-=:".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn show(label: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        println!("    {label} {line}");
    }
}

fn refused_to_start(out: &Output) -> anyhow::Result<()> {
    if out.status.code() == Some(125) {
        bail!(
            "nono refused to start (exit 125):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs the demo against `nono`; see the module documentation.
pub fn demo(nono: &Path) -> anyhow::Result<()> {
    ensure!(
        nono.is_file(),
        "{} does not exist: build it first (`cargo build -p nono`)",
        nono.display()
    );
    let nono = fs::canonicalize(nono)?;
    let base = std::env::var_os("NONO_DEMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let root = base.join(format!("nono-demo-{}", std::process::id()));
    fs::create_dir_all(&root).with_context(|| format!("mkdir {}", root.display()))?;
    let scratch = Scratch(fs::canonicalize(&root)?);
    let d = Demo {
        nono,
        home: scratch.0.join("home"),
        work: scratch.0.join("work"),
        tmp: scratch.0.join("tmp"),
    };
    for dir in [&d.home.join(".ssh"), &d.work, &d.tmp] {
        fs::create_dir_all(dir)?;
    }
    let key = d.home.join(".ssh/id_rsa");
    fs::write(&key, FAKE_KEY)?;

    println!("nono demo: default profile, fake HOME {}", d.home.display());

    // 1. The credentials stay out of reach.
    println!("\n1. Reading a (fake) SSH private key is denied");
    let key_text = key.display().to_string();
    let out = d.run(&["cat", &key_text])?;
    refused_to_start(&out)?;
    show("stderr:", &out.stderr);
    ensure!(
        !String::from_utf8_lossy(&out.stdout).contains("nono-demo-fake-key"),
        "the sandboxed command read the key"
    );
    ensure!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "expected `Permission denied`, got {:?}",
        out.status
    );
    ensure!(fs::read_to_string(&key)? == FAKE_KEY, "the key changed");
    println!("   -> denied, as expected");

    // 2. The workspace is writable.
    println!("\n2. Writing in the workspace works");
    let hello = d.work.join("hello.txt");
    let script = format!(
        "echo 'written from inside the sandbox' > {}",
        hello.display()
    );
    let out = d.run(&["sh", "-c", &script])?;
    refused_to_start(&out)?;
    show("stderr:", &out.stderr);
    ensure!(out.status.success(), "the write failed: {:?}", out.status);
    let content = fs::read_to_string(&hello).context("hello.txt was not created")?;
    show(&format!("{}:", hello.display()), content.as_bytes());
    ensure!(
        content == "written from inside the sandbox\n",
        "unexpected content {content:?}"
    );
    println!("   -> written, as expected");

    // 3. The network is closed, even to a listener on this machine.
    println!("\n3. An outbound connection is denied");
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a loopback listener")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    println!("  (the demo listens on 127.0.0.1:{port})");
    let script = format!("echo hello > /dev/tcp/127.0.0.1/{port}");
    let out = d.run(&["bash", "-c", &script])?;
    refused_to_start(&out)?;
    show("stderr:", &out.stderr);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && (stderr.contains("Permission denied") || stderr.contains("Operation not permitted")),
        "expected the connection to be denied, got {:?}",
        out.status
    );
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {
            println!("  the listener saw no connection");
        }
        Ok((_, peer)) => bail!("the listener received a connection from {peer}"),
        Err(e) => bail!("accept failed: {e}"),
    }
    println!("   -> denied, as expected");

    println!("\nAll three behaved as expected.");
    Ok(())
}
