//! Who used which session, when: the proxy reports each request and each
//! WebSocket frame a browser sends on its owner's behalf (not the
//! heartbeats an open tab sends by itself: `crate::proxy::ws_activity`),
//! by the session's slug, and the limits task a busy GPU, by the session's
//! id. Kept in memory and written to the sessions' `last_activity_at` once
//! per limits pass, so that a busy IDE costs no database write per
//! keystroke.

use std::collections::HashMap;
use std::sync::Mutex;

use medforge_core::model::{SessionId, Slug};
use medforge_core::store::{Store, StoreError};
use time::OffsetDateTime;

#[derive(Debug, Default)]
struct Seen {
    by_slug: HashMap<Slug, OffsetDateTime>,
    by_id: HashMap<SessionId, OffsetDateTime>,
}

#[derive(Debug, Default)]
pub struct Activity {
    seen: Mutex<Seen>,
}

fn later<K: std::hash::Hash + Eq>(map: &mut HashMap<K, OffsetDateTime>, key: K, at: OffsetDateTime) {
    let last = map.entry(key).or_insert(at);
    if *last < at {
        *last = at;
    }
}

impl Activity {
    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session at `slug` was used at `at` (the proxy's report).
    pub fn touch_slug(&self, slug: &Slug, at: OffsetDateTime) {
        later(&mut self.lock().by_slug, slug.clone(), at);
    }

    /// `session` was used at `at`.
    pub fn touch(&self, session: SessionId, at: OffsetDateTime) {
        later(&mut self.lock().by_id, session, at);
    }

    /// Writes what was seen since the last flush; what could not be
    /// written is kept for the next one.
    pub async fn flush(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let Seen { by_slug, mut by_id } = std::mem::take(&mut *self.lock());
        for (slug, at) in &by_slug {
            match store.session_by_slug(slug).await {
                Ok(Some(session)) => later(&mut by_id, session.id, *at),
                Ok(None) => {}
                Err(e) => {
                    self.keep(by_slug, by_id);
                    return Err(e);
                }
            }
        }
        if by_id.is_empty() {
            return Ok(0);
        }
        let seen: Vec<_> = by_id.iter().map(|(id, at)| (*id, *at)).collect();
        match store.record_activity(&seen).await {
            Ok(()) => Ok(seen.len()),
            Err(e) => {
                self.keep(HashMap::new(), by_id);
                Err(e)
            }
        }
    }

    fn keep(&self, by_slug: HashMap<Slug, OffsetDateTime>, by_id: HashMap<SessionId, OffsetDateTime>) {
        let mut seen = self.lock();
        for (slug, at) in by_slug {
            later(&mut seen.by_slug, slug, at);
        }
        for (id, at) in by_id {
            later(&mut seen.by_id, id, at);
        }
    }
}
