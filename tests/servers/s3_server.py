"""An S3-compatible server for the tests (moto), on a free loopback port.

Usage: python3 s3_server.py BUCKET [DIR] [--auth]
Creates BUCKET, uploads the files under DIR (keys relative to DIR), prints
`READY <port>` and serves until its stdin closes (the test ends).

With --auth the server checks request signatures: it creates a user whose
key may do anything on S3, uploads with that key and prints
`READY <port> <access key id> <secret access key>`; requests signed with
any other key fail with 403 (InvalidAccessKeyId or SignatureDoesNotMatch).
"""

import json
import os
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
auth = "--auth" in sys.argv[1:]
if auth:
    # Requests are authenticated after the first three (the user, its
    # policy and its key are created anonymously).
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

bucket = args[0]
upload = args[1] if len(args) > 1 else None
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://{host}:{port}"
key_id, secret = "test", "test"
if auth:
    iam = boto3.client("iam", endpoint_url=endpoint, aws_access_key_id="setup",
                       aws_secret_access_key="setup", region_name="us-east-1")
    iam.create_user(UserName="lakewave")
    policy = {"Version": "2012-10-17",
              "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.put_user_policy(UserName="lakewave", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="lakewave")["AccessKey"]
    key_id, secret = key["AccessKeyId"], key["SecretAccessKey"]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key_id,
                  aws_secret_access_key=secret, region_name="us-east-1")
s3.create_bucket(Bucket=bucket)
if not auth:
    # Unsigned requests may read (clients that skip signing).
    public = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(public))
if upload:
    for root, _, files in os.walk(upload):
        for name in files:
            path = os.path.join(root, name)
            s3.upload_file(path, bucket, os.path.relpath(path, upload))
print(f"READY {port} {key_id} {secret}" if auth else f"READY {port}", flush=True)
sys.stdin.read()
server.stop()
