//! The login cookie of docs/api.md:
//! `medforge_session=<token>; HttpOnly; [Secure;] SameSite=Lax; Domain=.<domain>; Path=/; Max-Age=...`

use axum::http::{HeaderMap, HeaderValue, header};
use medforge_core::auth::LoginToken;

use crate::config::Config;

/// The cookie's name.
pub const LOGIN_COOKIE: &str = "medforge_session";
const MAX_AGE: u32 = 30 * 24 * 3600;

/// The login token from the `Cookie` header, if any.
pub fn token_from(headers: &HeaderMap) -> Option<LoginToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == LOGIN_COOKIE)
        .map(|(_, value)| LoginToken::from_client(value))
}

/// `Set-Cookie` for a new login.
pub fn set(config: &Config, token: &LoginToken) -> HeaderValue {
    value(config, token.expose(), MAX_AGE)
}

/// `Set-Cookie` that ends the login in the browser.
pub fn clear(config: &Config) -> HeaderValue {
    value(config, "", 0)
}

fn value(config: &Config, token: &str, max_age: u32) -> HeaderValue {
    let secure = if config.cookie_secure { " Secure;" } else { "" };
    let value = format!(
        "{LOGIN_COOKIE}={token}; HttpOnly;{secure} SameSite=Lax; Domain=.{}; Path=/; Max-Age={max_age}",
        config.base_domain
    );
    // Tokens are base64url and the domain was validated: always a valid header.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The request's `Cookie` header without the login cookie (what a
/// session's container may see).
pub fn strip_login(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with(&format!("{LOGIN_COOKIE}=")))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; medforge_session=tok-en_1; b=2"));
        assert_eq!(token_from(&h).map(|t| t.expose().to_owned()), Some("tok-en_1".to_owned()));
        let mut none = HeaderMap::new();
        none.append(header::COOKIE, HeaderValue::from_static("medforge_sessionx=1"));
        assert!(token_from(&none).is_none());
    }

    #[test]
    fn only_the_login_cookie_is_stripped() {
        let mut m = HeaderMap::new();
        m.insert(header::COOKIE, HeaderValue::from_static("a=1; medforge_session=tok; b=2"));
        strip_login(&mut m);
        assert_eq!(m.get(header::COOKIE).and_then(|v| v.to_str().ok()), Some("a=1; b=2"));
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("medforge_session=tok"));
        strip_login(&mut only);
        assert!(!only.contains_key(header::COOKIE));
    }
}
