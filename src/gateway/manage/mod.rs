//! Token management shared by the command line (`scopegate token`, `audit`) and the admin
//! console and API: the tokens file's locked, validated, atomic edits ([`store`]), the token
//! operations on it ([`ops`]), the views that list and show tokens ([`view`]), the parsers
//! of scopes, rates and times ([`parse`]), new SIDs and secrets ([`secrets`]), and the
//! least-privilege audit ([`audit`]).
//!
//! It lives in the gateway layer because it reads the gateway's usage record and writes
//! its admin log, and because the console (part of the running gateway) calls it; the
//! command line only parses arguments and prints.

pub mod audit;
pub mod ops;
pub mod parse;
pub mod secrets;
pub mod store;
pub mod view;
