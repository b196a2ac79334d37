//! What runs in the background of a serving process: the worker that commits batches, the
//! outbox relay, the search indexer, and this instance's live feed.

pub mod indexer;
pub mod live;
pub mod relay;
pub mod sealer;
pub mod worker;
