//! Where a browser goes after signing in: `next=`, checked to stay on this
//! deployment, and the page a signed-out request comes back to.

use axum::http::Method;
use medforge_core::host::{Host, SessionHost};
use url::Url;

use crate::config::Config;

/// `next` when it stays on this deployment, else the dashboard (`/`).
/// It is read the way a browser would read it, with a URL parser against
/// the UI's own URL, and kept when it is a path here, or an http(s) URL
/// (no user or password) whose host is a UI host or a session host of this
/// deployment. Control characters and backslashes anywhere are refused
/// outright: browsers drop or turn them into `/`, so `/\t/evil.example`
/// and `/\evil.example` would be read as `//evil.example`.
pub fn safe_next(next: &str, config: &Config) -> String {
    if next.is_empty() || next.chars().any(|c| c.is_control() || c == '\\') {
        return "/".into();
    }
    let Ok(base) = Url::parse(&format!("{}://{}/", config.scheme(), config.base_domain)) else { return "/".into() };
    let Ok(url) = base.join(next) else { return "/".into() };
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return "/".into();
    }
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let Ok(host) = authority.parse::<Host>() else { return "/".into() };
    let relative = next.starts_with('/') && !next.starts_with("//");
    // An absolute URL's authority must also pass the one host rule as it
    // was written (the URL parser forgives an empty port, say).
    if !relative {
        let written = next.split_once("://").map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default());
        if written.and_then(|w| w.parse::<Host>().ok()) != Some(host.clone()) {
            return "/".into();
        }
    }
    if relative {
        // A path: it resolved against our own host (the checks above
        // make sure nothing in it named another).
        return if host.name() == config.base_domain { next.to_owned() } else { "/".into() };
    }
    if config.is_ui_host(&host) || SessionHost::parse(&host, config.sessions_domain()).is_some() {
        url.to_string()
    } else {
        "/".into()
    }
}

/// The page a request that needs a login comes back to after it: a page
/// itself; for a form's post, the page the form is on.
pub fn return_page(method: &Method, path: &str) -> String {
    if method == Method::GET || method == Method::HEAD {
        return path.to_owned();
    }
    const FORMS: [(&str, &str); 4] = [
        ("/admin/gpus/", "/admin"),
        ("/admin/sessions/", "/admin/sessions"),
        ("/admin/users/", "/admin/users"),
        ("/account", "/account"),
    ];
    for (prefix, page) in FORMS {
        if path.starts_with(prefix) {
            return page.to_owned();
        }
    }
    "/".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_deployment() {
        let c = Config::default();
        assert_eq!(safe_next("/snapshots", &c), "/snapshots");
        assert_eq!(safe_next("/sessions/enter?host=x&next=%2F", &c), "/sessions/enter?host=x&next=%2F");
        assert_eq!(
            safe_next("http://s-abcdefgh.external.medforge.localhost:8080/x?y=1", &c),
            "http://s-abcdefgh.external.medforge.localhost:8080/x?y=1"
        );
        assert_eq!(safe_next("https://medforge.localhost/", &c), "https://medforge.localhost/");
        for bad in [
            "/\t/evil.example",
            "/\u{9}/evil.example",
            "//evil.example",
            "//evil.example/x",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "http://s-aaaaaaaa.external.evil.example",
            "http://evilmedforge.localhost/",
            "http://medforge.localhost.evil.example/",
            "http://medforge.localhost@evil.example/",
            "http://user:pw@medforge.localhost/",
            "http://anything.medforge.localhost/",
            "http://x.y.external.medforge.localhost/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "http://medforge.localhost:/",
            "/\u{0}x",
            "",
        ] {
            assert_eq!(safe_next(bad, &c), "/", "{bad:?}");
        }
    }

    #[test]
    fn a_form_comes_back_to_its_page() {
        assert_eq!(return_page(&Method::GET, "/sessions/x"), "/sessions/x");
        assert_eq!(return_page(&Method::POST, "/sessions"), "/");
        assert_eq!(return_page(&Method::POST, "/sessions/x/stop"), "/");
        assert_eq!(return_page(&Method::POST, "/account"), "/account");
        assert_eq!(return_page(&Method::POST, "/admin/gpus/3"), "/admin");
        assert_eq!(return_page(&Method::POST, "/admin/sessions/x/stop"), "/admin/sessions");
        assert_eq!(return_page(&Method::POST, "/admin/users/x"), "/admin/users");
    }
}
