//! An S3-compatible server for tests: moto's server on a free loopback port,
//! started by `tests/servers/s3_server.py` with a bucket and files uploaded.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::{require_program, wait_for_line, workspace};

pub const S3_HINT: &str = "the S3 tests need moto's server: `pip install 'moto[server]'` (scripts/test-deps.sh does this)";

/// A running S3-compatible server; stops when dropped.
pub struct S3Server {
    pub port: u16,
    /// With signature checks on: the one key the server accepts.
    pub credentials: Option<(String, String)>,
    child: Child,
}

impl S3Server {
    /// Starts the server with `bucket` holding the files under `upload`;
    /// any key is accepted.
    pub fn start(bucket: &str, upload: Option<&Path>) -> S3Server {
        Self::launch(bucket, upload, false)
    }

    /// Like `start`, but requests must be signed with `credentials`.
    pub fn start_with_auth(bucket: &str, upload: Option<&Path>) -> S3Server {
        Self::launch(bucket, upload, true)
    }

    fn launch(bucket: &str, upload: Option<&Path>, auth: bool) -> S3Server {
        let python = require_program("python3", S3_HINT);
        let ok = Command::new(&python)
            .args(["-c", "import moto.server, boto3"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{S3_HINT}");
        let mut cmd = Command::new(python);
        cmd.arg(workspace().join("tests/servers/s3_server.py")).arg(bucket);
        if let Some(dir) = upload {
            cmd.arg(dir);
        }
        if auth {
            cmd.arg("--auth");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the S3 test server");
        let ready = wait_for_line(&mut child, "READY ")
            .unwrap_or_else(|| panic!("the S3 test server exited before it was ready ({S3_HINT})"));
        let mut words = ready.split_whitespace();
        let port = words.next().and_then(|p| p.parse().ok()).expect("port");
        let credentials = match (words.next(), words.next()) {
            (Some(k), Some(s)) => Some((k.to_string(), s.to_string())),
            _ => None,
        };
        S3Server { port, credentials, child }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
