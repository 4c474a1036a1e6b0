//! `plasmoid upgrade <release> <component> <file.wasm>`: what dropping the
//! file into the release's components folder does, for scripts: it places
//! the file the safe way (written aside, renamed into place) and waits for
//! the running release to record the final outcome in `release.lock`: the
//! new version confirmed after its probation (exit 0), or rejected or
//! rolled back (exit 1).

use anyhow::{Context, Result, bail};
use plasmoid_release::SwapOutcome;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct UpgradeArgs {
    /// The release folder, or its prod.toml.
    release: PathBuf,
    /// The component to replace.
    component: String,
    /// The new version (.wasm).
    file: PathBuf,
    /// Seconds to wait for the final outcome (the release's probation, 10 s
    /// by default, is part of it).
    #[arg(long, default_value_t = 60)]
    wait: u64,
}

pub fn run(args: UpgradeArgs) -> Result<ExitCode> {
    let dir = if args.release.is_dir() {
        args.release.clone()
    } else {
        let m = plasmoid_release::load_manifest(&args.release)?;
        plasmoid_release::default_out_dir(&m)
    };
    let lock = plasmoid_release::Lock::read(&dir)?;
    if lock.component(&args.component).is_none() {
        let names: Vec<&str> = lock.components.iter().map(|c| c.name.as_str()).collect();
        bail!(
            "release {} has no component `{}` (it has: {})",
            lock.release,
            args.component,
            names.join(", ")
        );
    }
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let version = blake3_short(&bytes);
    let seen = lock.history.len();
    place(&dir, &args.component, &bytes)?;
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let mut upgraded = false;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let Ok(now) = plasmoid_release::Lock::read(&dir) else {
            continue;
        };
        // This version's records: its own, and a rollback away from it.
        let mine = now.history.iter().skip(seen).filter(|r| {
            r.component == args.component
                && (r.to == version || (r.outcome == SwapOutcome::RolledBack && r.from == version))
        });
        for r in mine {
            if r.outcome == SwapOutcome::Upgraded {
                if !upgraded {
                    println!("{} {}: {}", args.component, r.outcome, r.detail);
                    upgraded = true;
                }
                continue;
            }
            println!("{} {}: {}", args.component, r.outcome, r.detail);
            return Ok(if r.outcome == SwapOutcome::Confirmed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    }
    if upgraded {
        bail!(
            "{} was installed but its probation did not end within {} s; see `plasmoid status` and release.lock for the outcome",
            args.file.display(),
            args.wait
        )
    }
    bail!(
        "no running release took {} within {} s; the file is in place and a `plasmoid release run` of {} will pick it up",
        args.file.display(),
        args.wait,
        dir.display()
    )
}

fn place(dir: &Path, component: &str, bytes: &[u8]) -> Result<()> {
    let live = dir.join("components").join(format!("{component}.wasm"));
    let part = live.with_extension("wasm.part");
    std::fs::write(&part, bytes).with_context(|| format!("cannot write {}", part.display()))?;
    std::fs::rename(&part, &live)
        .with_context(|| format!("cannot move the file to {}", live.display()))
}

fn blake3_short(bytes: &[u8]) -> String {
    let full = plasmoid_release::hash(bytes);
    full.get(..12).unwrap_or(&full).to_string()
}
