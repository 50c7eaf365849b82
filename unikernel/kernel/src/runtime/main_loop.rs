//! The guard's main loop, the same on every architecture: boot info,
//! entropy, the exitless mailbox and the panic path. What differs per CPU
//! is behind `crate::arch::cpu`.

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::mailbox::Mailbox;
use crate::abi::{self, boot_info, hypercall, layout, mailbox as mb, status};
use crate::arch::cpu;
use crate::entropy::EntropyPool;
use crate::judging::Judging;
use crate::platform::{AttestRequest, Platform};
use crate::service::{BootFacts, Next, Service};

/// Mailbox base once boot info has been validated (0 before): the panic
/// handler reports through it.
static MAILBOX_BASE: AtomicUsize = AtomicUsize::new(0);

/// Guard-private copy of the current request payload. Not zeroed at boot
/// (a `.bss.uninit` section): only the bytes of the current request are
/// ever read, right after they are written.
#[unsafe(link_section = ".bss.uninit.request")]
static REQUEST_COPY: RequestScratch = RequestScratch(UnsafeCell::new(MaybeUninit::uninit()));

/// The request scratch buffer; `run` takes the only reference to it.
struct RequestScratch(UnsafeCell<MaybeUninit<[u8; mb::REQUEST_CAPACITY]>>);

// SAFETY: the guard is single-threaded and `run` (which never returns) is the
// only code that touches the buffer.
unsafe impl Sync for RequestScratch {}

/// Memory the judge is lent for dense copies of the bundle's sparse DFAs
/// (`vigil_guard::dense`). Not zeroed at boot: a section (`.sbss.dense`,
/// uninitialised like `.bss`) the linker scripts put on a 2 MiB page of its
/// own, past everything a boot touches; [`lend_dense_arena`] zeroes it
/// when the copies start, once a channel is open and the guard is idle.
#[unsafe(link_section = ".sbss.dense")]
static DENSE_ARENA: DenseArena = DenseArena(UnsafeCell::new(MaybeUninit::uninit()));

/// The dense-copy memory; [`lend_dense_arena`] takes the only reference.
/// Page-aligned: the copies' rows start where the arena does.
#[repr(C, align(4096))]
struct DenseArena(UnsafeCell<MaybeUninit<[u8; vigil_guard::dense::DEFAULT_ARENA_LEN]>>);

// SAFETY: the guard is single-threaded and `lend_dense_arena` hands out the
// only reference to the buffer, once.
unsafe impl Sync for DenseArena {}

/// Whether [`DENSE_ARENA`] has been lent.
static DENSE_ARENA_LENT: AtomicBool = AtomicBool::new(false);

/// The dense-copy memory, zeroed: all of it the first time, nothing after.
fn lend_dense_arena() -> &'static mut [u8] {
    if DENSE_ARENA_LENT.swap(true, Ordering::Relaxed) {
        return &mut [];
    }
    let start = DENSE_ARENA.0.get().cast::<u8>();
    let len = vigil_guard::dense::DEFAULT_ARENA_LEN;
    // SAFETY: `start` is the guard's own static buffer of `len` bytes,
    // mapped read-write (data segment); `write_bytes` initialises every
    // byte before the slice is made, and the flag above makes this the
    // only reference ever taken to it (one thread).
    unsafe {
        core::ptr::write_bytes(start, 0, len);
        core::slice::from_raw_parts_mut(start, len)
    }
}

/// How many spins between two TSC reads while idle.
const SPINS_PER_CHECK: u32 = 64;

/// Words drawn from each CPU entropy source at boot.
const ENTROPY_WORDS: usize = 4;
// Two sources at most (RDSEED and RDRAND; RNDR): the pool holds them all.
const _: () = assert!(2 * ENTROPY_WORDS <= crate::entropy::MAX_WORDS);

/// Validated boot info.
struct BootInfo {
    flags: u32,
    memory_size: u64,
    mailbox: usize,
    idle_ticks: u64,
    host_seed: [u8; 32],
    policy_len: usize,
    checkpoint_interval: u64,
}

impl BootInfo {
    /// Reads and checks the boot info page. Returns a static reason when it
    /// is not what this guard understands.
    fn read(address: usize) -> Result<Self, &'static str> {
        if address != layout::BOOT_INFO as usize {
            return Err("boot info is not at the ABI address");
        }
        // SAFETY: the ABI maps the boot info page user-readable at this
        // address; offsets are constants within it.
        let page = unsafe { core::slice::from_raw_parts(address as *const u8, boot_info::LEN) };
        let u64_at = |at: usize| u64::from_le_bytes(page[at..at + 8].try_into().unwrap_or_default());
        let u32_at = |at: usize| u32::from_le_bytes(page[at..at + 4].try_into().unwrap_or_default());
        if u64_at(boot_info::MAGIC) != abi::BOOT_INFO_MAGIC {
            return Err("boot info magic is wrong");
        }
        if u32_at(boot_info::VERSION) != abi::ABI_VERSION {
            return Err("boot info ABI version is not the guard's");
        }
        if u64_at(boot_info::MAILBOX_ADDR) != layout::MAILBOX_BASE
            || u64_at(boot_info::MAILBOX_SIZE) != layout::MAILBOX_SIZE
        {
            return Err("mailbox is not where the ABI puts it");
        }
        let policy_addr = u64_at(boot_info::POLICY_ADDR);
        let policy_len = u64_at(boot_info::POLICY_LEN);
        if policy_len > layout::POLICY_MAX || (policy_len != 0 && policy_addr != layout::POLICY_BASE) {
            return Err("policy bundle is not where the ABI puts it");
        }
        let mut host_seed = [0; 32];
        host_seed.copy_from_slice(&page[boot_info::HOST_SEED..boot_info::HOST_SEED + 32]);
        Ok(BootInfo {
            flags: u32_at(boot_info::FLAGS),
            memory_size: u64_at(boot_info::MEMORY_SIZE),
            mailbox: layout::MAILBOX_BASE as usize,
            idle_ticks: u64_at(boot_info::IDLE_TSC_TICKS),
            host_seed,
            policy_len: policy_len as usize,
            checkpoint_interval: u64_at(boot_info::CHECKPOINT_INTERVAL),
        })
    }
}

/// The CPU (and the VMM behind the hypercall port) as the request handler
/// sees it.
struct Cpu<'m> {
    mailbox: &'m mut Mailbox,
}

impl Platform for Cpu<'_> {
    fn tsc(&mut self) -> u64 {
        cpu::tsc()
    }
    fn attest(&mut self, request: &AttestRequest<'_>, out: &mut [u8]) -> Option<usize> {
        self.mailbox.write_attest_request(request);
        cpu::hypercall(hypercall::ATTEST);
        self.mailbox.read_evidence(out)
    }
    fn write_to(&mut self, address: u64) -> ! {
        cpu::write_to(address)
    }
    fn trap(&mut self) -> ! {
        cpu::trap()
    }
    fn forbidden_port(&mut self) -> ! {
        cpu::forbidden_port()
    }
}

/// Console output through COM1, formatted in a small stack buffer so that a
/// line costs one string-I/O exit.
struct Console {
    buf: [u8; 128],
    len: usize,
}

impl Console {
    fn new() -> Self {
        Console { buf: [0; 128], len: 0 }
    }
    fn flush(&mut self) {
        cpu::console_write(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &byte in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = byte;
            self.len += 1;
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Draws the boot entropy: the host seed and the CPU's generators (each
/// tried only if boot info says the vCPU has it; a generator that keeps
/// failing is not counted). Hashed into the seed when the keys are made.
fn gather_entropy(boot: &BootInfo) -> EntropyPool {
    let mut pool = EntropyPool::new(&boot.host_seed);
    cpu::draw_entropy(&mut pool, boot.flags, ENTROPY_WORDS);
    pool
}

/// Entry from `_start`, unprivileged (CPL3, EL0) with `.bss` zeroed.
pub fn run(boot_info_address: usize) -> ! {
    let boot_tsc = cpu::tsc();
    let boot = match BootInfo::read(boot_info_address) {
        Ok(boot) => boot,
        Err(reason) => {
            let _ = writeln!(Console::new(), "vigil guard: fatal: {reason}");
            cpu::hypercall(hypercall::PANIC);
            cpu::trap()
        }
    };
    MAILBOX_BASE.store(boot.mailbox, Ordering::Release);
    // SAFETY: boot info named the ABI's mailbox region, mapped user RW.
    let mut mailbox = unsafe { Mailbox::new(boot.mailbox) };
    mailbox.set_guest_abi(abi::ABI_VERSION);

    let pool = gather_entropy(&boot);
    let entropy_bits = pool.sources();
    // SAFETY: boot info was checked: the bundle lies in the policy region,
    // which the ABI maps user read-only for the guard's lifetime.
    let policy: &'static [u8] =
        unsafe { core::slice::from_raw_parts(layout::POLICY_BASE as usize as *const u8, boot.policy_len) };
    // Keys and bundle validation wait for the first request that needs
    // them, or for idle time after the first request (see the loop).
    let judging = Judging::from_entropy(pool, policy, boot.checkpoint_interval).lending_dense_arena(lend_dense_arena);

    let mut service = Service::new(
        BootFacts {
            arch: cpu::ARCH,
            privilege: cpu::PRIVILEGE,
            entropy: entropy_bits,
            memory_size: boot.memory_size,
            boot_tsc,
        },
        judging,
    );
    // The response area is written through a separate mailbox handle: the
    // attestation hypercall uses the mailbox's other areas meanwhile.
    // SAFETY: same region as `mailbox`; the two handles touch disjoint areas
    // (response payload vs. control/attest/evidence/headers).
    let mut responder = unsafe { Mailbox::new(boot.mailbox) };
    // SAFETY: the only reference to REQUEST_COPY is taken here, once.
    let request_copy = unsafe { &mut *REQUEST_COPY.0.get() };

    // Sequence numbers start at 0: the first request is 1 (it may already be
    // posted while the guard boots).
    let mut last = 0;
    mailbox.set_seen(last);
    let mut idle_since = cpu::tsc();
    let mut spins: u32 = 0;
    let mut announced = false;
    let mut greeted = false;
    let mut densifying = true;
    loop {
        let seq = mailbox.request_seq();
        if seq != last {
            let (kind, len) = mailbox.request_header();
            let next = if len > mb::REQUEST_CAPACITY {
                mailbox.respond(seq, status::BAD_LENGTH, 0);
                Next::Serve
            } else {
                let request = mailbox.copy_request(request_copy, len);
                let (reply, next) =
                    service.handle(kind, request, responder.response_area(), &mut Cpu { mailbox: &mut mailbox });
                // A request that needed the bundle checked it: say how
                // before answering it.
                if !announced && service.judging().is_policy_checked() {
                    announce(&mut service);
                    announced = true;
                }
                mailbox.respond(seq, reply.status, reply.len);
                next
            };
            last = seq;
            mailbox.set_seen(last);
            if next == Next::Shutdown {
                cpu::hypercall(hypercall::SHUTDOWN);
                cpu::trap()
            }
            idle_since = cpu::tsc();
            spins = 0;
            continue;
        }
        if announced && !greeted {
            // The banner waits for the first idle moment once the keys are
            // made and the bundle checked: writing it costs an exit, which
            // neither the first answer nor the attested start waits for.
            greet(entropy_bits, boot.policy_len);
            greeted = true;
            continue;
        }
        if greeted && densifying && service.judging().has_channel() {
            // Then, once a channel is open (the attested start never waits
            // for them), one DFA per idle step, the dense copies of the
            // bundle's tables (a request waits for one copy at most).
            densifying = service.densify_step();
            idle_since = cpu::tsc();
            continue;
        }
        if last != 0 && !announced {
            // Idle after the first request (the host's first ping is
            // answered at once): make the keys, then check the bundle one
            // bounded step at a time, so that requests are answered between
            // steps (one that needs the keys or the bundle finishes that
            // part first). Then say whether the policy was refused.
            if service.prepare_step() {
                announce(&mut service);
                announced = true;
            }
            idle_since = cpu::tsc();
            continue;
        }
        core::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(SPINS_PER_CHECK) && cpu::tsc().wrapping_sub(idle_since) > boot.idle_ticks {
            // Publish what we have seen, then look once more: the host stores
            // the request word before it checks whether we sleep, so one of
            // the two sides sees the other (both accesses are SeqCst).
            mailbox.set_seen_seqcst(last);
            if mailbox.request_seq_seqcst() == last {
                cpu::hypercall(hypercall::SLEEP);
                service.note_sleep();
            }
            idle_since = cpu::tsc();
        }
    }
}

/// The boot banner: version, CPU and privilege, ABI, entropy sources, the
/// bundle's size.
fn greet(entropy_bits: u32, policy_len: usize) {
    let mut console = Console::new();
    let _ = write!(console, "vigil guard {} {} abi {} entropy", crate::VERSION, cpu::NAME, abi::ABI_VERSION);
    for name in abi::entropy_source_names(entropy_bits) {
        let _ = write!(console, " {name}");
    }
    let _ = writeln!(console, " policy {} bytes", policy_len);
}

/// Says on the console whether the checked bundle was refused.
fn announce(service: &mut Service<'_>) {
    if let Some(e) = service.policy_error() {
        let _ = writeln!(Console::new(), "vigil guard: policy REFUSED ({}): judging disabled", e.as_str());
    }
}

/// Bounded writer into a byte buffer, cutting at a char boundary.
struct PanicText<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for PanicText<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// The panic path: message and location to the mailbox's panic area and the
/// console, then the `PANIC` hypercall. The host ends the VM.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    static PANICKING: AtomicBool = AtomicBool::new(false);
    if PANICKING.swap(true, Ordering::SeqCst) {
        cpu::trap()
    }
    let mut buf = [0u8; 512];
    let mut text = PanicText { buf: &mut buf, len: 0 };
    match info.location() {
        Some(at) => {
            let _ = write!(text, "{} at {}:{}:{}", info.message(), at.file(), at.line(), at.column());
        }
        None => {
            let _ = write!(text, "{}", info.message());
        }
    }
    let len = text.len;
    let base = MAILBOX_BASE.load(Ordering::Acquire);
    if base != 0 {
        // SAFETY: set only after boot info named the mailbox region.
        let mailbox = unsafe { Mailbox::new(base) };
        mailbox.set_panic_message(&buf[..len]);
    }
    cpu::console_write(b"vigil guard panicked: ");
    cpu::console_write(&buf[..len]);
    cpu::console_write(b"\n");
    cpu::hypercall(hypercall::PANIC);
    cpu::trap()
}
