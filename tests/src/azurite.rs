//! Azurite, Microsoft's Azure Storage emulator, for tests: started by
//! `tests/servers/azurite_server.py` on a free loopback port with a
//! container and files uploaded.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Child;

use crate::{require_program, start_script_server};

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
        let mut args: Vec<&OsStr> = vec![binary.as_os_str(), container.as_ref()];
        if let Some(dir) = upload {
            args.push(dir.as_os_str());
        }
        let (child, words) = start_script_server("azurite_server.py", &args, "azure.storage.blob", AZURITE_HINT);
        let port = words.first().and_then(|p| p.parse().ok()).expect("port");
        let sas = words.get(1).expect("SAS token").clone();
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
