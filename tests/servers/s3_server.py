"""An S3-compatible server for the tests (moto), on a free loopback port.

Usage: python3 s3_server.py BUCKET [DIR]
Creates BUCKET, uploads the files under DIR (keys relative to DIR), prints
`READY <port>` and serves until its stdin closes (the test ends).
"""

import os
import sys

import boto3
from moto.server import ThreadedMotoServer

bucket = sys.argv[1]
upload = sys.argv[2] if len(sys.argv) > 2 else None
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
s3 = boto3.client(
    "s3",
    endpoint_url=f"http://{host}:{port}",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    region_name="us-east-1",
)
s3.create_bucket(Bucket=bucket)
if upload:
    for root, _, files in os.walk(upload):
        for name in files:
            path = os.path.join(root, name)
            s3.upload_file(path, bucket, os.path.relpath(path, upload))
print(f"READY {port}", flush=True)
sys.stdin.read()
server.stop()
