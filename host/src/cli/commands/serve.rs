//! `vigil serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vigil::guard_image::GuardChoice;

/// Run the daemon: a pool of warm attested guards behind a local API on a
/// Unix socket; the one writer of the journal (docs/api.md,
/// docs/operations.md).
#[derive(Args)]
pub struct ServeArgs {
    /// Key directory holding platform.key and journal.key (default:
    /// $VIGIL_DIR, else ~/.local/share/vigil).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Record the verdicts in this journal (default: `journal` in
    /// DIR/config.toml, else DIR/journal/vigil.vgj).
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// Policy: a compiled bundle (.vgp) or a TOML policy. Default: the
    /// built-in default pack.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// The Unix socket to listen on (default: DIR/vigil.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Guards in the pool (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub guards: Option<u16>,
    /// Intents that may wait for a guard; beyond that, requests get 503
    /// with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 16_384)]
    pub queue: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub max_body: usize,
    /// Also listen on this loopback TCP address (e.g. 127.0.0.1:7878) for
    /// clients that cannot reach the socket (Claude Code's HTTP hook); every
    /// request there must carry the bearer token of --token-file. Off by
    /// default.
    #[arg(long, value_name = "ADDR", requires = "token_file")]
    pub listen_tcp: Option<std::net::SocketAddr>,
    /// The bearer token for --listen-tcp: a file of mode 0600 holding at
    /// least 32 printable characters.
    #[arg(long, value_name = "FILE", requires = "listen_tcp")]
    pub token_file: Option<PathBuf>,
    /// Seconds between attestations of a running guard (fresh evidence for
    /// a random nonce, verified; a guard that fails is replaced); 0: only
    /// at boot.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(0..=604_800))]
    pub reattest_interval: u64,
    /// Microseconds an idle guard polls its mailbox before it sleeps.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub guard_idle_us: u64,
    /// Seconds an ESCALATE verdict waits for `vigil approve`/`vigil deny`
    /// before it is DENY (1 to 86400).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub approval_timeout: u64,
    /// A uid that may allow ESCALATE verdicts (repeat for several). Without
    /// it, any user on the socket but the one whose request waits may: an
    /// agent never approves itself. Naming the agent's own uid lets it.
    #[arg(long = "approver", value_name = "UID")]
    pub approvers: Vec<u32>,
    /// The most ESCALATE verdicts waiting at once; more are DENY at once.
    #[arg(long, value_name = "N", default_value_t = vigil::daemon::approvals::MAX_WAITING as u64, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_waiting_approvals: u64,
    /// Connections open at once (both listeners each); more wait to be
    /// accepted. Each request's head must arrive within 10 s and its body
    /// within 30 s; on SIGTERM requests in flight get 30 s to finish.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_connections: u64,
}

/// Runs `vigil serve`.
pub fn run(args: ServeArgs, choice: &GuardChoice) -> anyhow::Result<ExitCode> {
    let ServeArgs {
        dir,
        journal,
        policy,
        socket,
        guards,
        queue,
        max_body,
        listen_tcp,
        token_file,
        guard_idle_us,
        reattest_interval,
        approval_timeout,
        approvers,
        max_waiting_approvals,
        max_connections,
    } = args;
    // The daemon keeps no ended guard's memory: its resident memory stays
    // bounded by its running guards (each boots off the request path).
    vigil::vmm::memory::GuestMemory::keep_at_most(0);
    let dir = crate::cli::key_directory::resolve(dir.as_deref())?;
    let policy = vigil::policy::load_policy(policy.as_deref(), &vigil::keys::policy_pin(&dir)?)?;
    let socket = vigil::daemon::Socket::bind(&socket.unwrap_or_else(|| dir.join("vigil.sock")))?;
    let tcp = match (listen_tcp, &token_file) {
        (Some(addr), Some(file)) => Some(vigil::daemon::TcpAccess::bind(addr, file)?),
        _ => None,
    };
    let tcp_addr = tcp.as_ref().and_then(vigil::daemon::TcpAccess::local_addr);
    let recorder = vigil::recording::Recorder::open(&dir, journal.as_deref(), &policy.bundle)?;
    crate::cli::journal_output::say_what_open_found(&recorder);
    let (template, _, reference) = vigil::guard_image::load(choice)?;
    let (secret, public) = vigil::keys::platform_pair(&dir)?;
    let recipe = vigil::daemon::pool::GuardRecipe {
        template,
        policy: policy.image(),
        trust: vigil::vm_judge::TrustAnchors { platform: public, reference, allow_test_image: choice.allow_test_image },
        config: vigil::vmm::VmConfig {
            platform: Some(vigil::vmm::PlatformSigner(std::sync::Arc::new(secret))),
            // An idle guard polls its mailbox this long, then sleeps: short,
            // so that idle guards leave the CPUs to the API and the journal
            // (a wake-up costs tens of microseconds; under load guards
            // never sleep).
            idle_budget: std::time::Duration::from_micros(guard_idle_us),
            ..choice.vm_config()
        },
        reattest: (reattest_interval > 0).then(|| std::time::Duration::from_secs(reattest_interval)),
    };
    let guards = guards.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from);
    let options = vigil::daemon::ServeOptions {
        guards,
        queue: queue.max(1),
        max_body,
        fault_injection: choice.allow_test_image,
        approval_timeout: std::time::Duration::from_secs(approval_timeout),
        approvers: if approvers.is_empty() {
            vigil::daemon::approvals::Approvers::NotTheRequester
        } else {
            vigil::daemon::approvals::Approvers::Only(approvers)
        },
        max_waiting_approvals: usize::try_from(max_waiting_approvals).unwrap_or(usize::MAX),
        limits: vigil::daemon::connections::Limits {
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            ..Default::default()
        },
    };
    let sha384 = hex::encode(vigil_attest::measure(&policy.bundle));
    vigil::daemon::serve(
        socket,
        tcp,
        &options,
        recipe,
        recorder,
        sha384,
        |socket| {
            let tcp = tcp_addr.map(|a| format!(" and {a} (token required)")).unwrap_or_default();
            eprintln!("vigil serve: listening on {}{tcp} with {guards} guard(s); SIGTERM stops", socket.display());
        },
        vigil::daemon::termination(),
    )?;
    eprintln!("vigil serve: stopped; every guard's final checkpoint and the journal's closing checkpoint are written");
    Ok(ExitCode::SUCCESS)
}
