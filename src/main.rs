//! The `plasmoid` command line: argument parsing and thin command functions.

mod bench;
mod control;
mod load;
mod logging;
mod observe;
mod release;
mod release_upgrade;
mod scaffold;
mod start;
mod store;
mod upgrade;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "plasmoid",
    version,
    about = "OTP-style supervision for WebAssembly particles"
)]
struct Cli {
    /// Log format on stderr: `text` or `json`. Levels follow RUST_LOG (default: info).
    #[arg(long, global = true, default_value = "text")]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot a node, load components and spawn one particle.
    Start(start::StartArgs),
    /// Create a new application workspace.
    New {
        /// Folder (and workspace name) to create.
        name: String,
        /// Path of the plasmoid-sdk crate the app depends on.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Work with components of the application in the current folder.
    Component {
        #[command(subcommand)]
        command: ComponentCommand,
    },
    /// Check, build and run releases described by a `prod.toml`.
    Release {
        #[command(subcommand)]
        command: release::ReleaseCommand,
    },
    /// Hot-swap a component of a running release with a new .wasm.
    Upgrade(upgrade::UpgradeArgs),
    /// Measure the runtime; prints one JSON object per figure.
    Bench(bench::BenchArgs),
    /// Print (and open) the URL of a running release's live dashboard.
    Observe(observe::ObserveArgs),
    /// Read and write a running release's store buckets.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    #[command(flatten)]
    Control(control::ControlCommand),
}

#[derive(Subcommand)]
enum ComponentCommand {
    /// Create a new component under `components/`: a Rust crate, or a
    /// Python module built by componentize-py.
    New {
        name: String,
        #[arg(long)]
        sdk_path: Option<PathBuf>,
        /// The component's language.
        #[arg(long, value_enum, default_value_t = scaffold::Lang::Rust)]
        lang: scaffold::Lang,
    },
}

fn main() -> ExitCode {
    // Every crash or kill of a particle creates an error value; with
    // RUST_BACKTRACE set, std would unwind and record a host backtrace for
    // each one, which nobody reads. Panics still print theirs.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: nothing else runs yet (no threads), so no one reads the
        // environment concurrently.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let cli = Cli::parse();
    // Benchmarks measure the runtime, not the log writer, and control
    // commands print their answer: quiet unless asked.
    let default_level = if matches!(
        cli.command,
        Command::Bench(_) | Command::Control(_) | Command::Store { .. } | Command::Observe(_)
    ) {
        "warn"
    } else {
        "info"
    };
    logging::init(cli.log_format, default_level);
    let result = match cli.command {
        Command::Start(args) => start::run(args),
        Command::New { name, sdk_path } => {
            scaffold::new_app(&name, sdk_path).map(|_| ExitCode::SUCCESS)
        }
        Command::Component {
            command:
                ComponentCommand::New {
                    name,
                    sdk_path,
                    lang,
                },
        } => scaffold::new_component(&name, sdk_path, lang).map(|_| ExitCode::SUCCESS),
        Command::Release { command } => release::run(command),
        Command::Upgrade(args) => upgrade::run(args),
        Command::Bench(args) => bench::run(args).map(|_| ExitCode::SUCCESS),
        Command::Control(cmd) => control::run(cmd),
        Command::Store { command } => store::run(command),
        Command::Observe(args) => observe::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
