//! How a member takes part in the gossip overlay beyond what iroh-gossip
//! decides itself: when it makes an announcement out of turn, and with
//! which peers it joins the gossip. Pure rules, shared by the live member
//! (cluster.rs) and the simulation (sim/gossip.rs), so that what the
//! simulation measures is what runs. It does not own the announcements
//! (cluster.rs) nor the overlay (iroh-gossip's HyParView).

use plasmoid_runtime::NodeId;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Coalesces the announcements a member makes between its periodic ones
/// (on a new gossip neighbour, on hearing of a new member): at most one per
/// window, the rest folded into one at the window's end. Without it, N
/// members joining at once make N² broadcasts, since each re-announces on
/// each newcomer: 10,000 at 100 members, each verified by every member
/// (found by the simulation, `sim::GossipSim`).
#[derive(Debug)]
pub(crate) struct Echo {
    window: Duration,
    last: Option<Instant>,
    due: Option<Instant>,
}

impl Echo {
    /// A tenth of the announcement period: a newcomer is answered within
    /// it, and at most ten extra announcements a period go out.
    pub(crate) fn new(announce_every: Duration) -> Self {
        Echo {
            window: announce_every / 10,
            last: None,
            due: None,
        }
    }

    /// An announcement is wanted at `now`: whether it goes now (then it is
    /// recorded as sent); if not, one is due at [`Echo::due`].
    pub(crate) fn ask(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now < last + self.window => {
                self.due.get_or_insert(last + self.window);
                false
            }
            _ => {
                self.sent(now);
                true
            }
        }
    }

    /// When the folded announcement is due, if one is waiting.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// An announcement (periodic or folded) went out at `now`.
    pub(crate) fn sent(&mut self, now: Instant) {
        self.last = Some(now);
        self.due = None;
    }
}

/// Below this many gossip neighbours a member joins the gossip with each
/// peer the transport connects; above it HyParView keeps its active view
/// itself. Joining every peer (as this crate did) keeps HyParView evicting
/// and refilling for good: in the simulation, 30 idle members sent 32 KB/s
/// each instead of 5 KB/s, and 100 members 1.3 MB/s.
pub(crate) const MIN_GOSSIP_NEIGHBOURS: usize = 2;

/// Announcement periods without a word from a connected member after
/// which a member joins the gossip with it: two overlays left apart (a
/// healed partition, a member joined only through its own side) are
/// stitched together.
pub(crate) const STALE_PERIODS: u32 = 3;

/// The connected member to join the gossip with, if one has been silent
/// for [`STALE_PERIODS`] (or never heard, once this member has run that
/// long) and is not a neighbour already: at most one a period.
pub(crate) fn stale_peer(
    connected: impl IntoIterator<Item = NodeId>,
    heard: &HashMap<NodeId, Instant>,
    neighbour: impl Fn(NodeId) -> bool,
    now: Instant,
    started: Instant,
    every: Duration,
) -> Option<NodeId> {
    let quiet = every * STALE_PERIODS;
    if now < started + quiet {
        return None;
    }
    connected
        .into_iter()
        .find(|peer| !neighbour(*peer) && heard.get(peer).is_none_or(|at| now >= *at + quiet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_turn_announcements_are_folded_within_a_window() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut echo = Echo::new(Duration::from_secs(1));
        assert!(echo.ask(t0), "the first goes at once");
        assert!(!echo.ask(t0 + ms(10)), "a second within 100 ms waits");
        assert!(!echo.ask(t0 + ms(50)));
        assert_eq!(echo.due(), Some(t0 + ms(100)), "both folded into one");
        echo.sent(t0 + ms(100));
        assert_eq!(echo.due(), None);
        assert!(echo.ask(t0 + ms(250)), "past the window: at once again");
        echo.sent(t0 + ms(400));
        assert!(!echo.ask(t0 + ms(420)), "a periodic one opens a window too");
    }

    #[test]
    fn a_silent_connected_member_is_joined_once_this_member_has_run_a_while() {
        let t0 = Instant::now();
        let every = Duration::from_secs(1);
        let (a, b, c) = (NodeId([1; 32]), NodeId([2; 32]), NodeId([3; 32]));
        let mut heard = HashMap::new();
        heard.insert(a, t0 + Duration::from_secs(3));
        heard.insert(b, t0);
        let none = |_| false;
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(
            stale_peer([a, b, c], &heard, none, at(2), t0, every),
            None,
            "too early"
        );
        assert_eq!(
            stale_peer([a, b], &heard, none, at(4), t0, every),
            Some(b),
            "b silent 4 s"
        );
        assert_eq!(
            stale_peer([c], &heard, none, at(4), t0, every),
            Some(c),
            "c never heard"
        );
        assert_eq!(
            stale_peer([b], &heard, |p| p == b, at(4), t0, every),
            None,
            "a neighbour"
        );
        assert_eq!(
            stale_peer([a], &heard, none, at(5), t0, every),
            None,
            "a heard 2 s ago"
        );
    }
}
