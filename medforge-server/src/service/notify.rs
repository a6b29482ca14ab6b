//! `notify.webhook_url`: each GPU offer and each warning before an
//! automatic stop is POSTed there as one JSON object, for a chat bridge
//! (Slack, Mattermost, Matrix) to pass on. Fire and forget: a webhook that
//! is down costs a log line, never a session or an offer.

use std::sync::OnceLock;
use std::time::Duration;

use medforge_core::model::{QueueEntry, Session, Warning};
use serde::Serialize;
use time::OffsetDateTime;

use super::state::AppState;

/// What the webhook receives.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notice {
    /// `queue.offer` or `session.warning`, as the event log names them.
    pub event: &'static str,
    /// Whom it is for.
    pub email: String,
    /// One sentence for a person.
    pub text: String,
    /// Where to act (the dashboard).
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
}

impl Notice {
    pub async fn offer(state: &AppState, entry: &QueueEntry, reserved: &Session) -> Option<Self> {
        let email = state.store.user(entry.user_id).await.ok().flatten()?.email.to_string();
        let until = reserved.expires_at?;
        Some(Self {
            event: "queue.offer",
            text: format!(
                "A GPU is free for {email}: GPU {} is kept for you until {} UTC. Open {} and start your {} session.",
                reserved.gpu_id,
                clock(until),
                state.config.ui_url(state.config.listen.port()),
                entry.exposure
            ),
            email,
            url: state.config.ui_url(state.config.listen.port()),
            until,
        })
    }

    pub async fn warning(state: &AppState, session: &Session, warning: &Warning) -> Option<Self> {
        let email = state.store.user(session.user_id).await.ok().flatten()?.email.to_string();
        let why = match warning.kind {
            medforge_core::model::WarningKind::Idle => "nobody has used it for a while",
            medforge_core::model::WarningKind::Lifetime => "it reaches its time limit",
        };
        Some(Self {
            event: "session.warning",
            text: format!(
                "Session s-{} of {email} stops at {} UTC ({why}); its workspace is snapshotted. Open {} to keep it.",
                session.slug,
                clock(warning.stops_at),
                state.config.ui_url(state.config.listen.port())
            ),
            email,
            url: state.config.ui_url(state.config.listen.port()),
            until: warning.stops_at,
        })
    }
}

fn clock(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[hour]:[minute]");
    t.format(&f).unwrap_or_default()
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        // reqwest's rustls without a provider of its own: ring, as the listener.
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default()
    })
}

/// Posts `notice` to the webhook, if one is set, in the background.
pub fn send(state: &AppState, notice: Option<Notice>) {
    let (Some(url), Some(notice)) = (state.config.notify.webhook_url.clone(), notice) else { return };
    tokio::spawn(async move {
        match client().post(&url).json(&notice).send().await {
            Ok(r) if r.status().is_success() => {
                metrics::counter!("medforge_notify_sent_total").increment(1);
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), event = notice.event, "the notify webhook refused a notice");
                metrics::counter!("medforge_notify_failures_total").increment(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, event = notice.event, "the notify webhook did not answer");
                metrics::counter!("medforge_notify_failures_total").increment(1);
            }
        }
    });
}
