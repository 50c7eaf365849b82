//! The guard boots under KVM and answers; every failure mode of a guest is a
//! clear error, never a hang or a host panic.

use std::time::{Duration, Instant};

use vigil::guard_image;
use vigil::vmm::{GuardVm, VmConfig, VmError};
use vigil_tests::require_kvm;
use vigil_unikernel::abi::{kind, layout, status};

/// The deadline per request: 5 s, or `VIGIL_TEST_DEADLINE_SECS` where
/// the CPU is emulated (the arm64 VM of `cargo xtask arm64-vm`).
fn config() -> VmConfig {
    let seconds = std::env::var("VIGIL_TEST_DEADLINE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    VmConfig { deadline: Duration::from_secs(seconds), ..VmConfig::default() }
}

fn boot_test_hooks() -> GuardVm {
    GuardVm::boot_elf(guard_image::test_hooks(), config()).expect("boot the test-hooks guard")
}

#[test]
fn ten_thousand_pings_are_answered_by_the_guest() {
    require_kvm!();
    let mut vm = GuardVm::boot_elf(guard_image::production(), config()).expect("boot");
    let mut last_counter = 0;
    let mut last_tsc = 0;
    for i in 0..10_000u32 {
        let len = (i % 300) as usize;
        let payload: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
        let reply = vm.ping(&payload).expect("ping");
        assert_eq!(reply.payload, payload, "ping {i}: payload");
        assert!(reply.counter > last_counter, "ping {i}: counter {} after {last_counter}", reply.counter);
        assert!(reply.tsc >= last_tsc, "ping {i}: tsc went backwards");
        last_counter = reply.counter;
        last_tsc = reply.tsc;
    }
    assert_eq!(last_counter, 10_000);
    let info = vm.info().expect("info");
    assert_eq!(info.requests, 10_001);
    vm.shutdown().expect("shutdown");
}

#[test]
fn a_posted_request_is_answered_once_and_blocks_others_until_taken() {
    require_kvm!();
    let mut vm = GuardVm::boot_elf(guard_image::production(), config()).expect("boot");
    let posted = vm.post(kind::PING, b"first").expect("post");
    // While it is outstanding, neither a post nor a request goes out.
    assert!(matches!(vm.post(kind::PING, b"second"), Err(VmError::RequestOutstanding(_))));
    assert!(matches!(vm.ping(b"third"), Err(VmError::RequestOutstanding(_))));
    let reply = vm.wait(posted).expect("the posted ping is answered");
    assert_eq!(reply.status, status::OK);
    assert!(reply.payload.ends_with(b"first"), "{:?}", reply.payload);
    // Then the guard serves as before: the refused requests were not sent.
    assert_eq!(vm.ping(b"fourth").expect("ping").payload, b"fourth");
    assert_eq!(vm.info().expect("info").requests, 2 + 1);
    vm.shutdown().expect("shutdown");
}

#[test]
fn info_describes_the_guard() {
    require_kvm!();
    let mut vm = GuardVm::boot_elf(guard_image::production(), config()).expect("boot");
    let info = vm.info().expect("info");
    assert_eq!(info.arch, vigil::vmm::GuestArch::HOST.name());
    // Unprivileged: CPL3 on x86_64, EL0 on aarch64.
    let unprivileged = if cfg!(target_arch = "aarch64") { 0 } else { 3 };
    assert_eq!(info.privilege, unprivileged, "the guard must run unprivileged");
    assert_eq!(info.abi_version, vigil_unikernel::abi::ABI_VERSION);
    assert_eq!(info.memory_size, layout::MEMORY_SIZE);
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(info.entropy_sources.contains(&"host-seed"), "{:?}", info.entropy_sources);
    vm.shutdown().expect("shutdown");
}

#[test]
fn console_lines_reach_the_host() {
    require_kvm!();
    let mut vm = GuardVm::boot_elf(guard_image::production(), config()).expect("boot");
    vm.ping(b"x").expect("ping");
    // The banner comes once the guard has made its keys and checked its
    // bundle (seconds where the CPU is emulated), maybe in several writes:
    // wait for the part that names the CPU.
    let banner = if cfg!(target_arch = "aarch64") { "aarch64 el0" } else { "x86_64 cpl3" };
    let deadline = Instant::now() + config().deadline.max(Duration::from_secs(2));
    while !vm.console().iter().any(|l| l.starts_with("vigil guard ") && l.contains(banner)) && Instant::now() < deadline
    {
        vm.ping(b"x").expect("ping");
        std::thread::sleep(Duration::from_millis(5));
    }
    let console = vm.console();
    assert!(console.iter().any(|l| l.starts_with("vigil guard ") && l.contains(banner)), "console: {console:?}");
    // This guard has no bundle: its refusal and its banner, each whole and
    // in the order written (a write that exits when KVM's console ring is
    // full comes after what the ring holds).
    assert!(console.len() >= 2 && console.iter().all(|l| l.starts_with("vigil guard")), "console: {console:?}");
    assert!(console[0].starts_with("vigil guard: policy REFUSED"), "console: {console:?}");
}

#[test]
fn sleeping_guard_is_woken_by_the_next_request() {
    require_kvm!();
    let config = VmConfig { idle_budget: Duration::from_micros(50), ..config() };
    let mut vm = GuardVm::boot_elf(guard_image::production(), config).expect("boot");
    for i in 0..50u8 {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !vm.is_asleep() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(300));
        }
        assert!(vm.is_asleep(), "round {i}: the guard never went to sleep");
        assert_eq!(vm.ping(&[i; 16]).expect("ping after sleep").payload, [i; 16]);
    }
    let info = vm.info().expect("info");
    assert!(info.sleeps >= 50, "guest counted {} sleeps", info.sleeps);
}

#[test]
fn busy_guard_answers_without_exits() {
    require_kvm!();
    let config = VmConfig { idle_budget: Duration::from_millis(200), ..config() };
    let mut vm = GuardVm::boot_elf(guard_image::production(), config).expect("boot");
    vm.ping(&[1; 64]).expect("warm-up");
    let exits = vm.exits();
    for _ in 0..1000 {
        vm.ping(&[1; 64]).expect("ping");
    }
    // A sleep exit may slip in on a loaded machine; the point is that there
    // is not one exit per message.
    assert!(vm.exits() - exits < 10, "{} exits for 1000 pings", vm.exits() - exits);
}

#[test]
fn guest_panic_message_reaches_the_host() {
    require_kvm!();
    let mut vm = boot_test_hooks();
    vm.ping(b"alive").expect("ping");
    match vm.request(kind::TEST_PANIC, &[]) {
        Err(VmError::GuestPanicked { message }) => {
            assert!(message.contains("test hook: panic requested by the host"), "{message}");
            assert!(message.contains("service.rs"), "location missing: {message}");
        }
        other => panic!("expected a guest panic, got {other:?}"),
    }
    assert!(matches!(vm.ping(b"x"), Err(VmError::GuestPanicked { .. })), "a dead guard stays dead");
}

#[test]
fn spinning_guest_hits_the_deadline_and_is_stopped() {
    require_kvm!();
    let mut vm = boot_test_hooks();
    let started = Instant::now();
    let result = vm.request_within(kind::TEST_SPIN, &[], Duration::from_millis(300));
    assert!(matches!(result, Err(VmError::Deadline(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "killing the guard hung");
    assert!(vm.ping(b"x").is_err(), "a killed guard must not answer");
}

fn fault_of(kind: u32, payload: &[u8]) -> vigil::vmm::FaultReport {
    let mut vm = boot_test_hooks();
    match vm.request(kind, payload) {
        Err(VmError::GuestFault(report)) => report,
        other => panic!("expected a fault, got {other:?}"),
    }
}

/// aarch64: the vector of a synchronous exception from EL0, and the
/// exception classes (`ESR_EL1.EC`) the tests expect.
#[cfg(target_arch = "aarch64")]
mod el0 {
    pub const SYNC_FROM_EL0: u8 = 8;
    pub const EC_UNKNOWN: u64 = 0x00;
    pub const EC_DATA_ABORT_EL0: u64 = 0x24;
    pub fn class(esr: Option<u64>) -> u64 {
        esr.map_or(u64::MAX, |e| (e >> 26) & 0x3F)
    }
}

#[test]
fn guest_page_fault_is_reported_with_vector_address_and_rip() {
    require_kvm!();
    let report = fault_of(kind::TEST_FAULT, &[]);
    assert_eq!(report.fault_address, Some(layout::STACK_GUARD), "{report}");
    assert!(report.from_user, "{report}");
    assert!((layout::IMAGE_BASE..layout::IMAGE_END).contains(&report.pc), "{report}");
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(report.vector, 14, "{report}");
        assert_eq!(report.error_code.map(|e| e & 0b111), Some(0b110), "not-present write from user: {report}");
        let text = VmError::GuestFault(report).to_string();
        assert!(text.contains("#PF page fault") && text.contains("ring 3"), "{text}");
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert_eq!(report.vector, el0::SYNC_FROM_EL0, "{report}");
        assert_eq!(el0::class(report.error_code), el0::EC_DATA_ABORT_EL0, "{report}");
        // ISS: a write (WnR, bit 6), a translation fault (DFSC 0b0001xx).
        let iss = report.error_code.unwrap_or(0);
        assert!(iss & (1 << 6) != 0 && iss & 0x3C == 0x04, "{report}");
        assert!(VmError::GuestFault(report).to_string().contains("data abort from EL0"));
    }
}

/// What the guard must not be able to write: its system region (tables,
/// descriptors, vectors), its own code, its boot info.
#[cfg(target_arch = "x86_64")]
const PROTECTED: [u64; 5] = [0x5000, 0x7000, layout::IMAGE_BASE, layout::BOOT_INFO, 0x1000];
#[cfg(target_arch = "aarch64")]
const PROTECTED: [u64; 6] = [0x1000, 0x2000, 0x3000, 0x8000, layout::IMAGE_BASE, layout::BOOT_INFO];

#[test]
fn guard_cannot_write_system_tables_or_its_own_code() {
    require_kvm!();
    // x86_64: GDT page (supervisor), IDT page, PML4; aarch64: the L1, L2
    // and L3 tables and the vectors. Both: the image's text, boot info.
    for address in PROTECTED {
        let report = fault_of(kind::TEST_FAULT, &address.to_le_bytes());
        #[cfg(target_arch = "x86_64")]
        assert_eq!(report.vector, 14, "{address:#x}: {report}");
        #[cfg(target_arch = "aarch64")]
        assert_eq!(el0::class(report.error_code), el0::EC_DATA_ABORT_EL0, "{address:#x}: {report}");
        assert_eq!(report.fault_address, Some(address), "{report}");
        assert!(report.from_user, "{report}");
    }
}

#[test]
fn invalid_opcode_and_forbidden_port_are_reported() {
    require_kvm!();
    let report = fault_of(kind::TEST_TRAP, &[]);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(report.vector, 6, "{report}");
    #[cfg(target_arch = "aarch64")]
    assert_eq!((report.vector, el0::class(report.error_code)), (el0::SYNC_FROM_EL0, el0::EC_UNKNOWN), "{report}");
    assert!(report.symbol.is_some(), "pc should be symbolized: {report}");
    #[cfg(target_arch = "x86_64")]
    {
        let report = fault_of(kind::TEST_FORBIDDEN_PORT, &[]);
        assert_eq!(report.vector, 13, "port 0x80 must not be granted to ring 3: {report}");
    }
    // aarch64: a store to an MMIO address that is no register ends the VM.
    #[cfg(target_arch = "aarch64")]
    {
        let mut vm = boot_test_hooks();
        match vm.request(kind::TEST_FORBIDDEN_PORT, &[]) {
            Err(VmError::GuestProtocol(message)) => assert!(message.contains("MMIO address 0x9003000"), "{message}"),
            other => panic!("expected a refused MMIO write, got {other:?}"),
        }
    }
}

#[test]
fn reply_longer_than_the_mailbox_is_refused() {
    require_kvm!();
    let mut vm = boot_test_hooks();
    match vm.request(kind::TEST_BAD_REPLY, &[]) {
        Err(VmError::GuestProtocol(message)) => assert!(message.contains("exceeds the capacity"), "{message}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn production_image_refuses_test_hooks() {
    require_kvm!();
    let mut vm = GuardVm::boot_elf(guard_image::production(), config()).expect("boot");
    for hook in [kind::TEST_PANIC, kind::TEST_FAULT, kind::TEST_SPIN, kind::TEST_TRAP, kind::TEST_BAD_REPLY] {
        let response = vm.request(hook, &[]).expect("request");
        assert_eq!(response.status, status::UNKNOWN_KIND, "hook {hook:#x}");
    }
    vm.ping(b"still alive").expect("ping");
}

#[test]
fn oversized_and_malformed_requests_get_errors_and_the_guard_lives_on() {
    require_kvm!();
    let mut vm = GuardVm::boot_elf(guard_image::production(), config()).expect("boot");
    let too_big = vec![0; vigil_unikernel::abi::mailbox::REQUEST_CAPACITY + 1];
    assert!(matches!(vm.ping(&too_big), Err(VmError::RequestTooLarge { .. })));
    assert_eq!(vm.request(kind::INFO, b"junk").expect("request").status, status::MALFORMED);
    assert_eq!(vm.request(0xFFFF_FFFF, &[]).expect("request").status, status::UNKNOWN_KIND);
    // The largest ping that fits the response area.
    let biggest = vec![7; vigil_unikernel::abi::mailbox::RESPONSE_CAPACITY - 16];
    assert_eq!(vm.ping(&biggest).expect("largest ping").payload.len(), biggest.len());
    let too_big_reply = vec![7; vigil_unikernel::abi::mailbox::RESPONSE_CAPACITY];
    assert_eq!(vm.request(kind::PING, &too_big_reply).expect("request").status, status::TOO_LARGE);
    vm.ping(b"ok").expect("ping");
}

#[test]
fn shutdown_ends_the_vm() {
    require_kvm!();
    let mut vm = GuardVm::boot_elf(guard_image::production(), config()).expect("boot");
    vm.ping(b"x").expect("ping");
    vm.shutdown().expect("shutdown");
}

#[test]
fn many_guards_boot_one_after_another() {
    require_kvm!();
    let template = vigil::vmm::BootTemplate::from_elf(guard_image::production()).expect("image");
    for i in 0..30u8 {
        let mut vm = GuardVm::boot(&template, config()).expect("boot");
        assert_eq!(vm.ping(&[i]).expect("ping").counter, 1);
        if i % 2 == 0 {
            vm.shutdown().expect("shutdown");
        } // odd ones are dropped: killed
    }
}
