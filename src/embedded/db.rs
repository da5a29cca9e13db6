//! The embedded database: a `secantusd-rs` child process (a MongoDB-wire server) on a free
//! loopback port, storing its files in `<data dir>/db`, stopped with the server.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const BINARY: &str = "secantusd-rs";

/// Finds the `secantusd-rs` binary: the configured path, then PATH, then `~/.cargo/bin`.
pub fn find_binary(configured: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = configured {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("HUDDLE_SECANTUSD_BIN points to {}, which is not a file", path.display());
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(BINARY)).collect())
        .unwrap_or_default();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        candidates.push(home.join("bin").join(BINARY));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        anyhow!(
            "{BINARY} not found (needed for the embedded database): run `make bootstrap`, \
             or set MONGODB_URI to use an existing MongoDB"
        )
    })
}

/// Starts `secantusd-rs` on `port` with storage in `dir`, its output appended to `log`.
///
/// The child gets SIGKILL if the thread that spawned it ends, so callers spawn it from a
/// thread that lives as long as the child (see [`EmbeddedDb::start`]).
pub fn spawn(binary: &Path, port: u16, dir: &Path, log: &Path) -> anyhow::Result<Child> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let log = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let mut command = Command::new(binary);
    command
        .arg("--port")
        .arg(port.to_string())
        .arg("--storage-path")
        .arg(dir)
        // A modest cache for a development default, and every commit on disk before the
        // write is acknowledged. Checkpoints every 15 s instead of the default 60 s: each
        // writes less at once, so commits never wait long behind one (with 60 s, sends
        // acknowledged during a checkpoint waited 100-360 ms; with 15 s, under 40 ms).
        .args([
            "--cache-size",
            "256M",
            "--log-file-max",
            "32MB",
            "--sync-on-commit",
            "--checkpoint-seconds",
            "15",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))
}

/// A running embedded database, supervised: if the process dies while the server runs, it
/// is started again on the same port and data dir (after 1 s, doubling up to 30 s while it
/// keeps dying), and the driver reconnects on its own. Dropping this stops the process.
#[derive(Debug)]
pub struct EmbeddedDb {
    /// The current process's pid (0 between a death and its restart).
    pid: Arc<AtomicI32>,
    port: u16,
    events: mpsc::Receiver<Event>,
    stopping: Arc<AtomicBool>,
    stopped: bool,
    log: PathBuf,
}

/// What the supervising thread reports.
#[derive(Debug)]
enum Event {
    /// A process exited (on its own, or because it was stopped).
    Exited(std::process::ExitStatus),
    /// The supervisor ended: nothing runs, nothing will be started again.
    Ended,
}

/// The first wait before a restart, and the longest.
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

impl EmbeddedDb {
    /// Spawns the process on a free port; `wait_ready` must be awaited before use.
    pub fn start(binary: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let port = super::free_loopback_port()?;
        let dir = data_dir.join("db");
        let log = data_dir.join("db.log");
        let (spawned_tx, spawned_rx) = mpsc::channel();
        let (events_tx, events) = mpsc::channel();
        let pid = Arc::new(AtomicI32::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let (binary, dir_c, log_c) = (binary.to_path_buf(), dir.clone(), log.clone());
        let (pid_c, stopping_c) = (pid.clone(), stopping.clone());
        std::thread::Builder::new().name("secantusd-rs".into()).spawn(move || {
            let mut spawned_tx = Some(spawned_tx);
            let mut backoff = RESTART_BACKOFF.0;
            loop {
                match spawn(&binary, port, &dir_c, &log_c) {
                    Ok(mut child) => {
                        pid_c.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
                        if let Some(tx) = spawned_tx.take() {
                            let _ = tx.send(Ok(child.id()));
                        }
                        let started = std::time::Instant::now();
                        let status = child.wait();
                        pid_c.store(0, Ordering::SeqCst);
                        if let Ok(status) = status {
                            let _ = events_tx.send(Event::Exited(status));
                        }
                        if stopping_c.load(Ordering::SeqCst) {
                            break;
                        }
                        metrics::counter!("huddle_embedded_db_restarts_total").increment(1);
                        if started.elapsed() > RESTART_BACKOFF.1 * 2 {
                            backoff = RESTART_BACKOFF.0;
                        }
                        tracing::error!(?status, retry_in = ?backoff, "{BINARY} died; starting it again");
                    }
                    Err(e) => {
                        if let Some(tx) = spawned_tx.take() {
                            let _ = tx.send(Err(e));
                            break;
                        }
                        tracing::error!(error = %e, retry_in = ?backoff, "{BINARY} could not be started again");
                    }
                }
                // Wait out the backoff, unless asked to stop meanwhile.
                let until = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < until && !stopping_c.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if stopping_c.load(Ordering::SeqCst) {
                    break;
                }
                backoff = (backoff * 2).min(RESTART_BACKOFF.1);
            }
            let _ = events_tx.send(Event::Ended);
        })?;
        spawned_rx
            .recv()
            .map_err(|_| anyhow!("database launcher thread ended early"))??;
        Ok(Self {
            pid,
            port,
            events,
            stopping,
            stopped: false,
            log,
        })
    }

    /// The pid of the process running now, if one is.
    pub fn pid(&self) -> Option<u32> {
        u32::try_from(self.pid.load(Ordering::SeqCst)).ok().filter(|p| *p != 0)
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Waits until the database answers a ping, or fails with the tail of its log.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<mongodb::Client> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut options = mongodb::options::ClientOptions::parse(self.uri()).await?;
        options.server_selection_timeout = Some(Duration::from_millis(500));
        options.connect_timeout = Some(Duration::from_millis(500));
        let client = mongodb::Client::with_options(options)?;
        loop {
            if let Ok(Event::Exited(status)) = self.events.try_recv() {
                bail!("{BINARY} exited during start-up ({status}); {}", self.log_tail());
            }
            let ping = client
                .database("admin")
                .run_command(mongodb::bson::doc! { "ping": 1 })
                .await;
            if ping.is_ok() {
                return Ok(client);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{BINARY} did not answer within {timeout:?}; {}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(10).collect();
        let lines: Vec<&str> = lines.into_iter().rev().collect();
        format!("last lines of {}:\n{}", self.log.display(), lines.join("\n"))
    }

    /// Asks the process to stop (SIGTERM, so storage is closed cleanly) and waits for it,
    /// killing it after `grace`. It is not started again.
    pub fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.stopping.store(true, Ordering::SeqCst);
        let pid = self.pid.load(Ordering::SeqCst);
        if pid != 0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = std::time::Instant::now() + grace;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Ended) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Ok(Event::Exited(_)) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        tracing::warn!("{BINARY} did not stop within {grace:?}; killing it");
        let pid = self.pid.load(Ordering::SeqCst);
        if pid != 0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.events.recv_timeout(Duration::from_secs(5));
    }
}

impl Drop for EmbeddedDb {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}
