//! Azurite, Microsoft's Azure Storage emulator, for tests: started by
//! `tests/servers/azurite_server.py` on a free loopback port with a
//! container and files uploaded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::{require_program, wait_for_line, workspace};

pub const AZURITE_HINT: &str = "the Azure tests need Azurite (`npm install azurite` into ~/.cache/lakewave/azurite, \
     needs Node.js and npm) and the Python package azure-storage-blob; scripts/test-deps.sh installs both";

/// The emulator's development account and its well-known key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service; stops when dropped.
pub struct Azurite {
    pub port: u16,
    /// A SAS token that may read and list the container.
    pub sas: String,
    child: Child,
}

fn azurite_binary() -> PathBuf {
    if let Ok(p) = std::env::var("AZURITE_BLOB_BIN") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cached = Path::new(&home).join(".cache/lakewave/azurite/node_modules/.bin/azurite-blob");
    if cached.exists() {
        return cached;
    }
    require_program("azurite-blob", AZURITE_HINT)
}

impl Azurite {
    pub fn start(container: &str, upload: Option<&Path>) -> Azurite {
        let binary = azurite_binary();
        let python = require_program("python3", AZURITE_HINT);
        let ok = Command::new(&python)
            .args(["-c", "import azure.storage.blob"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{AZURITE_HINT}");
        let mut cmd = Command::new(python);
        cmd.arg(workspace().join("tests/servers/azurite_server.py")).arg(binary).arg(container);
        if let Some(dir) = upload {
            cmd.arg(dir);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start Azurite");
        let ready = wait_for_line(&mut child, "READY ")
            .unwrap_or_else(|| panic!("Azurite exited before it was ready ({AZURITE_HINT})"));
        let mut words = ready.split_whitespace();
        let port = words.next().and_then(|p| p.parse().ok()).expect("port");
        let sas = words.next().expect("SAS token").to_string();
        Azurite { port, sas, child }
    }

    /// The blob endpoint of the development account.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        // Closing its stdin lets the script stop Azurite; a kill would too
        // (Azurite dies with its parent), only less politely.
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
