//! YAML source tooling: where each config field lives (`spans`) and comment-preserving edits of `tokens.yaml` (`edit`).
//!
//! serde_yaml hands us values without positions and re-emits files without comments. Operators
//! hand-edit both `scopegate.yaml` and `tokens.yaml`, so validation errors must name the exact
//! line, and CLI edits must leave their comments and ordering alone. Both are built on
//! yaml-rust2's marked event stream, never on re-serialisation.

pub mod edit;
pub mod render;
pub mod spans;

pub use edit::{
    flow_map, flow_seq, flow_seq_rendered, flow_value, quote_scalar, EditError, TokensDoc,
};
