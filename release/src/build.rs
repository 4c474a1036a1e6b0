//! `plasmoid release build`: compile, validate, precompile and lock.
//!
//! Incremental at two levels: cargo skips unchanged guest crates, and a
//! component whose `.wasm` hash matches the lock keeps its `.cwasm` instead
//! of being precompiled again. A new version built beside a running one
//! (`release upgrade`) takes the running one's native code for components
//! that did not change, after checking it was made for that folder and
//! with the same code-shaping settings.

use crate::error::ReleaseError;
use crate::lock::{LOCK_FILE, Lock, LockedComponent, RELEASE_FILE, hash, locked_file, write_file};
use crate::model::{ComponentDef, Manifest, Source};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the build is doing, for a progress display.
pub enum Progress<'a> {
    Component {
        index: usize,
        total: usize,
        name: &'a str,
    },
    Done {
        name: &'a str,
        /// `compiled`, `unchanged` or `reused` (from the running version).
        outcome: &'static str,
        ms: u128,
    },
}

#[derive(Default)]
pub struct BuildOptions {
    /// The release folder (default: [`default_out_dir`]).
    pub out: Option<PathBuf>,
    /// Another build of the release (the running version) whose native
    /// code may be taken for components with the same bytes: compiling an
    /// unchanged CPython component again takes seconds.
    pub reuse: Option<PathBuf>,
}

pub struct Built {
    pub dir: PathBuf,
    pub lock: Lock,
    pub compiled: usize,
    pub unchanged: usize,
}

/// `<manifest folder>/target/plasmoid/<name>-<version>`.
pub fn default_out_dir(m: &Manifest) -> PathBuf {
    let base = m
        .file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    base.join("target").join("plasmoid").join(m.release_id())
}

pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError {
    let path = path.to_path_buf();
    move |source| ReleaseError::Io { what, path, source }
}

/// One component, checked and (where changed) precompiled in memory.
struct Staged {
    locked: LockedComponent,
    /// The `.wasm` and `.cwasm` to write; `None` when the folder already
    /// holds them unchanged.
    files: Option<(Vec<u8>, Vec<u8>)>,
}

/// A built version whose native code a new build may take.
struct Donor {
    dir: PathBuf,
    lock: Lock,
}

impl Donor {
    /// `None` (compile everything) unless `dir` is a release whose code was
    /// compiled with the settings `cfg` shapes code with (the memory cap).
    fn open(dir: &Path, cfg: &plasmoid_runtime::NodeConfig) -> Option<Donor> {
        let (m, lock) = crate::lock::open_release(dir).ok()?;
        let theirs = crate::boot::node_config(&m, None);
        (theirs.max_memory_bytes == cfg.max_memory_bytes).then(|| Donor {
            dir: dir.to_path_buf(),
            lock,
        })
    }

    /// The `.cwasm` of component `name` if its `.wasm` hashed to `digest`
    /// there and the code passes that folder's check.
    fn code(&self, name: &str, digest: &str) -> Option<Vec<u8>> {
        let old = self.lock.component(name).filter(|c| c.blake3 == digest)?;
        crate::native_code::check(&self.dir, &old.cwasm, &old.cwasm_mac).ok()
    }
}

/// Build the release folder. Everything that can fail on the inputs
/// (guest builds, validation, precompiling, policies) happens before the
/// first write, so a broken component leaves the folder as it was. A new
/// folder is written beside its place and renamed into it whole; a rebuild
/// updates the folder in place (it keeps node keys, kept versions and the
/// swap history), lock last.
pub fn build(
    m: &Manifest,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Built, ReleaseError> {
    let dir = opts.out.clone().unwrap_or_else(|| default_out_dir(m));
    let previous = Lock::read(&dir).ok();
    let cfg = crate::boot::node_config(m, None);
    let donor = opts.reuse.as_deref().and_then(|d| Donor::open(d, &cfg));
    let mut staged = Vec::new();
    let (mut compiled, mut unchanged) = (0, 0);
    for (index, c) in m.components.iter().enumerate() {
        progress(Progress::Component {
            index,
            total: m.components.len(),
            name: &c.name,
        });
        let started = Instant::now();
        let (bytes, source) = component_bytes(c)?;
        let digest = hash(&bytes);
        let reusable = previous
            .as_ref()
            .and_then(|l| l.component(&c.name))
            .is_some_and(|old| {
                old.blake3 == digest
                    && still_intact(&dir, previous.as_ref(), old)
                    && crate::native_code::check(&dir, &old.cwasm, &old.cwasm_mac).is_ok()
            });
        let mut outcome = "unchanged";
        let files = if reusable {
            unchanged += 1;
            None
        } else if let Some(cwasm) = donor.as_ref().and_then(|d| d.code(&c.name, &digest)) {
            unchanged += 1;
            outcome = "reused";
            Some((bytes.clone(), cwasm))
        } else {
            outcome = "compiled";
            let cwasm = plasmoid_runtime::precompile(&cfg, &c.name, &bytes).map_err(|e| {
                ReleaseError::Component {
                    component: c.name.clone(),
                    reason: e.to_string(),
                }
            })?;
            compiled += 1;
            Some((bytes.clone(), cwasm))
        };
        progress(Progress::Done {
            name: &c.name,
            outcome,
            ms: started.elapsed().as_millis(),
        });
        staged.push(Staged {
            locked: LockedComponent {
                name: c.name.clone(),
                source,
                wasm: format!("components/{}.wasm", c.name),
                cwasm: format!("components/{}.cwasm", c.name),
                blake3: digest,
                size: bytes.len() as u64,
                cwasm_mac: previous
                    .as_ref()
                    .and_then(|l| l.component(&c.name))
                    .map(|old| old.cwasm_mac.clone())
                    .unwrap_or_default(),
            },
            files,
        });
    }
    let policies = collect_policies(m)?;
    // Nothing failed: write.
    let fresh = !dir.exists();
    let target = if fresh {
        staging_dir(&dir)?
    } else {
        dir.clone()
    };
    let written = write_release(m, &target, staged, &policies, previous);
    let lock = match written {
        Ok(lock) => lock,
        Err(e) => {
            if fresh {
                let _ = std::fs::remove_dir_all(&target);
            }
            return Err(e);
        }
    };
    if fresh {
        std::fs::rename(&target, &dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&target);
            ReleaseError::Io {
                what: "move the built release into",
                path: dir.clone(),
                source: e,
            }
        })?;
    }
    tracing::debug!(dir = %dir.display(), "{LOCK_FILE} written");
    Ok(Built {
        dir,
        lock,
        compiled,
        unchanged,
    })
}

/// A new, empty folder beside `dir` to build a fresh release in.
fn staging_dir(dir: &Path) -> Result<PathBuf, ReleaseError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("release");
    let staging = parent.join(format!(".{name}.building-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io("clear", &staging))?;
    }
    std::fs::create_dir_all(staging.join("components")).map_err(io("create", &staging))?;
    Ok(staging)
}

fn write_release(
    m: &Manifest,
    dir: &Path,
    staged: Vec<Staged>,
    policies: &[(String, Vec<u8>)],
    previous: Option<Lock>,
) -> Result<Lock, ReleaseError> {
    let comp_dir = dir.join("components");
    std::fs::create_dir_all(&comp_dir).map_err(io("create", &comp_dir))?;
    let mut wasm_paths = HashMap::new();
    let mut locked = Vec::new();
    let secret = crate::native_code::load_or_create(dir)?;
    for mut s in staged {
        if let Some((wasm, cwasm)) = &s.files {
            write_file(&dir.join(&s.locked.wasm), wasm)?;
            write_file(&dir.join(&s.locked.cwasm), cwasm)?;
            s.locked.cwasm_mac = crate::native_code::mac(&secret, cwasm);
        }
        wasm_paths.insert(s.locked.name.clone(), s.locked.wasm.clone());
        locked.push(s.locked);
    }
    remove_stale(&comp_dir, m)?;
    let policy_files = write_policies(dir, policies)?;
    crate::nodes::ensure_keys(dir, m)?;
    let text = crate::manifest::resolved_toml(m, &wasm_paths, Some(Path::new("policies")));
    write_file(&dir.join(RELEASE_FILE), text.as_bytes())?;
    let mut files = vec![locked_file(dir, RELEASE_FILE)?];
    for c in &locked {
        files.push(locked_file(dir, &c.wasm)?);
        files.push(locked_file(dir, &c.cwasm)?);
    }
    for p in policy_files {
        files.push(locked_file(dir, &p)?);
    }
    let lock = Lock {
        release: m.release_id(),
        built_by: format!("plasmoid {}", env!("CARGO_PKG_VERSION")),
        components: locked,
        files,
        // A rebuild keeps the record of earlier swaps.
        history: previous
            .as_ref()
            .map(|p| p.history.clone())
            .unwrap_or_default(),
        previous: previous.as_ref().and_then(|p| p.previous.clone()),
        upgrades: previous.map(|p| p.upgrades).unwrap_or_default(),
    };
    lock.write(dir)?;
    Ok(lock)
}

/// The component's wasm bytes and a description of where they came from.
fn component_bytes(c: &ComponentDef) -> Result<(Vec<u8>, String), ReleaseError> {
    match &c.source {
        Source::Crate(dir) => {
            let built = crate::guest::build_guest(dir)?;
            let wanted = crate_name(dir).unwrap_or_else(|| c.name.replace('-', "_"));
            let file = match built.components.as_slice() {
                [(_, only)] => only.clone(),
                _ => built
                    .get(&wanted)
                    .map(Path::to_path_buf)
                    .ok_or_else(|| ReleaseError::NoArtifact(dir.display().to_string()))?,
            };
            let bytes = std::fs::read(&file).map_err(io("read", &file))?;
            Ok((bytes, format!("crate {}", dir.display())))
        }
        Source::Python(app) => {
            let built = crate::toolchain::build_python(&c.name, app)?;
            let bytes = std::fs::read(&built).map_err(io("read", &built))?;
            Ok((bytes, format!("python {}", app.display())))
        }
        Source::Js(app, engine) => {
            let built = crate::toolchain::build_js(&c.name, app, *engine)?;
            let bytes = std::fs::read(&built).map_err(io("read", &built))?;
            Ok((bytes, format!("js {}", app.display())))
        }
        Source::Wasm(file) => {
            let bytes = std::fs::read(file).map_err(io("read", file))?;
            let bytes = if file.extension().is_some_and(|e| e == "wat") {
                wat::parse_bytes(&bytes)
                    .map_err(|e| ReleaseError::Component {
                        component: c.name.clone(),
                        reason: e.to_string(),
                    })?
                    .into_owned()
            } else {
                bytes
            };
            Ok((bytes, format!("file {}", file.display())))
        }
    }
}

/// The `[package] name` of a crate, as the compiler names its artifact.
fn crate_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let doc: toml::Table = toml::from_str(&text).ok()?;
    let name = doc.get("package")?.get("name")?.as_str()?;
    Some(name.replace('-', "_"))
}

/// Both files of a previously built component still match the old lock.
fn still_intact(dir: &Path, lock: Option<&Lock>, old: &LockedComponent) -> bool {
    let Some(lock) = lock else { return false };
    [&old.wasm, &old.cwasm].iter().all(|rel| {
        let Some(want) = lock.files.iter().find(|f| &&f.path == rel) else {
            return false;
        };
        std::fs::read(dir.join(rel)).is_ok_and(|b| hash(&b) == want.blake3)
    })
}

/// Files of components that are no longer in the manifest.
fn remove_stale(comp_dir: &Path, m: &Manifest) -> Result<(), ReleaseError> {
    let entries = std::fs::read_dir(comp_dir).map_err(io("read", comp_dir))?;
    for e in entries.flatten() {
        let path = e.path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let ours = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("wasm" | "cwasm")
        );
        if ours && m.component(stem).is_none() {
            std::fs::remove_file(&path).map_err(io("remove", &path))?;
        }
    }
    Ok(())
}

/// The release's policies (or the built-in defaults) plus each component's
/// own policy files, by file name, validated as one set.
fn collect_policies(m: &Manifest) -> Result<Vec<(String, Vec<u8>)>, ReleaseError> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut has_schema = false;
    match &m.policies {
        Some(src) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(src)
                .map_err(io("read", src))?
                .flatten()
                .map(|e| e.path())
                .collect();
            files.sort();
            for f in files {
                let ext = f.extension().and_then(|e| e.to_str()).unwrap_or_default();
                if ext != "cedar" && ext != "cedarschema" {
                    continue;
                }
                has_schema |= ext == "cedarschema";
                let bytes = std::fs::read(&f).map_err(io("read", &f))?;
                let name = f
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("policy.cedar");
                out.push((name.to_string(), bytes));
            }
        }
        None => out.push((
            "default.cedar".into(),
            plasmoid_runtime::DEFAULT_POLICIES.as_bytes().to_vec(),
        )),
    }
    if !has_schema {
        out.push((
            "plasmoid.cedarschema".into(),
            plasmoid_runtime::DEFAULT_SCHEMA.as_bytes().to_vec(),
        ));
    }
    for c in &m.components {
        for f in &c.policies {
            let bytes = std::fs::read(f).map_err(io("read", f))?;
            let file = f
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("policy.cedar");
            out.push((format!("{}-{file}", c.name), bytes));
        }
    }
    let text = |b: &[u8], name: &str| {
        String::from_utf8(b.to_vec())
            .map_err(|_| ReleaseError::Policies(format!("policies/{name} is not UTF-8 text")))
    };
    let mut schema = None;
    let mut sources = Vec::new();
    for (name, bytes) in &out {
        if name.ends_with(".cedarschema") {
            schema = Some((format!("policies/{name}"), text(bytes, name)?));
        } else {
            sources.push(plasmoid_runtime::PolicySource {
                name: format!("policies/{name}"),
                text: text(bytes, name)?,
            });
        }
    }
    let (schema_name, schema_text) = schema.unwrap_or_default();
    plasmoid_runtime::PolicyGate::from_sources((&schema_name, &schema_text), sources)
        .map_err(|e| ReleaseError::Policies(e.to_string()))?;
    Ok(out)
}

/// Replace `policies/` with the collected files.
fn write_policies(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<Vec<String>, ReleaseError> {
    let pdir = dir.join("policies");
    if pdir.exists() {
        std::fs::remove_dir_all(&pdir).map_err(io("clear", &pdir))?;
    }
    std::fs::create_dir_all(&pdir).map_err(io("create", &pdir))?;
    let mut written = Vec::new();
    for (name, bytes) in files {
        write_file(&pdir.join(name), bytes)?;
        written.push(format!("policies/{name}"));
    }
    Ok(written)
}
