//! MedForge's two cookies (docs/security.md):
//!
//! - the **login** cookie, on the UI host only:
//!   `medforge_session=<token>; HttpOnly; SameSite=Lax; Path=/; Max-Age=...`,
//!   named `__Host-medforge_session` (and `Secure`) with `cookie_secure`;
//! - a session host's **pass** (`crate::service::passes`), on that one
//!   session host only: `medforge_pass=...`, `__Host-medforge_pass` likewise.
//!
//! Neither has a `Domain`: a browser sends each back to the host that set
//! it and to no other, so no session page can read, send or overwrite the
//! login. The `__Host-` prefix makes browsers refuse the name from any
//! other host or with a `Domain`. Without it (plain HTTP), a page on a
//! sibling host can still plant a cookie of the same name for the parent
//! domain: a request that carries the name twice has no login at all
//! ([`token_from`]), and the proxy drops every MedForge cookie a container
//! tries to set ([`is_medforge_cookie`]).

use axum::http::{HeaderMap, HeaderValue, header};
use medforge_core::auth::LoginToken;

use crate::config::Config;

const LOGIN: &str = "medforge_session";
const PASS: &str = "medforge_pass";
/// Every MedForge cookie name starts with this (after any `__Host-` or
/// `__Secure-` prefix): the names a session may neither see nor set.
const RESERVED_PREFIX: &str = "medforge_";
const LOGIN_MAX_AGE: u64 = 30 * 24 * 3600;

/// Which of the two cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Login,
    Pass,
}

/// The cookie's name under `config` (`__Host-` prefixed when `Secure`).
pub fn name(config: &Config, kind: Kind) -> String {
    let base = match kind {
        Kind::Login => LOGIN,
        Kind::Pass => PASS,
    };
    if config.cookie_secure { format!("__Host-{base}") } else { base.to_owned() }
}

/// The cookie `kind`'s value from the `Cookie` headers: `None` when it is
/// missing, and when it comes more than once (a second one is planted by
/// somebody else, and we cannot tell which is ours).
pub fn token(headers: &HeaderMap, config: &Config, kind: Kind) -> Option<LoginToken> {
    let wanted = name(config, kind);
    let mut found = pairs(headers).filter(|(n, _)| *n == wanted).map(|(_, v)| v);
    let first = found.next()?;
    if found.next().is_some() {
        return None;
    }
    Some(LoginToken::from_client(first))
}

/// The login token of the request, by [`token`]'s rule.
pub fn token_from(headers: &HeaderMap, config: &Config) -> Option<LoginToken> {
    token(headers, config, Kind::Login)
}

fn pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(n, v)| (n.trim(), v.trim()))
}

/// `Set-Cookie` for a new login.
pub fn set(config: &Config, token: &LoginToken) -> HeaderValue {
    value(config, Kind::Login, token.expose(), LOGIN_MAX_AGE)
}

/// `Set-Cookie` that ends the login in the browser.
pub fn clear(config: &Config) -> HeaderValue {
    value(config, Kind::Login, "", 0)
}

/// `Set-Cookie` for a session host's pass, for `max_age` seconds.
pub fn set_pass(config: &Config, pass: &LoginToken, max_age: u64) -> HeaderValue {
    value(config, Kind::Pass, pass.expose(), max_age)
}

fn value(config: &Config, kind: Kind, token: &str, max_age: u64) -> HeaderValue {
    let secure = if config.cookie_secure { " Secure;" } else { "" };
    let value = format!("{}={token}; HttpOnly;{secure} SameSite=Lax; Path=/; Max-Age={max_age}", name(config, kind));
    // Tokens are base64url: always a valid header.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a cookie name is one of MedForge's, however spelt: any case,
/// with or without a `__Host-`/`__Secure-` prefix.
pub fn is_medforge_cookie(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower.strip_prefix("__host-").or_else(|| lower.strip_prefix("__secure-")).unwrap_or(&lower);
    bare.starts_with(RESERVED_PREFIX)
}

/// The request's `Cookie` header without any MedForge cookie (what a
/// session's container may see).
pub fn strip_medforge(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !is_medforge_cookie(c.split('=').next().unwrap_or(c)))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// Drops every `Set-Cookie` of a container's response that names a
/// MedForge cookie (for any `Domain`): a session may set its own cookies,
/// never ours.
pub fn drop_medforge_set_cookies(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            let text = String::from_utf8_lossy(v.as_bytes());
            let name = text.split(['=', ';']).next().unwrap_or_default();
            !is_medforge_cookie(name)
        })
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for v in kept {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Whether the request carries a cookie named `name`.
pub fn has(headers: &HeaderMap, name: &str) -> bool {
    pairs(headers).any(|(n, _)| n == name)
}

/// How many times `kind`'s cookie comes in the request.
pub fn count(headers: &HeaderMap, config: &Config, kind: Kind) -> usize {
    let wanted = name(config, kind);
    pairs(headers).filter(|(n, _)| *n == wanted).count()
}

/// `Set-Cookie`s that delete every cookie named like `kind`'s that a
/// sibling host could have planted for the request's path: one per parent
/// `domain` (the base domain; for session hosts also their zone) and per
/// path prefix of `path` (a planted cookie may carry any `Path` the
/// request's path starts with). Our own cookie has no `Domain` and is left
/// alone.
pub fn delete_planted(config: &Config, kind: Kind, domains: &[String], path: &str) -> Vec<HeaderValue> {
    let name = name(config, kind);
    let mut paths = vec!["/".to_owned()];
    let mut prefix = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()).take(8) {
        prefix.push('/');
        prefix.push_str(segment);
        paths.push(prefix.clone());
        paths.push(format!("{prefix}/"));
    }
    let mut out = Vec::new();
    for domain in domains {
        for p in &paths {
            let v = format!("{name}=; Domain={domain}; Path={p}; Max-Age=0");
            if let Ok(v) = HeaderValue::from_str(&v) {
                out.push(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secure: bool) -> Config {
        Config { cookie_secure: secure, ..Config::default() }
    }

    fn cookies(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let plain = config(false);
        let got = token_from(&cookies("a=1; medforge_session=tok-en_1; b=2"), &plain);
        assert_eq!(got.map(|t| t.expose().to_owned()), Some("tok-en_1".to_owned()));
        assert!(token_from(&cookies("medforge_sessionx=1"), &plain).is_none());
        let secure = config(true);
        assert!(token_from(&cookies("medforge_session=1"), &secure).is_none(), "secure wants the __Host- name");
        assert!(token_from(&cookies("__Host-medforge_session=1"), &secure).is_some());
        assert!(token(&cookies("__Host-medforge_pass=p"), &secure, Kind::Pass).is_some());
    }

    #[test]
    fn a_cookie_that_comes_twice_is_no_login() {
        let plain = config(false);
        assert!(token_from(&cookies("medforge_session=mine; medforge_session=planted"), &plain).is_none());
        let mut two_headers = cookies("medforge_session=mine");
        two_headers.append(header::COOKIE, HeaderValue::from_static("medforge_session=planted"));
        assert!(token_from(&two_headers, &plain).is_none());
    }

    #[test]
    fn planted_cookies_are_deleted_for_every_path_they_could_have() {
        let c = config(false);
        let gone = delete_planted(&c, Kind::Login, &["medforge.localhost".into()], "/admin/users");
        let gone: Vec<_> = gone.iter().filter_map(|v| v.to_str().ok()).collect();
        assert_eq!(gone.len(), 5);
        assert!(gone.contains(&"medforge_session=; Domain=medforge.localhost; Path=/; Max-Age=0"));
        assert!(gone.contains(&"medforge_session=; Domain=medforge.localhost; Path=/admin/users/; Max-Age=0"));
        let mut h = cookies("medforge_session=a; x=1; medforge_session=b");
        h.append(header::COOKIE, HeaderValue::from_static("medforge_pass=p"));
        assert_eq!((count(&h, &c, Kind::Login), count(&h, &c, Kind::Pass)), (2, 1));
    }

    #[test]
    fn set_cookies_are_host_only() {
        let t = LoginToken::from_client("tok");
        let plain = set(&config(false), &t);
        assert_eq!(plain.to_str().ok(), Some("medforge_session=tok; HttpOnly; SameSite=Lax; Path=/; Max-Age=2592000"));
        let secure = set_pass(&config(true), &t, 60);
        assert_eq!(
            secure.to_str().ok(),
            Some("__Host-medforge_pass=tok; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=60")
        );
    }

    #[test]
    fn every_medforge_cookie_is_stripped_however_spelt() {
        let mut m = cookies(
            "a=1; medforge_session=tok; b=2; __Host-medforge_pass=p; MedForge_Session=x; __secure-medforge_x=y",
        );
        strip_medforge(&mut m);
        assert_eq!(m.get(header::COOKIE).and_then(|v| v.to_str().ok()), Some("a=1; b=2"));
        let mut only = cookies("medforge_session=tok");
        strip_medforge(&mut only);
        assert!(!only.contains_key(header::COOKIE));
    }

    #[test]
    fn a_container_cannot_set_medforge_cookies() {
        let mut m = HeaderMap::new();
        for v in [
            "theirs=1; Path=/",
            "medforge_session=evil; Domain=.medforge.localhost; Path=/",
            "__Host-medforge_session=evil; Secure; Path=/",
            "MEDFORGE_PASS=evil",
            " medforge_session =evil",
        ] {
            m.append(header::SET_COOKIE, HeaderValue::from_static(v));
        }
        drop_medforge_set_cookies(&mut m);
        let left: Vec<_> = m.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
        assert_eq!(left, ["theirs=1; Path=/"]);
    }
}
