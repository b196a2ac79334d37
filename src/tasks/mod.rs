//! What runs in the background of a serving process: the worker that commits batches, the
//! outbox relay, the search indexer, the sealer, this instance's live feed and its readers of
//! committed events.

pub mod commits;
pub mod indexer;
pub mod live;
pub mod relay;
pub mod sealer;
pub mod worker;
