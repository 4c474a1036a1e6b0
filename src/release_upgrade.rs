//! `plasmoid release upgrade prod.toml [--release DIR] --dry-run`: build
//! the edited manifest as a new version beside the running one and print
//! the plan that takes the running release there (plasmoid-release's
//! `upgrade` module). Applying the plan to a running release is not built
//! yet; without `--dry-run` the command says so and changes nothing.

use anyhow::{Context, Result, bail};
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
    let built = crate::release::build(&new, None)?;
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
    bail!(
        "applying an upgrade plan to a running release is not built yet; nothing was applied. \
         Use --dry-run to see the plan, `plasmoid upgrade` to hot-swap one component, or stop \
         the release and run {}",
        built.dir.display()
    )
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
