//! The guard VM monitor: boots the guard unikernel under KVM (Linux) or
//! Hypervisor.framework (macOS on Apple Silicon) and talks to it through
//! the mailbox (docs/guest-abi.md).
//!
//! - [`image`]: ELF validation and measurement;
//! - [`x86_64`], [`aarch64`]: what the VMM builds for each architecture
//!   (translation tables, vectors or descriptor tables, register values)
//!   and the decoding of what the guest reports;
//! - [`memory`]: guest RAM;
//! - [`hypervisor`]: the one interface of a back end, and the vCPU thread;
//!   `kvm` and `hvf` implement it: create the VM, run the vCPU and decode
//!   each exit into a [`exits::GuestExit`]; [`backend`] picks the host's;
//! - [`thread_placement`]: keeping the vCPU thread off the client's core;
//! - [`exits`]: what the VMM does with an exit (hypercalls, faults, stops),
//!   whatever the hypervisor; [`shared`]: the state the client and the vCPU
//!   thread share;
//! - [`attestation`]: measurements and the `ATTEST` hypercall;
//! - [`console`]: the guest's serial console; [`guest_text`]: escaping what
//!   the guest wrote before anyone sees it.
//!
//! A [`GuardVm`] is one booted guard. [`GuardVm::request`] posts a request
//! through shared memory and waits for the answer without any VM exit while
//! the guard is busy polling; a sleeping guard is woken. Every request has a
//! deadline; a guard that misses it is killed.
//!
//! This crate holds all of the host's `unsafe` code (KVM ioctls, guest
//! memory); each block says why it is sound in a `// SAFETY:` line.

// A library reports through `tracing` and its return values; it never prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod aarch64;
pub mod attestation;
pub mod backend;
pub mod console;
pub mod counters;
pub mod exits;
pub mod guest_text;
#[cfg(all(target_os = "macos", target_arch = "aarch64"))]
pub mod hvf;
pub mod hypervisor;
pub mod image;
#[cfg(target_os = "linux")]
pub mod kvm;
pub mod memory;
pub mod pmu;
pub mod shared;
pub mod thread_placement;
pub mod x86_64;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vigil_abi::{self as abi, boot_info, info, kind, layout, mailbox, ping, status};

pub use attestation::{BootMeasurements, PlatformSigner, PolicyImage};
use hypervisor::{Kick, MadeVm, VcpuFacts, VcpuStart};
pub use image::{GuestArch, GuestImage, ImageError};
use memory::GuestMemory;
use shared::Shared;

/// Why a VM operation failed. Each message says what happened and, where
/// the user can do something, what.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The hypervisor (`/dev/kvm`, Hypervisor.framework) cannot be used.
    #[error("{hypervisor} is not available: {message}. {hint}")]
    HypervisorUnavailable {
        /// Which: `KVM`, `Hypervisor.framework`.
        hypervisor: &'static str,
        /// The OS error.
        message: String,
        /// How to fix it.
        hint: &'static str,
    },
    /// A hypervisor call (a KVM ioctl) failed.
    #[error("{what} failed: {source}")]
    Hypervisor {
        /// The call.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Guest memory could not be allocated.
    #[error("allocating guest memory failed: {0}")]
    Memory(std::io::Error),
    /// The image was refused.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A request was made while an earlier posted one was not yet waited
    /// for (a caller's mistake; nothing was sent).
    #[error("request {0} is still outstanding: wait for its answer first")]
    RequestOutstanding(u64),
    /// The guard did not answer in time and was killed.
    #[error("the guard did not answer within {0:?} and was stopped")]
    Deadline(Duration),
    /// The guard panicked.
    #[error("the guard panicked: {message}")]
    GuestPanicked {
        /// Message and location from the guard.
        message: String,
    },
    /// A CPU exception in the guard.
    #[error("the guard faulted: {0}")]
    GuestFault(FaultReport),
    /// Triple fault.
    #[error("the guard triple-faulted (KVM_EXIT_SHUTDOWN) at pc {pc:#x}")]
    TripleFault {
        /// Guest RIP.
        pc: u64,
    },
    /// KVM could not emulate something.
    #[error("KVM_EXIT_INTERNAL_ERROR at guest pc {pc:#x}")]
    InternalError {
        /// Guest RIP.
        pc: u64,
    },
    /// The vCPU could not enter the guest.
    #[error("KVM_EXIT_FAIL_ENTRY (hardware reason {reason:#x}): the vCPU state was refused")]
    FailEntry {
        /// Hardware entry failure reason.
        reason: u64,
    },
    /// An exit the VMM does not expect.
    #[error("unexpected VM exit {exit} at guest pc {pc:#x}")]
    UnexpectedExit {
        /// The exit.
        exit: String,
        /// Guest RIP.
        pc: u64,
    },
    /// The guard broke the mailbox protocol.
    #[error("the guard broke the mailbox protocol: {0}")]
    GuestProtocol(String),
    /// The guard stopped after a `Shutdown` request.
    #[error("the guard has shut down")]
    GuestShutDown,
    /// The VM was stopped by the host.
    #[error("the guard VM was stopped")]
    Stopped,
    /// A request larger than the mailbox.
    #[error("request of {len} bytes exceeds the mailbox capacity of {capacity} bytes")]
    RequestTooLarge {
        /// Request length.
        len: usize,
        /// Capacity.
        capacity: usize,
    },
    /// A reply with a non-OK status.
    #[error("the guard refused the request: status {0} ({name})", name = status_name(*.0))]
    Status(u32),
    /// The operating system's random generator failed.
    #[error("the operating system's random generator failed: {0}")]
    Entropy(String),
    /// The vCPU thread could not be started.
    #[error("starting the vCPU thread failed: {0}")]
    Thread(std::io::Error),
    /// The policy bundle does not fit the guest's policy region.
    #[error("the policy bundle is {len} bytes; the guard's policy region holds at most {capacity} bytes")]
    PolicyTooLarge {
        /// Bundle length.
        len: usize,
        /// Region size.
        capacity: u64,
    },
}

/// Name of a mailbox status code.
pub fn status_name(code: u32) -> &'static str {
    match code {
        status::OK => "ok",
        status::UNKNOWN_KIND => "unknown request kind",
        status::BAD_LENGTH => "bad length",
        status::MALFORMED => "malformed",
        status::TOO_LARGE => "reply too large",
        status::NO_EVIDENCE => "the VMM gave no evidence",
        status::CHANNEL_FAILED => "the channel failed and was closed",
        status::NO_POLICY => "the guard has no valid policy",
        _ => "unknown status",
    }
}

/// A CPU exception reported by a fault stub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultReport {
    /// Exception vector.
    pub vector: u8,
    /// Its name.
    pub name: &'static str,
    /// Error code, for vectors that push one.
    pub error_code: Option<u64>,
    /// Faulting instruction (the program counter: RIP on x86_64).
    pub pc: u64,
    /// Whether the fault came from the guard's unprivileged level (ring 3
    /// on x86_64) — otherwise from the privileged stubs.
    pub from_user: bool,
    /// Stack pointer at the fault.
    pub sp: u64,
    /// The faulting data address, for memory faults (CR2 on x86_64).
    pub fault_address: Option<u64>,
    /// `symbol+offset` of `pc`, when the image has symbols.
    pub symbol: Option<String>,
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (vector {})", self.name, self.vector)?;
        if let Some(code) = self.error_code {
            write!(f, ", error code {code:#x}")?;
        }
        if let Some(address) = self.fault_address {
            write!(f, ", address {address:#x}")?;
        }
        write!(f, " at pc {:#x}", self.pc)?;
        if let Some(symbol) = &self.symbol {
            write!(f, " ({symbol})")?;
        }
        write!(f, " in ring {}", if self.from_user { 3 } else { 0 })
    }
}

/// How to run a guard.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// How long a request may take before the guard is killed.
    pub deadline: Duration,
    /// How long the guard polls an idle mailbox before it sleeps.
    pub idle_budget: Duration,
    /// The policy bundle loaded into the guard (measured); without one the
    /// guard judges nothing.
    pub policy: Option<PolicyImage>,
    /// The platform key for the `ATTEST` hypercall; without one the guard
    /// gets no evidence.
    pub platform: Option<PlatformSigner>,
    /// The guard signs a checkpoint after this many verdicts.
    pub checkpoint_interval: u64,
}

/// The guard's default checkpoint interval (defined by the guest ABI).
pub use vigil_abi::DEFAULT_CHECKPOINT_INTERVAL;

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            deadline: Duration::from_secs(2),
            idle_budget: Duration::from_millis(1),
            policy: None,
            platform: None,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

/// A decoded `Ping` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingReply {
    /// Pings served by this guard so far.
    pub counter: u64,
    /// The guest's TSC when it served the ping.
    pub tsc: u64,
    /// The payload sent back.
    pub payload: Vec<u8>,
}

/// A decoded `Info` reply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuestInfo {
    /// Guest ABI version.
    pub abi_version: u32,
    /// Architecture name.
    pub arch: &'static str,
    /// Entropy sources that delivered.
    pub entropy_sources: Vec<&'static str>,
    /// Privilege level (3 = CPL3).
    pub privilege: u32,
    /// Memory size the guest was told.
    pub memory_size: u64,
    /// Guest TSC at boot.
    pub boot_tsc: u64,
    /// Requests served (including this one).
    pub requests: u64,
    /// Sleep hypercalls made.
    pub sleeps: u64,
    /// Bytes of dense copies of the bundle's tables the judge has made.
    pub dense_bytes: u64,
    /// Image version.
    pub version: String,
}

/// What the boot info page says besides the vCPU's facts.
#[derive(Clone, Copy, Debug)]
struct BootInfoInput {
    idle_budget: Duration,
    policy_len: Option<usize>,
    checkpoint_interval: u64,
}

impl BootInfoInput {
    fn of(config: &VmConfig) -> Self {
        BootInfoInput {
            idle_budget: config.idle_budget,
            policy_len: config.policy.as_ref().map(|p| p.bytes().len()),
            checkpoint_interval: config.checkpoint_interval,
        }
    }
}

/// Fills the boot info page.
fn write_boot_info(memory: &GuestMemory, config: BootInfoInput, facts: VcpuFacts) -> Result<(), VmError> {
    let mut page = [0u8; boot_info::LEN];
    let mut put = |at: usize, bytes: &[u8]| page[at..at + bytes.len()].copy_from_slice(bytes);
    let flags = facts.entropy_flags;
    let tsc_khz = facts.counter_khz;
    // Without a known TSC rate assume 3 GHz: only the idle budget depends on it.
    let khz = u64::from(tsc_khz.unwrap_or(3_000_000));
    let idle_ticks = (config.idle_budget.as_micros() as u64).saturating_mul(khz) / 1000;
    put(boot_info::MAGIC, &abi::BOOT_INFO_MAGIC.to_le_bytes());
    put(boot_info::VERSION, &abi::ABI_VERSION.to_le_bytes());
    put(boot_info::FLAGS, &flags.to_le_bytes());
    put(boot_info::MEMORY_SIZE, &layout::MEMORY_SIZE.to_le_bytes());
    put(boot_info::MAILBOX_ADDR, &layout::MAILBOX_BASE.to_le_bytes());
    put(boot_info::MAILBOX_SIZE, &layout::MAILBOX_SIZE.to_le_bytes());
    put(boot_info::IDLE_TSC_TICKS, &idle_ticks.to_le_bytes());
    put(boot_info::TSC_KHZ, &u64::from(tsc_khz.unwrap_or(0)).to_le_bytes());
    put(boot_info::HOST_SEED, &host_seed()?);
    if let Some(len) = config.policy_len {
        put(boot_info::POLICY_ADDR, &layout::POLICY_BASE.to_le_bytes());
        put(boot_info::POLICY_LEN, &(len as u64).to_le_bytes());
    }
    put(boot_info::CHECKPOINT_INTERVAL, &config.checkpoint_interval.max(1).to_le_bytes());
    memory.write(layout::BOOT_INFO, &page).map_err(|e| VmError::GuestProtocol(e.to_string()))
}

/// 32 bytes from the operating system's CSPRNG (`getrandom(2)` on Linux,
/// `getentropy` on macOS).
fn host_seed() -> Result<[u8; 32], VmError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| VmError::Entropy(e.to_string()))?;
    Ok(seed)
}

/// 16 random bytes naming one boot.
fn random_boot_id() -> Result<[u8; 16], VmError> {
    let seed = host_seed()?;
    let mut id = [0u8; 16];
    id.copy_from_slice(&seed[..16]);
    Ok(id)
}

/// What the vCPU thread reports once its vCPU exists: how to kick it, and
/// the thread's kernel id (for its counters).
type Created = (Box<dyn Kick>, Option<i32>);

/// Waits for the vCPU thread to report its vCPU created (or not).
fn wait_for_vcpu(created: &std::sync::mpsc::Receiver<Result<Created, VmError>>) -> Result<Created, VmError> {
    wait_spinning(created).unwrap_or_else(|| {
        Err(VmError::Thread(std::io::Error::other("the vCPU thread ended before it created the vCPU")))
    })
}

/// The next message on `channel`, `None` once its sender is gone: one
/// thread of a boot waiting for the other.
///
/// It yields in a loop for the first milliseconds rather than sleep: a
/// thread woken by the vCPU thread tends to be queued on the waker's core
/// (the scheduler's wake-affine placement), behind a vCPU that then runs
/// the guest's boot for a whole time slice; and it yields rather than spin
/// so that the new thread, which starts on this core, gets to move itself
/// to another (`thread_placement`). Measured on this 2-core machine: a
/// blocking wait added 0.7 ms to the first answered ping, a pure spin
/// 7 ms; yielding costs nothing measurable. The vCPU thread waits the same
/// way for the VM the booting thread makes: a blocked thread would wait
/// for a wake-up across cores.
fn wait_spinning<T>(channel: &std::sync::mpsc::Receiver<T>) -> Option<T> {
    use std::sync::mpsc::TryRecvError;
    let spinning = Instant::now();
    while spinning.elapsed() < Duration::from_millis(20) {
        match channel.try_recv() {
            Ok(message) => return Some(message),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    channel.recv().ok()
}

/// The ranges the guest can write (docs/guest-abi.md §1–§2): the image's
/// writable pages, the stack and the mailbox; and the system region, whose
/// page-table bits the CPU may set.
fn guest_writable(image: &GuestImage) -> Vec<(u64, usize)> {
    guest_writable_pages(image.pages())
}

fn guest_writable_pages(pages: &[image::PagePermissions; image::WINDOW_PAGES]) -> Vec<(u64, usize)> {
    let mut ranges = vec![
        (layout::SYSTEM_BASE, abi::LARGE_PAGE as usize),
        (layout::STACK_BASE, (layout::STACK_TOP - layout::STACK_BASE) as usize),
        (layout::MAILBOX_BASE, layout::MAILBOX_SIZE as usize),
    ];
    for (i, page) in pages.iter().enumerate() {
        if page.present && page.write {
            ranges.push((layout::IMAGE_BASE + i as u64 * abi::LARGE_PAGE, abi::LARGE_PAGE as usize));
        }
    }
    ranges
}

/// A prepared image: validated, with the system region built once.
#[derive(Clone, Debug)]
pub struct BootTemplate {
    image: Arc<GuestImage>,
    system: Arc<Vec<u8>>,
}

impl BootTemplate {
    /// Prepares an image for booting any number of VMs.
    pub fn new(image: GuestImage) -> Self {
        #[cfg(target_arch = "aarch64")]
        let system = aarch64::system_region(image.pages());
        #[cfg(not(target_arch = "aarch64"))]
        let system = x86_64::system_region(image.pages());
        BootTemplate { image: Arc::new(image), system: Arc::new(system) }
    }

    /// Validates, measures and prepares an ELF image.
    pub fn from_elf(bytes: &[u8]) -> Result<Self, ImageError> {
        Ok(Self::new(GuestImage::from_elf(bytes)?))
    }

    /// The image.
    pub fn image(&self) -> &GuestImage {
        &self.image
    }
}

/// One booted guard.
pub struct GuardVm {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    kicker: Box<dyn Kick>,
    vcpu_tid: Option<i32>,
    config: VmConfig,
    next_seq: u64,
    /// The sequence number of a posted request not yet waited for.
    outstanding: Option<u64>,
}

/// A request posted with [`GuardVm::post`], not yet answered: pass it to
/// [`GuardVm::wait`].
#[must_use = "a posted request must be waited for: no other can be made before"]
#[derive(Debug)]
pub struct Posted {
    seq: u64,
    started: Instant,
    deadline: Duration,
}

impl GuardVm {
    /// Boots a guard from a prepared template.
    pub fn boot(template: &BootTemplate, config: VmConfig) -> Result<Self, VmError> {
        let platform = backend::host()?;
        if let Some(policy) = &config.policy
            && policy.bytes().len() as u64 > layout::POLICY_MAX
        {
            return Err(VmError::PolicyTooLarge { len: policy.bytes().len(), capacity: layout::POLICY_MAX });
        }
        let memory = GuestMemory::for_guard(layout::MEMORY_SIZE as usize).map_err(VmError::Memory)?;
        // What the guest may write (its writable mappings) is zeroed before
        // the memory serves another guard.
        for (start, len) in guest_writable(&template.image) {
            memory.mark_guest_writable(start, len);
        }
        let oob = |e: memory::OutOfBounds| VmError::GuestProtocol(e.to_string());
        // The system region first: a backend may rewrite it while it
        // creates the vCPU (Hypervisor.framework places it).
        memory.write(0, &template.system).map_err(oob)?;
        let attestation = attestation::AttestationContext {
            signer: config.platform.clone(),
            measurements: BootMeasurements::new(
                template.image.measurement(),
                config.policy.as_ref(),
                config.checkpoint_interval.max(1),
            ),
            boot_id: random_boot_id()?,
            policy_signer: config.policy.as_ref().and_then(|p| p.signer().copied()),
            features: template.image.features().to_vec(),
            arch: GuestArch::HOST.name(),
            hypervisor: platform.name(),
        };
        let shared = Arc::new(Shared {
            memory,
            image: template.image.clone(),
            posted: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleeps: AtomicU64::new(0),
            exits: AtomicU64::new(0),
            ended: OnceLock::new(),
            wake_lock: Mutex::new(()),
            wake: Condvar::new(),
            console: Mutex::new(Default::default()),
            attestation,
        });
        // The vCPU is created on the thread that runs it (as
        // Hypervisor.framework requires). Where the backend lets any thread
        // make the VM (KVM), this thread makes it while the vCPU thread
        // starts and moves to its core, and then loads the image and the
        // policy while the vCPU thread makes the vCPU; once they are in,
        // the vCPU thread fills the boot info with what the vCPU has and
        // reports back before it runs.
        let thread_shared = shared.clone();
        let boot_info = BootInfoInput::of(&config);
        let client_cpu = thread_placement::current_cpu();
        let (made_tx, made_rx) = std::sync::mpsc::sync_channel::<Option<MadeVm>>(1);
        let (created_tx, created_rx) = std::sync::mpsc::sync_channel::<Result<Created, VmError>>(1);
        let (loaded_tx, loaded_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("vigil-vcpu0".into())
            .spawn(move || {
                let start = VcpuStart { entry: thread_shared.image.entry(), pages: thread_shared.image.pages() };
                let created = wait_spinning(&made_rx)
                    .ok_or(VmError::Stopped)
                    .and_then(|made| platform.create(made, &thread_shared.memory, start))
                    .and_then(|(vcpu, facts)| {
                        // Without the image and policy loaded, nothing runs.
                        loaded_rx.recv().map_err(|_| VmError::Stopped)?;
                        write_boot_info(&thread_shared.memory, boot_info, facts)?;
                        Ok(vcpu)
                    });
                match created {
                    Ok(vcpu) => {
                        let _ = created_tx.send(Ok((vcpu.kicker(), counters::current_tid())));
                        hypervisor::run_vcpu(vcpu, thread_shared);
                    }
                    Err(reason) => {
                        let _ = created_tx.send(Err(reason));
                    }
                }
            })
            .map_err(VmError::Thread)?;
        // Off this core (the thread waiting for the guard's answers must
        // not share one with the vCPU) before it runs: it starts on another
        // core while this thread makes the VM, instead of waiting queued
        // here and then moving itself (measured: the VM ready 0.05–0.14 ms
        // sooner; docs/performance.md).
        if let Some(cpu) = client_cpu {
            thread_placement::keep_off_cpu(&thread, cpu);
        }
        match platform.make_vm(&shared.memory) {
            Ok(made) => {
                let _ = made_tx.send(made);
            }
            Err(reason) => {
                drop(made_tx);
                let _ = thread.join();
                return Err(reason);
            }
        }
        let loaded = (|| {
            for segment in template.image.segments() {
                shared.memory.write(segment.address, &segment.bytes)?;
            }
            if let Some(policy) = &config.policy {
                shared.memory.write(layout::POLICY_BASE, policy.bytes())?;
            }
            Ok::<(), memory::OutOfBounds>(())
        })();
        if let Err(e) = loaded {
            drop(loaded_tx);
            let _ = thread.join();
            return Err(oob(e));
        }
        let _ = loaded_tx.send(());
        let created = wait_for_vcpu(&created_rx);
        match created {
            Ok((kicker, vcpu_tid)) => {
                Ok(GuardVm { shared, thread: Some(thread), kicker, vcpu_tid, config, next_seq: 1, outstanding: None })
            }
            Err(reason) => {
                let _ = thread.join();
                Err(reason)
            }
        }
    }

    /// Boots a guard from ELF bytes (validated and measured first).
    pub fn boot_elf(elf: &[u8], config: VmConfig) -> Result<Self, VmError> {
        Self::boot(&BootTemplate::from_elf(elf)?, config)
    }

    /// Posts a request and waits for the reply, within the configured deadline.
    pub fn request(&mut self, kind: u32, payload: &[u8]) -> Result<Response, VmError> {
        let deadline = self.config.deadline;
        self.request_within(kind, payload, deadline)
    }

    /// Posts a request and waits for the reply for at most `deadline`. A
    /// guard that misses it is stopped; every later call fails.
    pub fn request_within(&mut self, kind: u32, payload: &[u8], deadline: Duration) -> Result<Response, VmError> {
        self.request_expecting_within(kind, payload, deadline, Duration::ZERO)
    }

    /// [`GuardVm::request`] for work the caller expects to take about
    /// `expected`: this thread sleeps through most of it before it starts
    /// polling for the answer, leaving the CPU to the guard (on a machine
    /// with few cores, a polling host thread competes with the vCPU it
    /// waits for).
    pub fn request_expecting(&mut self, kind: u32, payload: &[u8], expected: Duration) -> Result<Response, VmError> {
        let deadline = self.config.deadline;
        self.request_expecting_within(kind, payload, deadline, expected)
    }

    fn request_expecting_within(
        &mut self,
        kind: u32,
        payload: &[u8],
        deadline: Duration,
        expected: Duration,
    ) -> Result<Response, VmError> {
        let posted = self.post_within(kind, payload, deadline)?;
        // Most of the expected time asleep (an early answer waits a little;
        // a late one is polled for as usual).
        let nap = expected.mul_f64(0.75);
        if nap >= Duration::from_micros(50) && nap < deadline {
            std::thread::sleep(nap);
        }
        self.wait(posted)
    }

    /// Posts a request without waiting for its answer, so that the caller
    /// can work while the guard does; [`GuardVm::wait`] takes the answer.
    /// The configured deadline counts from now. Only one request is ever
    /// outstanding: posting or requesting again before the wait fails
    /// ([`VmError::RequestOutstanding`]) and changes nothing.
    pub fn post(&mut self, kind: u32, payload: &[u8]) -> Result<Posted, VmError> {
        let deadline = self.config.deadline;
        self.post_within(kind, payload, deadline)
    }

    fn post_within(&mut self, kind: u32, payload: &[u8], deadline: Duration) -> Result<Posted, VmError> {
        if let Some(reason) = self.ended() {
            return Err(reason);
        }
        if let Some(seq) = self.outstanding {
            return Err(VmError::RequestOutstanding(seq));
        }
        if payload.len() > mailbox::REQUEST_CAPACITY {
            return Err(VmError::RequestTooLarge { len: payload.len(), capacity: mailbox::REQUEST_CAPACITY });
        }
        let memory = &self.shared.memory;
        let protocol = |e: memory::OutOfBounds| VmError::GuestProtocol(e.to_string());
        let request = layout::MAILBOX_BASE + mailbox::REQUEST;
        memory.write(layout::MAILBOX_BASE + mailbox::REQUEST_PAYLOAD, payload).map_err(protocol)?;
        memory.atomic_u32(request + mailbox::header::KIND_OR_STATUS).map_err(protocol)?.store(kind, Ordering::Relaxed);
        memory
            .atomic_u32(request + mailbox::header::LEN)
            .map_err(protocol)?
            .store(payload.len() as u32, Ordering::Relaxed);
        let seq = self.next_seq;
        self.next_seq += 1;
        let started = Instant::now();
        // `posted` first: once the guest can see the new sequence number it
        // may answer, go idle and sleep at once, and the vCPU thread checks
        // that the guest saw nothing the host has not posted.
        self.shared.posted.store(seq, Ordering::SeqCst);
        memory.atomic_u64(request + mailbox::header::SEQ).map_err(protocol)?.store(seq, Ordering::SeqCst);
        if self.shared.sleeping.load(Ordering::SeqCst) {
            self.shared.wake();
        }
        self.outstanding = Some(seq);
        Ok(Posted { seq, started, deadline })
    }

    /// Waits for the answer to `posted` (within the deadline it was posted
    /// with). A guard that misses it is stopped; every later call fails.
    pub fn wait(&mut self, posted: Posted) -> Result<Response, VmError> {
        let Posted { seq, started, deadline } = posted;
        if self.outstanding != Some(seq) {
            return Err(VmError::GuestProtocol(format!("no request {seq} is outstanding")));
        }
        self.outstanding = None;
        let memory = &self.shared.memory;
        let protocol = |e: memory::OutOfBounds| VmError::GuestProtocol(e.to_string());
        let response = layout::MAILBOX_BASE + mailbox::RESPONSE;
        let response_seq = memory.atomic_u64(response + mailbox::header::SEQ).map_err(protocol)?;
        let mut spins: u32 = 0;
        // Made before the first sleep: short sleeps that end on time.
        let mut precise: Option<thread_placement::PreciseSleeps> = None;
        loop {
            let answered = response_seq.load(Ordering::Acquire);
            if answered == seq {
                break;
            }
            if answered != seq - 1 {
                self.kill();
                return Err(VmError::GuestProtocol(format!("response sequence {answered} while waiting for {seq}")));
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) {
                std::hint::spin_loop();
                continue;
            }
            if let Some(reason) = self.ended() {
                return Err(reason);
            }
            let waited = started.elapsed();
            if waited > deadline {
                self.kill();
                return Err(VmError::Deadline(deadline));
            }
            // Spin while the answer is likely to be close; then sleep in
            // short steps: if the scheduler put us on the vCPU's core, the
            // wake-up preempts the spinning guest and we see its answer.
            if waited > Duration::from_micros(100) {
                precise.get_or_insert_with(thread_placement::PreciseSleeps::new);
                let step = if waited > Duration::from_millis(2) { 50 } else { 10 };
                std::thread::sleep(Duration::from_micros(step));
            }
        }
        let status =
            memory.atomic_u32(response + mailbox::header::KIND_OR_STATUS).map_err(protocol)?.load(Ordering::Relaxed);
        let len =
            memory.atomic_u32(response + mailbox::header::LEN).map_err(protocol)?.load(Ordering::Relaxed) as usize;
        if len > mailbox::RESPONSE_CAPACITY {
            self.kill();
            return Err(VmError::GuestProtocol(format!(
                "response length {len} exceeds the capacity of {} bytes",
                mailbox::RESPONSE_CAPACITY
            )));
        }
        let mut payload = vec![0; len];
        memory.read(layout::MAILBOX_BASE + mailbox::RESPONSE_PAYLOAD, &mut payload).map_err(protocol)?;
        Ok(Response { status, payload })
    }

    fn request_ok(&mut self, kind: u32, payload: &[u8]) -> Result<Vec<u8>, VmError> {
        let response = self.request(kind, payload)?;
        if response.status != status::OK {
            return Err(VmError::Status(response.status));
        }
        Ok(response.payload)
    }

    /// `Ping`: the guard returns the payload with its counter and TSC.
    pub fn ping(&mut self, payload: &[u8]) -> Result<PingReply, VmError> {
        let reply = self.request_ok(kind::PING, payload)?;
        if reply.len() != ping::PAYLOAD + payload.len() {
            return Err(VmError::GuestProtocol(format!(
                "ping reply of {} bytes for a {}-byte payload",
                reply.len(),
                payload.len()
            )));
        }
        let word = |at: usize| u64::from_le_bytes(reply[at..at + 8].try_into().unwrap_or_default());
        Ok(PingReply { counter: word(ping::COUNTER), tsc: word(ping::TSC), payload: reply[ping::PAYLOAD..].to_vec() })
    }

    /// `Info`: facts about the running guard.
    pub fn info(&mut self) -> Result<GuestInfo, VmError> {
        let reply = self.request_ok(kind::INFO, &[])?;
        parse_info(&reply)
    }

    /// Asks the guard to shut down and waits for the VM to end. Returns the
    /// reply payload: the guard's final checkpoint (docs/protocol.md).
    pub fn shutdown(mut self) -> Result<Vec<u8>, VmError> {
        let response = self.request(kind::SHUTDOWN, &[])?;
        if response.status != status::OK {
            return Err(VmError::Status(response.status));
        }
        let started = Instant::now();
        while self.shared.ended.get().is_none() {
            if started.elapsed() > self.config.deadline {
                self.kill();
                return Err(VmError::Deadline(self.config.deadline));
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        self.join();
        match self.shared.ended.get() {
            Some(VmError::GuestShutDown) => Ok(response.payload),
            _ => Err(self.ended().unwrap_or(VmError::Stopped)),
        }
    }

    /// Why the VM ended, if it did.
    fn ended(&self) -> Option<VmError> {
        self.shared.ended.get().map(clone_error)
    }

    /// Console lines printed by the guard so far.
    pub fn console(&self) -> Vec<String> {
        self.shared.console.lock().unwrap_or_else(|e| e.into_inner()).lines()
    }

    /// `SLEEP` hypercalls served so far.
    pub fn sleeps(&self) -> u64 {
        self.shared.sleeps.load(Ordering::Relaxed)
    }

    /// Whether the guard is asleep right now (it made a `SLEEP` hypercall and
    /// no request has arrived since).
    pub fn is_asleep(&self) -> bool {
        self.shared.sleeping.load(Ordering::SeqCst)
    }

    /// VM exits so far.
    pub fn exits(&self) -> u64 {
        self.shared.exits.load(Ordering::Relaxed)
    }

    /// Counters of the vCPU thread: its CPU time, and guest-only hardware
    /// events where a PMU exists (docs/cost.md). `None` once the thread
    /// has ended.
    pub fn counters(&self) -> Option<counters::ThreadCounters> {
        let thread = self.thread.as_ref()?;
        Some(counters::ThreadCounters::for_thread(thread, self.vcpu_tid, true))
    }

    /// The rate of the guard's counter (its judge ticks), in kHz, when
    /// the hypervisor knows it.
    pub fn counter_khz(&self) -> Option<u32> {
        backend::host().ok().and_then(|h| h.counter_khz())
    }

    /// The image this guard runs.
    pub fn image(&self) -> &GuestImage {
        &self.shared.image
    }

    /// What the VMM measured for this boot.
    pub fn measurements(&self) -> &BootMeasurements {
        &self.shared.attestation.measurements
    }

    /// The boot id the evidence carries.
    pub fn boot_id(&self) -> [u8; 16] {
        self.shared.attestation.boot_id
    }

    /// Stops the vCPU thread: sets the stop flag, wakes a sleeping vCPU and
    /// kicks a running one out of the guest until the thread ends.
    pub fn kill(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = &self.thread {
            while !thread.is_finished() {
                self.shared.wake();
                self.kicker.kick(thread);
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        self.join();
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for GuardVm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Errors are recorded once by the vCPU thread and reported to every later
/// call: rebuild an owned copy.
fn clone_error(err: &VmError) -> VmError {
    match err {
        VmError::GuestPanicked { message } => VmError::GuestPanicked { message: message.clone() },
        VmError::GuestFault(report) => VmError::GuestFault(report.clone()),
        VmError::TripleFault { pc } => VmError::TripleFault { pc: *pc },
        VmError::InternalError { pc } => VmError::InternalError { pc: *pc },
        VmError::FailEntry { reason } => VmError::FailEntry { reason: *reason },
        VmError::UnexpectedExit { exit, pc } => VmError::UnexpectedExit { exit: exit.clone(), pc: *pc },
        VmError::GuestProtocol(message) => VmError::GuestProtocol(message.clone()),
        VmError::GuestShutDown => VmError::GuestShutDown,
        VmError::Hypervisor { what, source } => VmError::Hypervisor {
            what,
            source: source.raw_os_error().map_or_else(
                || std::io::Error::new(source.kind(), source.to_string()),
                std::io::Error::from_raw_os_error,
            ),
        },
        VmError::Deadline(d) => VmError::Deadline(*d),
        _ => VmError::Stopped,
    }
}

/// Decodes an `Info` reply, bounding every length.
pub fn parse_info(reply: &[u8]) -> Result<GuestInfo, VmError> {
    let short = || VmError::GuestProtocol(format!("info reply of {} bytes is too short", reply.len()));
    let u32_at = |at: usize| reply.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()));
    let u64_at = |at: usize| reply.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    let version_len = u32_at(info::VERSION_LEN).ok_or_else(short)? as usize;
    if version_len > info::VERSION_CAPACITY {
        return Err(VmError::GuestProtocol(format!("info version length {version_len} exceeds the capacity")));
    }
    let version = reply.get(info::VERSION..info::VERSION + version_len).ok_or_else(short)?;
    let arch = match u32_at(info::ARCH).ok_or_else(short)? {
        abi::arch::X86_64 => "x86_64",
        abi::arch::AARCH64 => "aarch64",
        _ => "unknown",
    };
    Ok(GuestInfo {
        abi_version: u32_at(info::ABI_VERSION).ok_or_else(short)?,
        arch,
        entropy_sources: abi::entropy_source_names(u32_at(info::ENTROPY).ok_or_else(short)?).collect(),
        privilege: u32_at(info::PRIVILEGE).ok_or_else(short)?,
        memory_size: u64_at(info::MEMORY_SIZE).ok_or_else(short)?,
        boot_tsc: u64_at(info::BOOT_TSC).ok_or_else(short)?,
        requests: u64_at(info::REQUESTS).ok_or_else(short)?,
        sleeps: u64_at(info::SLEEPS).ok_or_else(short)?,
        dense_bytes: u64_at(info::DENSE_BYTES).ok_or_else(short)?,
        // The guest chooses these bytes; `vigil doctor` prints them.
        version: guest_text::escape(version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_guard_version_comes_out_escaped() {
        // `vigil doctor` prints the version the guard reports.
        let version = "1.0\x1b]0;owned\x07\r\u{202e}\x1b[1A";
        let mut reply = vec![0u8; info::VERSION + version.len()];
        reply[info::ARCH..info::ARCH + 4].copy_from_slice(&abi::arch::X86_64.to_le_bytes());
        reply[info::VERSION_LEN..info::VERSION_LEN + 4].copy_from_slice(&(version.len() as u32).to_le_bytes());
        reply[info::VERSION..].copy_from_slice(version.as_bytes());
        let info = parse_info(&reply).unwrap();
        assert_eq!(info.version, "1.0\\x1b]0;owned\\x07\\x0d\\u{202e}\\x1b[1A");
    }
}

#[cfg(test)]
mod reuse_tests {
    use super::*;
    use crate::image::{PagePermissions, WINDOW_PAGES};

    #[test]
    fn every_block_the_guest_may_write_is_zeroed_before_reuse() {
        // The stage-1 tables (aarch64; x86_64 follows the same layout and
        // permissions) say what is writable at EL0; every such 2 MiB block
        // must lie inside what `guest_writable` marks.
        let mut pages = [PagePermissions::default(); WINDOW_PAGES];
        pages[0] = PagePermissions { present: true, write: false, execute: true };
        pages[2] = PagePermissions { present: true, write: true, execute: false };
        pages[5] = PagePermissions { present: true, write: true, execute: false };
        let region = aarch64::system_region(&pages);
        let writable = guest_writable_pages(&pages);
        for block in 0..512u64 {
            let at = (aarch64::system::L2 + block * 8) as usize;
            let descriptor = u64::from_le_bytes(region[at..at + 8].try_into().unwrap());
            let address = block * abi::LARGE_PAGE;
            // (The doorbell block beyond guest memory is no memory.)
            if descriptor & 1 == 1 && descriptor & aarch64::AP_MASK == 1 << 6 && address < layout::MEMORY_SIZE {
                assert!(
                    writable.iter().any(|&(start, len)| (start..start + len as u64).contains(&address)),
                    "writable block at {address:#x} is not scrubbed"
                );
            }
        }
    }
}
