//! A finding: one area's outcome, what was found, and the fix.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Warn,
    Fail,
    /// Not checked because something it depends on failed.
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "skip",
        })
    }
}

/// One area's result.
#[derive(Debug)]
pub struct Finding {
    pub area: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    pub fix: Option<String>,
}

impl Finding {
    pub(super) fn ok(area: &'static str, detail: impl Into<String>) -> Self {
        Self { area, outcome: Outcome::Ok, detail: detail.into(), fix: None }
    }
    pub(super) fn warn(area: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { area, outcome: Outcome::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    pub(super) fn fail(area: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { area, outcome: Outcome::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
    pub(super) fn skip(area: &'static str, because: &str) -> Self {
        Self { area, outcome: Outcome::Skip, detail: format!("not checked: {because}"), fix: None }
    }
}
