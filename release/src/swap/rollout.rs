//! Installing a new version and moving the running particles onto it:
//! handoff under the same pid where the particle supports it, otherwise a
//! restart by its supervisor (not counted against restart intensity).

use super::{Manager, make_dir, read};
use crate::lock::{short_hash, write_file};
use crate::model::Upgrade;
use std::time::Instant;

impl Manager {
    /// Validate, keep and install `bytes` as the new `name`; then roll out.
    /// `Err` is the reason it was refused (nothing changed then).
    pub(super) async fn install(
        &mut self,
        name: &str,
        bytes: &[u8],
        digest: &str,
    ) -> Result<String, String> {
        let started = Instant::now();
        let Some(def) = self.manifest.component(name).cloned() else {
            return Err(format!("`{name}` is not a component of this release"));
        };
        if !bytes.starts_with(b"\0asm") {
            return Err(
                "not a WebAssembly component: the file does not start with the \\0asm header"
                    .into(),
            );
        }
        let h = short_hash(digest).to_string();
        let limits = crate::boot::limits(&def, &self.cfg.default_limits);
        // Compiling, validating and file work run on a blocking thread,
        // never on the threads that run particles.
        let (cfg, dir, node) = (self.cfg.clone(), self.dir.clone(), self.node.clone());
        let (name_owned, bytes_owned, version) = (name.to_string(), bytes.to_vec(), h.clone());
        let probation = self.opts.probation;
        let old = tokio::task::spawn_blocking(move || {
            let (name, bytes, h) = (&name_owned, &bytes_owned, &version);
            // Compiles, implements the particle world, imports only what
            // the runtime offers.
            let cwasm =
                plasmoid_runtime::precompile(&cfg, name, bytes).map_err(|e| e.to_string())?;
            // The policies in force must still hold (they name components).
            plasmoid_runtime::PolicyGate::from_dir(&dir.join("policies"))
                .map_err(|e| format!("the release's policies no longer validate: {e}"))?;
            let versions = dir.join("versions");
            let kept_cwasm = versions.join(format!("{name}-{h}.cwasm"));
            let keep = || -> Result<(), crate::ReleaseError> {
                make_dir(Some(&versions))?;
                write_file(&versions.join(format!("{name}-{h}.wasm")), bytes)?;
                write_file(&kept_cwasm, &cwasm)?;
                write_file(
                    &dir.join("components").join(format!("{name}.cwasm")),
                    &cwasm,
                )
            };
            keep().map_err(|e| e.to_string())?;
            // The keyed hash of the bytes compiled here, not of the file.
            let secret = crate::native_code::load_or_create(&dir).map_err(|e| e.to_string())?;
            let mac = crate::native_code::mac(&secret, &cwasm);
            node.install_component(name, &kept_cwasm, Some(limits), h, Some(probation))
                .map(|old| (old, mac))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("the install task failed: {e}"))??;
        let (old, mac) = old;
        self.macs
            .insert((name.to_string(), digest.to_string()), mac);
        self.running.insert(name.to_string(), digest.to_string());
        let (handoff, restarted, left) = self.roll_out(name, def.upgrade).await;
        let detail = format!(
            "{} → {h} in {} ms: {handoff} handed over, {restarted} restarted{}",
            old.as_deref().unwrap_or("?"),
            started.elapsed().as_millis(),
            if left > 0 {
                format!(
                    ", {left} left on the old version (not supervised by this node, or a simple-one-for-one instance)"
                )
            } else {
                String::new()
            }
        );
        tracing::info!(component = %name, version = %h, mode = def.upgrade.as_str(), "upgraded {name}: {detail}");
        Ok(detail)
    }

    /// Move every particle of `name` to the node's current version.
    /// Returns (handed over, restarted, left behind).
    pub(super) async fn roll_out(&self, name: &str, mode: Upgrade) -> (usize, usize, usize) {
        roll_out(&self.node, name, mode, false).await
    }

    /// The runtime put `good` back after a particle of `bad` crashed.
    pub(super) async fn rolled_back(&mut self, name: &str, bad: &str, good: &str, reason: &str) {
        let good_full = self
            .lock
            .component(name)
            .map(|c| c.blake3.clone())
            .filter(|h| short_hash(h) == good);
        let bad_file = self.dir.join("versions").join(format!("{name}-{bad}.wasm"));
        if let Ok(bytes) = read(&bad_file) {
            let aside = self.dir.join("rejected").join(format!("{name}-{bad}.wasm"));
            if let Err(e) = make_dir(aside.parent()).and_then(|_| write_file(&aside, &bytes)) {
                tracing::warn!("cannot set the bad version aside: {e}");
            }
        }
        // `running` follows the node; the lock still names the good version
        // only if the swap to `bad` was never recorded, so look it up by
        // the kept files instead.
        let good_digest = good_full.or_else(|| {
            std::fs::read(
                self.dir
                    .join("versions")
                    .join(format!("{name}-{good}.wasm")),
            )
            .ok()
            .map(|b| crate::lock::hash(&b))
        });
        if let Some(d) = &good_digest {
            self.running.insert(name.to_string(), d.clone());
        }
        self.restore_files(name);
        let mode = self
            .manifest
            .component(name)
            .map_or(Upgrade::Restart, |c| c.upgrade);
        let (handoff, restarted, _) = self.roll_out(name, mode).await;
        tracing::warn!(component = %name, bad, good, "rolled back {name} to {good} ({reason}); {handoff} handed back, {restarted} restarted");
        if let Some(d) = good_digest {
            let detail = format!("{bad} crashed in probation ({reason}); back on {good}");
            self.record(name, &d, crate::lock::SwapOutcome::RolledBack, &detail);
        }
    }
}

/// Move every particle of `name` on `node` to the node's current version:
/// handed over under its pid where `mode` and the particle allow, else
/// restarted by its supervisor. With `force`, particles already on the
/// current version are restarted too (its settings changed, not its code).
/// Returns (handed over, restarted, left behind).
pub(crate) async fn roll_out(
    node: &plasmoid_runtime::Node,
    name: &str,
    mode: Upgrade,
    force: bool,
) -> (usize, usize, usize) {
    let (mut handoff, mut restarted, mut left) = (0, 0, 0);
    for p in node.particles_of(name) {
        // Read each time: a rollback during the rollout changes it.
        let current = Some(&p.version) == node.component_version(name).as_ref();
        if current && !force {
            continue;
        }
        if !current && mode == Upgrade::Handoff && p.upgradable && node.request_upgrade(p.pid) {
            handoff += 1;
            continue;
        }
        // One by one, by the supervisor: terminate + restart_child is an
        // operator's restart, not a crash, so intensity is untouched.
        match plasmoid_supervisor::find_child(node, p.pid) {
            // An instance of a simple-one-for-one template has no spec
            // of its own to restart from.
            Some((sup, _)) if sup.is_simple() => left += 1,
            Some((sup, id)) => {
                let res = match sup.terminate_child(&id).await {
                    Ok(()) => match sup.restart_child(&id).await {
                        Ok(_) => Ok(()),
                        // The new version crashed as it started: the
                        // runtime has put the old one back already, so
                        // the child comes back on it (never left stopped).
                        Err(e) => {
                            tracing::warn!(component = %name, child = %id, "the new version did not start ({e}); starting the child again");
                            sup.restart_child(&id).await.map(|_| ())
                        }
                    },
                    Err(e) => Err(e),
                };
                match res {
                    Ok(()) => restarted += 1,
                    Err(e) => {
                        tracing::warn!(component = %name, child = %id, "restart for the new version failed: {e}");
                        left += 1;
                    }
                }
            }
            None => left += 1,
        }
    }
    (handoff, restarted, left)
}
