//! The HTTP test suite: the real service on a free port, spoken to over HTTP, links followed
//! from `Location`. A test that holds on every database is a test case of its own per backend
//! (`crate::per_backend!`: `…::sqlite`, `…::postgres`, `…::postgres_s3`; the last two run when
//! `LONGRUN_TEST_POSTGRES_URL` and `LONGRUN_TEST_S3_URL` are set, and must be in CI), so a
//! failure on one database never hides another's result.

mod access;
mod bulk;
mod cli;
mod collection;
mod comparisons;
mod conformance;
mod crash;
mod deliveries;
mod delivery_log;
mod dialects;
mod door;
mod examples;
mod helpers;
mod hostile;
mod imports;
mod lifecycle;
mod live;
mod maintenance;
mod openapi;
mod problems;
mod queue;
mod robustness;
mod scaleout;
mod seed_000;
mod seed_001;
mod seed_002;
mod seed_003;
mod seed_004;
mod signals;
mod stats;
mod ui;
