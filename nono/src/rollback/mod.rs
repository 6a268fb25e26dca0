//! Rollback: content-addressed snapshots of what a sandboxed command may write, the changes
//! it made, and `nono rollback list|show|restore|prune`.
//!
//! Privilege: none. Everything runs as the user who runs nono, outside the sandbox (before
//! the command starts and after it exits); the store lives under `$XDG_STATE_HOME/nono`,
//! which `nono run` denies to the sandbox implicitly.
//! Kernel assumptions: Linux `*at` syscalls with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`,
//! `renameat` atomicity, `syncfs`, `flock`.
//!
//! - [`store`]: objects named by SHA-256, session files, locking and the fsync policy;
//! - [`manifest`]: what a snapshot records;
//! - [`snapshot`]: walking a root, limits, the metadata fast path, parallel hashing;
//! - [`changes`]: created / modified / deleted / renamed / mode changed;
//! - [`session`]: which roots, and the `nono run --rollback` flow;
//! - [`restore`]: dir-fd based, symlink-safe, idempotent restore;
//! - [`access`]: regaining access to the user's own entries the command made unreadable;
//! - [`cli`]: the commands; [`names`]: escaping hostile file names.

pub mod access;
pub mod changes;
pub mod cli;
pub mod manifest;
pub mod names;
pub mod restore;
pub mod session;
pub mod snapshot;
pub mod store;

pub use session::{begin, BeginArgs, Mode};
