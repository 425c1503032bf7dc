"""Azurite (Microsoft's Azure Storage emulator) for the tests, on a free
loopback port, with a container holding the files of a directory.

Usage: python3 azurite_server.py AZURITE_BLOB_BIN CONTAINER [DIR]
Starts azurite-blob with its data in a temporary directory, creates
CONTAINER, uploads the files under DIR (blob names relative to DIR), prints
`READY <port> <SAS token reading and listing CONTAINER>` and serves until
its stdin closes (the test ends).
"""

import os
import re
import subprocess
import sys

import datetime

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas

# The emulator's well-known development account.
ACCOUNT = "devstoreaccount1"
KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
       "KBHBeksoGMGw==")

binary, container = sys.argv[1], sys.argv[2]
upload = sys.argv[3] if len(sys.argv) > 3 else None


def die_with_parent():
    # Azurite stops if this script is killed, not only when it ends.
    import ctypes
    import signal
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


proc = subprocess.Popen(
    # In memory: nothing is left on disk when the emulator stops.
    [binary, "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
     "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent)
port = None
for line in proc.stdout:
    m = re.search(r"listens on http://127\.0\.0\.1:(\d+)", line)
    if m:
        port = int(m.group(1))
        break
if port is None:
    sys.exit("azurite exited before listening")
# Keep draining its output so it never blocks on a full pipe.
import threading  # noqa: E402
threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()

conn = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")
service = BlobServiceClient.from_connection_string(conn)
client = service.create_container(container)
if upload:
    for root, _, files in os.walk(upload):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                client.upload_blob(os.path.relpath(path, upload), f, overwrite=True)
# A SAS token that may read and list the container for a day.
sas = generate_container_sas(
    ACCOUNT, container, account_key=KEY,
    permission=ContainerSasPermissions(read=True, list=True),
    expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
print(f"READY {port} {sas}", flush=True)
sys.stdin.read()
proc.terminate()
proc.wait()
