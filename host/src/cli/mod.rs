//! The front ends only the `vigil` command runs, over the library: the
//! demo (the main job and its script), the benchmarks and the machine
//! check. The library below never prints; these modules do.

pub mod bench;
pub mod demo;
pub mod doctor;
pub mod journal_bench;
pub mod judge_bench;
pub mod policy_bench;
