//! One module per `vigil` command (a group of subcommands is one command):
//! each declares its own arguments and runs; `main.rs` parses and
//! dispatches.

pub mod approve;
pub mod attest;
pub mod bench;
pub mod cost;
pub mod demo;
pub mod doctor;
pub mod eval;
pub mod hook;
pub mod init;
pub mod journal;
pub mod keys;
pub mod policy;
pub mod serve;
pub mod verify;
