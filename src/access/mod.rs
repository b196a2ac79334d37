//! Access control: who a request acts for (API keys, JWTs, viewer tokens), what it may do (scopes), and how
//! much (rates of events and requests, caps on what one caller holds open).

pub mod auth;
pub mod jwt;
pub mod principal;
pub mod ratelimit;
pub mod viewer;
