//! Release versions: which release (`name-version`) and which code this
//! node runs, and what each connected peer said it runs, so nodes agree on
//! the version at the mesh handshake.
//!
//! It owns the node's own [`Tag`] (set by whoever boots or upgrades the
//! release, watched by the transport, which tells peers on connect and on
//! every change) and the peers' tags (recorded by the transport from what
//! they say). Its one rule: a node starts children for a peer only when
//! both run the same code, the components' hashes ([`Tag::code`]); a node
//! left behind by an upgrade that changed components is refused work until
//! it runs the new version, instead of running stale code silently. A
//! different release version with the same code (an upgrade that changed
//! only the tree) is shown, not refused. It does not move a node to a new
//! version (plasmoid-release does) nor refuse connections (plasmoid-mesh
//! closes one from another release).

use crate::pid::NodeId;
use dashmap::DashMap;
use tokio::sync::watch;

/// The longest tag a peer may send (both parts together).
pub const MAX_TAG: usize = 256;

/// What a node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// `name-version` of the release.
    pub release: String,
    /// A hash of the components' names and code hashes.
    pub code: String,
}

impl Tag {
    /// The release's name: `shop-1.2.0` → `shop`.
    pub fn name(&self) -> &str {
        release_name(&self.release)
    }
}

/// `shop-1.2.0` → `shop` (the version is the last `-` part).
pub fn release_name(tag: &str) -> &str {
    tag.rsplit_once('-').map_or(tag, |(name, _)| name)
}

pub(crate) struct Versions {
    mine: watch::Sender<Option<Tag>>,
    /// Kept after a peer is lost: a returning node says again on connect.
    peers: DashMap<NodeId, Tag>,
}

impl Default for Versions {
    fn default() -> Self {
        Versions {
            mine: watch::channel(None).0,
            peers: DashMap::new(),
        }
    }
}

impl Versions {
    fn may_host(&self, peer: NodeId) -> Result<(), String> {
        let (Some(mine), Some(theirs)) = (self.mine.borrow().clone(), self.peer(peer)) else {
            return Ok(());
        };
        if mine.code == theirs.code {
            return Ok(());
        }
        Err(format!(
            "node {} runs release {} and this node {} with other components: a node starts children only for a node that runs the same code; start it from the new version's folder",
            peer.short(),
            theirs.release,
            mine.release
        ))
    }

    fn peer(&self, peer: NodeId) -> Option<Tag> {
        self.peers.get(&peer).map(|t| t.clone())
    }
}

impl crate::node::Node {
    /// Say what this node runs now: at boot and after every upgrade or
    /// rollback. Connected peers are told.
    pub fn set_release(&self, tag: Tag) {
        self.inner.versions.mine.send_replace(Some(tag));
    }

    /// What this node runs, once set.
    pub fn release(&self) -> Option<Tag> {
        self.inner.versions.mine.borrow().clone()
    }

    /// Changes of [`Self::release`], for the transport to tell peers.
    pub fn release_watch(&self) -> watch::Receiver<Option<Tag>> {
        self.inner.versions.mine.subscribe()
    }

    /// What `peer` said it runs (the transport calls this); the tag it
    /// said before, when that differs.
    pub fn set_peer_release(&self, peer: NodeId, tag: Tag) -> Option<Tag> {
        let old = self.inner.versions.peers.insert(peer, tag.clone());
        old.filter(|o| *o != tag)
    }

    /// What `peer` last said it runs.
    pub fn peer_release(&self, peer: NodeId) -> Option<Tag> {
        self.inner.versions.peer(peer)
    }

    /// Whether this node starts children for `peer` (the same code).
    pub(crate) fn may_host_for(&self, peer: NodeId) -> Result<(), String> {
        self.inner.versions.may_host(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(release: &str, code: &str) -> Tag {
        Tag {
            release: release.into(),
            code: code.into(),
        }
    }

    #[test]
    fn hosting_needs_the_same_code_once_both_are_known() {
        let v = Versions::default();
        let peer = NodeId([7; 32]);
        assert!(v.may_host(peer).is_ok(), "nothing known yet");
        v.mine.send_replace(Some(tag("shop-1.0.0", "a")));
        assert!(v.may_host(peer).is_ok(), "the peer said nothing yet");
        v.peers.insert(peer, tag("shop-1.0.0", "a"));
        assert!(v.may_host(peer).is_ok());
        // An upgrade of the tree only: another version, the same code.
        v.mine.send_replace(Some(tag("shop-1.1.0", "a")));
        assert!(v.may_host(peer).is_ok());
        v.mine.send_replace(Some(tag("shop-1.2.0", "b")));
        let why = v.may_host(peer).unwrap_err();
        assert!(
            why.contains("runs release shop-1.0.0 and this node shop-1.2.0"),
            "{why}"
        );
        v.peers.insert(peer, tag("shop-1.2.0", "b"));
        assert!(v.may_host(peer).is_ok());
    }

    #[test]
    fn the_name_is_what_comes_before_the_version() {
        assert_eq!(release_name("shop-1.2.0"), "shop");
        assert_eq!(release_name("my-shop-1"), "my-shop");
        assert_eq!(release_name("bare"), "bare");
        assert_eq!(tag("shop-2", "x").name(), "shop");
    }
}
