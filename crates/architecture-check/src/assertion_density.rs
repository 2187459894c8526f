//! Assertions per thousand lines of each crate's non-test code: the
//! measure of "invariants asserted where they live" (TigerBeetle averages
//! about two per function). Counted from the source: every `assert!`,
//! `assert_eq!`, `assert_ne!` and their `debug_` forms, and every
//! `check_invariants` call, outside comments, `tests/`, `benches/`,
//! `examples/` and `#[cfg(test)]` modules. Lines are non-blank, non-comment
//! lines of the same code.

use std::path::Path;

/// What was counted in one crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Density {
    /// Assertions in non-test code.
    pub assertions: usize,
    /// Non-blank, non-comment lines of non-test code.
    pub lines: usize,
}

impl Density {
    /// Assertions per 1,000 lines.
    pub fn per_kloc(&self) -> f64 {
        if self.lines == 0 {
            0.0
        } else {
            self.assertions as f64 * 1000.0 / self.lines as f64
        }
    }
}

const ASSERTION_MARKERS: [&str; 4] = [
    "assert!(",
    "assert_eq!(",
    "assert_ne!(",
    "check_invariants(",
];

/// Counts `src/` of the crate at `crate_dir`.
pub fn crate_density(crate_dir: &Path) -> std::io::Result<Density> {
    let mut files = Vec::new();
    crate::source_rules::rust_files(&crate_dir.join("src"), &mut files)?;
    let mut total = Density::default();
    for file in files.into_iter().filter(|file| !is_test_file(file)) {
        let counted = file_density(&std::fs::read_to_string(&file)?);
        total.assertions += counted.assertions;
        total.lines += counted.lines;
    }
    Ok(total)
}

/// True for a file of test code that its parent includes with
/// `#[cfg(test)] mod ...;` — by the project's naming: `tests.rs`,
/// `*_tests.rs`, `test_support.rs`.
fn is_test_file(file: &Path) -> bool {
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs") || name == "test_support.rs"
}

/// Counts one file's text, skipping `#[cfg(test)]` items (a module or a
/// function: up to the end of the braces that follow the attribute).
pub fn file_density(text: &str) -> Density {
    let mut density = Density::default();
    let mut skipping_test_item = false;
    let mut depth: i64 = 0;
    let mut entered = false;
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("").trim();
        if code.starts_with("#[cfg(test)]") {
            skipping_test_item = true;
            depth = 0;
            entered = false;
            continue;
        }
        if skipping_test_item {
            for c in code.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        entered = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            // `#[cfg(test)] mod tests;` (a file of its own) has no braces.
            if (entered && depth <= 0) || (!entered && code.ends_with(';')) {
                skipping_test_item = false;
            }
            continue;
        }
        if code.is_empty() {
            continue;
        }
        density.lines += 1;
        density.assertions += ASSERTION_MARKERS
            .iter()
            .map(|marker| code.matches(marker).count())
            .sum::<usize>();
    }
    density
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_test_modules_are_not_counted() {
        for test_file in [
            "src/sstable/tests.rs",
            "src/x/propose_tests.rs",
            "src/test_support.rs",
        ] {
            assert!(is_test_file(Path::new(test_file)), "{test_file}");
        }
        for code_file in ["src/tests_helper.rs", "src/contests.rs", "src/lib.rs"] {
            assert!(!is_test_file(Path::new(code_file)), "{code_file}");
        }
    }

    #[test]
    fn assertions_in_code_count_and_test_modules_and_comments_do_not() {
        let text = r#"
fn f(x: u64) {
    assert!(x > 0, "positive");
    debug_assert_eq!(x % 2, 0);
    // assert!(commented out)
    self.check_invariants();
}

#[cfg(test)]
mod tests {
    #[test]
    fn t() {
        assert_eq!(1, 1);
    }
}

#[cfg(test)]
mod more_tests;

fn g() {}
"#;
        let density = file_density(text);
        assert_eq!(density.assertions, 3);
        assert_eq!(density.lines, 6);
    }
}
