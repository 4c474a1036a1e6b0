//! `/metrics`: the node's counters in the OpenMetrics text format, encoded
//! by prometheus-client at scrape time.
//!
//! Nothing here counts: the runtime counts (plasmoid-runtime's `stats`),
//! and a scrape reads those counters and the sampler's latest sample
//! through one [`Collector`]. So the hot paths pay for a plain counter
//! and nothing more, however many scrapers there are.

use crate::sampler::Shared;
use plasmoid_runtime::Node;
use plasmoid_runtime::stats::EXIT_KINDS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The content type of [`encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug)]
struct NodeCollector {
    node: NodeRef,
    shared: SharedRef,
}

/// `Node` and `Shared` are not `Debug`; the collector trait wants it.
struct NodeRef(Node);
struct SharedRef(Arc<Shared>);

impl std::fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.0.id())
    }
}

impl std::fmt::Debug for SharedRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

/// A registry holding the node's collector.
pub(crate) fn registry(node: Node, shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(NodeCollector {
        node: NodeRef(node),
        shared: SharedRef(shared),
    }));
    registry
}

/// The registry's metrics as OpenMetrics text.
pub(crate) fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for NodeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let node = &self.node.0;
        let t = node.totals();
        let sample = self.shared.0.latest.borrow().clone();
        gauge(
            &mut e,
            "plasmoid_particles_alive",
            "Particles alive on this node.",
            node.live_particles() as i64,
        )?;
        gauge(
            &mut e,
            "plasmoid_memory_bytes",
            "Linear memory held by this node's particles.",
            sample.point.memory as i64,
        )?;
        counter(&mut e, "plasmoid_spawns", "Particles spawned.", t.spawns)?;
        {
            let mut f = e.encode_descriptor(
                "plasmoid_exits",
                "Particles that ended, by kind of exit reason.",
                None,
                MetricType::Counter,
            )?;
            for (kind, n) in EXIT_KINDS.iter().zip(&t.exits) {
                ConstCounter::new(*n).encode(f.encode_family(&[("reason", *kind)])?)?;
            }
        }
        {
            let mut f = e.encode_descriptor(
                "plasmoid_restarts",
                "Restarts of each supervisor's children, by the supervisor's path in the tree (`root`, `root/core`).",
                None,
                MetricType::Counter,
            )?;
            for (sup, n) in &sample.restarts {
                ConstCounter::new(*n).encode(f.encode_family(&[("supervisor", sup.as_str())])?)?;
            }
        }
        let (sent, received) = node.message_totals();
        counter(
            &mut e,
            "plasmoid_messages_sent",
            "Messages particles sent.",
            sent,
        )?;
        counter(
            &mut e,
            "plasmoid_messages_received",
            "Messages queued in this node's mailboxes.",
            received,
        )?;
        counter(
            &mut e,
            "plasmoid_mailbox_full",
            "Sends refused because the receiver's mailbox was full.",
            t.mailbox_full,
        )?;
        counter(
            &mut e,
            "plasmoid_cedar_denials",
            "Capabilities Cedar denied to particles.",
            t.denials,
        )?;
        counter(
            &mut e,
            "plasmoid_swaps",
            "New component versions installed (hot swaps).",
            t.swaps,
        )?;
        counter(
            &mut e,
            "plasmoid_rollbacks",
            "Hot swaps rolled back after a crash on probation.",
            t.rollbacks,
        )?;
        let peers = &sample.peers;
        let peer_label = |p: &crate::model::PeerRow| {
            if p.name.is_empty() {
                p.id.chars().take(8).collect()
            } else {
                p.name.clone()
            }
        };
        for (name, help, get) in [
            (
                "plasmoid_mesh_sent_bytes",
                "UDP bytes sent to each peer on its current connection.",
                (|p: &crate::model::PeerRow| p.bytes_sent) as fn(&crate::model::PeerRow) -> u64,
            ),
            (
                "plasmoid_mesh_received_bytes",
                "UDP bytes received from each peer on its current connection.",
                |p| p.bytes_received,
            ),
        ] {
            let mut f = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for p in peers {
                ConstCounter::new(get(p)).encode(f.encode_family(&[("peer", peer_label(p))])?)?;
            }
        }
        {
            let mut f = e.encode_descriptor(
                "plasmoid_mesh_rtt_seconds",
                "The transport's round-trip estimate to each connected peer.",
                None,
                MetricType::Gauge,
            )?;
            for p in peers {
                if let Some(ms) = p.rtt_ms {
                    ConstGauge::new(ms / 1000.0)
                        .encode(f.encode_family(&[("peer", peer_label(p))])?)?;
                }
            }
        }
        {
            let mut f = e.encode_descriptor(
                "plasmoid_mesh_peer_up",
                "1 when the peer is connected both ways.",
                None,
                MetricType::Gauge,
            )?;
            for p in peers {
                ConstGauge::new(i64::from(p.connected))
                    .encode(f.encode_family(&[("peer", peer_label(p))])?)?;
            }
        }
        {
            let mut f = e.encode_descriptor(
                "plasmoid_http_requests",
                "HTTP requests answered, by route pattern and status.",
                None,
                MetricType::Counter,
            )?;
            for ((route, status), n) in node.http_counts() {
                let labels = [("route", route), ("status", status.to_string())];
                ConstCounter::new(n).encode(f.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
