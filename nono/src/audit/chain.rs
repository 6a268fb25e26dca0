//! The per-session SHA-256 hash chain.
//!
//! Privilege: none; pure computation.
//!
//! `h0 = SHA-256("nono-audit-chain-v1\0" || canonical(session header))`, and for event `seq`
//! (1, 2, ...): `h_seq = SHA-256(h_{seq-1} || canonical(seq, row))`. The session keeps the
//! last hash (`head`) and the count. Editing any hashed column, dropping an event, or moving
//! one changes every later hash, which `nono audit verify` recomputes from the stored columns.
//!
//! Canonical encoding: each field in a fixed order; an integer as 8 bytes big-endian, a
//! byte string as its length (4 bytes big-endian) then the bytes, an optional value as one
//! byte 0 (absent) or 1 followed by the value. No field can be mistaken for its neighbour.
//!
//! What the chain does not do: it is not a signature. Someone who can write the database can
//! also recompute every hash; the chain catches edits made without doing so (a hand edit, a
//! tool that rewrites rows, corruption), and an external copy of a session's `head` (printed
//! by `verify`) pins it against later rewrites.

use sha2::{Digest, Sha256};

use super::event::Row;

pub type Hash = [u8; 32];

const DOMAIN: &[u8] = b"nono-audit-chain-v1\0";

/// A canonical encoder feeding a hasher.
pub struct Canon(Sha256);

impl Canon {
    pub fn new() -> Canon {
        Canon(Sha256::new())
    }
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.0.update(v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.update((b.len() as u32).to_be_bytes());
        self.0.update(b);
        self
    }
    pub fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            None => self.0.update([0u8]),
            Some(v) => {
                self.0.update([1u8]);
                self.int(v);
            }
        }
        self
    }
    pub fn opt_bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.0.update([0u8]),
            Some(b) => {
                self.0.update([1u8]);
                self.bytes(b);
            }
        }
        self
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.update(b);
        self
    }
    pub fn finish(&mut self) -> Hash {
        std::mem::take(&mut self.0).finalize().into()
    }
}

impl Default for Canon {
    fn default() -> Self {
        Canon::new()
    }
}

/// The fields of a session fixed when it starts; they seed its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub id: &'a str,
    pub started_ns: i64,
    pub uid: i64,
    pub user: &'a str,
    /// JSON array of the redacted arguments, as stored.
    pub argv: &'a str,
    pub cwd: &'a [u8],
    pub profile: &'a str,
    pub policy_digest: &'a str,
    /// JSON array of the active layers, as stored.
    pub layers: &'a str,
}

pub fn genesis(h: &Header<'_>) -> Hash {
    Canon::new()
        .raw(DOMAIN)
        .bytes(h.id.as_bytes())
        .int(h.started_ns)
        .int(h.uid)
        .bytes(h.user.as_bytes())
        .bytes(h.argv.as_bytes())
        .bytes(h.cwd)
        .bytes(h.profile.as_bytes())
        .bytes(h.policy_digest.as_bytes())
        .bytes(h.layers.as_bytes())
        .finish()
}

/// The hash of event `seq` given the previous one.
pub fn link(prev: &Hash, seq: i64, r: &Row) -> Hash {
    Canon::new()
        .raw(prev)
        .int(seq)
        .int(r.time_ns)
        .bytes(r.kind.as_bytes())
        .bytes(r.op.as_bytes())
        .int(r.denied as i64)
        .int(r.pid)
        .bytes(r.process.as_bytes())
        .opt_int(r.rule_id)
        .opt_bytes(r.rule_source.as_deref().map(str::as_bytes))
        .bytes(&r.object)
        .opt_bytes(r.detail.as_deref().map(str::as_bytes))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(object: &[u8]) -> Row {
        Row {
            time_ns: 1,
            kind: "file".into(),
            op: "read".into(),
            denied: true,
            pid: 2,
            process: "cat".into(),
            rule_id: Some(3),
            rule_source: None,
            object: object.to_vec(),
            detail: None,
        }
    }

    #[test]
    fn every_field_and_position_changes_the_hash() {
        let h0 = [0u8; 32];
        let base = link(&h0, 1, &row(b"/a"));
        assert_ne!(base, link(&h0, 2, &row(b"/a")), "seq");
        assert_ne!(base, link(&[1u8; 32], 1, &row(b"/a")), "prev");
        assert_ne!(base, link(&h0, 1, &row(b"/b")), "object");
        let mut r = row(b"/a");
        r.denied = false;
        assert_ne!(base, link(&h0, 1, &r), "denied");
        let mut r = row(b"/a");
        r.rule_id = None;
        assert_ne!(base, link(&h0, 1, &r), "rule");
        // Length prefixes: moving a byte from one field to the next is a different event.
        let mut a = row(b"/a");
        a.process = "ca".into();
        a.object = b"t/a".to_vec();
        let mut b = row(b"/a");
        b.process = "cat".into();
        b.object = b"/a".to_vec();
        assert_ne!(link(&h0, 1, &a), link(&h0, 1, &b));
    }
}
