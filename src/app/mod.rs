//! The application layer: one function per use case, called alike by every entrance (GraphQL,
//! HTTP, the command line), which only translate their input and the answer. Recording
//! (`record`), reading and searching go through [`Services`]; key management ([`Keys`]) and the
//! dead-letter queue ([`DeadLetterQueue`]) are operator and admin actions whose audit events
//! take one road, the service's own trail ([`OwnTrail`]).

pub mod dead_letters;
pub mod display;
pub mod error;
pub mod export;
pub mod follow;
pub mod keys;
pub mod ledger;
pub mod own_trail;
pub mod readiness;
pub mod reads;
pub mod record;
pub mod retention;
pub mod services;
pub mod verify;
pub mod viewer_tokens;

pub use dead_letters::DeadLetterQueue;
pub use display::DisplayTemplates;
pub use error::{ingest_error, ApiError, RETRY_AFTER_SECONDS};
pub use keys::{CreatedKey, KeyRequest, Keys, Rates};
pub use ledger::Ledger;
pub use own_trail::{Actor, OwnTrail};
pub use services::Services;
pub use viewer_tokens::{MintedViewerToken, ViewerTokenRequest, ViewerTokens};
