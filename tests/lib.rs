//! Whole-system scenarios live in `tests/` beside this file, one per file;
//! their shared support is the `wildrydes-testkit` crate. This library is
//! empty: a package needs a target.
