//! A static HTTP file server with byte ranges and an emulation of OCI
//! pre-authenticated requests, for tests: `tests/servers/http_server.py`
//! on a free loopback port.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::{require_program, wait_for_line, workspace};

/// The PAR token the server accepts.
pub const PAR_TOKEN: &str = "good-token";

pub struct HttpServer {
    pub port: u16,
    child: Child,
}

impl HttpServer {
    /// Serves `root`: `/files/<path>` and `/p/<token>/n/<ns>/b/<dir>/o/<path>`.
    pub fn start(root: &Path) -> HttpServer {
        let python = require_program("python3", "the HTTP tests need Python 3");
        let mut child = Command::new(python)
            .arg(workspace().join("tests/servers/http_server.py"))
            .arg(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the HTTP test server");
        let port = wait_for_line(&mut child, "READY ")
            .expect("the HTTP test server exited before it was ready")
            .trim()
            .parse()
            .expect("port");
        HttpServer { port, child }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{}", self.port, path.trim_start_matches('/'))
    }

    /// A PAR URL for `name` (a file or a prefix ending in `/`) under `bucket`.
    pub fn par(&self, token: &str, bucket: &str, name: &str) -> String {
        self.url(&format!("p/{token}/n/acme/b/{bucket}/o/{name}"))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
