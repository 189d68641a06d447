//! Scope enforcement core: owns the pipeline that decides whether a request path falls inside a
//! token's grants: [`target`] canonicalizes the request target (with `fold` refusing segments
//! that an upstream folding Unicode would read differently), [`pattern`] parses the grant path
//! patterns of the catalog, and [`catalog`] compiles them into a segment trie that is walked per
//! request; [`relate`] compares patterns for drift checks.
//!
//! The pieces only compose safely in that order: the matcher compares bytes, so it must only ever
//! see paths produced by [`canonicalize`], and pattern literals are held to the same canonical
//! form so that one spelling exists for every resource.

pub mod catalog;
mod fold;
pub mod pattern;
pub mod relate;
pub mod target;

#[cfg(test)]
mod proptests;

#[cfg(any(test, feature = "test-util"))]
pub use catalog::CatalogBuilder;
#[cfg(test)]
use catalog::{ApiId, Catalog};
pub use pattern::{parse_pattern, Pattern, Segment};
#[cfg(test)]
use target::Target;
pub use target::{canonicalize, TargetError, TargetOptions};

/// Deepest path, in segments, that patterns may describe and the matcher will look at.
///
/// Bounds the matcher's recursion (and so its stack use) independently of the input; a request
/// path deeper than this matches nothing (deny), and a pattern deeper than this is refused at
/// load time because it could never match.
pub const MAX_SEGMENTS: usize = 256;
