//! Clusters simulated in one process, at sizes real endpoints on one
//! machine cannot reach: 100 members in a full mesh are 4,950 QUIC
//! connections with heartbeats, which do not converge on 2 cores.
//!
//! It owns two simulations, each running the real code of its layer over a
//! network made here: [`GossipSim`], the membership layer (iroh-gossip's
//! protocol and this crate's signed announcements, in virtual time), and
//! [`SimNet`], the registry layer (runtime nodes with their global names
//! and process groups, ops carried as the transport's frames in memory).
//! It does not own QUIC, heartbeats or dialling (the transport), and a
//! running release never uses it: `plasmoid bench cluster --simulate` and
//! the tests do.

mod gossip;
mod registry;

pub use gossip::{GossipSim, MAX_EVENTS_PER_RUN};
pub use registry::{MAX_SIM_QUEUE, SimNet};

#[cfg(test)]
mod tests;
