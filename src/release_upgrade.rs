//! `plasmoid release upgrade prod.toml [--release DIR] [--dry-run]`: build
//! the edited manifest as a new version beside the running one (with the
//! running one's keys, so it is the same cluster), print the plan that
//! takes the running release there (plasmoid-release's `upgrade` module),
//! and, without `--dry-run`, ask the running root node to apply it, all
//! or nothing. `release confirm` and `release rollback` end the probation
//! that follows.

use anyhow::{Context, Result, bail};
use plasmoid_mesh::Request;
use plasmoid_release::LOCK_FILE;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct UpgradeArgs {
    /// The edited manifest (its `release.version` must be new).
    #[arg(default_value = "prod.toml")]
    manifest: PathBuf,
    /// The running release's folder (default: the newest other build of
    /// the same release beside the new one, `target/plasmoid/NAME-*`).
    #[arg(long, value_name = "DIR")]
    release: Option<PathBuf>,
    /// Print the plan and stop. The new version is built into its own
    /// folder; the running release and its folder are not touched.
    #[arg(long)]
    dry_run: bool,
    /// How long the new version is on probation: a crash of a child the
    /// upgrade started or changed within it rolls everything back.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    probation: f64,
}

/// `plasmoid release confirm | rollback`.
#[derive(clap::Args)]
pub struct EndArgs {
    #[command(flatten)]
    to: crate::control::Connect,
}

pub fn run(args: UpgradeArgs) -> Result<ExitCode> {
    let new = plasmoid_release::load_manifest(&args.manifest)?;
    let target = plasmoid_release::default_out_dir(&new);
    let running = match args.release {
        Some(dir) => dir,
        None => newest_other_build(&target, &new.name)?,
    };
    let (old, old_lock) = plasmoid_release::open_release(&running)?;
    if old.version == new.version {
        // The same check the plan makes, before a build that may be long.
        bail!(
            "release.version is still \"{}\" in {}: give the new build a new version",
            new.version,
            args.manifest.display()
        );
    }
    let opts = plasmoid_release::BuildOptions {
        out: None,
        reuse: Some(running.clone()),
    };
    let built = crate::release::build_with(&new, opts)?;
    if built.dir != running {
        share_keys(&running, &built.dir)?;
    }
    let (new_built, new_lock) = plasmoid_release::open_release(&built.dir)?;
    let plan = plasmoid_release::upgrade::plan(&old, &old_lock, &new_built, &new_lock)?;
    print!("{}", plan.render());
    if args.dry_run {
        println!(
            "dry run: nothing was applied ({} is unchanged)",
            running.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !(0.0..=3600.0).contains(&args.probation) {
        bail!("--probation takes 0 to 3600 seconds");
    }
    let dir = std::fs::canonicalize(&built.dir)
        .with_context(|| format!("cannot resolve {}", built.dir.display()))?;
    let req = Request::Upgrade {
        dir: dir.display().to_string(),
        probation_ms: (args.probation * 1000.0) as u64,
    };
    let to = crate::control::Connect::to_release(&running);
    ask(&to, &req)
}

/// Ask the running release for `req` and print its answer.
fn ask(to: &crate::control::Connect, req: &Request) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reply = rt.block_on(crate::control::ask(to, req))?;
    crate::control::print_reply(reply, crate::control::Encoding::Text)
}

/// `plasmoid release confirm`.
pub fn confirm(args: EndArgs) -> Result<ExitCode> {
    ask(&args.to, &Request::Confirm)
}

/// `plasmoid release rollback`.
pub fn rollback(args: EndArgs) -> Result<ExitCode> {
    ask(&args.to, &Request::Rollback)
}

/// Give the new version's folder the running one's keys: its nodes keep
/// their identities, the cluster its key and clients theirs (a fresh
/// build made new ones).
fn share_keys(running: &Path, new: &Path) -> Result<()> {
    let mut keys = vec![
        PathBuf::from("client/node.key"),
        PathBuf::from("cluster/node.key"),
    ];
    if let Ok(nodes) = std::fs::read_dir(running.join("nodes")) {
        for n in nodes.flatten() {
            let name = PathBuf::from("nodes").join(n.file_name());
            keys.push(name.join("node.key"));
            keys.push(name.join("id"));
        }
    }
    for k in keys {
        let from = running.join(&k);
        if !from.is_file() {
            continue;
        }
        let to = new.join(&k);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::copy(&from, &to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    }
    Ok(())
}

/// The most recently built folder `NAME-*` beside `new_dir` other than it
/// (or `new_dir` itself when it is the only one).
fn newest_other_build(new_dir: &Path, name: &str) -> Result<PathBuf> {
    let parent = new_dir.parent().unwrap_or(Path::new("."));
    let prefix = format!("{name}-");
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    let entries = std::fs::read_dir(parent).with_context(|| {
        format!(
            "no built release of `{name}` in {}: give --release DIR",
            parent.display()
        )
    })?;
    for e in entries.flatten() {
        let path = e.path();
        let named = e.file_name().to_string_lossy().starts_with(&prefix);
        if !named || path == new_dir {
            continue;
        }
        let Ok(meta) = std::fs::metadata(path.join(LOCK_FILE)) else {
            continue;
        };
        let at = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(t, _)| at > *t) {
            best = Some((at, path));
        }
    }
    match best {
        Some((_, p)) => Ok(p),
        // Only this version is built: the version check says what to do.
        None if new_dir.join(LOCK_FILE).is_file() => Ok(new_dir.to_path_buf()),
        None => bail!(
            "no other built release of `{name}` in {}: give the running one with --release DIR",
            parent.display()
        ),
    }
}
