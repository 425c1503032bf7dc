//! Running external client programs (Python scripts, Java programs, the
//! `mariadb` CLI) from tests: on a blocking thread so the in-process server
//! keeps serving, with output captured and a timeout that kills them.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{require_program, workspace};

pub const DEPS_HINT: &str = "run `bash scripts/test-deps.sh` to install the clients the end-to-end tests drive";
/// MariaDB Connector/J as Debian's libmariadb-java installs it.
pub const DEFAULT_CONNECTOR_J: &str = "/usr/share/java/mariadb-java-client.jar";

/// What an external program did.
pub struct ClientRun {
    pub what: String,
    /// None: killed at the timeout.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    timeout: Duration,
}

impl ClientRun {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn report(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => format!("killed after {} s", self.timeout.as_secs()),
        };
        format!("{} ({status})\n--- stdout ---\n{}\n--- stderr ---\n{}", self.what, self.stdout(), self.stderr())
    }

    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Panics with the program's output unless it exited with status 0.
    pub fn assert_success(&self) {
        assert!(self.success(), "client program failed: {}", self.report());
        println!("{}", self.report());
    }
}

/// `mariadb` against a server on a loopback port, in batch mode without TLS,
/// ignoring option files (`--no-defaults` must come first).
pub fn mariadb_cmd(mariadb: &Path, port: impl std::fmt::Display) -> Command {
    let mut cmd = Command::new(mariadb);
    cmd.args(["--no-defaults", "-h127.0.0.1", "-uroot", "--batch", "--skip-ssl"]).arg(format!("-P{port}"));
    cmd
}

/// A file under `tests/clients/`.
pub fn client_file(name: &str) -> PathBuf {
    workspace().join("tests").join("clients").join(name)
}

/// Runs a program with its stdin from `stdin` (or empty), killing it after
/// `timeout`.
pub async fn run_client(mut cmd: Command, stdin: Option<&Path>, timeout: Duration) -> ClientRun {
    let stdin = stdin.map(|p| File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display())));
    tokio::task::spawn_blocking(move || {
        let what = format!("{cmd:?}");
        cmd.stdin(stdin.map_or_else(Stdio::null, Stdio::from)).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut buf);
                }
                buf
            })
        }
        let out = drain(child.stdout.take());
        let err = drain(child.stderr.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for {what}: {e}"),
            }
        };
        ClientRun { what, status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default(), timeout }
    })
    .await
    .expect("client thread")
}

/// A Java program from `tests/clients/` compiled against MariaDB Connector/J.
pub struct JavaProgram {
    java: PathBuf,
    classpath: std::ffi::OsString,
    _classes: tempfile::TempDir,
}

impl JavaProgram {
    pub async fn compile(source: &str) -> JavaProgram {
        let javac = require_program("javac", DEPS_HINT);
        let java = require_program("java", DEPS_HINT);
        let jar = std::env::var_os("MARIADB_JAVA_CLIENT_JAR").map_or_else(|| PathBuf::from(DEFAULT_CONNECTOR_J), PathBuf::from);
        assert!(jar.is_file(), "MariaDB Connector/J is not installed at {}; {DEPS_HINT}", jar.display());
        let classes = tempfile::tempdir().expect("temp dir for compiled classes");
        let mut compile = Command::new(javac);
        compile.arg("-cp").arg(&jar).arg("-d").arg(classes.path()).arg(client_file(source));
        run_client(compile, None, Duration::from_secs(300)).await.assert_success();
        let mut classpath = classes.path().as_os_str().to_owned();
        classpath.push(":");
        classpath.push(&jar);
        JavaProgram { java, classpath, _classes: classes }
    }

    /// `java -cp ... <class>`, ready for arguments.
    pub fn command(&self, class: &str) -> Command {
        let mut cmd = Command::new(&self.java);
        cmd.arg("-cp").arg(&self.classpath).arg(class);
        cmd
    }
}
