//! `plasmoid observe [--release PATH] [--node NAME]`: the URL of a running
//! release's dashboard, with the token that the release's client key
//! derives (so the page may act), and the dashboard opened in a browser
//! where there is one.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ObserveArgs {
    /// The release: its prod.toml or its built folder (default: ./prod.toml).
    #[arg(long, value_name = "PATH")]
    release: Option<PathBuf>,
    /// The node of a release with [nodes] (default: the first).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Only print the URL; do not start a browser.
    #[arg(long)]
    no_open: bool,
}

pub fn run(args: ObserveArgs) -> Result<ExitCode> {
    let dir = crate::control::release_folder_of(args.release.clone())?;
    let node_dir = match &args.node {
        Some(n) => plasmoid_release::node_dir(&dir, Some(n)),
        None => crate::control::first_node_dir(&dir)?,
    };
    let file = node_dir.join(plasmoid_release::OBSERVER_FILE);
    let url = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "no observer address in {}: is the release running with `[observer] listen = \"127.0.0.1:9090\"` in its manifest, or `release run --observer 127.0.0.1:9090`?",
            file.display()
        )
    })?;
    let key = plasmoid_release::client_key(&dir)?;
    let token = plasmoid_observer::client_token(&key.to_bytes());
    let url = format!("{}?token={token}", url.trim());
    println!("{url}");
    if !args.no_open {
        open(&url);
    }
    Ok(ExitCode::SUCCESS)
}

/// Start the desktop's browser, if this machine has a desktop.
fn open(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        Some("xdg-open")
    } else {
        None
    };
    let Some(opener) = opener else {
        eprintln!("no desktop here: open the URL above in a browser");
        return;
    };
    let started = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = started {
        eprintln!("cannot start {opener} ({e}): open the URL above in a browser");
    }
}
