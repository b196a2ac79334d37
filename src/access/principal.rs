//! Who a request acts for: the principal (tenant, credential, scopes, own rates) that a verified
//! API key or JWT turns into, and the scopes it may hold. Plain data, shared by every part of
//! access control.

use uuid::Uuid;

use crate::access::viewer::CursorKey;
use crate::domain::{EventFilter, Tenant, ViewScope};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Record events.
    EventsWrite,
    /// Query, search and subscribe.
    EventsRead,
    /// Operate the deployment: dead letters, keys.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::EventsWrite, Scope::EventsRead, Scope::Admin];
    /// What a key gets when its creator names no scope.
    pub const DEFAULT: [Scope; 2] = [Scope::EventsWrite, Scope::EventsRead];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::EventsRead => "events:read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Who is calling: the tenant every read and write of the request is scoped to, what the caller
/// may do, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant: Tenant,
    pub credential: Credential,
    pub scopes: Vec<Scope>,
    pub rates: RateOverrides,
    /// When the credential stops being accepted by itself (a JWT's or viewer token's expiry);
    /// keys have none.
    pub expires_at: Option<std::time::SystemTime>,
    /// A viewer token's limits: only these events, and exports only if allowed.
    pub view: Option<ViewerAccess>,
}

/// What a viewer token's holder may read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewerAccess {
    pub scope: ViewScope,
    pub export_allowed: bool,
    /// What its stream cursors are sealed with: it never sees a ledger index.
    pub cursor_key: CursorKey,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// `filter` narrowed to what the caller may see: a viewer token's group (and actor).
    pub fn held_to_view(&self, mut filter: EventFilter) -> EventFilter {
        filter.view = self.view.as_ref().map(|v| v.scope.clone());
        filter
    }
}

/// What the caller presented.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Credential {
    ApiKey(Uuid),
    /// A verified JWT, by its `sub` claim.
    Token {
        subject: String,
    },
    /// A viewer token, by its id, for its group.
    Viewer {
        token: Uuid,
        group: String,
    },
}

impl Credential {
    /// The key id or the token's subject: how audit events name the caller.
    pub fn id(&self) -> String {
        match self {
            Credential::ApiKey(id) => id.to_string(),
            Credential::Token { subject } => subject.clone(),
            Credential::Viewer { token, .. } => token.to_string(),
        }
    }

    /// The group a viewer token is held to: the group of the audit events about its requests.
    pub fn group(&self) -> Option<&str> {
        match self {
            Credential::Viewer { group, .. } => Some(group),
            _ => None,
        }
    }

    /// The actor type audit events give the caller.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::ApiKey(_) => "api_key",
            Credential::Token { .. } => "jwt_subject",
            Credential::Viewer { .. } => "viewer_token",
        }
    }
}

/// A key's own rate limits, in requests per second, where it has any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateOverrides {
    pub write_per_sec: Option<u32>,
    pub read_per_sec: Option<u32>,
}
