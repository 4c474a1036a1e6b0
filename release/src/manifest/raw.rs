//! The manifest as written: serde types that keep each value's position so
//! that every later check can point at the line the user must change.

use indexmap::IndexMap;
use plasmoid_supervisor::{Restart, Strategy};
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub release: Spanned<RawRelease>,
    pub node: Option<RawNode>,
    #[serde(default)]
    pub nodes: IndexMap<Spanned<String>, Spanned<RawNodeDef>>,
    #[serde(default)]
    pub components: IndexMap<Spanned<String>, Spanned<RawComponent>>,
    pub supervisor: Spanned<RawSupervisor>,
    #[serde(default)]
    pub supervisors: IndexMap<Spanned<String>, Spanned<RawSupervisor>>,
    pub http: Option<Spanned<RawHttp>>,
    pub store: Option<Spanned<RawStore>>,
    pub observer: Option<Spanned<RawObserver>>,
    pub cluster: Option<Spanned<RawCluster>>,
}

/// `[cluster]`: partition handling for failover children.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// `keep-majority`, `keep-oldest` or `static-quorum(N)`.
    pub partition: Option<Spanned<String>>,
    pub stable_after_ms: Option<Spanned<u64>>,
}

/// `[observer]`: where the root node serves its dashboard and `/metrics`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawObserver {
    pub listen: Spanned<String>,
}

/// `[store]`: where particles' `wasi:keyvalue` buckets live.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `"embedded"` (default) or `"redis://HOST:PORT"`.
    pub backend: Option<Spanned<String>>,
    /// The most bytes (keys and values) a bucket may hold, by bucket name.
    #[serde(default)]
    pub quotas: IndexMap<Spanned<String>, Spanned<u64>>,
}

/// `[http]`: where the node listens and which particle answers which path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    /// The embedded node's (or the root node's) listener.
    pub listen: Option<Spanned<String>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    pub max_connections: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: Spanned<String>,
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// A registered name.
    pub to: Option<Spanned<String>>,
    /// A simple-one-for-one `[supervisors.NAME]`: its instances.
    pub pool: Option<Spanned<String>>,
    /// A `[components.NAME]` that exports `wasi:http/incoming-handler`.
    pub component: Option<Spanned<String>>,
    /// `round-robin` (default) or `least-loaded`.
    pub balance: Option<Spanned<String>>,
    pub timeout_ms: Option<Spanned<u64>>,
    pub max_body: Option<Spanned<u64>>,
}

/// A tree file (`plasmoid start --tree`): a manifest's tree tables alone.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTree {
    pub supervisor: Spanned<RawSupervisor>,
    #[serde(default)]
    pub supervisors: IndexMap<Spanned<String>, Spanned<RawSupervisor>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelease {
    pub name: Spanned<String>,
    pub version: Spanned<String>,
    /// A folder of `.cedar` files (and optionally a `.cedarschema`).
    pub policies: Option<Spanned<String>>,
}

/// Settings of the node(s) that run the release.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub max_particles: Option<Spanned<u32>>,
    pub threads: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeDef {
    pub listen: Spanned<String>,
    /// This node's HTTP listener (the `[http]` routes).
    pub http: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComponent {
    /// A guest crate, built for wasm32-wasip2.
    pub path: Option<Spanned<String>>,
    /// A prebuilt component (`.wasm`, or `.wat` text).
    pub wasm: Option<Spanned<String>>,
    /// A Python component's entry module (`app.py`), built with componentize-py.
    pub python: Option<Spanned<String>>,
    /// A JavaScript component's entry module (`app.js`), built with componentize-js.
    pub js: Option<Spanned<String>>,
    /// `"starlingmonkey"` (the default) or `"quickjs"`.
    pub js_engine: Option<Spanned<String>>,
    #[serde(default)]
    pub depends: Vec<Spanned<String>>,
    pub limits: Option<Spanned<RawLimits>>,
    pub upgrade: Option<Spanned<String>>,
    #[serde(default)]
    pub policies: Vec<Spanned<String>>,
    /// WASI environment variables.
    #[serde(default)]
    pub env: IndexMap<Spanned<String>, Spanned<String>>,
    /// WASI arguments (after the program name, which is the component's).
    #[serde(default)]
    pub args: Vec<Spanned<String>>,
    /// Variables passed from the operator's environment at run time.
    #[serde(default)]
    pub env_from: Vec<Spanned<String>>,
    /// Host folders preopened for the guest: `"/data" = "ledger"` (inside
    /// the data folder) or `"/conf" = { path = "conf", read_only = true }`.
    #[serde(default)]
    pub files: IndexMap<Spanned<String>, Spanned<RawFile>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum RawFile {
    Path(String),
    Dir {
        path: String,
        #[serde(default)]
        read_only: bool,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub memory_mb: Option<Spanned<u64>>,
    pub cpu_ms: Option<Spanned<u64>>,
    pub mailbox: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSupervisor {
    pub strategy: Spanned<Strategy>,
    pub max_restarts: Option<Spanned<u32>>,
    pub max_seconds: Option<Spanned<u64>>,
    #[serde(default)]
    pub children: Vec<Spanned<RawChild>>,
    /// A simple-one-for-one supervisor: instances started with it.
    pub instances: Option<Spanned<u32>>,
    /// A nested supervisor's candidate nodes (its whole subtree runs there).
    pub node: Option<Spanned<RawPlacement>>,
}

/// A child: the name of a component or of a `[supervisors.NAME]` table, or
/// a table describing a worker.
pub enum RawChild {
    Name(String),
    Table(Box<RawWorker>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorker {
    pub id: Option<Spanned<String>>,
    pub component: Option<Spanned<String>>,
    pub supervisor: Option<Spanned<String>>,
    pub init: Option<toml::Value>,
    pub restart: Option<Spanned<Restart>>,
    pub shutdown: Option<Spanned<RawShutdown>>,
    pub node: Option<Spanned<RawPlacement>>,
}

pub enum RawShutdown {
    Ms(u64),
    Word(String),
}

pub enum RawPlacement {
    One(String),
    Candidates(Vec<String>),
}

const SHUTDOWN_HELP: &str =
    "write a whole number of milliseconds (shutdown = 5000), \"brutal-kill\" or \"infinity\"";

/// Hand-written so that a wrong type says what to write instead.
impl<'de> Deserialize<'de> for RawShutdown {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawShutdown;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(SHUTDOWN_HELP)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawShutdown, E> {
                Ok(RawShutdown::Ms(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawShutdown, E> {
                u64::try_from(v)
                    .map(RawShutdown::Ms)
                    .map_err(|_| E::custom(format!("shutdown {v} is negative; {SHUTDOWN_HELP}")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawShutdown, E> {
                Err(E::custom(format!(
                    "shutdown {v} is not a whole number; {SHUTDOWN_HELP}"
                )))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawShutdown, E> {
                Ok(RawShutdown::Word(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawShutdown, E> {
                Err(E::custom(format!(
                    "shutdown {v} is not valid; {SHUTDOWN_HELP}"
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

const NODE_HELP: &str = "`node` takes a node name of [nodes] or a list of candidates, like node = \"a\" or node = [\"a\", \"b\"]";

/// Hand-written so that a wrong type says what to write instead.
impl<'de> Deserialize<'de> for RawPlacement {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawPlacement;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(NODE_HELP)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawPlacement, E> {
                Ok(RawPlacement::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawPlacement, A::Error> {
                let mut names = Vec::new();
                while let Some(v) = seq.next_element::<toml::Value>()? {
                    match v {
                        toml::Value::String(s) => names.push(s),
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "{other} is not a node name; {NODE_HELP}"
                            )));
                        }
                    }
                }
                Ok(RawPlacement::Candidates(names))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawPlacement, E> {
                Err(E::custom(format!("{v} is not a node name; {NODE_HELP}")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawPlacement, E> {
                Err(E::custom(format!("{v} is not a node name; {NODE_HELP}")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawPlacement, E> {
                Err(E::custom(format!("{v} is not a node name; {NODE_HELP}")))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawPlacement, E> {
                Err(E::custom(format!("{v} is not a node name; {NODE_HELP}")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Hand-written so that a table child keeps its precise errors (an untagged
/// enum would report only "did not match any variant").
impl<'de> Deserialize<'de> for RawChild {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawChild;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a component or supervisor name, or a table like { id = \"x\", component = \"y\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawChild, E> {
                Ok(RawChild::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawChild, A::Error> {
                let worker =
                    RawWorker::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawChild::Table(Box::new(worker)))
            }
        }
        d.deserialize_any(Visitor)
    }
}
