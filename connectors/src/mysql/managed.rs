//! A private MariaDB/MySQL server in a directory of its own: initialised
//! once, started on a loopback port and a private socket with the binary log
//! on (row format, full metadata) for change capture, stopped on drop, and
//! restarted by [`ManagedServer::ensure_running`] if it died.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error("no MariaDB or MySQL server is installed (looked for mariadbd and mysqld)")]
    NotInstalled,
    #[error("initialising the MySQL data directory {dir} failed: {detail}")]
    Init { dir: String, detail: String },
    #[error("the managed MySQL server did not start: {0}")]
    Start(String),
    #[error("{what} at {path}: {source}")]
    Io { what: &'static str, path: String, source: std::io::Error },
}

/// The server binary, if one is installed.
pub fn find_server_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin"].map(PathBuf::from));
    for name in ["mariadbd", "mysqld"] {
        if let Some(p) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
            return Some(p);
        }
    }
    None
}

fn install_binary(server: &Path) -> Option<PathBuf> {
    let dir = server.parent()?;
    let mut candidates = vec![dir.join("mariadb-install-db"), dir.join("mysql_install_db")];
    for d in ["/usr/bin", "/usr/local/bin", "/usr/local/mysql/scripts"] {
        candidates.push(Path::new(d).join("mariadb-install-db"));
        candidates.push(Path::new(d).join("mysql_install_db"));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn is_root() -> bool {
    std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false)
}

/// Initialises `dir/data` if it holds no server data yet.
pub fn initialise(dir: &Path) -> Result<(), ManagedError> {
    let data = dir.join("data");
    if data.join("mysql").is_dir() {
        return Ok(());
    }
    let server = find_server_binary().ok_or(ManagedError::NotInstalled)?;
    std::fs::create_dir_all(&data).map_err(|e| ManagedError::Io { what: "cannot create", path: data.display().to_string(), source: e })?;
    let init = install_binary(&server).ok_or_else(|| ManagedError::Init {
        dir: data.display().to_string(),
        detail: "mariadb-install-db / mysql_install_db not found".into(),
    })?;
    // Temporary files stay in the instance's own directory: bootstraps
    // running side by side must not meet in the machine's /tmp.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| ManagedError::Io { what: "cannot create", path: tmp.display().to_string(), source: e })?;
    let mut cmd = Command::new(&init);
    // The machine's option files (user=mysql, sockets, ports) must not apply.
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg("--skip-name-resolve");
    if is_root() {
        cmd.arg("--user=root");
    }
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| ManagedError::Init { dir: data.display().to_string(), detail: e.to_string() })?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&data);
        return Err(ManagedError::Init {
            dir: data.display().to_string(),
            detail: String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join(" | "),
        });
    }
    Ok(())
}

/// A running private server.
#[derive(Debug)]
pub struct ManagedServer {
    dir: PathBuf,
    pub port: u16,
    child: Mutex<Option<Child>>,
}

impl ManagedServer {
    /// Initialises (if needed) and starts a server in `dir` on `port`
    /// (0 picks a free one), waiting until it accepts connections.
    pub fn start(dir: &Path, port: u16) -> Result<Self, ManagedError> {
        initialise(dir)?;
        let port = if port == 0 {
            free_port().map_err(|e| ManagedError::Start(format!("no free port: {e}")))?
        } else {
            port
        };
        let server = Self { dir: dir.to_path_buf(), port, child: Mutex::new(None) };
        server.launch()?;
        Ok(server)
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }

    fn launch(&self) -> Result<(), ManagedError> {
        let server = find_server_binary().ok_or(ManagedError::NotInstalled)?;
        let data = self.dir.join("data");
        // Anonymous accounts would shadow 'user'@'%' for local logins.
        let init_sql = self.dir.join("init.sql");
        std::fs::write(&init_sql, "DELETE FROM mysql.global_priv WHERE User = '';\nFLUSH PRIVILEGES;\n")
            .map_err(|e| ManagedError::Io { what: "cannot write", path: init_sql.display().to_string(), source: e })?;
        let log = self.dir.join("server.log");
        let tmp = self.dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| ManagedError::Io { what: "cannot create", path: tmp.display().to_string(), source: e })?;
        let mut cmd = Command::new(server);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--pid-file={}", self.dir.join("mysqld.pid").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--log-bin={}", self.dir.join("binlog").display()))
            .arg("--binlog-format=ROW")
            .arg("--binlog-row-metadata=FULL")
            .arg("--server-id=1")
            .arg("--skip-name-resolve")
            .arg(format!("--init-file={}", init_sql.display()));
        if is_root() {
            cmd.arg("--user=root");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ManagedError::Start(e.to_string()))?;
        *self.child.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        self.wait_ready(&log)
    }

    fn wait_ready(&self, log: &Path) -> Result<(), ManagedError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                let tail = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                return Err(ManagedError::Start(format!("exited with {status}: {}", tail.join(" | "))));
            }
            if Instant::now() > deadline {
                return Err(ManagedError::Start(format!("not accepting connections on port {} after 60 s", self.port)));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status),
            None => Some(std::process::ExitStatus::default()),
            _ => None,
        }
    }

    /// Restarts the server if it is not running. Returns true if it did.
    pub fn ensure_running(&self) -> Result<bool, ManagedError> {
        if self.exited().is_none() {
            return Ok(false);
        }
        tracing::warn!("the managed MySQL server stopped; restarting it");
        self.launch()?;
        Ok(true)
    }

    /// Kills the server abruptly (for tests of backend failure).
    pub fn kill(&self) {
        if let Some(c) = self.child.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server cleanly (SIGTERM, then a bounded wait).
    pub fn stop(&self) {
        let mut guard = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut c) = guard.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ManagedServer {
    fn drop(&mut self) {
        self.stop();
    }
}
