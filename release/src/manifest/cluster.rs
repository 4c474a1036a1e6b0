//! `[cluster]`: how the release's nodes behave as one cluster, so far the
//! partition policy for failover children (plasmoid-runtime's partition
//! rule). It does not own membership or admission (plasmoid-mesh).

use super::Cx;
use super::raw::RawManifest;
use crate::error::ReleaseError;
use crate::model::ClusterDef;
use std::time::Duration;

/// Akka's split-brain resolver waits 20 s in large clusters; a release of a
/// few nodes on one network settles much faster.
pub const DEFAULT_STABLE_AFTER: Duration = Duration::from_secs(2);

impl Cx<'_> {
    pub(super) fn cluster(&self, raw: &RawManifest) -> Result<Option<ClusterDef>, ReleaseError> {
        let Some(c) = &raw.cluster else {
            return Ok(None);
        };
        if raw.nodes.is_empty() {
            return Err(self.err(
                c.span(),
                "[cluster] needs [nodes]: an embedded node has no partitions; add [nodes] or remove [cluster]",
            ));
        }
        let span = c.span();
        let c = c.get_ref();
        let Some(p) = &c.partition else {
            return Err(self.err(
                span,
                "[cluster] needs `partition`; write partition = \"keep-majority\"",
            ));
        };
        let policy = p
            .get_ref()
            .parse()
            .map_err(|e: String| self.err(p.span(), e))?;
        let stable_after = match &c.stable_after_ms {
            None => DEFAULT_STABLE_AFTER,
            Some(ms) if *ms.get_ref() == 0 || *ms.get_ref() > 600_000 => {
                return Err(self.err(
                    ms.span(),
                    "stable_after_ms is how long the cluster must not change before a side is judged; give 1 to 600000, e.g. stable_after_ms = 2000",
                ));
            }
            Some(ms) => Duration::from_millis(*ms.get_ref()),
        };
        Ok(Some(ClusterDef {
            policy,
            stable_after,
        }))
    }
}
