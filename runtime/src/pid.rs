//! Node-qualified process identifiers.
//!
//! A pid carries the id of the node that owns the process from the first day,
//! so it can be sent to another node (as its printable form) and still route.

use std::fmt;

/// A node's identity: 32 bytes, the public key of its mesh endpoint when it has
/// one, random bytes for an embedded node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// A fresh random id for a node without a mesh key.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        // The id only needs to be unique among cooperating nodes, so a
        // time-and-address seeded hash is enough; no crypto is at stake here.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut state = seed ^ (std::process::id() as u128) << 64 ^ (&bytes as *const _ as u128);
        for chunk in bytes.chunks_mut(8) {
            // splitmix64 steps
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state as u64;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes());
        }
        NodeId(bytes)
    }

    /// The short form used inside printable pids: the first 4 bytes in hex.
    pub fn short(&self) -> String {
        hex(&self.0[..4])
    }

    /// The full id in hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

/// A process id: the owning node plus a sequence number never reused on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    pub node: NodeId,
    pub seq: u64,
}

impl Pid {
    /// Split a printable pid (`<node short>.<seq>`) into its parts; the caller
    /// maps the short node form back to a full node id.
    pub fn parse_parts(s: &str) -> Option<(&str, u64)> {
        let (node, seq) = s.trim().split_once('.')?;
        if node.len() != 8 || !node.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some((node, seq.parse().ok()?))
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node.short(), self.seq)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{self}>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_pid_round_trips() {
        let node = NodeId::random();
        let pid = Pid { node, seq: 42 };
        let text = pid.to_string();
        let (short, seq) = Pid::parse_parts(&text).unwrap();
        assert_eq!(short, node.short());
        assert_eq!(seq, 42);
    }

    #[test]
    fn malformed_pids_are_rejected() {
        for bad in ["", "42", "zz.1", "abcd.1", "0123abcd.x", "0123abcd"] {
            assert!(Pid::parse_parts(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn random_node_ids_differ() {
        assert_ne!(NodeId::random(), NodeId::random());
    }
}
