//! The [`Store`] contract: every case takes a fresh harness and checks one
//! promise of the trait against the real backend.

use std::collections::BTreeSet;
use std::sync::Arc;

use time::Duration;

use super::StoreHarness;
use crate::auth::{Authenticator, ClientInfo, ExpiryPolicy, LoginToken, TokenKey};
use crate::model::{
    self, DEFAULT_PACK_ID, Email, Exposure, GpuId, InviteId, InviteState, PackExposure, PackId, QueueEntry,
    QueueEntryId, QueueState, Role, Session, SessionStatus, StopReason, User, Warning, WarningKind,
};
use crate::store::{
    AllocationError, AllocationRequest, DbFailure, Extension, NewInvite, NewLogin, NewQueueEntry, NewUser, Offer,
    PageRequest, Seed, SessionFilter, Store, StoreError, Transition, UniqueKey, UserUpdate,
};
use crate::telemetry::GpuInfo;
use crate::usage::{GpuUsageDay, Period, summarize};

fn email(s: &str) -> Email {
    s.parse().expect("test email")
}

async fn seeded(h: &StoreHarness) -> Arc<dyn Store> {
    h.store.seed(&Seed::default()).await.expect("seed");
    h.store.clone()
}

async fn user_with_limit(store: &dyn Store, name: &str, limit: u32) -> User {
    let mut new = NewUser::new(email(&format!("{name}@example.org")), "not-a-real-hash".into());
    new.max_concurrent_sessions = limit;
    store.create_user(new).await.expect("create user")
}

async fn allocate(store: &dyn Store, user: &User) -> Result<Session, AllocationError> {
    store
        .allocate_session(AllocationRequest {
            user_id: user.id,
            exposure: Exposure::External,
            pack_id: None,
            now: model::now(),
            expires_at: None,
        })
        .await
}

/// Ends a session the way the lifecycle does: running, stopping, stopped.
async fn release(store: &dyn Store, s: &Session) {
    let now = model::now();
    for (from, to) in [
        (SessionStatus::Starting, SessionStatus::Running),
        (SessionStatus::Running, SessionStatus::Stopping),
        (SessionStatus::Stopping, SessionStatus::Stopped),
    ] {
        assert!(
            store.transition_session(s.id, Transition::new(from, to, now)).await.expect("transition"),
            "{from} -> {to} lost"
        );
    }
}

async fn active_count(h: &StoreHarness) -> usize {
    h.raw
        .strings("SELECT id FROM sessions WHERE status IN ('starting', 'running', 'stopping')")
        .await
        .expect("count")
        .len()
}

pub async fn seed_creates_default_pack_and_gpus(h: &StoreHarness) {
    let report = h.store.seed(&Seed::default()).await.expect("seed");
    assert_eq!(report.gpus_added, (0..7).map(GpuId).collect::<Vec<_>>());
    let gpus = h.store.list_gpus().await.expect("gpus");
    assert_eq!(gpus.iter().map(|g| g.id.0).collect::<Vec<_>>(), (0..7).collect::<Vec<_>>());
    assert!(gpus.iter().all(|g| g.enabled && g.session_id.is_none()));
    let pack = h.store.pack(DEFAULT_PACK_ID).await.expect("pack").expect("default pack");
    assert_eq!(pack.image_ref, "medforge-pack-default:latest");
    assert_eq!(pack.exposure, PackExposure::Both);
    assert!(pack.deprecated_at.is_none());

    // Seeding again changes nothing; a new image in config updates the pack;
    // GPUs gone from config are disabled, not deleted.
    let again = h.store.seed(&Seed::default()).await.expect("seed again");
    assert!(again.gpus_added.is_empty() && again.gpus_disabled.is_empty());
    let smaller = Seed {
        default_pack_image: "registry.local/pack:2".into(),
        default_pack_digest: Some("sha256:abc".into()),
        gpu_ids: vec![GpuId(0), GpuId(1), GpuId(9)],
        gpu_details: Vec::new(),
    };
    let report = h.store.seed(&smaller).await.expect("seed smaller");
    assert_eq!(report.gpus_added, vec![GpuId(9)]);
    assert_eq!(report.gpus_disabled, (2..7).map(GpuId).collect::<Vec<_>>());
    let enabled: Vec<u32> =
        h.store.list_gpus().await.expect("gpus").iter().filter(|g| g.enabled).map(|g| g.id.0).collect();
    assert_eq!(enabled, vec![0, 1, 9]);
    let pack = h.store.pack(DEFAULT_PACK_ID).await.expect("pack").expect("default pack");
    assert_eq!(pack.image_ref, "registry.local/pack:2");
    assert_eq!(pack.image_digest.as_deref(), Some("sha256:abc"));
    assert_eq!(h.store.list_packs().await.expect("packs").len(), 1);
    h.store.ping().await.expect("ping");
}

pub async fn users_are_unique_by_email_and_updatable(h: &StoreHarness) {
    let store = seeded(h).await;
    let alice = store.create_user(NewUser::new(email("Alice@Example.org"), "hash-a".into())).await.expect("create");
    assert_eq!(alice.email.as_str(), "alice@example.org");
    assert_eq!((alice.role, alice.can_use_internal, alice.max_concurrent_sessions), (Role::User, false, 1));
    assert_eq!(store.user(alice.id).await.expect("get"), Some(alice.clone()));
    assert_eq!(store.user_by_email(&email("ALICE@example.org")).await.expect("get"), Some(alice.clone()));
    let (u, hash) = store.user_credentials(&alice.email).await.expect("creds").expect("exists");
    assert_eq!((u.id, hash.as_str()), (alice.id, "hash-a"));
    assert!(store.user_credentials(&email("nobody@example.org")).await.expect("creds").is_none());

    let dup = store.create_user(NewUser::new(email("alice@EXAMPLE.org"), "x".into())).await;
    assert!(matches!(dup, Err(StoreError::EmailTaken)), "{dup:?}");

    let bob = store.create_user(NewUser::new(email("bob@example.org"), "hash-b".into())).await.expect("bob");
    let taken =
        store.update_user(bob.id, UserUpdate { email: Some(email("alice@example.org")), ..Default::default() }).await;
    assert!(matches!(taken, Err(StoreError::EmailTaken)), "{taken:?}");

    let updated = store
        .update_user(
            bob.id,
            UserUpdate {
                role: Some(Role::Admin),
                can_use_internal: Some(true),
                max_concurrent_sessions: Some(3),
                password_hash: Some("hash-b2".into()),
                ..Default::default()
            },
        )
        .await
        .expect("update")
        .expect("bob exists");
    assert_eq!((updated.role, updated.can_use_internal, updated.max_concurrent_sessions), (Role::Admin, true, 3));
    assert_eq!(updated.email, bob.email);
    assert_eq!(updated.workspace_quota_bytes, None);
    // A quota of its own, left alone by other updates, then cleared.
    let quota = |q| UserUpdate { workspace_quota_bytes: Some(q), ..Default::default() };
    let with_quota = store.update_user(bob.id, quota(Some(5 << 30))).await.expect("update").expect("bob");
    assert_eq!(with_quota.workspace_quota_bytes, Some(5 << 30));
    let other = UserUpdate { can_use_internal: Some(false), ..Default::default() };
    let kept = store.update_user(bob.id, other).await.expect("update").expect("bob");
    assert_eq!(kept.workspace_quota_bytes, Some(5 << 30));
    assert_eq!(store.user(bob.id).await.expect("get").expect("bob").workspace_quota_bytes, Some(5 << 30));
    let cleared = store.update_user(bob.id, quota(None)).await.expect("update").expect("bob");
    assert_eq!(cleared.workspace_quota_bytes, None);
    assert_eq!(store.password_hash(bob.id).await.expect("hash").as_deref(), Some("hash-b2"));
    let missing = store.update_user(model::UserId::new_random(), UserUpdate::default()).await.expect("update");
    assert!(missing.is_none());
    assert_eq!(store.count_users().await.expect("count"), 2);
}

pub async fn users_list_newest_first_with_active_counts(h: &StoreHarness) {
    let store = seeded(h).await;
    let t0 = model::now();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut new = NewUser::new(email(&format!("u{i}@example.org")), "h".into());
        new.created_at = t0 + Duration::seconds(i);
        ids.push(store.create_user(new).await.expect("create").id);
    }
    let newest = store.user(ids[4]).await.expect("get").expect("exists");
    allocate(store.as_ref(), &newest).await.expect("allocate");

    let first = store.list_users(PageRequest::first(2)).await.expect("page 1");
    assert_eq!(first.items.iter().map(|u| u.user.id).collect::<Vec<_>>(), vec![ids[4], ids[3]]);
    assert_eq!(first.items[0].active_session_count, 1);
    assert_eq!(first.items[1].active_session_count, 0);
    let second = store.list_users(PageRequest { limit: 2, after: first.next.clone() }).await.expect("page 2");
    assert_eq!(second.items.iter().map(|u| u.user.id).collect::<Vec<_>>(), vec![ids[2], ids[1]]);
    let third = store.list_users(PageRequest { limit: 2, after: second.next.clone() }).await.expect("page 3");
    assert_eq!(third.items.iter().map(|u| u.user.id).collect::<Vec<_>>(), vec![ids[0]]);
    assert!(third.next.is_none());
    for bad in [0, PageRequest::MAX_LIMIT + 1] {
        let r = store.list_users(PageRequest::first(bad)).await;
        assert!(matches!(r, Err(StoreError::InvalidPageLimit)), "limit {bad}: {r:?}");
    }
}

pub async fn logins_are_stored_by_hash_and_revocable(h: &StoreHarness) {
    let store = seeded(h).await;
    let user = user_with_limit(store.as_ref(), "login", 1).await;
    let now = model::now();
    let new = |hash: &str| NewLogin {
        id: model::LoginId::new_random(),
        user_id: user.id,
        token_hash: hash.into(),
        created_at: now,
        expires_at: now + Duration::days(30),
        ip: Some("192.0.2.1".into()),
        user_agent: Some("test".into()),
    };
    let a = store.create_login(new(&"a".repeat(64))).await.expect("create");
    let b = store.create_login(new(&"b".repeat(64))).await.expect("create");
    let (found, u) = store.login_by_token_hash(&"a".repeat(64)).await.expect("get").expect("exists");
    assert_eq!((found.clone(), u.id), (a.clone(), user.id));
    assert!(store.login_by_token_hash(&"c".repeat(64)).await.expect("get").is_none());

    let later = now + Duration::minutes(10);
    store.touch_login(a.id, later).await.expect("touch");
    // Touching with an older time never moves last_seen_at back.
    store.touch_login(a.id, now).await.expect("touch");
    let (found, _) = store.login_by_token_hash(&a.token_hash).await.expect("get").expect("exists");
    assert_eq!(found.last_seen_at, later);

    assert!(store.revoke_login(a.id, later).await.expect("revoke"));
    assert!(!store.revoke_login(a.id, later).await.expect("revoke twice"));
    let (found, _) = store.login_by_token_hash(&a.token_hash).await.expect("get").expect("exists");
    assert_eq!(found.revoked_at, Some(later));
    assert_eq!(store.revoke_user_logins(user.id, later).await.expect("revoke all"), 1);
    let (found, _) = store.login_by_token_hash(&b.token_hash).await.expect("get").expect("exists");
    assert!(found.revoked_at.is_some());
}

fn new_invite(by: &User, to: &str, hash: char, created_at: time::OffsetDateTime, valid: Duration) -> NewInvite {
    NewInvite {
        id: InviteId::new_random(),
        email: email(to),
        token_hash: hash.to_string().repeat(64),
        created_by: by.id,
        created_at,
        expires_at: created_at + valid,
    }
}

pub async fn invites_are_kept_by_hash_listed_and_revocable(h: &StoreHarness) {
    let store = seeded(h).await;
    let admin = user_with_limit(store.as_ref(), "inviter", 1).await;
    let now = model::now();
    let a = store.create_invite(new_invite(&admin, "a@example.org", 'a', now, Duration::days(7))).await.expect("a");
    let b = store
        .create_invite(new_invite(&admin, "b@example.org", 'b', now + Duration::seconds(1), Duration::days(7)))
        .await
        .expect("b");
    let found = store.invite_by_token_hash(&"a".repeat(64)).await.expect("get").expect("exists");
    assert_eq!(found, a);
    assert_eq!(
        (found.email.as_str(), found.created_by, found.state(now)),
        ("a@example.org", admin.id, InviteState::Open)
    );
    assert!(store.invite_by_token_hash(&"c".repeat(64)).await.expect("get").is_none());
    // Newest first, a page at a time.
    let first = store.list_invites(PageRequest::first(1)).await.expect("list");
    assert_eq!(first.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![b.id]);
    let rest = store.list_invites(PageRequest { limit: 5, after: first.next }).await.expect("list");
    assert_eq!(rest.items.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a.id]);
    assert!(rest.next.is_none());
    // Revoked once; a revoked invite opens nothing.
    assert!(store.revoke_invite(a.id, now).await.expect("revoke"));
    assert!(!store.revoke_invite(a.id, now).await.expect("revoke twice"));
    let revoked = store.invite_by_token_hash(&a.token_hash).await.expect("get").expect("exists");
    assert_eq!(revoked.state(now), InviteState::Revoked);
    let user = NewUser::new(email("a@example.org"), "not-a-real-hash".into());
    assert!(matches!(store.create_user_with_invite(user, &a.token_hash, now).await, Err(StoreError::InviteUnusable)));
    assert!(store.user_by_email(&email("a@example.org")).await.expect("get").is_none(), "no account was made");
}

pub async fn an_invite_makes_one_account_before_it_expires(h: &StoreHarness) {
    let store = seeded(h).await;
    let admin = user_with_limit(store.as_ref(), "inviter", 1).await;
    let now = model::now();
    let invite = store.create_invite(new_invite(&admin, "new@example.org", 'n', now, Duration::hours(1))).await;
    let invite = invite.expect("invite");
    let new = |who: &str| NewUser::new(email(who), "not-a-real-hash".into());
    // An email already taken leaves the invite open.
    user_with_limit(store.as_ref(), "taken", 1).await;
    assert!(matches!(
        store.create_user_with_invite(new("taken@example.org"), &invite.token_hash, now).await,
        Err(StoreError::EmailTaken)
    ));
    assert_eq!(
        store.invite_by_token_hash(&invite.token_hash).await.expect("get").expect("kept").state(now),
        InviteState::Open
    );
    // Used once, by the account it made; never again, not even at once.
    let tries = (0..4).map(|n| {
        let store = store.clone();
        let hash = invite.token_hash.clone();
        async move { store.create_user_with_invite(new(&format!("n{n}@example.org")), &hash, now).await }
    });
    let results = futures::future::join_all(tries).await;
    let made: Vec<&User> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(made.len(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StoreError::InviteUnusable))), "{results:?}");
    let used = store.invite_by_token_hash(&invite.token_hash).await.expect("get").expect("kept");
    assert_eq!((used.state(now), used.used_by, used.used_at), (InviteState::Used, Some(made[0].id), Some(now)));
    assert!(!store.revoke_invite(used.id, now).await.expect("revoke"), "a used invite is not revoked");
    assert_eq!(store.count_users().await.expect("count"), 3, "the admin, the taken one and the invited one");
    // An expired one makes none.
    let old = store.create_invite(new_invite(&admin, "late@example.org", 'l', now, Duration::hours(1))).await;
    let old = old.expect("invite");
    let late = now + Duration::hours(1);
    assert_eq!(old.state(late), InviteState::Expired);
    assert!(matches!(
        store.create_user_with_invite(new("late@example.org"), &old.token_hash, late).await,
        Err(StoreError::InviteUnusable)
    ));
    // Nor an unknown one.
    assert!(matches!(
        store.create_user_with_invite(new("nobody@example.org"), &"z".repeat(64), now).await,
        Err(StoreError::InviteUnusable)
    ));
}

fn authenticator(store: Arc<dyn Store>) -> Authenticator {
    Authenticator::new(store, TokenKey::generate(), ExpiryPolicy::default())
}

pub async fn authenticator_refuses_bad_passwords_and_dead_tokens(h: &StoreHarness) {
    let store = seeded(h).await;
    let auth = authenticator(store.clone());
    let (user, token) =
        auth.signup(email("carol@example.org"), "a long passphrase", ClientInfo::default()).await.expect("signup");
    assert!(auth.signup(email("CAROL@example.org"), "another passphrase", ClientInfo::default()).await.is_err());
    assert!(auth.signup(email("short@example.org"), "short", ClientInfo::default()).await.is_err());

    // Wrong password and unknown email are refused alike.
    for (who, pw) in [("carol@example.org", "a long passphrasE"), ("nobody@example.org", "a long passphrase")] {
        let r = auth.login(&email(who), pw, ClientInfo::default()).await;
        assert!(matches!(r, Err(crate::auth::AuthError::InvalidCredentials)), "{who}: {r:?}");
    }
    let (again, token2) =
        auth.login(&email("Carol@example.org"), "a long passphrase", ClientInfo::default()).await.expect("login");
    assert_eq!(again.id, user.id);

    let now = model::now();
    let (who, _) = auth.authenticate(&token, now).await.expect("auth").expect("valid");
    assert_eq!(who.id, user.id);
    assert!(auth.authenticate(&LoginToken::generate(), now).await.expect("auth").is_none());
    // Idle for 8 days: expired. Used on day 6, it slides to day 13.
    assert!(auth.authenticate(&token, now + Duration::days(8)).await.expect("auth").is_none());
    assert!(auth.authenticate(&token, now + Duration::days(6)).await.expect("auth").is_some());
    assert!(auth.authenticate(&token, now + Duration::days(12)).await.expect("auth").is_some());
    // However much it is used, 30 days after creation it is over.
    for day in [18, 24, 29] {
        assert!(auth.authenticate(&token, now + Duration::days(day)).await.expect("auth").is_some(), "day {day}");
    }
    assert!(auth.authenticate(&token, now + Duration::days(30)).await.expect("auth").is_none());

    // Logout revokes that login only.
    assert!(auth.logout(&token2).await.expect("logout"));
    assert!(auth.authenticate(&token2, now).await.expect("auth").is_none());
    assert!(!auth.logout(&token2).await.expect("logout twice"));
    // A token hashed under another server secret is worthless.
    let other = authenticator(store.clone());
    assert!(other.authenticate(&token, now).await.expect("auth").is_none());
}

pub async fn tokens_are_never_stored_raw(h: &StoreHarness) {
    let store = seeded(h).await;
    let auth = authenticator(store.clone());
    let mut tokens = Vec::new();
    for i in 0..3 {
        let (_, t) = auth
            .signup(email(&format!("raw{i}@example.org")), "a long passphrase", ClientInfo::default())
            .await
            .expect("signup");
        tokens.push(t);
    }
    let stored = h.raw.strings("SELECT token_hash FROM auth_sessions").await.expect("read table");
    assert_eq!(stored.len(), 3);
    let everything = h
        .raw
        .strings(
            "SELECT CONCAT(id, '|', user_id, '|', token_hash, '|', COALESCE(ip, ''), '|', COALESCE(user_agent, '')) \
             FROM auth_sessions",
        )
        .await
        .expect("read rows");
    for t in &tokens {
        assert!(stored.contains(&auth.key().hash(t)), "the keyed hash is what is kept");
        for row in everything.iter().chain(&stored) {
            assert!(!row.contains(t.expose()), "raw token found in auth_sessions: {row}");
        }
    }
    let hashes = h.raw.strings("SELECT password_hash FROM users").await.expect("read users");
    assert!(hashes.iter().all(|p| p.starts_with("$argon2id$") && !p.contains("a long passphrase")));
}

pub async fn allocation_takes_lowest_free_gpu_and_checks_everything(h: &StoreHarness) {
    let store = seeded(h).await;
    let a = user_with_limit(store.as_ref(), "a", 1).await;
    let b = user_with_limit(store.as_ref(), "b", 1).await;
    let s = allocate(store.as_ref(), &a).await.expect("allocate");
    assert_eq!(
        (s.status, s.gpu_id, s.pack_id, s.exposure),
        (SessionStatus::Starting, GpuId(0), DEFAULT_PACK_ID, Exposure::External)
    );
    assert_eq!(s.user_id, a.id);
    assert_eq!(store.session(s.id).await.expect("get"), Some(s.clone()));
    assert_eq!(store.session_by_slug(&s.slug).await.expect("get"), Some(s.clone()));
    assert_eq!(allocate(store.as_ref(), &b).await.expect("allocate").gpu_id, GpuId(1));

    let req = |user: &User, exposure, pack_id| AllocationRequest {
        user_id: user.id,
        exposure,
        pack_id,
        now: model::now(),
        expires_at: None,
    };
    let c = user_with_limit(store.as_ref(), "c", 5).await;
    let r = store.allocate_session(req(&c, Exposure::Internal, None)).await;
    assert!(matches!(r, Err(AllocationError::NotEntitled)), "{r:?}");
    store.update_user(c.id, UserUpdate { can_use_internal: Some(true), ..Default::default() }).await.expect("entitle");
    let internal = store.allocate_session(req(&c, Exposure::Internal, None)).await.expect("entitled");
    assert_eq!(internal.exposure, Exposure::Internal);
    let admin = user_with_limit(store.as_ref(), "admin", 5).await;
    store.update_user(admin.id, UserUpdate { role: Some(Role::Admin), ..Default::default() }).await.expect("promote");
    store.allocate_session(req(&admin, Exposure::Internal, None)).await.expect("admins may");

    let ghost = User { id: model::UserId::new_random(), ..c.clone() };
    let r = store.allocate_session(req(&ghost, Exposure::External, None)).await;
    assert!(matches!(r, Err(AllocationError::UserNotFound)), "{r:?}");
    let r = store.allocate_session(req(&c, Exposure::External, Some(PackId::new_random()))).await;
    assert!(matches!(r, Err(AllocationError::PackNotFound)), "{r:?}");

    let old = PackId::new_random();
    let internal_only = PackId::new_random();
    for (id, exposure, deprecated) in [(old, "both", "1"), (internal_only, "internal", "NULL")] {
        h.raw
            .execute(&format!(
                "INSERT INTO packs (id, name, exposure, image_ref, image_digest, created_at, deprecated_at) \
                 VALUES ('{id}', 'p', '{exposure}', 'img', NULL, 0, {deprecated})"
            ))
            .await
            .expect("insert pack");
    }
    let r = store.allocate_session(req(&c, Exposure::External, Some(old))).await;
    assert!(matches!(r, Err(AllocationError::PackDeprecated)), "{r:?}");
    let r = store.allocate_session(req(&c, Exposure::External, Some(internal_only))).await;
    assert!(matches!(r, Err(AllocationError::PackExposureMismatch { exposure: Exposure::External })), "{r:?}");
    let s = store.allocate_session(req(&c, Exposure::Internal, Some(internal_only))).await.expect("internal pack");
    assert_eq!(s.pack_id, internal_only);
    // Refusals left nothing behind.
    assert_eq!(active_count(h).await, 5);
}

pub async fn allocation_enforces_the_user_limit(h: &StoreHarness) {
    let store = seeded(h).await;
    let u = user_with_limit(store.as_ref(), "limited", 2).await;
    let s1 = allocate(store.as_ref(), &u).await.expect("first");
    allocate(store.as_ref(), &u).await.expect("second");
    let r = allocate(store.as_ref(), &u).await;
    assert!(matches!(r, Err(AllocationError::LimitReached { limit: 2 })), "{r:?}");
    assert_eq!(r.map(|_| ()).expect_err("refused").to_string(), "Concurrent session limit reached (2).");
    release(store.as_ref(), &s1).await;
    allocate(store.as_ref(), &u).await.expect("a slot was freed");
    let zero = user_with_limit(store.as_ref(), "zero", 0).await;
    assert!(matches!(allocate(store.as_ref(), &zero).await, Err(AllocationError::LimitReached { limit: 0 })));
}

pub async fn allocation_refuses_when_no_gpu_is_free(h: &StoreHarness) {
    let store = seeded(h).await;
    assert!(store.set_gpu_enabled(GpuId(0), false).await.expect("disable"));
    assert!(!store.set_gpu_enabled(GpuId(42), false).await.expect("unknown gpu"));
    let mut held = BTreeSet::new();
    for i in 0..6 {
        let u = user_with_limit(store.as_ref(), &format!("n{i}"), 1).await;
        held.insert(allocate(store.as_ref(), &u).await.expect("allocate").gpu_id.0);
    }
    assert_eq!(held, (1..7).collect(), "the disabled GPU 0 is skipped");
    let late = user_with_limit(store.as_ref(), "late", 1).await;
    let r = allocate(store.as_ref(), &late).await;
    assert!(matches!(r, Err(AllocationError::NoGpusAvailable)), "{r:?}");
    assert!(store.set_gpu_enabled(GpuId(0), true).await.expect("enable"));
    assert_eq!(allocate(store.as_ref(), &late).await.expect("allocate").gpu_id, GpuId(0));
}

pub async fn concurrent_allocations_by_many_users_fill_each_gpu_once(h: &StoreHarness) {
    let store = seeded(h).await;
    let mut users = Vec::new();
    for i in 0..16 {
        users.push(user_with_limit(store.as_ref(), &format!("c{i}"), 4).await);
    }
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            let user = users[i % 16].clone();
            tokio::spawn(async move { allocate(store.as_ref(), &user).await })
        })
        .collect();
    let mut gpus = BTreeSet::new();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(s) => {
                ok += 1;
                gpus.insert(s.gpu_id.0);
            }
            Err(AllocationError::NoGpusAvailable | AllocationError::LimitReached { .. }) => {}
            Err(other) => panic!("unexpected allocation error: {other:?}"),
        }
    }
    assert_eq!(ok, 7, "exactly one session per GPU");
    assert_eq!(gpus, (0..7).collect());
    assert_eq!(active_count(h).await, 7);
}

pub async fn concurrent_allocations_by_one_user_respect_the_limit(h: &StoreHarness) {
    let store = seeded(h).await;
    let u = user_with_limit(store.as_ref(), "eager", 2).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            let u = u.clone();
            tokio::spawn(async move { allocate(store.as_ref(), &u).await })
        })
        .collect();
    let (mut ok, mut limited) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(AllocationError::LimitReached { limit: 2 }) => limited += 1,
            Err(other) => panic!("unexpected allocation error: {other:?}"),
        }
    }
    assert_eq!((ok, limited), (2, 18));
    assert_eq!(active_count(h).await, 2);
}

pub async fn releasing_a_session_frees_its_gpu(h: &StoreHarness) {
    let store = seeded(h).await;
    let mut sessions = Vec::new();
    for i in 0..7 {
        let u = user_with_limit(store.as_ref(), &format!("r{i}"), 1).await;
        sessions.push((u.clone(), allocate(store.as_ref(), &u).await.expect("allocate")));
    }
    let next = user_with_limit(store.as_ref(), "next", 1).await;
    assert!(matches!(allocate(store.as_ref(), &next).await, Err(AllocationError::NoGpusAvailable)));

    // Stopping frees the GPU.
    let (_, s3) = &sessions[3];
    release(store.as_ref(), s3).await;
    let taken = allocate(store.as_ref(), &next).await.expect("allocate");
    assert_eq!(taken.gpu_id, s3.gpu_id);
    // So does failing.
    let (_, s5) = &sessions[5];
    let failed = Transition::new(SessionStatus::Starting, SessionStatus::Error, model::now()).error("boom");
    assert!(store.transition_session(s5.id, failed).await.expect("fail"));
    let other = user_with_limit(store.as_ref(), "other", 1).await;
    assert_eq!(allocate(store.as_ref(), &other).await.expect("allocate").gpu_id, s5.gpu_id);
    assert_eq!(active_count(h).await, 7);
}

pub async fn schema_rejects_a_second_active_session_on_a_gpu(h: &StoreHarness) {
    let store = seeded(h).await;
    let u = user_with_limit(store.as_ref(), "raw", 5).await;
    let busy = allocate(store.as_ref(), &u).await.expect("allocate");
    let insert = |status: &str, slug: &str| {
        format!(
            "INSERT INTO sessions (id, user_id, exposure, pack_id, status, gpu_id, slug, created_at) \
             VALUES ('{}', '{}', 'external', '{}', '{status}', {}, '{slug}', 0)",
            model::SessionId::new_random(),
            u.id,
            DEFAULT_PACK_ID,
            busy.gpu_id.0
        )
    };
    for (status, slug) in [("running", "rawrawaa"), ("starting", "rawrawab"), ("stopping", "rawrawac")] {
        let r = h.raw.execute(&insert(status, slug)).await;
        // Refused by the (gpu_id, gpu_active) unique index, not by anything else.
        let err = r.expect_err("a second active session on a busy GPU was accepted");
        assert!(err.contains("gpu_active"), "{status}: refused for another reason: {err}");
    }
    // Finished sessions on the same GPU are fine, any number of them.
    h.raw.execute(&insert("stopped", "rawrawad")).await.expect("a stopped session is no conflict");
    h.raw.execute(&insert("error", "rawrawae")).await.expect("an errored session is no conflict");
    // ... but one cannot be revived into an active status behind the allocator's back.
    let r = h.raw.execute("UPDATE sessions SET status = 'running' WHERE slug = 'rawrawad'").await;
    let err = r.expect_err("reviving a stopped session on a busy GPU was accepted");
    assert!(err.contains("gpu_active"), "refused for another reason: {err}");
    // Slugs are unique too. Both conflicts read as the ones the allocator
    // retries, and a taken email as the one signup reports.
    assert_eq!(h.raw.failure(&insert("stopped", busy.slug.as_str())).await, Some(DbFailure::Unique(UniqueKey::Slug)));
    assert_eq!(h.raw.failure(&insert("running", "rawrawaf")).await, Some(DbFailure::Unique(UniqueKey::GpuActive)));
    let dup_email = format!(
        "INSERT INTO users (id, email, password_hash, role, can_use_internal, max_concurrent_sessions, created_at) \
         VALUES ('{}', '{}', 'h', 'user', FALSE, 1, 0)",
        model::UserId::new_random(),
        u.email
    );
    assert_eq!(h.raw.failure(&dup_email).await, Some(DbFailure::Unique(UniqueKey::Email)));
    let bad_status = insert("paused", "rawrawag").replace(&format!(", {}, ", busy.gpu_id.0), ", 6, ");
    assert_eq!(h.raw.failure(&bad_status).await, Some(DbFailure::Other), "CHECK constraints hold too");
    assert_eq!(active_count(h).await, 1);
}

pub async fn transitions_are_conditional_and_race_safe(h: &StoreHarness) {
    let store = seeded(h).await;
    let u = user_with_limit(store.as_ref(), "t", 1).await;
    let s = allocate(store.as_ref(), &u).await.expect("allocate");
    let t1 = model::now();
    let up = Transition::new(SessionStatus::Starting, SessionStatus::Running, t1).container_id("c0ffee");
    assert!(store.transition_session(s.id, up.clone()).await.expect("transition"));
    assert!(!store.transition_session(s.id, up).await.expect("again"), "a stale `from` must lose");
    let running = store.session(s.id).await.expect("get").expect("exists");
    assert_eq!(
        (running.status, running.container_id.as_deref(), running.started_at),
        (SessionStatus::Running, Some("c0ffee"), Some(t1))
    );
    assert!(running.stopped_at.is_none());

    // Forbidden moves are refused without touching the row.
    let back = Transition::new(SessionStatus::Running, SessionStatus::Starting, t1);
    assert!(!store.transition_session(s.id, back).await.expect("refused"));

    // Ten racers try to stop it: exactly one wins.
    let racers: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .transition_session(
                        s.id,
                        Transition::new(SessionStatus::Running, SessionStatus::Stopping, model::now()),
                    )
                    .await
                    .expect("transition")
            })
        })
        .collect();
    let mut wins = 0;
    for r in racers {
        wins += usize::from(r.await.expect("task"));
    }
    assert_eq!(wins, 1);

    let t2 = t1 + Duration::seconds(5);
    let death = Transition::new(SessionStatus::Stopping, SessionStatus::Error, t2).error("snapshot failed: pool gone");
    assert!(store.transition_session(s.id, death).await.expect("error"));
    let done = store.session(s.id).await.expect("get").expect("exists");
    assert_eq!(done.status, SessionStatus::Error);
    assert_eq!(done.stopped_at, Some(t2));
    assert_eq!(done.started_at, Some(t1));
    assert_eq!(done.error_message.as_deref(), Some("snapshot failed: pool gone"));
    assert_eq!(done.container_id.as_deref(), Some("c0ffee"));
    let revive = Transition::new(SessionStatus::Error, SessionStatus::Running, t2);
    assert!(!store.transition_session(s.id, revive).await.expect("terminal"));
}

pub async fn sessions_list_with_filters_and_cursors(h: &StoreHarness) {
    let store = seeded(h).await;
    let a = user_with_limit(store.as_ref(), "la", 10).await;
    store.update_user(a.id, UserUpdate { can_use_internal: Some(true), ..Default::default() }).await.expect("entitle");
    let b = user_with_limit(store.as_ref(), "lb", 10).await;
    let t0 = model::now();
    let mut mine = Vec::new();
    // Five sessions for a (two internal), one for b, at distinct times; a's
    // first two are stopped so that GPUs last.
    for i in 0..5 {
        let exposure = if i % 2 == 1 { Exposure::Internal } else { Exposure::External };
        let s = store
            .allocate_session(AllocationRequest {
                user_id: a.id,
                exposure,
                pack_id: None,
                now: t0 + Duration::seconds(i),
                expires_at: None,
            })
            .await
            .expect("allocate");
        if i < 2 {
            release(store.as_ref(), &s).await;
        }
        mine.push(s);
    }
    store
        .allocate_session(AllocationRequest {
            user_id: b.id,
            exposure: Exposure::External,
            pack_id: None,
            now: t0,
            expires_at: None,
        })
        .await
        .expect("allocate");

    let filter = SessionFilter { user_id: Some(a.id), ..Default::default() };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_sessions(&filter, PageRequest { limit: 2, after }).await.expect("list");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|s| s.id));
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    let newest_first: Vec<_> = mine.iter().rev().map(|s| s.id).collect();
    assert_eq!(seen, newest_first, "pages cover every session once, newest first");

    let internal = SessionFilter { user_id: Some(a.id), exposure: Some(Exposure::Internal), ..Default::default() };
    let page = store.list_sessions(&internal, PageRequest::first(50)).await.expect("list");
    assert_eq!(page.items.iter().map(|s| s.id).collect::<Vec<_>>(), vec![mine[3].id, mine[1].id]);

    let stopped = SessionFilter { statuses: vec![SessionStatus::Stopped, SessionStatus::Error], ..Default::default() };
    let page = store.list_sessions(&stopped, PageRequest::first(50)).await.expect("list");
    assert_eq!(page.items.iter().map(|s| s.id).collect::<Vec<_>>(), vec![mine[1].id, mine[0].id]);

    let everyone = store.list_sessions(&SessionFilter::default(), PageRequest::first(500)).await.expect("list");
    assert_eq!(everyone.items.len(), 6);
    let mut counts = store.session_counts().await.expect("counts");
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(counts, vec![(SessionStatus::Starting, 4), (SessionStatus::Stopped, 2)]);
    let active = store.active_sessions().await.expect("active");
    assert_eq!(active.len(), 4);
    assert!(active.iter().all(|s| s.status.is_active()));
    assert!(matches!(
        store.list_sessions(&SessionFilter::default(), PageRequest::first(0)).await,
        Err(StoreError::InvalidPageLimit)
    ));
}

pub async fn gpu_board_shows_holders(h: &StoreHarness) {
    let store = seeded(h).await;
    let u = user_with_limit(store.as_ref(), "g", 2).await;
    let s = allocate(store.as_ref(), &u).await.expect("allocate");
    let s2 = allocate(store.as_ref(), &u).await.expect("allocate");
    release(store.as_ref(), &s2).await;
    let board = store.list_gpus().await.expect("gpus");
    assert_eq!(board.len(), 7, "a finished session adds no row to the board");
    let held = board.iter().find(|g| g.id == s.gpu_id).expect("gpu");
    assert_eq!((held.session_id, held.user_id, held.held_since), (Some(s.id), Some(u.id), Some(s.created_at)));
    assert!(board.iter().filter(|g| g.id != s.gpu_id).all(|g| g.session_id.is_none()));
}

pub async fn seeding_records_what_telemetry_discovered(h: &StoreHarness) {
    let store = seeded(h).await;
    let info = |index: u32| GpuInfo {
        index,
        uuid: format!("GPU-{index}-uuid"),
        name: "NVIDIA H200".into(),
        memory_total_bytes: 150_754_820_096,
    };
    // GPU 8 is discovered but not configured: no row for it.
    store.seed(&Seed { gpu_details: vec![info(1), info(8)], ..Seed::default() }).await.expect("seed");
    let gpus = store.list_gpus().await.expect("gpus");
    assert_eq!(gpus.len(), 7);
    let one = gpus.iter().find(|g| g.id == GpuId(1)).expect("gpu 1");
    assert_eq!(one.uuid.as_deref(), Some("GPU-1-uuid"));
    assert_eq!(one.name.as_deref(), Some("NVIDIA H200"));
    assert_eq!(one.memory_total_bytes, Some(150_754_820_096));
    assert!(gpus.iter().filter(|g| g.id != GpuId(1)).all(|g| g.uuid.is_none() && g.name.is_none()));
}

/// A session moved through its states at the given times (the fixed clock).
async fn session_between(
    store: &dyn Store,
    user: &User,
    start: time::OffsetDateTime,
    end: Option<(time::OffsetDateTime, SessionStatus)>,
) -> Session {
    let s = store
        .allocate_session(AllocationRequest {
            user_id: user.id,
            exposure: Exposure::External,
            pack_id: None,
            now: start,
            expires_at: None,
        })
        .await
        .expect("allocate");
    let t = |from, to, at| Transition::new(from, to, at);
    assert!(
        store.transition_session(s.id, t(SessionStatus::Starting, SessionStatus::Running, start)).await.expect("run")
    );
    match end {
        Some((at, SessionStatus::Error)) => {
            let died = t(SessionStatus::Running, SessionStatus::Error, at).error("container exited unexpectedly");
            assert!(store.transition_session(s.id, died).await.expect("die"));
        }
        Some((at, _)) => {
            assert!(
                store
                    .transition_session(s.id, t(SessionStatus::Running, SessionStatus::Stopping, at))
                    .await
                    .expect("stop")
            );
            assert!(
                store
                    .transition_session(s.id, t(SessionStatus::Stopping, SessionStatus::Stopped, at))
                    .await
                    .expect("end")
            );
        }
        None => {}
    }
    store.session(s.id).await.expect("read").expect("session")
}

pub async fn gpu_usage_rows_replace_and_read_back(h: &StoreHarness) {
    let store = seeded(h).await;
    let u = user_with_limit(store.as_ref(), "tel", 1).await;
    let t0 = time::macros::datetime!(2026-11-03 23:00 UTC);
    let s = session_between(store.as_ref(), &u, t0, None).await;
    let day = |d: time::Date, sampled: u64| GpuUsageDay {
        sampled_ms: sampled,
        busy_ms: sampled / 2,
        utilization_ms: sampled / 4,
        peak_memory_bytes: 3 << 30,
        ..GpuUsageDay::new(s.id, d, s.gpu_id)
    };
    let (d1, d2) = (time::macros::date!(2026 - 11 - 03), time::macros::date!(2026 - 11 - 04));
    store.record_gpu_usage(&[day(d1, 60_000), day(d2, 5_000)]).await.expect("record");
    // Whole values: the second write replaces the first, it does not add.
    store.record_gpu_usage(&[day(d2, 10_000)]).await.expect("record again");
    store.record_gpu_usage(&[]).await.expect("nothing");
    assert_eq!(store.session_gpu_usage(s.id).await.expect("read"), vec![day(d1, 60_000), day(d2, 10_000)]);
    let records =
        store.usage_records(t0 + Duration::hours(1), t0 + Duration::days(2), Some(u.id)).await.expect("records");
    assert_eq!(records.gpu_usage, vec![day(d2, 10_000)], "rows of the period's days only");
    assert_eq!(records.sessions.len(), 1);
    assert_eq!(records.sessions[0].email, u.email);
}

pub async fn usage_is_exact_to_the_second_with_a_fixed_clock(h: &StoreHarness) {
    use time::macros::{date, datetime};
    let store = seeded(h).await;
    let a = user_with_limit(store.as_ref(), "ada", 2).await;
    let b = user_with_limit(store.as_ref(), "bob", 1).await;
    // Ada: 09:00:00 to 10:30:15 on the 2nd; 23:00 on the 2nd to 01:00:01 on
    // the 3rd (crosses midnight); one that ended before the period (never
    // counted). Bob: a session that died at 12:00:59 on the 3rd, and one
    // still running since 23:59:30 on the 3rd.
    session_between(
        store.as_ref(),
        &a,
        datetime!(2026-11-02 09:00 UTC),
        Some((datetime!(2026-11-02 10:30:15 UTC), SessionStatus::Stopped)),
    )
    .await;
    session_between(
        store.as_ref(),
        &a,
        datetime!(2026-11-02 23:00 UTC),
        Some((datetime!(2026-11-03 01:00:01 UTC), SessionStatus::Stopped)),
    )
    .await;
    session_between(
        store.as_ref(),
        &a,
        datetime!(2026-10-30 08:00 UTC),
        Some((datetime!(2026-10-30 09:00 UTC), SessionStatus::Stopped)),
    )
    .await;
    session_between(
        store.as_ref(),
        &b,
        datetime!(2026-11-03 11:00 UTC),
        Some((datetime!(2026-11-03 12:00:59 UTC), SessionStatus::Error)),
    )
    .await;
    let running = session_between(store.as_ref(), &b, datetime!(2026-11-03 23:59:30 UTC), None).await;
    assert_eq!(running.status, SessionStatus::Running);

    let period = Period::new(date!(2026 - 11 - 02), date!(2026 - 11 - 04)).expect("period");
    let now = datetime!(2026-11-04 06:00 UTC);
    let records = store.usage_records(period.start(), period.end(), None).await.expect("records");
    assert_eq!(records.sessions.len(), 4, "the session before the period is left out");
    let users = summarize(&records, period, now, false);
    assert_eq!(users.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(), ["ada@example.org", "bob@example.org"]);
    let (ada, bob) = (&users[0], &users[1]);
    let secs = |d: &crate::usage::DayUsage| d.held_ms / 1000;
    assert_eq!(ada.days.iter().map(secs).collect::<Vec<_>>(), [5415 + 3600, 3601]);
    assert_eq!(ada.days.iter().map(|d| d.sessions).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(ada.held_ms, (5415 + 3600 + 3601) * 1000);
    // Bob's running session counts up to the period's end, not to `now`.
    assert_eq!(bob.days.iter().map(secs).collect::<Vec<_>>(), [0, 3659 + 30]);
    assert_eq!(bob.busy_ms, None, "no telemetry: busy is unknown, not zero");
    assert_eq!(bob.sessions.len(), 2);

    // One user's report is that user's alone, and agrees with everyone's.
    let own = store.usage_records(period.start(), period.end(), Some(a.id)).await.expect("own");
    let own = summarize(&own, period, now, false);
    assert_eq!(own.len(), 1);
    assert_eq!(own[0], *ada);
}

pub async fn runtime_details_are_recorded_only_while_active(h: &StoreHarness) {
    let store = seeded(h).await;
    let u = user_with_limit(store.as_ref(), "rt", 1).await;
    let s = allocate(store.as_ref(), &u).await.expect("allocate");
    assert!(store.set_session_runtime(s.id, Some("abc123"), Some("tank/ws/x")).await.expect("set"));
    // Same values again still counts as recorded.
    assert!(store.set_session_runtime(s.id, Some("abc123"), None).await.expect("set"));
    let got = store.session(s.id).await.expect("get").expect("exists");
    assert_eq!((got.container_id.as_deref(), got.workspace.as_deref()), (Some("abc123"), Some("tank/ws/x")));
    release(store.as_ref(), &s).await;
    assert!(!store.set_session_runtime(s.id, Some("other"), None).await.expect("set"));
    assert!(!store.set_session_runtime(model::SessionId::new_random(), Some("x"), None).await.expect("set"));
}

/// Allocations and releases by many clients at once, as the benchmark runs
/// them: no error but "No GPUs available", every release wins, and no GPU
/// is left held. (On InnoDB a release can be chosen as a deadlock victim
/// against an allocation; the store must retry it, not fail it.)
pub async fn allocation_and_release_churn_leaves_nothing_held(h: &StoreHarness) {
    let store = seeded(h).await;
    let mut users = Vec::new();
    for i in 0..16 {
        users.push(user_with_limit(store.as_ref(), &format!("churn{i}"), 1).await);
    }
    let tasks: Vec<_> = users
        .into_iter()
        .map(|u| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut cycles = 0;
                for _ in 0..25 {
                    match allocate(store.as_ref(), &u).await {
                        Ok(s) => {
                            release(store.as_ref(), &s).await;
                            cycles += 1;
                        }
                        Err(AllocationError::NoGpusAvailable) => tokio::task::yield_now().await,
                        Err(other) => panic!("unexpected allocation error: {other:?}"),
                    }
                }
                cycles
            })
        })
        .collect();
    let mut cycles = 0;
    for t in tasks {
        cycles += t.await.expect("client task");
    }
    assert!(cycles >= 7, "only {cycles} cycles completed");
    assert_eq!(active_count(h).await, 0);
    assert!(store.list_gpus().await.expect("gpus").iter().all(|g| g.session_id.is_none()));
}

/// The event log: kept whole, listed newest first, filtered by type and user.
pub async fn events_are_kept_and_listed(h: &StoreHarness) {
    use crate::store::{EventFilter, StoredEvent};
    let store = seeded(h).await;
    let (alice, bob) = (model::UserId::new_random(), model::UserId::new_random());
    let t0 = model::now();
    let mut ids = Vec::new();
    for (i, (name, user)) in
        [("user.login", alice), ("user.login", bob), ("session.start", alice), ("user.logout", alice)]
            .into_iter()
            .enumerate()
    {
        let e = StoredEvent {
            id: uuid::Uuid::new_v4().to_string(),
            event: name.into(),
            user_id: Some(user),
            // Bob does what the last event says to Alice (as an admin would).
            actor_id: (i == 3).then_some(bob),
            session_id: None,
            created_at: t0 + Duration::milliseconds(i64::try_from(i).unwrap_or_default()),
            data: serde_json::json!({ "event": name, "n": i }),
        };
        store.record_event(&e).await.expect("record");
        ids.push(e.id);
    }
    let all = store.list_events(&EventFilter::default(), PageRequest::first(3)).await.expect("list");
    assert_eq!(
        all.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![ids[3].clone(), ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(all.items[0].data["n"], 3);
    let rest =
        store.list_events(&EventFilter::default(), PageRequest { limit: 3, after: all.next }).await.expect("list");
    assert_eq!(rest.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![ids[0].clone()]);
    let logins = EventFilter { event: Some("user.login".into()), ..EventFilter::default() };
    assert_eq!(store.list_events(&logins, PageRequest::first(10)).await.expect("list").items.len(), 2);
    let alices_logins = EventFilter { event: Some("user.login".into()), user_id: Some(alice), actor_id: None };
    let only = store.list_events(&alices_logins, PageRequest::first(10)).await.expect("list");
    assert_eq!(only.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![ids[0].clone()]);
    let by_bob = EventFilter { actor_id: Some(bob), ..EventFilter::default() };
    let done = store.list_events(&by_bob, PageRequest::first(10)).await.expect("list");
    assert_eq!(done.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![ids[3].clone()]);
    assert_eq!((done.items[0].actor_id, done.items[0].user_id), (Some(bob), Some(alice)));
    let to_bob_by_bob = EventFilter { actor_id: Some(bob), user_id: Some(bob), event: None };
    assert!(store.list_events(&to_bob_by_bob, PageRequest::first(10)).await.expect("list").items.is_empty());
}

/// One deployment id per database: made by the first call, whichever of
/// several concurrent first calls wins, and the same on every call after.
pub async fn the_deployment_id_is_made_once(h: &StoreHarness) {
    let calls = (0..8).map(|_| {
        let store = h.store.clone();
        tokio::spawn(async move { store.deployment_id().await.expect("deployment id") })
    });
    let mut ids = BTreeSet::new();
    for call in calls {
        ids.insert(call.await.expect("join"));
    }
    assert_eq!(ids.len(), 1, "concurrent first calls disagree: {ids:?}");
    let id = ids.into_iter().next().expect("an id");
    assert_eq!(h.store.deployment_id().await.expect("again"), id);
    assert!(!id.0.is_nil());
}

async fn join(store: &dyn Store, user: &User, at: time::OffsetDateTime) -> QueueEntry {
    store
        .join_queue(NewQueueEntry {
            id: QueueEntryId::new_random(),
            user_id: user.id,
            exposure: Exposure::External,
            pack_id: None,
            auto_start: false,
            joined_at: at,
        })
        .await
        .expect("join the queue")
}

/// Seven users hold the seven GPUs.
async fn full_house(store: &dyn Store) -> Vec<Session> {
    let mut held = Vec::new();
    for i in 0..7 {
        let u = user_with_limit(store, &format!("holder{i}"), 1).await;
        held.push(allocate(store, &u).await.expect("allocate"));
    }
    held
}

pub async fn an_offer_reserves_the_freed_gpu_against_every_other_create(h: &StoreHarness) {
    let store = seeded(h).await;
    let held = full_house(store.as_ref()).await;
    let eighth = user_with_limit(store.as_ref(), "eighth", 1).await;
    let ninth = user_with_limit(store.as_ref(), "ninth", 1).await;
    let t0 = model::now();
    let first = join(store.as_ref(), &eighth, t0).await;
    let second = join(store.as_ref(), &ninth, t0 + Duration::seconds(1)).await;
    assert!(matches!(
        store.join_queue(NewQueueEntry { id: QueueEntryId::new_random(), ..new_entry(&first) }).await,
        Err(StoreError::AlreadyQueued)
    ));
    assert_eq!(store.offer_gpu(first.id, t0, t0 + Duration::minutes(10)).await.expect("offer"), Offer::NoGpu);
    release(store.as_ref(), &held[3]).await;
    // While people wait, a GPU that frees is not for a create that comes first.
    let passer = user_with_limit(store.as_ref(), "passer", 1).await;
    assert!(matches!(allocate(store.as_ref(), &passer).await, Err(AllocationError::NoGpusAvailable)));
    let until = t0 + Duration::minutes(10);
    let Offer::Made(reserved) = store.offer_gpu(first.id, t0, until).await.expect("offer") else {
        panic!("no offer made")
    };
    assert_eq!(
        (reserved.status, reserved.gpu_id, reserved.user_id),
        (SessionStatus::Reserved, held[3].gpu_id, eighth.id)
    );
    assert_eq!(reserved.expires_at, Some(until));
    assert_eq!(store.offer_gpu(first.id, t0, until).await.expect("again"), Offer::NotWaiting);
    let entry = store.queue_entry(eighth.id, Exposure::External).await.expect("entry").expect("there");
    assert_eq!(
        (entry.state, entry.session_id, entry.offered_until),
        (QueueState::Offered, Some(reserved.id), Some(until))
    );
    // Twenty concurrent creates by others during the claim window: none gets it.
    let mut others = Vec::new();
    for i in 0..20 {
        others.push(user_with_limit(store.as_ref(), &format!("other{i}"), 1).await);
    }
    let tasks: Vec<_> = others
        .into_iter()
        .map(|u| {
            let store = store.clone();
            tokio::spawn(async move { allocate(store.as_ref(), &u).await })
        })
        .collect();
    for t in tasks {
        let r = t.await.expect("task");
        assert!(matches!(r, Err(AllocationError::NoGpusAvailable)), "{r:?}");
    }
    // The schema itself refuses a second holder of the reserved GPU.
    let gpus = store.list_gpus().await.expect("gpus");
    let board = gpus.iter().find(|g| g.id == reserved.gpu_id).expect("gpu");
    assert_eq!(board.session_id, Some(reserved.id), "the board shows the reservation as the holder");
    // The eighth's create claims it, whatever their limit of one.
    let claimed = allocate(store.as_ref(), &eighth).await.expect("claim");
    assert_eq!((claimed.id, claimed.status, claimed.gpu_id), (reserved.id, SessionStatus::Starting, held[3].gpu_id));
    assert!(store.queue_entry(eighth.id, Exposure::External).await.expect("entry").is_none(), "the entry is met");
    let waiting: Vec<_> = store.queue().await.expect("queue").into_iter().map(|e| e.id).collect();
    assert_eq!(waiting, vec![second.id]);
}

fn new_entry(e: &QueueEntry) -> NewQueueEntry {
    NewQueueEntry {
        id: e.id,
        user_id: e.user_id,
        exposure: e.exposure,
        pack_id: e.pack_id,
        auto_start: e.auto_start,
        joined_at: e.joined_at,
    }
}

pub async fn an_unclaimed_offer_lapses_and_its_gpu_is_free_again(h: &StoreHarness) {
    let store = seeded(h).await;
    let held = full_house(store.as_ref()).await;
    let (a, b) = (user_with_limit(store.as_ref(), "qa", 1).await, user_with_limit(store.as_ref(), "qb", 1).await);
    let t0 = model::now();
    let first = join(store.as_ref(), &a, t0).await;
    let second = join(store.as_ref(), &b, t0 + Duration::seconds(1)).await;
    release(store.as_ref(), &held[0]).await;
    let until = t0 + Duration::minutes(10);
    let Offer::Made(reserved) = store.offer_gpu(first.id, t0, until).await.expect("offer") else { panic!("no offer") };
    assert!(store.expire_offers(until - Duration::seconds(1)).await.expect("expire").is_empty(), "not yet");
    let lapsed = store.expire_offers(until).await.expect("expire");
    assert_eq!(lapsed.iter().map(|e| e.id).collect::<Vec<_>>(), vec![first.id]);
    assert!(store.session(reserved.id).await.expect("read").is_none(), "the reservation is gone");
    assert!(store.queue_entry(a.id, Exposure::External).await.expect("entry").is_none());
    // The next in line gets the same GPU.
    let Offer::Made(next) = store.offer_gpu(second.id, until, until + Duration::minutes(10)).await.expect("offer")
    else {
        panic!("no offer for the next")
    };
    assert_eq!((next.user_id, next.gpu_id), (b.id, held[0].gpu_id));
    // Leaving with an offer frees its GPU as well.
    assert_eq!(store.leave_queue(second.id).await.expect("leave").map(|e| e.state), Some(QueueState::Offered));
    assert!(store.session(next.id).await.expect("read").is_none());
    assert!(store.leave_queue(second.id).await.expect("leave again").is_none());
    let c = user_with_limit(store.as_ref(), "qc", 1).await;
    assert_eq!(allocate(store.as_ref(), &c).await.expect("free again").gpu_id, held[0].gpu_id);
}

pub async fn an_offer_respects_the_users_limit(h: &StoreHarness) {
    let store = seeded(h).await;
    let held = full_house(store.as_ref()).await;
    let u = user_with_limit(store.as_ref(), "limited", 1).await;
    let t0 = model::now();
    let entry = join(store.as_ref(), &u, t0).await;
    release(store.as_ref(), &held[1]).await;
    release(store.as_ref(), &held[2]).await;
    // With more GPUs free than others wait for, the queued user's own create succeeds and meets the entry.
    let own = allocate(store.as_ref(), &u).await.expect("own create");
    assert!(store.queue_entry(u.id, Exposure::External).await.expect("entry").is_none());
    let again = join(store.as_ref(), &u, t0).await;
    assert_ne!(again.id, entry.id);
    assert_eq!(store.offer_gpu(again.id, t0, t0 + Duration::minutes(1)).await.expect("offer"), Offer::UserAtLimit);
    release(store.as_ref(), &own).await;
    // Someone who may not use what they queued for is offered nothing.
    let outsider = user_with_limit(store.as_ref(), "no-internal", 1).await;
    let internal = store
        .join_queue(NewQueueEntry {
            id: QueueEntryId::new_random(),
            user_id: outsider.id,
            exposure: Exposure::Internal,
            pack_id: None,
            auto_start: false,
            joined_at: t0,
        })
        .await
        .expect("join");
    assert_eq!(store.offer_gpu(internal.id, t0, t0 + Duration::minutes(1)).await.expect("offer"), Offer::CannotStart);
    // An entry that left is offered nothing either, and nothing is reserved.
    assert_eq!(store.leave_queue(again.id).await.expect("leave").map(|e| e.id), Some(again.id));
    assert_eq!(store.offer_gpu(again.id, t0, t0 + Duration::minutes(1)).await.expect("offer"), Offer::NotWaiting);
    let reserved = SessionFilter { user_id: None, exposure: None, statuses: vec![SessionStatus::Reserved] };
    assert!(store.list_sessions(&reserved, PageRequest::first(10)).await.expect("list").items.is_empty());
}

pub async fn stop_reasons_activity_warnings_and_extensions_are_kept(h: &StoreHarness) {
    let store = seeded(h).await;
    let u = user_with_limit(store.as_ref(), "limits", 2).await;
    let t0 = model::now();
    let s = store
        .allocate_session(AllocationRequest {
            user_id: u.id,
            exposure: Exposure::External,
            pack_id: None,
            now: t0,
            expires_at: Some(t0 + Duration::hours(24)),
        })
        .await
        .expect("allocate");
    assert_eq!((s.expires_at, s.last_activity_at, s.extensions), (Some(t0 + Duration::hours(24)), Some(t0), 0));
    // Not running yet: no extension, no warning.
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(store.extend_session(s.id, hour, 2).await.expect("extend"), Extension::NotRunning);
    assert!(
        store
            .transition_session(s.id, Transition::new(SessionStatus::Starting, SessionStatus::Running, t0))
            .await
            .expect("run")
    );
    store.record_activity(&[(s.id, t0 + Duration::minutes(5))]).await.expect("activity");
    store.record_activity(&[(s.id, t0 + Duration::minutes(2))]).await.expect("older activity");
    let read = store.session(s.id).await.expect("read").expect("there");
    assert_eq!(read.last_activity_at, Some(t0 + Duration::minutes(5)), "activity only moves forward");
    let warning =
        Warning { kind: WarningKind::Lifetime, stops_at: t0 + Duration::hours(24), given_at: t0 + Duration::hours(23) };
    assert!(store.set_session_warning(s.id, Some(warning)).await.expect("warn"));
    assert_eq!(store.session(s.id).await.expect("read").expect("there").warning, Some(warning));
    for n in 1..=2u32 {
        let Extension::Extended(e) = store.extend_session(s.id, hour, 2).await.expect("extend") else {
            panic!("refused")
        };
        assert_eq!((e.extensions, e.expires_at), (n, Some(t0 + Duration::hours(24 + i64::from(n)))));
        assert_eq!(e.warning, None, "an extension takes the lifetime warning back");
    }
    assert_eq!(store.extend_session(s.id, hour, 2).await.expect("extend"), Extension::LimitReached);
    assert!(store.set_session_warning(s.id, Some(Warning { kind: WarningKind::Idle, ..warning })).await.expect("warn"));
    let t = Transition::new(SessionStatus::Running, SessionStatus::Stopping, t0).reason(StopReason::Idle);
    assert!(store.transition_session(s.id, t).await.expect("stopping"));
    let t = Transition::new(SessionStatus::Stopping, SessionStatus::Stopped, t0).reason(StopReason::User);
    assert!(store.transition_session(s.id, t).await.expect("stopped"));
    let ended = store.session(s.id).await.expect("read").expect("there");
    assert_eq!(ended.stop_reason, Some(StopReason::Idle), "the first reason recorded stays");
    assert_eq!(ended.warning, None, "no warning outlives the running session");
    store.record_activity(&[(s.id, t0 + Duration::hours(30))]).await.expect("activity");
    assert_eq!(
        store.session(s.id).await.expect("read").expect("there").last_activity_at,
        Some(t0 + Duration::minutes(5))
    );
    assert!(!store.set_session_warning(s.id, Some(warning)).await.expect("warn an ended session"));
    // An admin's per-user lifetime reads back, and clears.
    let set = UserUpdate { max_lifetime_secs: Some(Some(3600)), ..Default::default() };
    assert_eq!(store.update_user(u.id, set).await.expect("update").expect("user").max_lifetime_secs, Some(3600));
    let clear = UserUpdate { max_lifetime_secs: Some(None), ..Default::default() };
    assert_eq!(store.update_user(u.id, clear).await.expect("update").expect("user").max_lifetime_secs, None);
}

/// Expands every case of this module into a `#[tokio::test]` that runs it on a
/// fresh harness from `$harness` (an async fn returning [`StoreHarness`]).
#[macro_export]
macro_rules! store_contract_tests {
    ($harness:path) => {
        $crate::__contract_cases!(store, $harness;
            seed_creates_default_pack_and_gpus,
            users_are_unique_by_email_and_updatable,
            users_list_newest_first_with_active_counts,
            logins_are_stored_by_hash_and_revocable,
            invites_are_kept_by_hash_listed_and_revocable,
            an_invite_makes_one_account_before_it_expires,
            authenticator_refuses_bad_passwords_and_dead_tokens,
            tokens_are_never_stored_raw,
            allocation_takes_lowest_free_gpu_and_checks_everything,
            allocation_enforces_the_user_limit,
            allocation_refuses_when_no_gpu_is_free,
            concurrent_allocations_by_many_users_fill_each_gpu_once,
            concurrent_allocations_by_one_user_respect_the_limit,
            releasing_a_session_frees_its_gpu,
            schema_rejects_a_second_active_session_on_a_gpu,
            transitions_are_conditional_and_race_safe,
            sessions_list_with_filters_and_cursors,
            gpu_board_shows_holders,
            seeding_records_what_telemetry_discovered,
            gpu_usage_rows_replace_and_read_back,
            usage_is_exact_to_the_second_with_a_fixed_clock,
            runtime_details_are_recorded_only_while_active,
            allocation_and_release_churn_leaves_nothing_held,
            events_are_kept_and_listed,
            the_deployment_id_is_made_once,
            an_offer_reserves_the_freed_gpu_against_every_other_create,
            an_unclaimed_offer_lapses_and_its_gpu_is_free_again,
            an_offer_respects_the_users_limit,
            stop_reasons_activity_warnings_and_extensions_are_kept,
        );
    };
}
