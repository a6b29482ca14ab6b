//! Every filesystem path in the configuration is made absolute when it is
//! loaded, so that no relative path reaches a runtime (Docker refuses a
//! relative bind mount), a storage plugin, an event or a log line, and a
//! path means the same whatever directory a later command runs in.
//!
//! The rule (docs/decisions.md): a path written in a config file is
//! relative to that file's directory, as systemd units and most servers
//! read them; a path from the environment or a built-in default is
//! relative to the working directory `medforge` was started in.

use std::path::{Component, Path, PathBuf};

use figment::Figment;
use figment::Source;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// Where relative paths of one configuration are resolved from.
pub struct Bases<'a> {
    pub figment: &'a Figment,
    /// The working directory (absolute).
    pub cwd: PathBuf,
}

impl Bases<'_> {
    /// The directory `key`'s value is relative to: its file's directory
    /// when a file set it, else the working directory.
    pub fn of(&self, key: &str) -> PathBuf {
        match self.figment.find_metadata(key).and_then(|m| m.source.as_ref()) {
            Some(Source::File(file)) => file.parent().map_or_else(|| self.cwd.clone(), Path::to_path_buf),
            _ => self.cwd.clone(),
        }
    }
}

/// `path` made absolute against `base` (itself absolute), with `.`
/// components dropped. `..` is kept: a symlink may sit before it.
pub fn absolute(path: &Path, base: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
    joined.components().filter(|c| *c != Component::CurDir).collect()
}

/// A command: a bare name is looked up on PATH and stays as it is; a name
/// with a directory in it is a path.
pub fn command(program: &Path, base: &Path) -> PathBuf {
    if program.components().count() > 1 { absolute(program, base) } else { program.to_path_buf() }
}

/// An engine socket as configured: empty (the engine's default), a path,
/// or `unix://<path>`; other schemes (`tcp://`) are not paths.
pub fn socket(socket: &str, base: &Path) -> String {
    if socket.is_empty() {
        return String::new();
    }
    if let Some(path) = socket.strip_prefix("unix://") {
        return format!("unix://{}", absolute(Path::new(path), base).display());
    }
    if socket.contains("://") {
        return socket.to_owned();
    }
    absolute(Path::new(socket), base).display().to_string()
}

/// What sqlx decodes in a SQLite URL's path: `%`, `?` and `#` must be
/// written escaped (and spaces are, for readability in logs).
const SQLITE_PATH: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#').add(b' ');

/// `sqlite://<file>` for a file path.
pub fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}", utf8_percent_encode(&file.display().to_string(), SQLITE_PATH))
}

/// A `sqlite:` URL's file, as sqlx reads it (scheme and query off, the
/// path percent-decoded), and its query; `None` for other databases and
/// in-memory ones.
fn sqlite_parts(url: &str) -> Option<(PathBuf, Option<&str>)> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (file, query) = match rest.split_once('?') {
        Some((file, query)) => (file, Some(query)),
        None => (rest, None),
    };
    if file.is_empty() || file == ":memory:" || query.is_some_and(|q| q.split('&').any(|p| p == "mode=memory")) {
        return None;
    }
    Some((PathBuf::from(percent_decode_str(file).decode_utf8_lossy().as_ref()), query))
}

/// The file a `sqlite:` URL names; `None` for other databases and in-memory ones.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    sqlite_parts(url).map(|(file, _)| file)
}

/// A database URL with the SQLite file inside it made absolute, and the
/// `socket=` of a MySQL URL too; in-memory SQLite and other URLs unchanged.
pub fn database_url(url: &str, base: &Path) -> String {
    if let Some((file, query)) = sqlite_parts(url) {
        let mut out = sqlite_url(&absolute(&file, base));
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        return out;
    }
    if let Some((head, query)) = url.split_once('?')
        && (head.starts_with("mysql://") || head.starts_with("mariadb://"))
    {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.strip_prefix("socket=") {
                Some(path) => {
                    let decoded = percent_decode_str(path).decode_utf8_lossy();
                    let path = absolute(Path::new(decoded.as_ref()), base).display().to_string();
                    format!("socket={}", utf8_percent_encode(&path, SQLITE_PATH))
                }
                None => param.to_owned(),
            })
            .collect();
        return format!("{head}?{}", params.join("&"));
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/srv/lab";

    #[test]
    fn paths_become_absolute_against_their_base() {
        let base = Path::new(BASE);
        assert_eq!(absolute(Path::new("./medforge-data"), base), Path::new("/srv/lab/medforge-data"));
        assert_eq!(absolute(Path::new("data/./x"), base), Path::new("/srv/lab/data/x"));
        assert_eq!(absolute(Path::new("../shared"), base), Path::new("/srv/lab/../shared"));
        assert_eq!(absolute(Path::new("/var/lib/medforge"), base), Path::new("/var/lib/medforge"));
    }

    #[test]
    fn sqlite_files_are_read_as_sqlx_reads_them() {
        assert_eq!(sqlite_file("sqlite://./data/m.db"), Some(PathBuf::from("./data/m.db")));
        assert_eq!(sqlite_file("sqlite:///var/lib/m.db?mode=rwc"), Some(PathBuf::from("/var/lib/m.db")));
        assert_eq!(sqlite_file("sqlite:///srv/my%20lab/m.db"), Some(PathBuf::from("/srv/my lab/m.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("mysql://u:p@h/db"), None);
    }

    #[test]
    fn commands_on_path_stay_bare() {
        let base = Path::new(BASE);
        assert_eq!(command(Path::new("zfs"), base), Path::new("zfs"));
        assert_eq!(command(Path::new("bin/zfs"), base), Path::new("/srv/lab/bin/zfs"));
        assert_eq!(command(Path::new("/sbin/zfs"), base), Path::new("/sbin/zfs"));
    }

    #[test]
    fn sockets_keep_their_scheme() {
        let base = Path::new(BASE);
        assert_eq!(socket("", base), "");
        assert_eq!(socket("run/docker.sock", base), "/srv/lab/run/docker.sock");
        assert_eq!(socket("unix://./podman.sock", base), "unix:///srv/lab/podman.sock");
        assert_eq!(socket("unix:///run/podman/podman.sock", base), "unix:///run/podman/podman.sock");
        assert_eq!(socket("tcp://10.0.0.1:2375", base), "tcp://10.0.0.1:2375");
    }

    #[test]
    fn database_urls_get_an_absolute_file() {
        let base = Path::new(BASE);
        assert_eq!(
            database_url("sqlite://./medforge-data/medforge.db", base),
            "sqlite:///srv/lab/medforge-data/medforge.db"
        );
        assert_eq!(database_url("sqlite:medforge.db?mode=rwc", base), "sqlite:///srv/lab/medforge.db?mode=rwc");
        assert_eq!(database_url("sqlite:///var/lib/m.db", base), "sqlite:///var/lib/m.db");
        assert_eq!(database_url("sqlite::memory:", base), "sqlite::memory:");
        assert_eq!(database_url("sqlite://?mode=memory", base), "sqlite://?mode=memory");
        assert_eq!(database_url("sqlite:lab.db?mode=memory", base), "sqlite:lab.db?mode=memory");
        // sqlx decodes the path: what needs escaping stays escaped.
        assert_eq!(database_url("sqlite://my%20lab/a%3Fb.db", base), "sqlite:///srv/lab/my%20lab/a%3Fb.db");
        assert_eq!(
            database_url("mysql://mf:pw@localhost/medforge?socket=run/mysqld.sock&ssl-mode=disabled", base),
            "mysql://mf:pw@localhost/medforge?socket=/srv/lab/run/mysqld.sock&ssl-mode=disabled"
        );
        assert_eq!(database_url("mysql://mf:pw@db:3306/medforge", base), "mysql://mf:pw@db:3306/medforge");
    }
}
