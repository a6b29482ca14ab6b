//! `/admin/events`: the event log as sentences ("boss@… changed
//! mallory@…: role user → admin"), each person and session a link, with
//! filters by event, by the user an event is about and by the admin who
//! did it. The raw event stays one click away.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use medforge_core::model::{Email, UserId};
use medforge_core::store::{Cursor, EventFilter, PageRequest, StoredEvent};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::Value;

use super::admin::emails;
use super::page::{Chrome, ago, iso};
use crate::http::extract::Admin;
use crate::http::html::render;
use crate::service::admin::event_name;
use crate::service::{AppState, Error};

#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    event: String,
    /// Events about this user (an email, or a user id).
    #[serde(default)]
    user: String,
    /// Events this admin did (an email, or a user id).
    #[serde(default)]
    actor: String,
    cursor: Option<String>,
}

/// A piece of a sentence: words, or a link.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Link { text: String, href: String },
}

#[derive(Debug)]
struct EventRow {
    at: String,
    at_iso: String,
    event: String,
    sentence: Vec<Piece>,
    raw: String,
}

#[derive(Template)]
#[template(path = "admin_events.html")]
struct EventsPage {
    chrome: Chrome,
    section: &'static str,
    event: String,
    user: String,
    actor: String,
    events: Vec<EventRow>,
    more: Option<String>,
}

pub async fn events(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    Query(q): Query<EventsQuery>,
) -> Result<Response, Error> {
    let event = event_name(&q.event)?;
    let user_id = person(&state, "user", &q.user).await?;
    let actor_id = person(&state, "actor", &q.actor).await?;
    let after = q.cursor.as_deref().map(Cursor::decode).transpose().map_err(|_| Error::InvalidCursor)?;
    let filter = EventFilter { event, user_id, actor_id };
    let found = state.store.list_events(&filter, PageRequest { limit: 100, after }).await?;
    let ids = found.items.iter().flat_map(|e| [e.user_id, e.actor_id]).flatten().collect();
    let who = emails(&state, ids).await;
    let events = found
        .items
        .iter()
        .map(|e| EventRow {
            at: ago(e.created_at),
            at_iso: iso(e.created_at),
            event: e.event.clone(),
            sentence: sentence(e, &who),
            raw: e.data.to_string(),
        })
        .collect();
    let (event, user, actor) = (q.event.trim().to_owned(), q.user.trim().to_owned(), q.actor.trim().to_owned());
    let more = found.next.map(|c| {
        let mut url = format!("/admin/events?cursor={}", c.encode());
        for (k, v) in [("event", &event), ("user", &user), ("actor", &actor)] {
            if !v.is_empty() {
                url.push_str(&format!("&{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)));
            }
        }
        url
    });
    let chrome = Chrome::new("Event log", Some(&admin), "admin");
    Ok(render(StatusCode::OK, EventsPage { chrome, section: "events", event, user, actor, events, more }))
}

/// A filter's person: empty for anyone, else a user id or an email that
/// has an account.
async fn person(state: &AppState, field: &str, text: &str) -> Result<Option<UserId>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(id) = text.parse::<UserId>() {
        return Ok(Some(id));
    }
    let email = text.parse::<Email>().map_err(|_| Error::field(field, "must be an email or a user id"))?;
    match state.store.user_by_email(&email).await? {
        Some(u) => Ok(Some(u.id)),
        None => Err(Error::field(field, "has no account")),
    }
}

/// The event in words, with its people and session as links.
fn sentence(e: &StoredEvent, who: &HashMap<UserId, String>) -> Vec<Piece> {
    let d = &e.data;
    let text = |s: &str| Piece::Text(s.to_owned());
    let field = |k: &str| match &d[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let person = |id: Option<UserId>, filter: &str| match id {
        Some(id) => {
            let email = who.get(&id).cloned().unwrap_or_else(|| id.to_string());
            let href = format!("/admin/events?{filter}={}", utf8_percent_encode(&email, NON_ALPHANUMERIC));
            Piece::Link { text: email, href }
        }
        None => text("someone"),
    };
    let user = person(e.user_id, "user");
    let actor = person(e.actor_id, "actor");
    let session = || match e.session_id {
        Some(id) => {
            let slug = field("slug");
            let label = if slug.is_empty() { format!("session {id}") } else { format!("s-{slug}") };
            Piece::Link { text: label, href: format!("/sessions/{id}") }
        }
        None => text("a session"),
    };
    let from = || {
        let ip = field("ip");
        if ip.is_empty() { ".".to_owned() } else { format!(" from {ip}.") }
    };
    match e.event.as_str() {
        "user.signup" if !field("invite_id").is_empty() => {
            vec![user, text(&format!(" signed up with an invite{}", from()))]
        }
        "user.signup" => vec![user, text(&format!(" signed up{}", from()))],
        "user.login" => vec![user, text(&format!(" signed in{}", from()))],
        "user.logout" => vec![user, text(" signed out.")],
        "user.login_failed" => vec![text(&format!("A sign-in as {} failed{}", field("email"), from()))],
        "session.start" => vec![
            user,
            text(" started "),
            session(),
            text(&format!(" ({}, GPU {}).", field("exposure"), field("gpu_id"))),
        ],
        "session.start_failed" => vec![session(), text(&format!(" did not start: {}", field("error")))],
        "session.stop" => vec![session(), text(" of "), user, text(&format!(" stopped ({}).", field("reason")))],
        "session.snapshot" => {
            vec![session(), text(&format!(": the workspace was snapshotted as {}.", field("snapshot")))]
        }
        "session.recovery.decision" => vec![
            text(&format!("Recovery ({}) found ", field("recovery_mode"))),
            session(),
            text(&format!(" {}: {}.", field("state"), field("decision").replace('_', " "))),
        ],
        "admin.user.change" => {
            let changes: Vec<String> = d["changes"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            let name = c["field"].as_str().unwrap_or_default().replace('_', " ");
                            format!("{name} {} → {}", shown(&c["before"]), shown(&c["after"]))
                        })
                        .collect()
                })
                .unwrap_or_default();
            vec![actor, text(" changed "), user, text(&format!(": {}.", changes.join("; ")))]
        }
        "admin.gpu.change" => {
            let verb = if d["enabled_after"] == Value::Bool(true) { "enabled" } else { "disabled" };
            vec![actor, text(&format!(" {verb} GPU {}.", field("gpu_id")))]
        }
        "admin.session.stop" => vec![actor, text(" stopped "), session(), text(" of "), user, text(".")],
        "admin.invite.create" => {
            vec![actor, text(&format!(" invited {} (the link works until {}).", field("email"), field("expires_at")))]
        }
        "admin.invite.revoke" => vec![actor, text(&format!(" revoked invite {}.", field("invite_id")))],
        "admin.user.create" => {
            vec![actor, text(" made the account "), user, text(&format!(" ({}).", field("role")))]
        }
        "session.entered_by_other" => vec![actor, text(" opened "), session(), text(" of "), user, text(".")],
        "session.warning" => vec![
            session(),
            text(" of "),
            user,
            text(&format!(" was warned: it stops at {} ({}).", field("stops_at"), field("kind"))),
        ],
        "session.extend" => vec![
            user,
            text(" extended "),
            session(),
            text(&format!(" until {} (extension {}).", field("expires_at"), field("extensions"))),
        ],
        "queue.join" => {
            vec![user, text(&format!(" joined the {} queue at position {}.", field("exposure"), field("position")))]
        }
        "queue.offer" => vec![
            text(&format!("GPU {} was kept for ", field("gpu_id"))),
            user,
            text(&format!(" until {}.", field("offered_until"))),
        ],
        "queue.claim" => vec![user, text(" took the offered GPU: "), session(), text(".")],
        "queue.expire" => vec![user, text(" did not claim the offered GPU in time; it passed on.")],
        "queue.leave" if e.actor_id.is_some() => vec![actor, text(" removed "), user, text(" from the queue.")],
        "queue.leave" if field("why") == "cannot_start" => {
            vec![user, text(" left the queue: they may no longer start what they queued for.")]
        }
        "queue.leave" if field("why") == "limit" => {
            vec![user, text(" left the queue: they hold as many sessions as they may.")]
        }
        "queue.leave" => vec![user, text(" left the queue.")],
        other => vec![text(&format!("{other}."))],
    }
}

/// A changed value as a person reads it (`null` is "the default").
fn shown(v: &Value) -> String {
    match v {
        Value::Null => "default".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_change_reads_as_a_sentence_with_links() {
        let (boss, mallory) = (UserId::new_random(), UserId::new_random());
        let who = HashMap::from([(boss, "boss@example.org".to_owned()), (mallory, "mallory@example.org".to_owned())]);
        let e = StoredEvent {
            id: "e".into(),
            event: "admin.user.change".into(),
            user_id: Some(mallory),
            actor_id: Some(boss),
            session_id: None,
            created_at: medforge_core::model::now(),
            data: serde_json::json!({"changes": [
                {"field": "role", "before": "user", "after": "admin"},
                {"field": "workspace_quota_bytes", "before": null, "after": 1024}
            ]}),
        };
        assert_eq!(
            sentence(&e, &who),
            vec![
                Piece::Link {
                    text: "boss@example.org".into(),
                    href: "/admin/events?actor=boss%40example%2Eorg".into()
                },
                Piece::Text(" changed ".into()),
                Piece::Link {
                    text: "mallory@example.org".into(),
                    href: "/admin/events?user=mallory%40example%2Eorg".into()
                },
                Piece::Text(": role user → admin; workspace quota bytes default → 1024.".into()),
            ]
        );
    }
}
