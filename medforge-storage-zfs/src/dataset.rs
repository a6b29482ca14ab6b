//! Dataset names, validated before they reach a command line.
//!
//! The `zfs` command takes dataset names as bare arguments. A name that
//! starts with `-` would be read as an option, one with `@` or `#` names a
//! snapshot or bookmark, `..` or an empty component is refused by ZFS only
//! after the command has run. So every name is checked here, once, and the
//! rest of the crate only handles [`DatasetName`]s.

use std::fmt;
use std::str::FromStr;

/// ZFS's own limit on a full name (`ZFS_MAX_DATASET_NAME_LEN` less the NUL),
/// kept with room for `@<snapshot>` after it.
const MAX_LEN: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ZFS dataset name {name:?}: {reason}")]
pub struct InvalidDatasetName {
    pub name: String,
    pub reason: &'static str,
}

/// A filesystem dataset name: `pool[/child...]`, each component made of
/// `[A-Za-z0-9_.:-]`, not starting with `-` or `.` nor being `.`/`..`; the
/// pool component starts with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatasetName(String);

impl DatasetName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The pool: the first component.
    pub fn pool(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// A direct child dataset: `component` is one component, validated
    /// like any other.
    pub fn child(&self, component: &str) -> Result<Self, InvalidDatasetName> {
        if component.contains('/') {
            return Err(InvalidDatasetName { name: component.to_owned(), reason: "not a single component" });
        }
        format!("{}/{component}", self.0).parse()
    }

    /// `self@snapshot`. Snapshot names reach here only as
    /// [`medforge_core::storage::SnapshotName`] (strictly `[a-z0-9-]`), but
    /// they are checked again: this string goes on a command line.
    pub fn at(&self, snapshot: &str) -> Result<String, InvalidDatasetName> {
        if !snapshot.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric()) || !snapshot.bytes().all(component_byte)
        {
            return Err(InvalidDatasetName { name: snapshot.to_owned(), reason: "not a snapshot name" });
        }
        Ok(format!("{}@{snapshot}", self.0))
    }
}

fn component_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
}

impl FromStr for DatasetName {
    type Err = InvalidDatasetName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| Err(InvalidDatasetName { name: s.to_owned(), reason });
        if s.is_empty() {
            return bad("empty");
        }
        if s.len() > MAX_LEN {
            return bad("longer than 200 characters");
        }
        for (i, part) in s.split('/').enumerate() {
            if part.is_empty() {
                return bad("empty component (leading, trailing or double `/`)");
            }
            if part == "." || part == ".." {
                return bad("`.` and `..` are not components");
            }
            if part.starts_with('-') || part.starts_with('.') {
                return bad("a component may not start with `-` or `.`");
            }
            if !part.bytes().all(component_byte) {
                return bad("only letters, digits, `_`, `.`, `:`, `-` and `/` between components");
            }
            if i == 0 && !part.as_bytes()[0].is_ascii_alphabetic() {
                return bad("the pool name must start with a letter");
            }
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_parse() {
        for ok in ["tank", "tank/medforge/workspaces", "t_1/a.b/c:d/e-f", "tank/7c9e6679-7425-40de-944b-e07fc1f90ae7"] {
            let d: DatasetName = ok.parse().expect(ok);
            assert_eq!(d.as_str(), ok);
        }
        let d: DatasetName = "tank/medforge".parse().expect("parse");
        assert_eq!(d.pool(), "tank");
        assert_eq!(d.child("u1").expect("child").as_str(), "tank/medforge/u1");
        assert_eq!(d.at("stop-1-abcdefgh").expect("at"), "tank/medforge@stop-1-abcdefgh");
    }

    #[test]
    fn hostile_names_are_refused() {
        let long = "a".repeat(201);
        for bad in [
            "",
            "/tank",
            "tank/",
            "tank//x",
            "tank/../etc",
            "tank/./x",
            "..",
            "-o",
            "tank/-o",
            "tank/-oquota=none",
            "tank/a b",
            "tank/a@snap",
            "tank/a#bookmark",
            "tank/a%b",
            "tank/a\nb",
            "tank/a;rm -rf",
            "tank/$(id)",
            "tank/.hidden",
            "1tank/x",
            "tank/\u{e9}",
            long.as_str(),
        ] {
            assert!(bad.parse::<DatasetName>().is_err(), "{bad:?} accepted");
        }
        let d: DatasetName = "tank".parse().expect("parse");
        for bad in ["../x", "a/b", "x y", "-o", "a@b", "", "..", ".x"] {
            assert!(d.child(bad).is_err(), "child {bad:?} accepted");
            assert!(d.at(bad).is_err(), "snapshot {bad:?} accepted");
        }
    }
}
