#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The boto3 reference of bench-kinesis: plain PutRecords, 500 records a call.

    /usr/bin/python3 boto3_put.py ENDPOINT STREAM COUNT SIZE

Puts COUNT records of SIZE bytes into STREAM (which must exist and be
ACTIVE) the way a boto3 program does it: put_records in batches of 500,
one call after the other, entries the response marks failed are put again
(up to 10 rounds). Record i has partition key "pk-<i>" and data byte j
equal to (i + j) mod 256, the records every bench-kinesis implementation
writes, so the bench can read them back and count them.

Prints one JSON line: {"records": N, "failed": F, "elapsed_s": T, "cpu_s": C}
where N were stored, F still failed at the end, T is the wall time of the
puts (the client is made and the records built before the clock starts) and
C the process CPU time over the same span. Debian's python3-boto3 (hence
/usr/bin/python3, not a pyenv python without it).
"""
import json
import sys
import time

import boto3
from botocore.config import Config

BATCH = 500
ROUNDS = 10


def records(count, size):
    out = []
    for i in range(count):
        data = bytes((i + j) & 255 for j in range(size))
        out.append({"Data": data, "PartitionKey": f"pk-{i}"})
    return out


def put_batch(client, stream, batch):
    """Puts one batch, again and again for the entries that fail; returns
    how many failed in the end."""
    for _ in range(ROUNDS):
        resp = client.put_records(StreamName=stream, Records=batch)
        if resp.get("FailedRecordCount", 0) == 0:
            return 0
        batch = [rec for rec, res in zip(batch, resp["Records"]) if "ErrorCode" in res]
    return len(batch)


def main(argv):
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint, stream, count, size = argv[1], argv[2], int(argv[3]), int(argv[4])
    client = boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 5, "mode": "standard"},
                      read_timeout=120, max_pool_connections=4))
    recs = records(count, size)
    t0, c0 = time.monotonic(), time.process_time()
    failed = 0
    for k in range(0, count, BATCH):
        failed += put_batch(client, stream, recs[k:k + BATCH])
    elapsed, cpu = time.monotonic() - t0, time.process_time() - c0
    print(json.dumps({"records": count - failed, "failed": failed,
                      "elapsed_s": elapsed, "cpu_s": cpu}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
