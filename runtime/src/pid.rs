//! Node-qualified process identifiers.
//!
//! A pid carries the id of the node that owns the process from the first day,
//! so it can be sent to another node (as its printable form) and still route.

use std::fmt;

/// A node's identity: 32 bytes, the public key of its mesh endpoint when it has
/// one, random bytes for an embedded node.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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
///
/// The sequence's high 32 bits are the node's *creation* (its incarnation,
/// as Erlang's): a node restarted with the same key counts again from 1,
/// but under a new creation, so a pid of a process that died before the
/// restart never reaches a process of the new incarnation (`noproc`).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Pid {
    pub node: NodeId,
    pub seq: u64,
}

impl Pid {
    /// The node incarnation that made this pid (0: a node without one).
    pub fn creation(&self) -> u32 {
        (self.seq >> 32) as u32
    }

    /// The pid's number within its node's incarnation.
    pub fn serial(&self) -> u32 {
        self.seq as u32
    }

    /// The sequence number of `serial` in incarnation `creation`.
    pub fn seq_of(creation: u32, serial: u32) -> u64 {
        (u64::from(creation) << 32) | u64::from(serial)
    }

    /// Split a printable pid (`<node short>.<serial>`, or
    /// `<node short>.<creation>.<serial>`) into the node's short form and the
    /// sequence number; the caller maps the short form to a full node id.
    pub fn parse_parts(s: &str) -> Option<(&str, u64)> {
        let mut parts = s.trim().split('.');
        let node = parts.next()?;
        if node.len() != 8 || !node.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let first: u32 = parts.next()?.parse().ok()?;
        let seq = match parts.next() {
            None => u64::from(first),
            Some(serial) => Pid::seq_of(first, serial.parse().ok()?),
        };
        if parts.next().is_some() {
            return None;
        }
        Some((node, seq))
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.creation() {
            0 => write!(f, "{}.{}", self.node.short(), self.serial()),
            c => write!(f, "{}.{c}.{}", self.node.short(), self.serial()),
        }
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
    fn a_creation_is_part_of_the_printable_pid() {
        let node = NodeId::random();
        let pid = Pid {
            node,
            seq: Pid::seq_of(3, 12),
        };
        let text = pid.to_string();
        assert_eq!(text, format!("{}.3.12", node.short()));
        assert_eq!(
            Pid::parse_parts(&text),
            Some((node.short().as_str(), pid.seq))
        );
        assert_eq!((pid.creation(), pid.serial()), (3, 12));
        let older = Pid {
            node,
            seq: Pid::seq_of(2, 12),
        };
        assert_ne!(
            older, pid,
            "the same serial of another incarnation is another pid"
        );
    }

    #[test]
    fn malformed_pids_are_rejected() {
        for bad in [
            "",
            "42",
            "zz.1",
            "abcd.1",
            "0123abcd.x",
            "0123abcd",
            "0123abcd.1.2.3",
            "0123abcd.99999999999",
        ] {
            assert!(Pid::parse_parts(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn random_node_ids_differ() {
        assert_ne!(NodeId::random(), NodeId::random());
    }
}
