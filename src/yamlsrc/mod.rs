//! STUB
pub mod spans;

pub mod edit;
