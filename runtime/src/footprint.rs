//! What one instance of a component takes from the node's instance pool,
//! and what it imports, read from its binary before it is compiled.
//!
//! wasmtime's pooling allocator counts core instances, linear memories and
//! tables per node. A small Rust particle needs 3 core instances, 1 memory
//! and 2 tables; a CPython one 14 core instances. Reading the counts at load
//! lets a spawn be refused with a reason when the pool cannot hold one more
//! instance (see [`PoolBudget`]), instead of returning a pid whose
//! instantiation then fails. The imports are read in the same pass so that
//! a component asking for what the runtime does not offer is refused before
//! an 18 MB compile. It does not decide what the runtime offers beyond the
//! list in [`OFFERED`], nor does it size the pool (engine.rs does).

use std::sync::atomic::{AtomicU64, Ordering};
use wasmparser::{CanonicalFunction, CanonicalOption, Encoding, Instance, Parser, Payload};

/// Pool resources one instance of a component holds while it lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
}

/// A component's footprint and its top-level imports.
#[derive(Debug, Default)]
pub struct Shape {
    pub footprint: Footprint,
    /// Most memories / tables any one core module defines.
    pub memories_per_module: u32,
    pub tables_per_module: u32,
    pub imports: Vec<String>,
    /// Whether it uses the component-model async ABI (async lifts or
    /// lowers, `task.*`, `waitable-set.*`, streams, futures...): such a
    /// component runs on the node's second engine.
    pub needs_async: bool,
}

/// Interface packages the node links for particles and handlers: an
/// import outside them cannot be satisfied.
pub const OFFERED: &[&str] = &[
    "plasmoid:runtime/",
    "plasmoid:keyvalue/",
    "wasi:keyvalue/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:http/",
];

/// Read `bytes` (a component binary). Each core module is counted once per
/// `instantiate` of the component that holds it, which is how wit-component
/// and componentize-py/js lay components out.
pub fn shape(bytes: &[u8]) -> Result<Shape, String> {
    let mut out = Shape::default();
    // Nesting of components (true) and modules (false) being read.
    let mut stack: Vec<bool> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("not a valid component: {e}"))?;
        match payload {
            Payload::Version { encoding, .. } => stack.push(encoding == Encoding::Component),
            Payload::End(_) => {
                stack.pop();
            }
            Payload::InstanceSection(s) => {
                for i in s {
                    let i = i.map_err(|e| format!("not a valid component: {e}"))?;
                    if matches!(i, Instance::Instantiate { .. }) {
                        out.footprint.core_instances += 1;
                    }
                }
            }
            Payload::MemorySection(s) => {
                out.footprint.memories += s.count();
                out.memories_per_module = out.memories_per_module.max(s.count());
            }
            Payload::TableSection(s) => {
                out.footprint.tables += s.count();
                out.tables_per_module = out.tables_per_module.max(s.count());
            }
            Payload::ComponentCanonicalSection(s) => {
                for f in s {
                    let f = f.map_err(|e| format!("not a valid component: {e}"))?;
                    out.needs_async |= is_async(&f);
                }
            }
            Payload::ComponentImportSection(s) if stack.len() == 1 => {
                for import in s {
                    let import = import.map_err(|e| format!("not a valid component: {e}"))?;
                    out.imports.push(import.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Whether a canonical function belongs to the async ABI: every one but a
/// plain lift, lower and the resource built-ins does.
fn is_async(f: &CanonicalFunction) -> bool {
    match f {
        CanonicalFunction::Lift { options, .. } | CanonicalFunction::Lower { options, .. } => {
            options
                .iter()
                .any(|o| matches!(o, CanonicalOption::Async | CanonicalOption::Callback(_)))
        }
        CanonicalFunction::ResourceNew { .. }
        | CanonicalFunction::ResourceDrop { .. }
        | CanonicalFunction::ResourceRep { .. } => false,
        _ => true,
    }
}

/// The first import the node cannot satisfy, if any.
pub fn unoffered(imports: &[String]) -> Option<&str> {
    imports
        .iter()
        .find(|i| !OFFERED.iter().any(|p| i.starts_with(p)))
        .map(String::as_str)
}

/// The node's share of the pool, taken by each live instance. wasmtime
/// itself refuses past its totals; this refuses first, with a reason, and
/// before a pid exists.
#[derive(Debug)]
pub struct PoolBudget {
    total: Footprint,
    used: [AtomicU64; 3],
}

/// Pool resources held by one live instance; given back on drop.
#[derive(Debug)]
pub struct Lease {
    budget: std::sync::Arc<PoolBudget>,
    held: Footprint,
}

impl Lease {
    /// Hold `need` instead (a new version of the component): only the
    /// difference is taken or given back, so a version no bigger than the
    /// old one always fits.
    pub fn resize(&mut self, need: Footprint) -> Result<(), String> {
        let (old, new) = (self.held, need);
        let grow = Footprint {
            core_instances: new.core_instances.saturating_sub(old.core_instances),
            memories: new.memories.saturating_sub(old.memories),
            tables: new.tables.saturating_sub(old.tables),
        };
        self.budget.reserve(grow)?;
        self.budget.give_back(Footprint {
            core_instances: old.core_instances.saturating_sub(new.core_instances),
            memories: old.memories.saturating_sub(new.memories),
            tables: old.tables.saturating_sub(new.tables),
        });
        self.held = need;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

impl PoolBudget {
    pub fn new(total: Footprint) -> std::sync::Arc<Self> {
        std::sync::Arc::new(PoolBudget {
            total,
            used: Default::default(),
        })
    }

    pub fn total(&self) -> Footprint {
        self.total
    }

    /// In use now: core instances, memories, tables.
    pub fn used(&self) -> Footprint {
        let get = |i: usize| self.used[i].load(Ordering::Acquire) as u32;
        Footprint {
            core_instances: get(0),
            memories: get(1),
            tables: get(2),
        }
    }

    /// Take `need` for one instance, or say which resource ran out.
    pub fn take(self: &std::sync::Arc<Self>, need: Footprint) -> Result<Lease, String> {
        self.reserve(need)?;
        Ok(Lease {
            budget: self.clone(),
            held: need,
        })
    }

    /// Add `need` to what is in use, all or nothing. Each counter is moved
    /// with a compare-and-swap, so two spawns near the limit never both
    /// fail when one fits.
    fn reserve(&self, need: Footprint) -> Result<(), String> {
        let wants = [
            (
                need.core_instances,
                self.total.core_instances,
                "core instances",
            ),
            (need.memories, self.total.memories, "linear memories"),
            (need.tables, self.total.tables, "tables"),
        ];
        for (i, (want, total, what)) in wants.into_iter().enumerate() {
            let want = u64::from(want);
            let got = self.used[i].fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + want <= u64::from(total)).then_some(used + want)
            });
            if let Err(used) = got {
                for (j, (w, _, _)) in wants.iter().enumerate().take(i) {
                    self.used[j].fetch_sub(u64::from(*w), Ordering::AcqRel);
                }
                return Err(format!(
                    "the instance pool is full: one more instance needs {want} {what}, and {used} of the pool's {total} are in use \
                     (raise the node's particle capacity, `[node] max_particles` or `--max-particles`)"
                ));
            }
        }
        Ok(())
    }

    fn give_back(&self, held: Footprint) {
        let back = [held.core_instances, held.memories, held.tables];
        for (slot, n) in self.used.iter().zip(back) {
            slot.fetch_sub(u64::from(n), Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(c: u32, m: u32, t: u32) -> Footprint {
        Footprint {
            core_instances: c,
            memories: m,
            tables: t,
        }
    }

    #[test]
    fn a_full_pool_refuses_with_the_resource_named_and_gives_back_on_drop() {
        let budget = PoolBudget::new(need(30, 4, 8));
        let a = budget.take(need(14, 1, 2)).unwrap();
        let b = budget.take(need(14, 1, 2)).unwrap();
        let err = budget.take(need(14, 1, 2)).unwrap_err();
        assert!(
            err.contains("core instances") && err.contains("28 of the pool's 30"),
            "{err}"
        );
        // A refusal holds nothing.
        assert_eq!(budget.used(), need(28, 2, 4));
        drop(a);
        assert_eq!(budget.used(), need(14, 1, 2));
        let c = budget.take(need(14, 1, 2)).unwrap();
        drop((b, c));
        assert_eq!(budget.used(), need(0, 0, 0));
    }

    #[test]
    fn a_lease_resizes_by_the_difference() {
        let budget = PoolBudget::new(need(20, 2, 4));
        let mut a = budget.take(need(14, 1, 2)).unwrap();
        let _b = budget.take(need(5, 1, 2)).unwrap();
        // Smaller always fits, even with the pool nearly full.
        a.resize(need(3, 1, 2)).unwrap();
        assert_eq!(budget.used(), need(8, 2, 4));
        // Bigger takes only the difference, or is refused holding the old share.
        assert!(a.resize(need(3, 2, 2)).is_err());
        assert_eq!(budget.used(), need(8, 2, 4));
        a.resize(need(15, 1, 2)).unwrap();
        assert_eq!(budget.used(), need(20, 2, 4));
    }

    #[test]
    fn a_refusal_on_a_later_resource_returns_the_earlier_ones() {
        let budget = PoolBudget::new(need(100, 1, 100));
        let _a = budget.take(need(3, 1, 2)).unwrap();
        let err = budget.take(need(3, 1, 2)).unwrap_err();
        assert!(err.contains("linear memories"), "{err}");
        assert_eq!(budget.used(), need(3, 1, 2));
    }

    #[test]
    fn the_shape_of_a_wat_component_counts_its_modules_and_imports() {
        let wat = r#"(component
            (import "wasi:cli/stdout@0.2.0" (instance))
            (core module $m (memory 1) (table 1 funcref) (table 1 funcref))
            (core module $n)
            (core instance (instantiate $m))
            (core instance (instantiate $n))
        )"#;
        let bytes = wat::parse_str(wat).unwrap();
        let s = shape(&bytes).unwrap();
        assert_eq!(s.footprint, need(2, 1, 2));
        assert_eq!((s.memories_per_module, s.tables_per_module), (1, 2));
        assert_eq!(s.imports, vec!["wasi:cli/stdout@0.2.0".to_string()]);
        assert!(!s.needs_async);
        assert_eq!(unoffered(&s.imports), None);
        let other = vec!["fermyon:spin/llm@2.0.0".to_string()];
        assert_eq!(unoffered(&other), Some("fermyon:spin/llm@2.0.0"));
    }

    #[test]
    fn garbage_is_refused_in_words() {
        let err = shape(b"\0asm\x0d\0\x01\0garbage").unwrap_err();
        assert!(err.starts_with("not a valid component"), "{err}");
    }
}
