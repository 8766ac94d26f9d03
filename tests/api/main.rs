//! The HTTP test suite: the real service on a free port, spoken to over HTTP, links followed
//! from `Location`. Every test runs on SQLite, and on PostgreSQL when
//! `LONGRUN_TEST_POSTGRES_URL` is set.

mod access;
mod cli;
mod collection;
mod comparisons;
mod crash;
mod deliveries;
mod dialects;
mod door;
mod examples;
mod helpers;
mod hostile;
mod imports;
mod lifecycle;
mod maintenance;
mod openapi;
mod problems;
mod robustness;
mod scaleout;
mod signals;
mod ui;
