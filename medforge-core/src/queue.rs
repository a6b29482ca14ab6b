//! The wait queue's rules, pure: who is next ([`QueueOrder`]), where a
//! user stands, and when their turn may come ([`estimate`]). The store
//! keeps the entries and makes offers race-safe; the server's queue task
//! asks these functions whom to offer a GPU that frees.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::model::{QueueEntry, QueueEntryId, QueueState, Session, SessionStatus, UserId};

/// Who is offered a GPU first (`queue.order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOrder {
    /// First come, first served.
    #[default]
    Fifo,
    /// Fewest GPU-hours held in the last 7 days first; first come among equals.
    Fair,
}

/// The waiting entries in the order they will be offered GPUs. `held_ms`:
/// each user's GPU time held in the fairness window (users not in it held
/// none), read only by [`QueueOrder::Fair`].
pub fn waiting_in_order<'a>(
    entries: &'a [QueueEntry],
    order: QueueOrder,
    held_ms: &HashMap<UserId, i64>,
) -> Vec<&'a QueueEntry> {
    let mut waiting: Vec<&QueueEntry> = entries.iter().filter(|e| e.state == QueueState::Waiting).collect();
    let held = |e: &QueueEntry| held_ms.get(&e.user_id).copied().unwrap_or(0);
    match order {
        QueueOrder::Fifo => waiting.sort_by_key(|e| (e.joined_at, e.id)),
        QueueOrder::Fair => waiting.sort_by_key(|e| (held(e), e.joined_at, e.id)),
    }
    waiting
}

/// Where `id` stands among the waiting (1 is next), if it waits.
pub fn position(ordered: &[&QueueEntry], id: QueueEntryId) -> Option<usize> {
    ordered.iter().position(|e| e.id == id).map(|i| i + 1)
}

/// When the waiting entry at `position` can expect a GPU, if the sessions
/// holding GPUs run to their lifetimes: the `position`-th earliest end
/// among them (a session without a lifetime may run for ever). `None` when
/// fewer than `position` have an end: there is then no honest estimate. Sessions may
/// end sooner (stopped, idle) or later (extended); an estimate in the past
/// (a stop still under way) is given as `now`.
pub fn estimate(position: usize, holders: &[Session], now: OffsetDateTime) -> Option<OffsetDateTime> {
    if position == 0 {
        return None;
    }
    let mut ends: Vec<OffsetDateTime> = holders
        .iter()
        .filter(|s| matches!(s.status, SessionStatus::Starting | SessionStatus::Running | SessionStatus::Stopping))
        .filter_map(|s| if s.status == SessionStatus::Stopping { Some(now) } else { s.expires_at })
        .collect();
    ends.sort();
    ends.get(position - 1).map(|t| (*t).max(now))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{DEFAULT_PACK_ID, Exposure, GpuId};

    fn entry(user: UserId, joined: OffsetDateTime, state: QueueState) -> QueueEntry {
        QueueEntry {
            id: QueueEntryId::new_random(),
            user_id: user,
            exposure: Exposure::External,
            pack_id: None,
            auto_start: false,
            joined_at: joined,
            state,
            session_id: None,
            offered_at: None,
            offered_until: None,
        }
    }

    #[test]
    fn fifo_is_by_arrival_and_fair_by_hours_held_then_arrival() {
        let t0 = crate::model::now();
        let (a, b, c) = (UserId::new_random(), UserId::new_random(), UserId::new_random());
        let entries = vec![
            entry(a, t0, QueueState::Waiting),
            entry(b, t0 + Duration::from_secs(1), QueueState::Waiting),
            entry(c, t0 + Duration::from_secs(2), QueueState::Waiting),
            entry(UserId::new_random(), t0 - Duration::from_secs(9), QueueState::Offered),
        ];
        let users = |v: Vec<&QueueEntry>| v.into_iter().map(|e| e.user_id).collect::<Vec<_>>();
        let none = HashMap::new();
        assert_eq!(users(waiting_in_order(&entries, QueueOrder::Fifo, &none)), vec![a, b, c]);
        assert_eq!(users(waiting_in_order(&entries, QueueOrder::Fair, &none)), vec![a, b, c]);
        let held = HashMap::from([(a, 3_600_000), (b, 0), (c, 60_000)]);
        assert_eq!(users(waiting_in_order(&entries, QueueOrder::Fair, &held)), vec![b, c, a]);
        let ordered = waiting_in_order(&entries, QueueOrder::Fair, &held);
        assert_eq!(position(&ordered, entries[0].id), Some(3));
        assert_eq!(position(&ordered, entries[3].id), None);
    }

    #[test]
    fn the_estimate_is_the_nth_end_of_a_lifetime_and_none_without_lifetimes() {
        let t0 = crate::model::now();
        let session = |status, ends: Option<u64>| {
            let mut s = Session::new_starting(UserId::new_random(), Exposure::External, DEFAULT_PACK_ID, GpuId(0), t0);
            s.status = status;
            s.expires_at = ends.map(|m| t0 + Duration::from_secs(60 * m));
            s
        };
        let holders = vec![
            session(SessionStatus::Running, Some(30)),
            session(SessionStatus::Running, Some(10)),
            session(SessionStatus::Reserved, Some(1)),
            session(SessionStatus::Starting, Some(20)),
        ];
        assert_eq!(estimate(1, &holders, t0), Some(t0 + Duration::from_secs(600)));
        assert_eq!(estimate(3, &holders, t0), Some(t0 + Duration::from_secs(1800)));
        assert_eq!(estimate(4, &holders, t0), None);
        assert_eq!(estimate(0, &holders, t0), None);
        let mut unlimited = holders.clone();
        unlimited.push(session(SessionStatus::Running, None));
        assert_eq!(estimate(3, &unlimited, t0), Some(t0 + Duration::from_secs(1800)));
        assert_eq!(estimate(4, &unlimited, t0), None);
        let stopping = vec![session(SessionStatus::Stopping, Some(500))];
        assert_eq!(estimate(1, &stopping, t0), Some(t0));
    }
}
