//! Fixtures shared by the CLI tests.
pub mod bert;
