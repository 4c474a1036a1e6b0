//! `plasmoid new` and `plasmoid component new`: an app workspace and
//! component crates that build with the stock toolchain and run at once.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Where the SDK sources are: given, or the ones this binary was built from.
fn sdk_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk"))
}

fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !ok {
        bail!(
            "`{name}` is not a valid name: use letters, digits, `-` and `_`, starting with a letter"
        );
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

pub fn new_app(name: &str, sdk: Option<PathBuf>) -> Result<()> {
    valid_name(name)?;
    let root = Path::new(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let sdk = sdk_path(sdk);
    write(
        &root.join("Cargo.toml"),
        &format!(
            "[workspace]\nmembers = [\"components/*\"]\nresolver = \"3\"\n\n\
             [workspace.dependencies]\nplasmoid-sdk = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\n\
             [profile.release]\nopt-level = 3\nstrip = \"debuginfo\"\n",
            sdk.display().to_string()
        ),
    )?;
    write(
        &root.join("rust-toolchain.toml"),
        "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip2\"]\n",
    )?;
    write(
        &root.join(".cargo/config.toml"),
        "[build]\ntarget = \"wasm32-wasip2\"\n\n\
         # Particles are small processes: a 128 KiB shadow stack instead of 1 MiB.\n\
         [target.wasm32-wasip2]\nrustflags = [\"-C\", \"link-arg=-zstack-size=131072\"]\n",
    )?;
    write(&root.join(".gitignore"), "target/\n")?;
    write(&root.join("prod.toml"), &manifest(name))?;
    component_crate(
        root,
        name,
        "plasmoid-sdk.workspace = true\nserde.workspace = true",
    )?;
    println!(
        "created app `{name}` with its first component and prod.toml; run it: cd {name} && plasmoid release run"
    );
    Ok(())
}

/// A new app is a release from its first minute: one component, supervised.
fn manifest(name: &str) -> String {
    format!(
        r#"# The release: components, their dependencies and the supervision tree.
#   plasmoid release check   # validate, print the tree and start order
#   plasmoid release run     # build what changed, boot, Ctrl-C stops

[release]
name = "{name}"
version = "0.1.0"

[components.{name}]
path = "components/{name}"      # a guest crate, or wasm = "file.wasm"
# depends = ["other"]           # components that must run before this one
# limits = {{ memory_mb = 64, cpu_ms = 5000, mailbox = 10000 }}

[supervisor]
strategy = "one-for-one"         # one-for-all | rest-for-one | simple-one-for-one
max_restarts = 3
max_seconds = 5
children = [
  {{ id = "{name}", component = "{name}", init = {{ greeting = "hello" }} }},
]
"#
    )
}

/// The languages `component new` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

pub fn new_component(name: &str, sdk: Option<PathBuf>, lang: Lang) -> Result<()> {
    valid_name(name)?;
    let dir = Path::new("components").join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    match lang {
        Lang::Python => return new_module(name, &dir, "python", "app.py", &python_source(name)),
        Lang::Js => return new_module(name, &dir, "js", "app.js", &js_source(name)),
        Lang::Rust => {}
    }
    let in_app = Path::new("Cargo.toml").is_file();
    let deps = if in_app {
        "plasmoid-sdk.workspace = true\nserde.workspace = true".to_string()
    } else {
        format!(
            "plasmoid-sdk = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}",
            sdk_path(sdk).display().to_string()
        )
    };
    component_crate(Path::new("."), name, &deps)?;
    let manifest = Path::new("prod.toml");
    if manifest.is_file() {
        let mut text = std::fs::read_to_string(manifest).context("cannot read prod.toml")?;
        text.push_str(&format!(
            "\n[components.{name}]\npath = \"components/{name}\"\n"
        ));
        write(manifest, &text)?;
        println!(
            "created component `{name}` and added it to prod.toml; supervise it by adding \"{name}\" to a `children` list"
        );
    } else {
        println!("created component `{name}`; run it: plasmoid start components/{name}");
    }
    Ok(())
}

fn component_crate(root: &Path, name: &str, deps: &str) -> Result<()> {
    let dir = root.join("components").join(name);
    write(
        &dir.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\n{deps}\n"
        ),
    )?;
    write(&dir.join("src/lib.rs"), &component_source(name))
}

fn component_source(name: &str) -> String {
    format!(
        r#"//! The `{name}` particle.

use plasmoid_sdk::prelude::*;
use serde::Deserialize;

/// Init arguments: `init = {{ greeting = "hello" }}` in prod.toml, or
/// `plasmoid start --init '{{"greeting": "hello"}}'`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Init {{
    greeting: Option<String>,
}}

#[plasmoid_sdk::main]
fn start(init: Option<Init>) -> Result<(), String> {{
    let init = init.unwrap_or_default();
    let greeting = init.greeting.unwrap_or_else(|| "hello".into());
    info!("{{greeting}} from {name} ({{}})", self_pid().to_string());
    // A particle lives in its receive loop; the data message `stop` ends it
    // normally, and its supervisor's shutdown ends it at any time.
    loop {{
        match recv(None) {{
            Some(Message::Data(data)) if data == b"stop" => return Ok(()),
            Some(other) => info!("{name} received {{other:?}}"),
            None => {{}}
        }}
    }}
}}
"#
    )
}

/// A Python or JS gen_server component: `components/NAME/<file>`, added to
/// prod.toml as `<key> = ...` when there is one.
fn new_module(name: &str, dir: &Path, key: &str, file: &str, source: &str) -> Result<()> {
    let app = dir.join(file);
    write(&app, source)?;
    let tool = if key == "python" {
        "componentize-py"
    } else {
        "componentize-js"
    };
    let manifest = Path::new("prod.toml");
    if manifest.is_file() {
        let mut text = std::fs::read_to_string(manifest).context("cannot read prod.toml")?;
        text.push_str(&format!(
            "\n[components.{name}]\n{key} = \"components/{name}/{file}\"\nlimits = {{ memory_mb = 64 }}\n"
        ));
        write(manifest, &text)?;
        println!(
            "created component `{name}` and added it to prod.toml; supervise it by adding \"{name}\" to a `children` list"
        );
    } else {
        println!(
            "created component `{name}`; run it: plasmoid start {} (the first build provisions {tool})",
            app.display()
        );
    }
    Ok(())
}

fn js_source(name: &str) -> String {
    format!(
        r#"// The `{name}` particle: a gen_server that counts the calls it answers.
//
// Build and run it with `plasmoid start components/{name}/app.js`; from
// Rust, call it with the `Request` shape below (postcard, as a Rust enum
// `Request {{ Hello(String), Count }}` encodes).
import * as plasmoid from 'plasmoid';
import {{ codec, GenServer }} from 'plasmoid';

const Request = codec.enumOf('Request', {{ Hello: codec.string, Count: null }});

class {class_name} extends GenServer {{
  static callType = Request;
  static upgradable = true; // a hot swap hands `this.calls` to the new version

  init(args) {{
    this.calls = 0;
    plasmoid.register('{name}');
    plasmoid.info('{name} is up');
  }}

  handleCall(request) {{
    this.calls += 1;
    switch (request.tag) {{
      case 'Hello': return codec.string.encode(`hello, ${{request.value}}`);
      case 'Count': return codec.u64.encode(this.calls);
    }}
  }}
}}

export const start = plasmoid.serve({class_name});
"#,
        class_name = class_name(name)
    )
}

fn python_source(name: &str) -> String {
    format!(
        r#""""The `{name}` particle: a gen_server that counts the calls it answers.

Build and run it with `plasmoid start components/{name}/app.py`; from Rust,
call it with a postcard `u64` reply and the `Request` shape below.
"""

import plasmoid
from plasmoid import codec

# The requests, as a Rust enum would encode them with postcard:
# enum Request {{ Hello(String), Count }}
Request = codec.enum("Request", Hello=codec.string, Count=None)


class {class_name}(plasmoid.GenServer):
    call_type = Request
    upgradable = True  # a hot swap hands `self.calls` to the new version

    def init(self, args):
        self.calls = 0
        plasmoid.register("{name}")
        plasmoid.info("{name} is up")

    def handle_call(self, request, sender):
        self.calls += 1
        match request:
            case Request.Hello(who):
                return codec.string.encode(f"hello, {{who}}")
            case Request.Count:
                return codec.u64.encode(self.calls)


WitWorld = plasmoid.serve({class_name})
"#,
        class_name = class_name(name)
    )
}

fn class_name(name: &str) -> String {
    name.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}
