//! [`Caller`]: who is asking, as every service function that records an
//! event needs it. A module of its own, so that the services that take it
//! (accounts, invites, admin, sessions) need not import one another.

use std::net::IpAddr;

use medforge_core::auth::ClientInfo;
use medforge_core::events::EventContext;

/// Who is asking: the client's address (behind trusted proxies, the
/// client's own), its user agent, and the request's id for the events.
#[derive(Debug, Clone)]
pub struct Caller {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    pub request_id: String,
}

impl Caller {
    pub(super) fn info(&self) -> ClientInfo {
        ClientInfo { ip: Some(self.ip.to_string()), user_agent: self.user_agent.clone() }
    }

    pub fn events(&self) -> EventContext {
        EventContext::request(&self.request_id)
    }
}
