//! The guard's request handler: turns one mailbox request into one reply.
//!
//! Safe and portable: the transport (shared memory on a VM, a buffer in the
//! host's tests) and the CPU live behind [`Platform`] and the slices passed
//! in, so this module is tested on the host.

use crate::abi::{self, info, kind, ping, status};
use crate::judging::Judging;
use crate::platform::{Platform, Reply};

/// What the main loop does after sending a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Wait for the next request.
    Serve,
    /// Stop the guard.
    Shutdown,
}

/// Facts about this boot that `Info` reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct BootFacts {
    /// [`abi::arch`] code.
    pub arch: u32,
    /// Privilege level the guard runs at.
    pub privilege: u32,
    /// [`abi::entropy`] bitmask.
    pub entropy: u32,
    /// Guest memory size from boot info.
    pub memory_size: u64,
    /// TSC at entry.
    pub boot_tsc: u64,
}

/// The guard's request-serving state.
pub struct Service<'p> {
    facts: BootFacts,
    judging: Judging<'p>,
    pings: u64,
    requests: u64,
    sleeps: u64,
}

impl<'p> Service<'p> {
    /// A fresh service for one boot.
    pub fn new(facts: BootFacts, judging: Judging<'p>) -> Self {
        Service { facts, judging, pings: 0, requests: 0, sleeps: 0 }
    }

    /// The judging state.
    pub fn judging(&self) -> &Judging<'p> {
        &self.judging
    }

    /// One bounded step of preparing the keys and the bundle (the main
    /// loop calls this when idle); returns whether it is done.
    pub fn prepare_step(&mut self) -> bool {
        self.judging.prepare_step()
    }

    /// One bounded step of making dense copies of the bundle's tables (the
    /// main loop calls this when idle, once the bundle is checked);
    /// returns whether steps remain.
    pub fn densify_step(&mut self) -> bool {
        self.judging.densify_step()
    }

    /// Checks the bundle if not done yet; returns why it was refused.
    pub fn policy_error(&mut self) -> Option<vigil_guard::bundle::BundleError> {
        self.judging.policy_error()
    }

    /// Records one `SLEEP` hypercall (reported by `Info`).
    pub fn note_sleep(&mut self) {
        self.sleeps += 1;
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Serves one request of `kind` with `request` payload, writing the reply
    /// payload to `response`.
    pub fn handle(
        &mut self,
        kind: u32,
        request: &mut [u8],
        response: &mut [u8],
        platform: &mut impl Platform,
    ) -> (Reply, Next) {
        self.requests += 1;
        match kind {
            kind::PING => (self.ping(request, response, platform), Next::Serve),
            kind::INFO if request.is_empty() => (self.info(response), Next::Serve),
            kind::SHUTDOWN if request.is_empty() => (self.judging.final_checkpoint(response), Next::Shutdown),
            kind::ATTEST => (self.judging.attest(request, response, platform), Next::Serve),
            kind::CHANNEL_OPEN => (self.judging.open(request, response), Next::Serve),
            kind::CHANNEL_RECORD => (self.judging.record(request, response, platform), Next::Serve),
            kind::INFO | kind::SHUTDOWN => (Reply::status(status::MALFORMED), Next::Serve),
            _ => (self.test_hook(kind, request, platform), Next::Serve),
        }
    }

    fn ping(&mut self, request: &[u8], response: &mut [u8], platform: &mut impl Platform) -> Reply {
        let len = ping::PAYLOAD + request.len();
        let Some(out) = response.get_mut(..len) else {
            return Reply::status(status::TOO_LARGE);
        };
        self.pings += 1;
        out[ping::COUNTER..ping::COUNTER + 8].copy_from_slice(&self.pings.to_le_bytes());
        out[ping::TSC..ping::TSC + 8].copy_from_slice(&platform.tsc().to_le_bytes());
        out[ping::PAYLOAD..].copy_from_slice(request);
        Reply { status: status::OK, len }
    }

    fn info(&self, response: &mut [u8]) -> Reply {
        let version = crate::VERSION.as_bytes();
        let version = &version[..version.len().min(info::VERSION_CAPACITY)];
        let len = info::VERSION + version.len();
        let Some(out) = response.get_mut(..len) else {
            return Reply::status(status::TOO_LARGE);
        };
        let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        put(info::ABI_VERSION, &abi::ABI_VERSION.to_le_bytes());
        put(info::ARCH, &self.facts.arch.to_le_bytes());
        put(info::ENTROPY, &self.facts.entropy.to_le_bytes());
        put(info::PRIVILEGE, &self.facts.privilege.to_le_bytes());
        put(info::MEMORY_SIZE, &self.facts.memory_size.to_le_bytes());
        put(info::BOOT_TSC, &self.facts.boot_tsc.to_le_bytes());
        put(info::REQUESTS, &self.requests.to_le_bytes());
        put(info::SLEEPS, &self.sleeps.to_le_bytes());
        put(info::DENSE_BYTES, &(self.judging.dense_bytes() as u64).to_le_bytes());
        put(info::VERSION_LEN, &(version.len() as u32).to_le_bytes());
        put(info::VERSION, version);
        Reply { status: status::OK, len }
    }

    #[cfg(feature = "test-hooks")]
    fn test_hook(&mut self, kind: u32, request: &[u8], platform: &mut impl Platform) -> Reply {
        use abi::test_fault;
        match kind {
            kind::TEST_PANIC => panic!("test hook: panic requested by the host"),
            kind::TEST_FAULT => {
                let address = match request.get(test_fault::ADDRESS..test_fault::ADDRESS + 8) {
                    Some(bytes) => u64::from_le_bytes(bytes.try_into().unwrap_or_default()),
                    None if request.is_empty() => abi::layout::STACK_GUARD,
                    None => return Reply::status(status::MALFORMED),
                };
                platform.write_to(address)
            }
            kind::TEST_SPIN => loop {
                core::hint::spin_loop();
            },
            kind::TEST_TRAP => platform.trap(),
            kind::TEST_FORBIDDEN_PORT => platform.forbidden_port(),
            kind::TEST_BAD_REPLY => Reply { status: status::OK, len: u32::MAX as usize },
            kind::TEST_INFLATE_COST => {
                self.judging.inflate_cost(1000);
                Reply::status(status::OK)
            }
            _ => Reply::status(status::UNKNOWN_KIND),
        }
    }

    #[cfg(not(feature = "test-hooks"))]
    fn test_hook(&mut self, _kind: u32, _request: &[u8], _platform: &mut impl Platform) -> Reply {
        Reply::status(status::UNKNOWN_KIND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeCpu(u64);

    impl Platform for FakeCpu {
        fn tsc(&mut self) -> u64 {
            self.0 += 10;
            self.0
        }
        fn attest(&mut self, _: &crate::platform::AttestRequest<'_>, _: &mut [u8]) -> Option<usize> {
            None
        }
        fn write_to(&mut self, address: u64) -> ! {
            panic!("write_to {address:#x}")
        }
        fn trap(&mut self) -> ! {
            panic!("trap")
        }
        fn forbidden_port(&mut self) -> ! {
            panic!("forbidden_port")
        }
    }

    fn service() -> Service<'static> {
        use crate::judging::Judging;
        Service::new(
            BootFacts {
                arch: abi::arch::X86_64,
                privilege: 3,
                entropy: abi::entropy::HOST_SEED,
                memory_size: 32 << 20,
                boot_tsc: 5,
            },
            Judging::new([1; 32], 0, &[], 1),
        )
    }

    #[test]
    fn ping_counts_and_stamps() {
        let mut svc = service();
        let mut cpu = FakeCpu(0);
        let mut out = [0u8; 64];
        for n in 1..=3u64 {
            let (reply, next) = svc.handle(kind::PING, &mut b"hello".clone(), &mut out, &mut cpu);
            assert_eq!(next, Next::Serve);
            assert_eq!(reply, Reply { status: status::OK, len: 21 });
            assert_eq!(out[..8], n.to_le_bytes());
            assert_eq!(out[8..16], (n * 10).to_le_bytes());
            assert_eq!(&out[16..21], b"hello");
        }
    }

    #[test]
    fn ping_too_large_for_response() {
        let mut out = [0u8; 20];
        let (reply, _) = service().handle(kind::PING, &mut [1; 5], &mut out, &mut FakeCpu(0));
        assert_eq!(reply.status, status::TOO_LARGE);
    }

    #[test]
    fn info_layout() {
        let mut svc = service();
        let mut out = [0u8; 256];
        let (reply, _) = svc.handle(kind::INFO, &mut [], &mut out, &mut FakeCpu(0));
        assert_eq!(reply.status, status::OK);
        let u32_at = |at: usize| u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(out[at..at + 8].try_into().unwrap());
        assert_eq!(u32_at(info::ABI_VERSION), abi::ABI_VERSION);
        assert_eq!(u32_at(info::ARCH), abi::arch::X86_64);
        assert_eq!(u32_at(info::PRIVILEGE), 3);
        assert_eq!(u64_at(info::MEMORY_SIZE), 32 << 20);
        assert_eq!(u64_at(info::REQUESTS), 1);
        let len = u32_at(info::VERSION_LEN) as usize;
        assert_eq!(&out[info::VERSION..info::VERSION + len], crate::VERSION.as_bytes());
        assert_eq!(reply.len, info::VERSION + len);
    }

    #[test]
    fn shutdown_and_malformed() {
        let mut out = [0u8; 8];
        let mut svc = service();
        let (reply, next) = svc.handle(kind::SHUTDOWN, &mut [], &mut out, &mut FakeCpu(0));
        assert_eq!((reply.status, next), (status::OK, Next::Shutdown));
        let (reply, next) = svc.handle(kind::SHUTDOWN, &mut [1], &mut out, &mut FakeCpu(0));
        assert_eq!((reply.status, next), (status::MALFORMED, Next::Serve));
        let (reply, _) = svc.handle(kind::INFO, &mut [1], &mut out, &mut FakeCpu(0));
        assert_eq!(reply.status, status::MALFORMED);
    }

    #[test]
    fn unknown_kind() {
        let mut out = [0u8; 8];
        let (reply, _) = service().handle(0x7777, &mut [], &mut out, &mut FakeCpu(0));
        assert_eq!(reply.status, status::UNKNOWN_KIND);
    }

    #[cfg(not(feature = "test-hooks"))]
    #[test]
    fn test_hooks_are_unknown_in_production() {
        let mut out = [0u8; 8];
        for k in [
            kind::TEST_PANIC,
            kind::TEST_FAULT,
            kind::TEST_SPIN,
            kind::TEST_TRAP,
            kind::TEST_FORBIDDEN_PORT,
            kind::TEST_BAD_REPLY,
        ] {
            let (reply, _) = service().handle(k, &mut [], &mut out, &mut FakeCpu(0));
            assert_eq!(reply.status, status::UNKNOWN_KIND);
        }
    }
}
