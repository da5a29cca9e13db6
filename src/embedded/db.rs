//! The embedded database: a `secantusd-rs` child process (a MongoDB-wire server) on a free
//! loopback port, storing its files in `<data dir>/db`, stopped with the server.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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
        // write is acknowledged.
        .args(["--cache-size", "256M", "--log-file-max", "32MB", "--sync-on-commit"])
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

/// A running embedded database. Dropping it stops the process.
#[derive(Debug)]
pub struct EmbeddedDb {
    pid: Pid,
    port: u16,
    exited: mpsc::Receiver<std::process::ExitStatus>,
    stopped: bool,
    log: PathBuf,
}

impl EmbeddedDb {
    /// Spawns the process on a free port; `wait_ready` must be awaited before use.
    pub fn start(binary: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let port = super::free_loopback_port()?;
        let dir = data_dir.join("db");
        let log = data_dir.join("db.log");
        let (spawned_tx, spawned_rx) = mpsc::channel();
        let (exited_tx, exited) = mpsc::channel();
        let (binary, dir_c, log_c) = (binary.to_path_buf(), dir.clone(), log.clone());
        std::thread::Builder::new().name("secantusd-rs".into()).spawn(move || {
            match spawn(&binary, port, &dir_c, &log_c) {
                Ok(mut child) => {
                    let _ = spawned_tx.send(Ok(child.id()));
                    if let Ok(status) = child.wait() {
                        let _ = exited_tx.send(status);
                    }
                }
                Err(e) => {
                    let _ = spawned_tx.send(Err(e));
                }
            }
        })?;
        let pid = spawned_rx
            .recv()
            .map_err(|_| anyhow!("database launcher thread ended early"))??;
        let pid = Pid::from_raw(i32::try_from(pid).context("pid out of range")?);
        Ok(Self {
            pid,
            port,
            exited,
            stopped: false,
            log,
        })
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
            if let Ok(status) = self.exited.try_recv() {
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
    /// killing it after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if self.has_exited() {
            return;
        }
        let _ = kill(self.pid, Signal::SIGTERM);
        if self.exited.recv_timeout(grace).is_err() {
            tracing::warn!("{BINARY} did not stop within {grace:?}; killing it");
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = self.exited.recv_timeout(Duration::from_secs(5));
        }
        self.stopped = true;
    }

    /// True once the process is gone; after that its pid may belong to someone else.
    fn has_exited(&mut self) -> bool {
        if !self.stopped {
            match self.exited.try_recv() {
                Ok(_) | Err(mpsc::TryRecvError::Disconnected) => self.stopped = true,
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
        self.stopped
    }
}

impl Drop for EmbeddedDb {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}
