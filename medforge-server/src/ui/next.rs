//! Where a browser goes after signing in: `next=`, checked to stay on this
//! deployment, and the page a signed-out request comes back to.

use axum::http::Method;
use medforge_core::host::Host;

/// A path here, or an http(s) URL whose host is the base domain or a name
/// under it (a session host), by the one host rule of
/// `medforge_core::host`. Anything else: the dashboard.
pub fn safe_next(next: &str, base_domain: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        return next.to_owned();
    }
    let Some((scheme, rest)) = next.split_once("://") else { return "/".into() };
    if scheme != "http" && scheme != "https" {
        return "/".into();
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    match authority.parse::<Host>() {
        Ok(host) if host.is_within(base_domain) => next.to_owned(),
        _ => "/".into(),
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
        let d = "medforge.localhost";
        assert_eq!(safe_next("/snapshots", d), "/snapshots");
        assert_eq!(safe_next("//evil.example/x", d), "/");
        assert_eq!(safe_next("/\\evil.example", d), "/");
        assert_eq!(
            safe_next("http://s-abcdefgh.external.medforge.localhost:8080/x?y=1", d),
            "http://s-abcdefgh.external.medforge.localhost:8080/x?y=1"
        );
        assert_eq!(safe_next("https://medforge.localhost/", d), "https://medforge.localhost/");
        assert_eq!(safe_next("http://evilmedforge.localhost/", d), "/");
        assert_eq!(safe_next("http://medforge.localhost.evil.example/", d), "/");
        assert_eq!(safe_next("http://medforge.localhost@evil.example/", d), "/");
        assert_eq!(safe_next("http://medforge.localhost:/", d), "/", "an empty port is no host");
        assert_eq!(safe_next("javascript:alert(1)", d), "/");
        assert_eq!(safe_next("", d), "/");
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
