//! raftwood's architecture invariants, as code.
//!
//! `ARCHITECTURE.md` states the invariants in prose; this crate checks them
//! against `cargo metadata` (the resolved dependency graph), against the
//! source tree (forbidden text, and the module graph inside a crate), so
//! that breaking one fails CI instead of a review.
//!
//! The rules are data ([`rules`]), the checks are pure functions over a
//! dependency graph and file contents, and `tests/invariants.rs` runs them
//! on this workspace and on a fixture workspace that breaks them.

mod assertion_density;
mod dependency_rules;
mod module_rules;
mod source_rules;

pub use assertion_density::{Density, crate_density, file_density};
pub use dependency_rules::{DependencyRule, check_dependencies, dependency_rules};
pub use module_rules::{ModuleRule, check_modules, module_rules};
pub use source_rules::{SourceRule, check_sources, source_rules};

/// One broken invariant, printed so that a reader knows what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The crate that breaks the rule.
    pub crate_name: String,
    /// The rule, in words.
    pub rule: String,
    /// What was found (a dependency path or a file and line).
    pub found: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: breaks \"{}\": {}",
            self.crate_name, self.rule, self.found
        )
    }
}

/// All the rules in one place, for the report.
pub fn rules() -> (Vec<DependencyRule>, Vec<SourceRule>, Vec<ModuleRule>) {
    (dependency_rules(), source_rules(), module_rules())
}
