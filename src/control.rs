//! `plasmoid status | spawn | send | call | stop | kill`: a client of a running
//! release node. It dials the node's direct address (from the release
//! folder's `nodes/<name>/control` or `node/control`, or `--node
//! ID@IP:PORT`) with the release's client key; nothing is looked up.

use anyhow::{Context, Result, anyhow, bail};
use plasmoid_mesh::{ControlAddr, ControlClient, Reply, Request, SecretKey, Status, TreeRow};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Clone)]
pub struct Connect {
    /// The release: its prod.toml or its built folder (default: ./prod.toml).
    #[arg(long, value_name = "PATH")]
    release: Option<PathBuf>,
    /// The node: a node name of the release (default: the first, which
    /// runs the root), or NODE_ID@IP:PORT.
    #[arg(long, value_name = "NAME|ID@ADDR")]
    node: Option<String>,
    /// The client key file (default: the release's client/node.key).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Give up on a node that does not answer within this many ms.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    connect_timeout: u64,
}

impl Connect {
    /// The root node of the release built in `dir`, with its client key.
    pub(crate) fn to_release(dir: &Path) -> Connect {
        Connect {
            release: Some(dir.to_path_buf()),
            node: None,
            key: None,
            connect_timeout: 3000,
        }
    }
}

/// How MESSAGE is turned into bytes, and the answer back into text.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The text's UTF-8 bytes.
    Text,
    /// The text as a postcard `Vec<u8>`: what a `#[gen_server]` taking
    /// `Vec<u8>` (such as echo) expects.
    Postcard,
    /// Bytes given in hex; the answer printed in hex.
    Hex,
}

#[derive(clap::Subcommand)]
pub enum ControlCommand {
    /// Show a running node: peers, components and versions, particles,
    /// and the supervision tree with pids, nodes and restart counts.
    Status {
        #[command(flatten)]
        to: Connect,
        /// Print the node's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a particle on a running node; prints its pid.
    Spawn {
        component: String,
        /// Init args handed to the particle's `start` (JSON text).
        #[arg(long, default_value = "")]
        init: String,
        /// Register the particle under this name.
        #[arg(long)]
        name: Option<String>,
        /// Start it on this node of the mesh instead (a node name or id).
        #[arg(long, value_name = "NODE")]
        on: Option<String>,
        #[command(flatten)]
        to: Connect,
    },
    /// Send a data message to a pid, a name or name@node.
    Send {
        target: String,
        message: String,
        #[arg(long = "as", value_enum, default_value = "text")]
        encoding: Encoding,
        #[command(flatten)]
        to: Connect,
    },
    /// Request/reply with a particle (a tagged message); prints the answer.
    Call {
        target: String,
        message: String,
        #[arg(long = "as", value_enum, default_value = "text")]
        encoding: Encoding,
        /// How long to wait for the answer.
        #[arg(long, default_value_t = 5000, value_name = "MS")]
        timeout: u64,
        #[command(flatten)]
        to: Connect,
    },
    /// Stop a particle (a supervised child stays stopped), or with no
    /// TARGET the node itself (in order, like SIGTERM).
    Stop {
        target: Option<String>,
        #[command(flatten)]
        to: Connect,
    },
    /// Kill a particle (`exit(Pid, kill)`: it cannot trap it); its
    /// supervisor restarts it per its restart policy.
    Kill {
        target: String,
        #[command(flatten)]
        to: Connect,
    },
}

pub fn run(cmd: ControlCommand) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cmd {
            ControlCommand::Status { to, json } => status(&to, json).await,
            ControlCommand::Spawn {
                component,
                init,
                name,
                on,
                to,
            } => {
                let req = Request::Spawn {
                    component,
                    init,
                    name,
                    node: on,
                };
                print_reply(ask(&to, &req).await?, Encoding::Text)
            }
            ControlCommand::Send {
                target,
                message,
                encoding,
                to,
            } => {
                let data = encode(&message, encoding)?;
                print_reply(ask(&to, &Request::Send { target, data }).await?, encoding)
            }
            ControlCommand::Call {
                target,
                message,
                encoding,
                timeout,
                to,
            } => {
                let req = Request::Call {
                    target,
                    data: encode(&message, encoding)?,
                    timeout_ms: timeout,
                };
                print_reply(ask(&to, &req).await?, encoding)
            }
            ControlCommand::Stop { target, to } => {
                print_reply(ask(&to, &Request::Stop { target }).await?, Encoding::Text)
            }
            ControlCommand::Kill { target, to } => {
                print_reply(ask(&to, &Request::Kill { target }).await?, Encoding::Text)
            }
        }
    })
}

/// The release folder `--release` (or ./prod.toml) points at, unbuilt.
fn release_folder(to: &Connect) -> Result<PathBuf> {
    release_folder_of(to.release.clone())
}

/// The built folder of a release given as a folder or a prod.toml
/// (default ./prod.toml).
pub(crate) fn release_folder_of(release: Option<PathBuf>) -> Result<PathBuf> {
    let path = release.unwrap_or_else(|| PathBuf::from("prod.toml"));
    if path.is_dir() {
        return Ok(path);
    }
    let m = plasmoid_release::load_manifest(&path).context(
        "no release to talk to: give --release (a prod.toml or release folder) or --node ID@IP:PORT",
    )?;
    let dir = plasmoid_release::default_out_dir(&m);
    if !dir.is_dir() {
        bail!(
            "{} is not built; start it with `plasmoid release run {}`",
            dir.display(),
            path.display()
        );
    }
    Ok(dir)
}

/// Where to dial and with which key.
fn target(to: &Connect, node: Option<&str>) -> Result<(ControlAddr, SecretKey)> {
    let node = node.or(to.node.as_deref());
    if let Some(direct) = node.filter(|n| n.contains('@')) {
        let addr: ControlAddr = direct.parse().map_err(|e: String| anyhow!(e))?;
        let key = match &to.key {
            Some(k) => plasmoid_mesh::read_key_file(k)?,
            None => plasmoid_release::client_key(&release_folder(to)?)?,
        };
        return Ok((addr, key));
    }
    let dir = release_folder(to)?;
    let node_dir = match node {
        Some(name) => plasmoid_release::node_dir(&dir, Some(name)),
        None => first_node_dir(&dir)?,
    };
    let addr = plasmoid_release::read_control_addr(&node_dir)
        .with_context(|| "is the node running? `plasmoid release run` writes this file")?;
    let key = match &to.key {
        Some(k) => plasmoid_mesh::read_key_file(k)?,
        None => plasmoid_release::client_key(&dir)?,
    };
    Ok((addr, key))
}

/// The root node's folder: the first of `[nodes]`, or `node/`.
pub(crate) fn first_node_dir(dir: &Path) -> Result<PathBuf> {
    let (m, _) = plasmoid_release::open_release(dir)?;
    Ok(plasmoid_release::node_dir(
        dir,
        m.nodes.first().map(|n| n.name.as_str()),
    ))
}

async fn ask_at(to: &Connect, node: Option<&str>, req: &Request) -> Result<Result<Reply, String>> {
    let (addr, key) = target(to, node)?;
    let client =
        ControlClient::connect(key, addr, Duration::from_millis(to.connect_timeout)).await?;
    // A call may wait its own timeout on the node; everything else is quick
    // unless the node is stuck.
    let patience = match req {
        Request::Call { timeout_ms, .. } => {
            Duration::from_millis((*timeout_ms).min(plasmoid_release::MAX_CALL_MS) + 10_000)
        }
        // An upgrade starts and stops children, each within its own
        // timeout; a plan of many steps takes a while.
        Request::Upgrade { .. } | Request::Rollback => Duration::from_secs(600),
        _ => Duration::from_secs(30),
    };
    let answer = client.request(req, patience).await;
    client.close().await;
    Ok(answer?)
}

pub(crate) async fn ask(to: &Connect, req: &Request) -> Result<Result<Reply, String>> {
    ask_at(to, None, req).await
}

pub(crate) fn encode(message: &str, encoding: Encoding) -> Result<Vec<u8>> {
    Ok(match encoding {
        Encoding::Text => message.as_bytes().to_vec(),
        Encoding::Postcard => postcard::to_allocvec(message.as_bytes())?,
        Encoding::Hex => from_hex(message)?,
    })
}

fn from_hex(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        bail!("hex input needs an even number of digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| anyhow!("`{s}` is not hex"))
        })
        .collect()
}

pub(crate) fn print_reply(reply: Result<Reply, String>, encoding: Encoding) -> Result<ExitCode> {
    match reply {
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Ok(Reply::Pid(p)) => {
            println!("{p}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Reply::Done(text)) => {
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Reply::Answer(bytes)) => {
            println!("{}", decode(&bytes, encoding));
            Ok(ExitCode::SUCCESS)
        }
        Ok(Reply::Status(s)) => {
            println!("{}", serde_json::to_string(&s)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn decode(bytes: &[u8], encoding: Encoding) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    match encoding {
        Encoding::Hex => hex(bytes),
        Encoding::Postcard => match postcard::from_bytes::<Vec<u8>>(bytes) {
            Ok(inner) => String::from_utf8(inner.clone()).unwrap_or_else(|_| hex(&inner)),
            Err(_) => format!("(not a postcard Vec<u8>) {}", hex(bytes)),
        },
        Encoding::Text => String::from_utf8(bytes.to_vec()).unwrap_or_else(|_| hex(bytes)),
    }
}

async fn status(to: &Connect, json: bool) -> Result<ExitCode> {
    let s = match ask(to, &Request::Status).await? {
        Ok(Reply::Status(s)) => s,
        Ok(_) => bail!("the node answered something other than a status"),
        Err(e) => bail!("{e}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    // Children on other nodes: ask those nodes for their versions (best
    // effort; a node that does not answer shows as unreachable).
    let mut versions: HashMap<String, String> = HashMap::new();
    let mut others = Vec::new();
    for p in &s.peers {
        let quick = Connect {
            connect_timeout: to.connect_timeout.min(1000),
            ..to.clone()
        };
        match ask_at(&quick, Some(&p.name), &Request::Status).await {
            Ok(Ok(Reply::Status(peer))) => others.push(peer),
            _ => eprintln!("(node {} did not answer; its versions are unknown)", p.name),
        }
    }
    for st in std::iter::once(&s).chain(others.iter()) {
        for p in &st.particles {
            versions.insert(p.pid.clone(), p.version.clone());
        }
    }
    print!("{}", render(&s, &versions));
    Ok(ExitCode::SUCCESS)
}

fn render(s: &Status, versions: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let short = |id: &str| id.get(..8).unwrap_or(id).to_string();
    let name = if s.node.is_empty() {
        "(single)"
    } else {
        &s.node
    };
    out += &format!(
        "release {}  node {} ({})  up {:.1} s\n",
        s.release,
        name,
        short(&s.id),
        s.uptime_ms as f64 / 1000.0
    );
    for p in &s.peers {
        let state = if p.connected {
            "connected"
        } else {
            "not connected"
        };
        let runs = match &p.release {
            Some((r, true)) if *r == s.release => String::new(),
            Some((r, true)) => format!(", runs {r} (same components)"),
            Some((r, false)) => {
                format!(", runs {r}: other components, it hosts nothing for this node")
            }
            None => String::new(),
        };
        out += &format!("peer {} ({}) {state}{runs}\n", p.name, short(&p.id));
    }
    if let Some((policy, standing)) = &s.partition {
        out += &format!("partition {policy}: {standing}\n");
    }
    for (c, v) in &s.components {
        out += &format!("component {c} {v}\n");
    }
    if let Some(tree) = &s.tree {
        out += "tree\n";
        render_row(tree, 1, versions, &mut out);
    }
    out += &format!("particles {}\n", s.particles.len());
    for p in &s.particles {
        let name = p.name.as_deref().unwrap_or("-");
        out += &format!("  {} {}@{} name={name}\n", p.pid, p.component, p.version);
    }
    out
}

fn render_row(row: &TreeRow, depth: usize, versions: &HashMap<String, String>, out: &mut String) {
    let pid = row.pid.as_deref().unwrap_or("-");
    let what = match (&row.strategy, &row.component) {
        (Some(strategy), _) => format!("supervisor {strategy}"),
        (None, Some(c)) => {
            let v = row
                .pid
                .as_ref()
                .and_then(|p| versions.get(p))
                .map_or("?", String::as_str);
            format!("{c}@{v}")
        }
        (None, None) => "-".into(),
    };
    let node = row.node.as_deref().unwrap_or("-");
    *out += &format!(
        "{}{} {what} pid={pid} node={node} restarts={}\n",
        "  ".repeat(depth),
        row.id,
        row.restarts
    );
    for c in &row.children {
        render_row(c, depth + 1, versions, out);
    }
}
