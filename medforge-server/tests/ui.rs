//! The web UI without JavaScript: every form posts and answers with a page
//! or a redirect, against the real server and dockerd (test pack). What a
//! browser without scripts (or a screen reader's simple mode) gets, and the
//! messages for every refusal. The browser test (tests/browser.rs) runs the
//! same flow with scripts on.

mod common;

use common::{DOMAIN, Db, Options, Server, session_cookie};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION, ORIGIN};

/// The CSRF token the pages served to `cookie`'s login carry in their
/// forms (none for a signed-out browser).
async fn csrf_token(s: &Server, cookie: &str) -> Option<String> {
    let (_, _, body) = page(s, "/account", Some(cookie)).await;
    body.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// A form post as a browser on the UI host sends it, with the CSRF token
/// of the page it is on: (status, Location, Set-Cookie, body).
async fn form(
    s: &Server,
    path: &str,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> (u16, String, Option<String>, String) {
    let token = match cookie {
        Some(c) => csrf_token(s, c).await,
        None => None,
    };
    let mut fields = fields.to_vec();
    if let Some(t) = &token {
        fields.push(("csrf", t));
    }
    let mut req = s.http.post(s.url(path)).form(&fields).header(ORIGIN, format!("http://{DOMAIN}:{}", s.port()));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.expect("post");
    let status = r.status().as_u16();
    let location = r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let set = session_cookie(r.headers());
    (status, location, set, r.text().await.expect("body"))
}

/// A page: (status, content type, body).
async fn page(s: &Server, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut req = s.http.get(s.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = req.send().await.expect("get");
    let status = r.status().as_u16();
    let ct = r.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, ct, r.text().await.expect("body"))
}

async fn sign_up(s: &Server, email: &str) -> String {
    let (st, loc, cookie, body) =
        form(s, "/signup", None, &[("email", email), ("password", "form passphrase"), ("next", "")]).await;
    assert_eq!((st, loc.as_str()), (303, "/"), "{body}");
    cookie.expect("a login cookie")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forms_work_without_javascript() {
    let s = Server::start(Db::Sqlite, Options { gpus: vec![0], ..Options::default() }).await;

    // Signed out: the dashboard sends to the login page and back.
    let r = s.http.get(s.url("/")).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login?next=%2F");
    let (st, ct, body) = page(&s, "/login?next=%2Fsnapshots", None).await;
    assert_eq!((st, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains("name=\"next\" value=\"/snapshots\""), "{body}");

    // Bad input: the page again, with the reason, and nothing created.
    let (st, _, cookie, body) =
        form(&s, "/signup", None, &[("email", "not-an-email"), ("password", "form passphrase")]).await;
    assert_eq!((st, cookie), (422, None));
    assert!(body.contains("data-testid=\"flash-error\"") && body.contains("Email:"), "{body}");
    let (st, _, _, body) = form(&s, "/signup", None, &[("email", "short@example.org"), ("password", "short")]).await;
    assert_eq!(st, 422);
    assert!(body.contains("Password:"), "{body}");

    let alice = sign_up(&s, "alice@example.org").await;
    let (st, _, body) = page(&s, "/", Some(&alice)).await;
    assert_eq!(st, 200);
    assert!(body.contains("1 of 1 GPUs free") && body.contains("data-testid=\"no-sessions\""), "{body}");
    assert!(!body.contains("start-internal"), "no internal button without the entitlement");

    // Start: the progress page (it reloads itself without scripts while starting).
    let (st, loc, _, _) = form(&s, "/sessions", Some(&alice), &[("exposure", "external")]).await;
    assert_eq!(st, 303);
    assert!(loc.starts_with("/sessions/"), "{loc}");
    let (st, _, body) = page(&s, &loc, Some(&alice)).await;
    assert_eq!(st, 200);
    assert!(body.contains("data-testid=\"progress-steps\"") && body.contains("GPU 0 allocated"), "{body}");
    let id = loc.trim_start_matches("/sessions/").to_owned();
    s.wait_status(&format!("/api/v2/external/sessions/{id}"), &alice, "running").await;
    let (_, _, body) = page(&s, &loc, Some(&alice)).await;
    assert_eq!(body.matches("data-state=\"done\"").count(), 4, "{body}");
    assert!(!body.contains("http-equiv=\"refresh\""), "no reloading once running");
    assert!(body.contains(&format!(".external.{DOMAIN}:{}/\" data-testid=\"open-ide\"", s.port())), "{body}");

    // Refusals, in words: the limit, the GPUs, the entitlement.
    let (st, loc, _, _) = form(&s, "/sessions", Some(&alice), &[("exposure", "external")]).await;
    assert_eq!((st, loc.as_str()), (303, "/?error=limit"));
    let (_, _, body) = page(&s, &loc, Some(&alice)).await;
    assert!(body.contains("You already have 1 session running (limit 1)."), "{body}");
    let bob = sign_up(&s, "bob@example.org").await;
    let (_, loc, _, _) = form(&s, "/sessions", Some(&bob), &[("exposure", "external")]).await;
    assert_eq!(loc, "/?error=no_gpus");
    let (_, _, body) = page(&s, &loc, Some(&bob)).await;
    assert!(body.contains("The only GPU is in use. Try again when a session ends."), "{body}");
    let (_, loc, _, _) = form(&s, "/sessions", Some(&bob), &[("exposure", "internal")]).await;
    let (_, _, body) = page(&s, &loc, Some(&bob)).await;
    assert!(body.contains("Internal sessions need the internal entitlement"), "{body}");
    let (st, _, _, body) = form(&s, "/sessions", Some(&bob), &[("exposure", "sideways")]).await;
    assert_eq!(st, 422, "{body}");

    // Someone else's session: refused, not stoppable.
    let (st, _, body) = page(&s, &format!("/sessions/{id}"), Some(&bob)).await;
    assert_eq!(st, 403, "{body}");
    let (st, _, _, _) = form(&s, &format!("/sessions/{id}/stop"), Some(&bob), &[]).await;
    assert_eq!(st, 403);
    let (st, _, body) = page(&s, "/admin", Some(&bob)).await;
    assert_eq!(st, 403);
    assert!(body.contains("This page is for admins."), "{body}");
    // A form posted from another site: refused by the Origin rule.
    let r = s
        .http
        .post(s.url(&format!("/sessions/{id}/stop")))
        .header(ORIGIN, "http://evil.example")
        .header("cookie", &alice)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);

    // Login: wrong password in words; `next` only within this deployment.
    let (st, _, cookie, body) =
        form(&s, "/login", None, &[("email", "alice@example.org"), ("password", "wrong passphrase")]).await;
    assert_eq!((st, cookie), (401, None));
    assert!(body.contains("Invalid email or password."), "{body}");
    let creds = [("email", "alice@example.org"), ("password", "form passphrase")];
    for (next, want) in [
        ("http://evil.example/", "/".to_owned()),
        ("//evil.example/", "/".to_owned()),
        ("/snapshots", "/snapshots".to_owned()),
        (&*format!("http://s-abcdefgh.external.{DOMAIN}:1/x"), format!("http://s-abcdefgh.external.{DOMAIN}:1/x")),
    ] {
        let fields = [creds[0], creds[1], ("next", next)];
        let (st, loc, cookie, _) = form(&s, "/login", None, &fields).await;
        assert_eq!((st, loc), (303, want), "{next}");
        assert!(cookie.is_some());
    }

    // Account: a mismatched confirmation changes nothing; a right one does.
    let fields = [
        ("change", "password"),
        ("current_password", "form passphrase"),
        ("new_password", "a new passphrase"),
        ("confirm_password", "another passphrase"),
    ];
    let (st, _, _, body) = form(&s, "/account", Some(&alice), &fields).await;
    assert_eq!(st, 422);
    assert!(body.contains("Confirm password: does not match the new password."), "{body}");
    let fields = [
        ("change", "password"),
        ("current_password", "form passphrase"),
        ("new_password", "a new passphrase"),
        ("confirm_password", "a new passphrase"),
    ];
    let (st, loc, cookie, _) = form(&s, "/account", Some(&alice), &fields).await;
    assert_eq!((st, loc.as_str()), (303, "/account?info=password"));
    let alice = cookie.expect("a new cookie for this browser");
    let (st, _, _, _) = form(&s, "/login", None, &creds).await;
    assert_eq!(st, 401, "the old password is gone");

    // Stop from the dashboard's form.
    let (st, loc, _, _) = form(&s, &format!("/sessions/{id}/stop"), Some(&alice), &[]).await;
    assert_eq!((st, loc.as_str()), (303, "/?info=stopping"));
    s.wait_status(&format!("/api/v2/external/sessions/{id}"), &alice, "stopped").await;
    let (_, _, body) = page(&s, "/snapshots", Some(&alice)).await;
    assert!(body.contains("data-testid=\"snapshot-row\"><td><code>stop-"), "{body}");

    // Admin forms: a GPU off and on, a user's limit and entitlement.
    let admin = s.admin("admin@example.org").await;
    let (st, loc, _, _) = form(&s, "/admin/gpus/0", Some(&admin), &[("enabled", "false")]).await;
    assert_eq!((st, loc.as_str()), (303, "/admin"));
    let (_, _, body) = page(&s, "/admin", Some(&admin)).await;
    assert!(body.contains("0 free, 0 held, 1 disabled."), "{body}");
    form(&s, "/admin/gpus/0", Some(&admin), &[("enabled", "true")]).await;
    let (st, _, _, _) = form(&s, "/admin/gpus/9", Some(&admin), &[("enabled", "true")]).await;
    assert_eq!(st, 404);
    let (_, _, me) = s.get("/api/v2/me", Some(&bob)).await;
    let bob_id = me["data"]["user_id"].as_str().expect("id").to_owned();
    let fields =
        [("role", "user"), ("can_use_internal", "true"), ("max_concurrent_sessions", "3"), ("quota_gib", "1.5")];
    let (st, loc, _, _) = form(&s, &format!("/admin/users/{bob_id}"), Some(&admin), &fields).await;
    assert_eq!((st, loc.as_str()), (303, "/admin/users?status=saved"));
    let (_, _, users) = s.get("/api/v2/admin/users", Some(&admin)).await;
    let row = users["data"].as_array().expect("users").iter().find(|u| u["user_id"] == bob_id.as_str()).cloned();
    let row = row.expect("bob");
    assert_eq!((row["can_use_internal"].as_bool(), row["max_concurrent_sessions"].as_u64()), (Some(true), Some(3)));
    assert_eq!(row["workspace_quota_bytes"].as_u64(), Some(3 << 29));
    let (_, _, body) = page(&s, "/", Some(&bob)).await;
    assert!(body.contains("start-internal"), "the entitlement shows");
    let bad = [("role", "emperor"), ("max_concurrent_sessions", "3"), ("quota_gib", "")];
    let (st, _, _, body) = form(&s, &format!("/admin/users/{bob_id}"), Some(&admin), &bad).await;
    assert_eq!(st, 422, "{body}");
    for p in ["/admin/sessions?status=active", "/admin/users", "/admin/events?event=session.stop"] {
        let (st, _, body) = page(&s, p, Some(&admin)).await;
        assert_eq!(st, 200, "{p}: {body}");
    }
    let (_, _, body) = page(&s, "/admin/events?event=session.stop", Some(&admin)).await;
    assert!(body.contains("<code>session.stop</code>"), "{body}");
    let (st, _, _) = page(&s, "/admin/sessions?status=sideways", Some(&admin)).await;
    assert_eq!(st, 422);

    // Sign out: the cookie is cleared and the dashboard asks for a login again.
    let (st, loc, _, _) = form(&s, "/logout", Some(&alice), &[]).await;
    assert_eq!((st, loc.as_str()), (303, "/login"));
    let r = s.http.get(s.url("/")).header("cookie", &alice).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    s.stop().await;
}

/// The reproductions of docs/security.md's findings, as they were sent,
/// now refused: (1) the admin's cookie, a session host's Origin and the
/// user form (no CSRF token) promote nobody, and without the Origin the
/// missing token still refuses it; (3) `next=` values that browsers read
/// as another site go to the dashboard instead, from both forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reported_attacks_are_refused() {
    let s = Server::start(Db::Sqlite, Options::default()).await;
    let (_, mallory_id) = s.signup("mallory@example.org").await;
    let admin = s.admin("root@example.org").await;
    let promote = "role=admin&can_use_internal=true&max_concurrent_sessions=8&quota_gib=";
    for origin in [Some(format!("http://s-aaaaaaaa.external.{DOMAIN}:{}", s.port())), None] {
        let mut req = s
            .http
            .post(s.url(&format!("/admin/users/{mallory_id}")))
            .header("cookie", &admin)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(promote);
        if let Some(o) = &origin {
            req = req.header(ORIGIN, o);
        }
        let r = req.send().await.expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin:?}");
    }
    let (_, _, users) = s.get("/api/v2/admin/users", Some(&admin)).await;
    let mallory =
        users["data"].as_array().and_then(|u| u.iter().find(|u| u["user_id"] == mallory_id.as_str()).cloned());
    assert_eq!(mallory.expect("listed")["role"], "user");

    for (i, next) in [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example",
        "http://s-aaaaaaaa.external.evil.example",
    ]
    .into_iter()
    .enumerate()
    {
        for path in ["/login", "/signup"] {
            let fresh = format!("fresh-next-{i}@example.org");
            let email = if path == "/login" { "root@example.org" } else { fresh.as_str() };
            let password = if path == "/login" { "admin passphrase" } else { "a long passphrase" };
            let (st, location, _, _) =
                form(&s, path, None, &[("email", email), ("password", password), ("next", next)]).await;
            assert_eq!((st, location.as_str()), (303, "/"), "{path} next={next:?}");
            // The login page offers no way back there either.
            let (_, _, body) = page(
                &s,
                &format!("{path}?next={}", url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()),
                None,
            )
            .await;
            assert!(!body.contains("evil.example"), "{path} next={next:?}");
        }
    }
    s.stop().await;
}

/// The sign-up page under each policy, as a person meets it: the default
/// (`invite`) explains itself and has no form; an admin invites from the
/// Invites page, which shows the link once; the link's page has the
/// address filled in and signs up once; the used link, `closed` and a
/// domain outside `domains` each say why in a sentence; an admin adds an
/// account from the Users page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_pages_follow_the_policy() {
    let s = Server::start(Db::Sqlite, Options { signup: None, ..Options::default() }).await;
    let (st, _, body) = page(&s, "/signup", None).await;
    assert_eq!(st, 200);
    assert!(body.contains("Sign-up here is by invitation: ask an admin for an invite link."), "{body}");
    assert!(!body.contains("data-testid=\"signup-form\""), "no form to fill in for nothing: {body}");
    let (st, _, cookie, body) =
        form(&s, "/signup", None, &[("email", "walk-in@example.org"), ("password", "form passphrase")]).await;
    assert_eq!((st, cookie), (403, None));
    assert!(body.contains("data-testid=\"flash-error\"") && body.contains("by invitation"), "{body}");

    // The admin invites; the link is on the answer, once.
    let boss = s.admin("boss@example.org").await;
    let (st, _, body) = page(&s, "/admin/invites", Some(&boss)).await;
    assert!(st == 200 && body.contains("data-testid=\"invite-form\""), "{body}");
    let (st, _, _, body) = form(&s, "/admin/invites", Some(&boss), &[("email", "grace@example.org")]).await;
    assert_eq!(st, 201, "{body}");
    let link = body
        .split("data-testid=\"invite-link\"")
        .next()
        .and_then(|before| before.rsplit("value=\"").next())
        .and_then(|v| v.split('"').next())
        .unwrap_or_default()
        .to_owned();
    assert!(link.contains("/signup?invite="), "{body}");
    assert!(body.contains("Invited grace@example.org."), "{body}");
    let (_, _, listed) = page(&s, "/admin/invites", Some(&boss)).await;
    assert!(!listed.contains("data-testid=\"invite-link\""), "shown once only");
    assert!(listed.contains("<td data-testid=\"invite-state\">open</td>"), "{listed}");
    let (_, _, _, body) = form(&s, "/admin/invites", Some(&boss), &[("email", "boss@example.org")]).await;
    assert!(body.contains("Email already registered."), "{body}");

    // The link's page: the address filled in and fixed, the invite carried.
    let path = link.split_once(&format!(":{}", s.port())).map(|(_, p)| p.to_owned()).expect("a path");
    let token = path.split_once("invite=").map(|(_, t)| t.to_owned()).expect("token");
    let (_, _, body) = page(&s, &path, None).await;
    assert!(body.contains("You were invited as grace@example.org."), "{body}");
    assert!(body.contains("value=\"grace@example.org\" readonly"), "{body}");
    assert!(body.contains(&format!("name=\"invite\" value=\"{token}\"")), "{body}");
    let fields = [("email", "grace@example.org"), ("password", "form passphrase"), ("invite", token.as_str())];
    let (st, loc, cookie, _) = form(&s, "/signup", None, &fields).await;
    assert_eq!((st, loc.as_str()), (303, "/"));
    assert!(cookie.is_some());
    // Used: the page and the form say so.
    let used = "This invite link is used, revoked or expired: ask an admin for a new one.";
    let (_, _, body) = page(&s, &path, None).await;
    assert!(body.contains(used) && !body.contains("data-testid=\"signup-form\""), "{body}");
    let (st, _, _, body) = form(&s, "/signup", None, &fields).await;
    assert!(st == 403 && body.contains(used), "{body}");
    let (_, _, listed) = page(&s, "/admin/invites", Some(&boss)).await;
    assert!(listed.contains("<td data-testid=\"invite-state\">used</td>"), "{listed}");

    // Revoke from the page.
    let (_, _, _, body) = form(&s, "/admin/invites", Some(&boss), &[("email", "late@example.org")]).await;
    let id = body.split("data-invite=\"").nth(1).and_then(|v| v.split('"').next()).expect("a row").to_owned();
    let (st, loc, _, _) = form(&s, &format!("/admin/invites/{id}/revoke"), Some(&boss), &[]).await;
    assert_eq!((st, loc.as_str()), (303, "/admin/invites"));
    let (_, _, listed) = page(&s, "/admin/invites", Some(&boss)).await;
    assert!(listed.contains("<td data-testid=\"invite-state\">revoked</td>"), "{listed}");

    // An admin adds an account on the Users page.
    let fields = [("email", "added@example.org"), ("password", "first passphrase")];
    let (st, loc, _, _) = form(&s, "/admin/users", Some(&boss), &fields).await;
    assert_eq!((st, loc.as_str()), (303, "/admin/users?status=added"));
    let (_, _, _, body) = form(&s, "/admin/users", Some(&boss), &fields).await;
    assert!(body.contains("Email already registered.") && body.contains("value=\"added@example.org\""), "{body}");
    let (st, _, _, _) =
        form(&s, "/login", None, &[("email", "added@example.org"), ("password", "first passphrase")]).await;
    assert_eq!(st, 303, "the account works");
    s.stop().await;

    // `closed`: no form, and the sign-in page sends to an admin.
    let s = Server::start(Db::Sqlite, Options { signup: Some("closed"), ..Options::default() }).await;
    let (_, _, body) = page(&s, "/signup", None).await;
    assert!(body.contains("Sign-up is closed here: an admin makes the accounts."), "{body}");
    assert!(!body.contains("data-testid=\"signup-form\""), "{body}");
    let (_, _, body) = page(&s, "/login", None).await;
    assert!(body.contains("Ask an admin of this lab to make you one.") && !body.contains("href=\"/signup"), "{body}");
    s.stop().await;

    // `domains`: the form, with the rule above it, and a sentence for others.
    let extra = "[auth]\nsignup = \"domains\"\nallowed_email_domains = [\"lab.example.org\"]\n".to_owned();
    let s = Server::start(Db::Sqlite, Options { signup: None, extra_config: extra, ..Options::default() }).await;
    let (_, _, body) = page(&s, "/signup", None).await;
    assert!(
        body.contains("Sign-up here is for addresses at lab.example.org.") && body.contains("signup-form"),
        "{body}"
    );
    let (st, _, _, body) =
        form(&s, "/signup", None, &[("email", "eve@example.org"), ("password", "form passphrase")]).await;
    assert_eq!(st, 403);
    assert!(body.contains("Sign-up here is for addresses at lab.example.org; for another address"), "{body}");
    assert!(body.contains("value=\"eve@example.org\""), "the address typed is kept: {body}");
    sign_up(&s, "ada@lab.example.org").await;
    s.stop().await;
}
