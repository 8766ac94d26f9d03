//! Thin views of the one job model in the dialects of the seed systems (seeds 001, 002, 003); they
//! keep no state of their own.

pub mod bgrs;
pub mod tasks;
pub mod xml_data_compare;
