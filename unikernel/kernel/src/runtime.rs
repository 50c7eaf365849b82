//! The guard's main loop (the same on every architecture) and the mailbox
//! transport. Only built for bare-metal targets.

mod mailbox;
mod main_loop;

pub use main_loop::{panic, run};
