//! Turning command-line inputs (files, folders, guest crates) into loaded
//! components on a node.

use anyhow::{Context, Result, bail};
use plasmoid_runtime::Node;
use std::path::{Path, PathBuf};

/// What to load: a name and the file holding the component.
pub struct Input {
    pub name: String,
    pub path: PathBuf,
}

/// Expand inputs: component files are taken as they are, a folder with a
/// Cargo.toml is built for wasm32-wasip2, a `.py` or `.js` module is built
/// with componentize-py or componentize-js (provisioned on first use), a
/// `--load-path` folder contributes
/// every component file in it.
pub fn collect(inputs: &[PathBuf], load_paths: &[PathBuf]) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            if !input.join("Cargo.toml").is_file() {
                bail!(
                    "{} is a folder without Cargo.toml: pass a guest crate, a .wasm file, or use --load-path for a folder of components",
                    input.display()
                );
            }
            let build = plasmoid_release::build_guest(input)?;
            for (name, path) in build.components {
                out.push(Input { name, path });
            }
        } else if input.extension().is_some_and(|e| e == "py") {
            let name = module_name(input)?;
            let path = plasmoid_release::toolchain::build_python(&name, input)?;
            out.push(Input { name, path });
        } else if input.extension().is_some_and(|e| e == "js" || e == "mjs") {
            let name = module_name(input)?;
            let engine = plasmoid_release::toolchain::JsEngine::StarlingMonkey;
            let path = plasmoid_release::toolchain::build_js(&name, input, engine)?;
            out.push(Input { name, path });
        } else {
            out.push(Input {
                name: component_name(input)?,
                path: not_native(input)?,
            });
        }
    }
    for dir in load_paths {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read --load-path {}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("wasm" | "cwasm" | "wat")
                )
            })
            .collect();
        files.sort();
        // A folder holding both x.wasm and x.cwasm contributes x once.
        files.retain(|p| {
            p.extension().is_none_or(|e| e != "cwasm") || !p.with_extension("wasm").is_file()
        });
        for path in files {
            out.push(Input {
                name: component_name(&path)?,
                path: not_native(&path)?,
            });
        }
    }
    Ok(out)
}

/// A `.cwasm` is native code that wasmtime runs unchecked: `start` loads
/// none it did not make. The `.wasm` beside it is compiled instead; without
/// one, the file is refused with the reason.
fn not_native(path: &Path) -> Result<PathBuf> {
    if path.extension().is_none_or(|e| e != "cwasm") {
        return Ok(path.to_path_buf());
    }
    let wasm = path.with_extension("wasm");
    if wasm.is_file() {
        tracing::warn!(
            "{} is precompiled native code that this command did not make; compiling {} instead",
            path.display(),
            wasm.display()
        );
        return Ok(wasm);
    }
    bail!(
        "{} is precompiled native code, and plasmoid start does not load native code it did not make (a .cwasm from elsewhere could do anything); pass the .wasm component instead, or run a built release",
        path.display()
    )
}

/// A Python or JS component is named after its module, or after its folder
/// when the module is the scaffold's `app.py` / `app.js`.
fn module_name(path: &Path) -> Result<String> {
    let folder = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent()?.file_name()?.to_str().map(str::to_string));
    match (component_name(path)?, folder) {
        (stem, Some(folder)) if stem == "app" => Ok(folder),
        (stem, _) => Ok(stem),
    }
}

fn component_name(path: &Path) -> Result<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .with_context(|| format!("cannot name a component after {}", path.display()))
}

pub fn load_all(node: &Node, inputs: &[Input]) -> Result<()> {
    for input in inputs {
        node.load_component(&input.name, &input.path, None)?;
        tracing::info!(component = %input.name, path = %input.path.display(), "component loaded");
    }
    Ok(())
}
