//! The wait queue for a GPU, as users and admins use it: join, look, leave;
//! and the offer round the queue task runs whenever a GPU frees (and every
//! second, for offers that lapse). Offers are made by the store in one
//! race-safe transaction (`Store::offer_gpu`): the GPU is held by a
//! `reserved` session for `queue.claim_timeout`, and the user's next create
//! takes it (`Store::allocate_session` claims it).

use std::collections::HashMap;

use medforge_core::events::{Event, EventContext, LeaveReason};
use medforge_core::model::{
    Exposure, PackId, QueueEntry, QueueEntryId, QueueState, Session, SessionStatus, User, UserId,
};
use medforge_core::queue::{self, QueueOrder};
use medforge_core::store::{AllocationError, NewQueueEntry, Offer, PageRequest, SessionFilter};
use medforge_core::usage::{Period, summarize};
use time::OffsetDateTime;

use super::error::{Conflict, Denied, Error, Missing};
use super::notify::Notice;
use super::state::AppState;

/// Where a user's entry stands.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct QueueStatus {
    #[serde(flatten)]
    pub entry: QueueEntry,
    /// 1 is next; `None` once offered.
    pub position: Option<usize>,
    /// How many wait in all.
    pub waiting: usize,
    /// When a GPU may be theirs, if the running sessions run to their
    /// lifetimes (`None`: no honest estimate).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub estimate: Option<OffsetDateTime>,
}

/// The queue as it stands: every entry, and the waiting ones in the order
/// `queue.order` offers them GPUs. Read once per answer.
struct Line {
    entries: Vec<QueueEntry>,
    waiting: Vec<QueueEntry>,
}

impl Line {
    async fn read(state: &AppState) -> Result<Self, Error> {
        let entries = state.store.queue().await?;
        let held = match state.config.queue.order {
            QueueOrder::Fifo => HashMap::new(),
            QueueOrder::Fair => held_last_week(state).await?,
        };
        let waiting = queue::waiting_in_order(&entries, state.config.queue.order, &held).into_iter().cloned().collect();
        Ok(Self { entries, waiting })
    }

    /// Where `entry` stands; `holders`: the active sessions, for the estimate.
    fn status(&self, entry: &QueueEntry, holders: &[Session], now: OffsetDateTime) -> QueueStatus {
        let refs: Vec<&QueueEntry> = self.waiting.iter().collect();
        let position = queue::position(&refs, entry.id);
        let estimate = position.and_then(|p| queue::estimate(p, holders, now));
        QueueStatus { entry: entry.clone(), position, waiting: self.waiting.len(), estimate }
    }

    /// The status of each of `entries`, with one read of the active sessions.
    async fn statuses(&self, state: &AppState, entries: &[&QueueEntry]) -> Result<Vec<QueueStatus>, Error> {
        let holders = state.store.active_sessions().await?;
        let now = state.lifecycle.now();
        Ok(entries.iter().map(|e| self.status(e, &holders, now)).collect())
    }
}

/// Each user's GPU time held in the last 7 days (today included), from
/// the same records as the usage report.
async fn held_last_week(state: &AppState) -> Result<HashMap<UserId, i64>, Error> {
    let now = state.lifecycle.now();
    let today = now.date();
    let period = Period { from: today - time::Duration::days(6), to: today.next_day().unwrap_or(today) };
    let from = period.from.midnight().assume_utc();
    let to = period.to.midnight().assume_utc();
    let records = state.store.usage_records(from, to, None).await?;
    Ok(summarize(&records, period, now, false)
        .into_iter()
        .map(|u| (u.user_id, i64::try_from(u.held_ms).unwrap_or(i64::MAX)))
        .collect())
}

/// Joins the queue for a GPU of `exposure`.
#[tracing::instrument(skip_all, fields(user_id = %user.id, %exposure))]
pub async fn join(
    state: &AppState,
    user: &User,
    exposure: Exposure,
    pack_id: Option<PackId>,
    auto_start: bool,
    request_id: &str,
) -> Result<QueueStatus, Error> {
    if !user.may_use(exposure) {
        return Err(Error::Forbidden(Denied::NotEntitled));
    }
    // The pack is checked now, as a create would, not when a GPU is offered.
    if let Some(id) = pack_id {
        let pack = state.store.pack(id).await?.ok_or(Error::Allocation(AllocationError::PackNotFound))?;
        if pack.deprecated_at.is_some() {
            return Err(Error::Allocation(AllocationError::PackDeprecated));
        }
        if !pack.exposure.allows(exposure) {
            return Err(Error::Allocation(AllocationError::PackExposureMismatch { exposure }));
        }
    }
    let mine = SessionFilter { user_id: Some(user.id), exposure: None, statuses: SessionStatus::HOLDING.to_vec() };
    let holding = state.store.list_sessions(&mine, PageRequest::first(PageRequest::MAX_LIMIT)).await?.items.len();
    if holding >= user.max_concurrent_sessions as usize {
        return Err(Error::Conflict(Conflict::AtSessionLimit { limit: user.max_concurrent_sessions }));
    }
    let entry = state
        .store
        .join_queue(NewQueueEntry {
            id: QueueEntryId::new_random(),
            user_id: user.id,
            exposure,
            pack_id,
            auto_start,
            joined_at: state.lifecycle.now(),
        })
        .await?;
    let line = Line::read(state).await?;
    let status = line.statuses(state, &[&entry]).await?.remove(0);
    state.events.emit(
        Event::QueueJoin {
            entry_id: status.entry.id,
            user_id: user.id,
            exposure,
            position: status.position.unwrap_or(0),
            auto_start,
        },
        &EventContext::request(request_id),
    );
    // A GPU may be free already (nobody else waits): offer it now.
    state.lifecycle.gpu_freed().notify_one();
    Ok(status)
}

/// The caller's place in the queue of `exposure`, if they have one.
pub async fn status(state: &AppState, user: &User, exposure: Exposure) -> Result<Option<QueueStatus>, Error> {
    let line = Line::read(state).await?;
    let Some(entry) = line.entries.iter().find(|e| e.user_id == user.id && e.exposure == exposure) else {
        return Ok(None);
    };
    Ok(line.statuses(state, &[entry]).await?.pop())
}

/// Every entry with its status, for admins: offered first, then in order.
pub async fn everyone(state: &AppState) -> Result<Vec<QueueStatus>, Error> {
    let line = Line::read(state).await?;
    let offered = line.entries.iter().filter(|e| e.state == QueueState::Offered);
    let all: Vec<&QueueEntry> = offered.chain(line.waiting.iter()).collect();
    line.statuses(state, &all).await
}

/// Leaves the queue of `exposure` (an offer the caller had passes on).
pub async fn leave(state: &AppState, user: &User, exposure: Exposure, request_id: &str) -> Result<QueueEntry, Error> {
    let entry = state.store.queue_entry(user.id, exposure).await?.ok_or(Error::NotFound(Missing::QueueEntry))?;
    remove(state, entry.id, None, LeaveReason::User, &EventContext::request(request_id)).await
}

/// An admin removes someone's entry.
pub async fn remove_by_admin(state: &AppState, admin: &User, id: &str, request_id: &str) -> Result<QueueEntry, Error> {
    let id: QueueEntryId = id.parse().map_err(|_| Error::NotFound(Missing::QueueEntry))?;
    remove(state, id, Some(admin.id), LeaveReason::Admin, &EventContext::request(request_id)).await
}

async fn remove(
    state: &AppState,
    id: QueueEntryId,
    actor: Option<UserId>,
    why: LeaveReason,
    ctx: &EventContext,
) -> Result<QueueEntry, Error> {
    let entry = state.store.leave_queue(id).await?.ok_or(Error::NotFound(Missing::QueueEntry))?;
    state.events.emit(
        Event::QueueLeave {
            entry_id: entry.id,
            user_id: entry.user_id,
            exposure: entry.exposure,
            actor_id: actor,
            why,
        },
        ctx,
    );
    if entry.state == QueueState::Offered {
        // Its reservation is gone: the GPU goes to the next in line.
        state.lifecycle.gpu_freed().notify_one();
    }
    Ok(entry)
}

/// One round: lapsed offers go, then every free GPU is offered to the
/// next in line until none is free or nobody waits. Users who chose
/// "start for me" have their session started at once.
pub async fn offer_round(state: &std::sync::Arc<AppState>) -> Result<(), Error> {
    let now = state.lifecycle.now();
    let ctx = EventContext::correlation("queue");
    for lapsed in state.store.expire_offers(now).await? {
        state.events.emit(
            Event::QueueExpire {
                entry_id: lapsed.id,
                user_id: lapsed.user_id,
                exposure: lapsed.exposure,
                gpu_id: None,
            },
            &ctx,
        );
    }
    let until = now + state.config.queue.claim_timeout;
    loop {
        let mut offered_one = false;
        for entry in Line::read(state).await?.waiting {
            match state.store.offer_gpu(entry.id, now, until).await? {
                Offer::Made(reserved) => {
                    tracing::info!(user_id = %entry.user_id, gpu_id = %reserved.gpu_id, "offered a GPU to the queue");
                    state.events.emit(
                        Event::QueueOffer {
                            entry_id: entry.id,
                            user_id: entry.user_id,
                            exposure: entry.exposure,
                            session_id: reserved.id,
                            gpu_id: reserved.gpu_id,
                            offered_until: until,
                        },
                        &ctx,
                    );
                    super::notify::send(state, Notice::offer(state, &entry, &reserved).await);
                    if entry.auto_start {
                        start_for(state, &entry).await;
                    }
                    offered_one = true;
                    break;
                }
                Offer::NoGpu => return Ok(()),
                Offer::NotWaiting => {}
                refused @ (Offer::UserAtLimit | Offer::CannotStart) => {
                    let why = if refused == Offer::UserAtLimit { LeaveReason::Limit } else { LeaveReason::CannotStart };
                    match remove(state, entry.id, None, why, &ctx).await {
                        // Gone already (left, or met by the user's own create).
                        Ok(_) | Err(Error::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if !offered_one {
            return Ok(());
        }
    }
}

/// "Start for me": the user's create, made for them.
async fn start_for(state: &std::sync::Arc<AppState>, entry: &QueueEntry) {
    let user = match state.store.user(entry.user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "reading a queued user failed");
            return;
        }
    };
    let request_id = format!("queue:{}", entry.id);
    if let Err(e) = super::sessions::start(state, &user, entry.exposure, entry.pack_id, &request_id).await {
        tracing::warn!(user_id = %user.id, error = %e, "starting an offered session for its user failed");
    }
}
