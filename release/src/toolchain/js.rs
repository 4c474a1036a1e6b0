//! JavaScript components: componentize-js (StarlingMonkey, and QuickJS
//! through its `componentize-qjs`) in an npm prefix, the JS SDK (sdk-js/),
//! and rolldown (which componentize-js ships) to bundle an app with the SDK
//! into the one module the componentizers take.

use super::{build_key, build_slot, cache_root, files_hash, materialize, provision, run_quiet};
use crate::ReleaseError;
use crate::build::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The componentize-js this release pins.
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The JS SDK and its WIT, as an npm package `plasmoid` the bundler finds.
pub const JS_SDK: &[(&str, &str)] = &[
    (
        "plasmoid/package.json",
        include_str!("../../../sdk-js/package.json"),
    ),
    (
        "plasmoid/index.js",
        include_str!("../../../sdk-js/index.js"),
    ),
    (
        "plasmoid/codec.js",
        include_str!("../../../sdk-js/codec.js"),
    ),
    ("plasmoid/pg.js", include_str!("../../../sdk-js/pg.js")),
    (
        "plasmoid/store.js",
        include_str!("../../../sdk-js/store.js"),
    ),
    (
        "plasmoid/wit/process.wit",
        include_str!("../../../sdk-js/wit/process.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/atomic.wit",
        include_str!("../../../sdk-js/wit/deps/keyvalue/atomic.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/batch.wit",
        include_str!("../../../sdk-js/wit/deps/keyvalue/batch.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/store.wit",
        include_str!("../../../sdk-js/wit/deps/keyvalue/store.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/watch.wit",
        include_str!("../../../sdk-js/wit/deps/keyvalue/watch.wit"),
    ),
    (
        "plasmoid/wit/deps/keyvalue/world.wit",
        include_str!("../../../sdk-js/wit/deps/keyvalue/world.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-cli.wit",
        include_str!("../../../sdk-js/wit/deps/wasi-cli.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-clocks.wit",
        include_str!("../../../sdk-js/wit/deps/wasi-clocks.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-filesystem.wit",
        include_str!("../../../sdk-js/wit/deps/wasi-filesystem.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-http.wit",
        include_str!("../../../sdk-js/wit/deps/wasi-http.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-io.wit",
        include_str!("../../../sdk-js/wit/deps/wasi-io.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-random.wit",
        include_str!("../../../sdk-js/wit/deps/wasi-random.wit"),
    ),
    (
        "plasmoid/wit/deps/wasi-sockets.wit",
        include_str!("../../../sdk-js/wit/deps/wasi-sockets.wit"),
    ),
    (
        "plasmoid/wit/deps/plasmoid-keyvalue/cas.wit",
        include_str!("../../../sdk-js/wit/deps/plasmoid-keyvalue/cas.wit"),
    ),
];

/// Which JavaScript engine a component embeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsEngine {
    /// SpiderMonkey (componentize-js's default): the whole language and
    /// its standard library, ~12 MB.
    StarlingMonkey,
    /// QuickJS: smaller (~1.8 MB) and quicker to start, no `TextEncoder`
    /// or `console` of its own (the SDK supplies what it needs).
    QuickJs,
}

impl JsEngine {
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "starlingmonkey" => Some(JsEngine::StarlingMonkey),
            "quickjs" => Some(JsEngine::QuickJs),
            _ => None,
        }
    }

    fn word(self) -> &'static str {
        match self {
            JsEngine::StarlingMonkey => "starlingmonkey",
            JsEngine::QuickJs => "quickjs",
        }
    }
}

/// componentize-js's npm prefix: `PLASMOID_COMPONENTIZE_JS` (a prefix with
/// it installed), or the pinned one in the cache, installed on first use.
fn prefix(root: &Path) -> Result<PathBuf, ReleaseError> {
    if let Some(given) = std::env::var_os("PLASMOID_COMPONENTIZE_JS") {
        return Ok(PathBuf::from(given));
    }
    let dir = root
        .join("toolchains")
        .join(format!("componentize-js-{COMPONENTIZE_JS}"));
    let what = format!("the JavaScript toolchain (componentize-js {COMPONENTIZE_JS})");
    provision(root, &dir, &what, |dir| {
        run_quiet(
            Command::new("npm")
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    "--prefix",
                ])
                .arg(dir)
                .arg(format!(
                    "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
                )),
            &format!(
                "cannot install componentize-js {COMPONENTIZE_JS} with npm (is Node.js 20+ installed, and the npm registry \
                 reachable?); install it by hand (`npm install --prefix DIR @bytecodealliance/componentize-js@{COMPONENTIZE_JS}`) \
                 and set PLASMOID_COMPONENTIZE_JS=DIR"
            ),
        )
    })?;
    Ok(dir)
}

/// Build the JavaScript component whose entry module is `app`: bundled with
/// the SDK (`import ... from 'plasmoid'`), then componentized for `engine`.
/// Returns the built `.wasm` in the build cache.
pub fn build_js(component: &str, app: &Path, engine: JsEngine) -> Result<PathBuf, ReleaseError> {
    let root = cache_root()?;
    let sdk = materialize(&root, "sdk-js", JS_SDK)?;
    let folder = app.parent().unwrap_or(Path::new("."));
    let entry = app.file_name().and_then(|s| s.to_str()).unwrap_or("app.js");
    let sdk_id = files_hash(JS_SDK);
    // QuickJS builds use its default, the component-model async ABI (the
    // node runs them on its async engine).
    let mode = match engine {
        JsEngine::StarlingMonkey => "starlingmonkey",
        JsEngine::QuickJs => "quickjs-async-abi",
    };
    let tool = std::env::var("PLASMOID_COMPONENTIZE_JS").unwrap_or_default();
    let key = build_key(folder, &[COMPONENTIZE_JS, &tool, &sdk_id, entry, mode])?;
    let (built, out) = build_slot(&root, &key)?;
    if built.is_file() {
        tracing::debug!(component, "JavaScript component from the build cache");
        return Ok(built);
    }
    let prefix = prefix(&root)?;
    let bin = prefix.join("node_modules").join(".bin");
    tracing::info!(
        component,
        "building {} with componentize-js ({})",
        app.display(),
        engine.word()
    );
    // The bundle goes beside the output: the componentizers read one module.
    let bundle = out.with_extension("bundle.mjs");
    let config = out.with_extension("rolldown.mjs");
    let quote = |p: &Path| serde_json::to_string(&p.display().to_string()).unwrap_or_default();
    let text = format!(
        "export default {{ input: {input}, external: [/^plasmoid:/, /^wasi:/], platform: 'neutral',\n  \
         resolve: {{ alias: {{ plasmoid: {sdk} }} }},\n  output: {{ file: {bundle}, format: 'esm' }} }};\n",
        input = quote(app),
        sdk = quote(&sdk.join("plasmoid").join("index.js")),
        bundle = quote(&bundle),
    );
    std::fs::write(&config, text).map_err(io("write", &config))?;
    let bundled = step(
        component,
        Command::new(bin.join("rolldown")).arg("-c").arg(&config),
        "rolldown",
    );
    let _ = std::fs::remove_file(&config);
    if let Err(e) = bundled {
        let _ = std::fs::remove_file(&bundle);
        return Err(e);
    }
    let wit = sdk.join("plasmoid").join("wit");
    let mut cmd = match engine {
        JsEngine::StarlingMonkey => {
            let mut c = Command::new(bin.join("componentize-js"));
            c.arg(&bundle)
                .arg("-w")
                .arg(&wit)
                .args(["-n", "particle-kv", "-o"])
                .arg(&out);
            c
        }
        JsEngine::QuickJs => {
            let mut c = Command::new(bin.join("componentize-qjs"));
            c.arg("-w")
                .arg(&wit)
                .args(["-n", "particle-kv", "-j"])
                .arg(&bundle)
                .arg("-o")
                .arg(&out);
            c
        }
    };
    let made = step(component, &mut cmd, "componentize-js");
    let _ = std::fs::remove_file(&bundle);
    if let Err(e) = made {
        let _ = std::fs::remove_file(&out);
        return Err(e);
    }
    std::fs::rename(&out, &built).map_err(io("move into place", &built))?;
    Ok(built)
}

fn step(component: &str, cmd: &mut Command, what: &str) -> Result<(), ReleaseError> {
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|source| ReleaseError::Spawn {
            command: what.to_string(),
            source,
        })?;
    if status.success() {
        return Ok(());
    }
    Err(ReleaseError::Component {
        component: component.into(),
        reason: format!("{what} failed ({status}); its output is above"),
    })
}
