//! Listings: the `limit`, `cursor`, `status` and `exposure` query of
//! docs/api.md, checked (every bad field reported at once), and a page of
//! sessions as an envelope.

use medforge_core::model::{Exposure, SessionStatus};
use medforge_core::store::{Cursor, Page, PageRequest, SessionFilter};
use serde::Deserialize;

use crate::http::envelope::{Envelope, PageMeta};
use crate::service::{AppState, Error, FieldError};

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
    pub status: Option<String>,
    pub exposure: Option<String>,
}

/// A listing's query, checked: the page, and the status and exposure filters.
#[derive(Debug)]
pub struct ListParams {
    pub page: PageRequest,
    pub statuses: Vec<SessionStatus>,
    pub exposure: Option<Exposure>,
}

pub fn parse(q: ListQuery) -> Result<ListParams, Error> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: String| errors.push(FieldError { field: field.into(), message });
    let limit = match q.limit.as_deref().map(str::parse::<u32>) {
        None => 50,
        Some(Ok(n)) if (1..=PageRequest::MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            bad("limit", "must be an integer from 1 to 500".into());
            0
        }
    };
    let mut statuses = Vec::new();
    for part in q.status.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<SessionStatus>() {
            Ok(s) => statuses.push(s),
            Err(_) => {
                bad("status", format!("unknown status {part:?}; use starting, running, stopping, stopped, error"))
            }
        }
    }
    let exposure = match q.exposure.as_deref().map(str::parse::<Exposure>) {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(_)) => {
            bad("exposure", "must be external or internal".into());
            None
        }
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let after = q.cursor.map(|c| Cursor::decode(&c).map_err(|_| Error::InvalidCursor)).transpose()?;
    Ok(ListParams { page: PageRequest { limit, after }, statuses, exposure })
}

/// A page of items as the listing routes answer it.
pub fn envelope<T>(limit: u32, found: Page<T>, view: impl Fn(&T) -> serde_json::Value) -> Envelope {
    let items: Vec<serde_json::Value> = found.items.iter().map(view).collect();
    Envelope::ok(items).page(PageMeta { limit, next_cursor: found.next.map(|c| c.encode()) })
}

/// A page of sessions.
pub async fn sessions(state: &AppState, filter: SessionFilter, page: PageRequest) -> Result<Envelope, Error> {
    let limit = page.limit;
    let found = state.store.list_sessions(&filter, page).await?;
    Ok(envelope(limit, found, |s| serde_json::to_value(s).unwrap_or_default()))
}
