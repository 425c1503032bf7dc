//! Test harness: starts Lakewave servers (in-process on port 0, or the
//! `lakewave` binary as a child process), writes fixture files, and locates
//! the external clients the tests drive.

pub mod azurite;
pub mod clients;
pub mod faults;
pub mod fixtures;
pub mod http;
pub mod mariadb;
pub mod s3;
pub mod slt;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use lakehouse::{Lakehouse, LakehouseOptions};

/// A server running inside the test process.
pub struct TestServer {
    pub port: u16,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh data directory.
    pub async fn start() -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir for the data directory");
        let dir = tmp.path().to_path_buf();
        let mut s = Self::start_in(&dir).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server whose MySQL backend is `db` (managed: restarted by
    /// the server if it dies).
    pub async fn start_with_backend(db: &mariadb::TestMariaDb) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir for the data directory");
        let config = mysql_front::backend::BackendConfig {
            url: connectors::mysql::BackendUrl::parse(&db.url()).expect("backend url"),
            managed: Some(db.server.clone()),
        };
        let mut s = Self::start_with(tmp.path(), Some(config)).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing data directory.
    pub async fn start_in(data_dir: &Path) -> TestServer {
        Self::start_with(data_dir, None).await
    }

    /// Starts a server on `data_dir` with `db` as its backend (if any) and
    /// `rapid_memory` bytes for the secondary engine (if given).
    pub async fn start_configured(data_dir: &Path, db: Option<&mariadb::TestMariaDb>, rapid_memory: Option<u64>) -> TestServer {
        let backend = db.map(|db| mysql_front::backend::BackendConfig {
            url: connectors::mysql::BackendUrl::parse(&db.url()).expect("backend url"),
            managed: Some(db.server.clone()),
        });
        Self::start_full(data_dir, backend, rapid_memory).await
    }

    async fn start_with(data_dir: &Path, backend: Option<mysql_front::backend::BackendConfig>) -> TestServer {
        Self::start_full(data_dir, backend, None).await
    }

    async fn start_full(data_dir: &Path, backend: Option<mysql_front::backend::BackendConfig>, rapid_memory: Option<u64>) -> TestServer {
        let mut options = LakehouseOptions::new(data_dir);
        options.target_partitions = Some(2);
        options.rapid_memory = rapid_memory;
        let lake = Lakehouse::open(options).expect("open the lakehouse");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let port = listener.local_addr().expect("local addr").port();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(mysql_front::run(
            listener,
            lake,
            mysql_front::ServerOptions { backend, ..Default::default() },
            async {
                let _ = rx.await;
            },
        ));
        TestServer { port, data_dir: data_dir.to_path_buf(), stop: Some(tx), task: Some(task), _tmp: None }
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    pub async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(self.url()).await.expect("connect to the test server")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The `lakewave` binary built alongside the tests (`LAKEWAVE_BIN` overrides).
pub fn lakewave_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LAKEWAVE_BIN") {
        return PathBuf::from(p);
    }
    // Test binaries live in target/<profile>/deps; the binary one level up.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let bin = profile_dir.join("lakewave");
    assert!(
        bin.exists(),
        "the lakewave binary is missing at {}: run `cargo build -p lakewave-mysql-front` first \
         (the test command in the README does this)",
        bin.display()
    );
    bin
}

/// A `lakewave serve` child process.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
}

impl ServerProcess {
    /// Starts the binary and waits for its "listening" line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// Starts the binary with extra environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        Self::start_logged(data_dir, extra, env, None)
    }

    /// Starts the binary; with `log`, at debug level with its log written
    /// to that file. Cloud credentials come only from `env`: the caller's
    /// AWS, Azure and Google settings are not inherited, the machine's
    /// shared AWS files are not read and instance metadata is not probed.
    pub fn start_logged(data_dir: &Path, extra: &[&str], env: &[(&str, &str)], log: Option<&Path>) -> ServerProcess {
        let mut cmd = Command::new(lakewave_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir).args(extra);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("AZURITE_") || k.starts_with("GOOGLE_") {
                cmd.env_remove(k);
            }
        }
        let missing = data_dir.join("no-such-aws-file");
        cmd.env("AWS_CONFIG_FILE", &missing).env("AWS_SHARED_CREDENTIALS_FILE", &missing).env("AWS_EC2_METADATA_DISABLED", "true");
        cmd.envs(env.iter().copied());
        match log {
            Some(path) => {
                let file = std::fs::File::create(path).expect("server log file");
                cmd.env("LAKEWAVE_LOG", "debug").stderr(Stdio::from(file));
            }
            None => {
                cmd.env("LAKEWAVE_LOG", "warn").stderr(Stdio::inherit());
            }
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start lakewave");
        let port = wait_for_line(&mut child, "Lakewave listening on ")
            .expect("lakewave exited before listening")
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the listening line");
        ServerProcess { child, port }
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..200 {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        panic!("lakewave did not stop within 10 s of SIGTERM");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a child's stdout until a line starts with `prefix` and returns the
/// rest of that line (None if the child exits first). Stdout keeps being
/// drained afterwards so the child never blocks on a full pipe.
pub fn wait_for_line(child: &mut Child, prefix: &str) -> Option<String> {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stdout.take()?).lines();
    let found = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix(prefix) {
                    break rest.to_string();
                }
            }
            _ => return None,
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Some(found)
}

/// A test server script from `tests/servers/`: checks that Python can import
/// `modules`, starts the script with `args`, and waits for its
/// `READY <words>` line. Returns the child (stdin piped: the script serves
/// until it closes) and the words after READY.
pub fn start_script_server(script: &str, args: &[&std::ffi::OsStr], modules: &str, hint: &str) -> (Child, Vec<String>) {
    let python = require_program("python3", hint);
    if !modules.is_empty() {
        let ok = Command::new(&python)
            .args(["-c", &format!("import {modules}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{hint}");
    }
    let mut child = Command::new(python)
        .arg(workspace().join("tests/servers").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    let ready = wait_for_line(&mut child, "READY ").unwrap_or_else(|| panic!("{script} exited before it was ready ({hint})"));
    (child, ready.split_whitespace().map(str::to_string).collect())
}

/// Fails with an install hint when an external program is missing.
pub fn require_program(program: &str, install_hint: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("`{program}` is not installed; {install_hint}"))
}
