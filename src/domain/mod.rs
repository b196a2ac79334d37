//! The event model and everything we know about it without doing I/O: validated input, filters,
//! pagination cursors, analytics questions, the search query language. Every other module
//! depends on this one; it depends on none of ours.

mod columns;
mod cursor;
mod display;
mod event;
mod filter;
pub mod ledger;
mod search_query;
mod stats;
mod tenant;
mod validate;

pub use columns::{column_names, Column, ColumnKind, ColumnValue, Indexed, EVENT_COLUMNS};
pub use cursor::{Cursor, CursorError, StreamCursor, StreamStart};
pub use display::{generic_sentence, template_for, DisplayTemplate, MAX_TEMPLATE_LEN};
pub use event::{
    Actor, AuditEvent, Crud, EventGroup, Outcome, RecordedBy, Severity, Target, SERVICE_NAME,
};
pub use filter::{
    ActionPattern, EventFilter, EventOrder, ViewScope, EXACT_TOTAL_UP_TO, MAX_FILTER_VALUES,
};
pub use search_query::{
    FieldTerm, Group, Literal, QueryError, ScoredPosition, SearchQuery, Term, MAX_QUERY_BYTES,
};
pub use stats::{
    EventStats, LagPercentiles, ProcessingMetrics, StatsBucket, StatsGroupBy, StatsInterval,
    StatsRequest, TimeRange, DEFAULT_RANGE, MAX_STATS_BUCKETS, MAX_STATS_GROUPS,
};
pub use tenant::{check_tenant, Tenant, MAX_TENANT_LEN, SYSTEM_TENANT};
pub use validate::{
    check_action_pattern, check_identifier, check_not_reserved, ActorDraft, EventDraft, FieldError,
    GroupDraft, NewEvent, TargetDraft, MAX_ACTION_LEN, MAX_BATCH, MAX_FUTURE_SKEW, MAX_HREF_LEN,
    MAX_ID_LEN, MAX_MESSAGE_BYTES, MAX_METADATA_BYTES,
};
