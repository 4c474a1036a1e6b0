//! plasmoid-supervisor: OTP supervisors for particles.
//!
//! It will own supervision strategies, restart intensity, child specs and
//! shutdown ordering, built on the runtime's native processes. It does not
//! own processes, signals or the engine (plasmoid-runtime). Nothing is
//! implemented yet: supervision is the next issue.
