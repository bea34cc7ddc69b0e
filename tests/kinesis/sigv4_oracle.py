#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""SigV4 oracle: signs requests with botocore's own signer.

Reads a JSON array of cases on stdin, each
  {"method", "url", "params": [[k, v]...], "headers": [[name, value]...],
   "body_hex", "region", "service", "access_key", "secret", "token" (or null),
   "time" (UTC seconds), "content_sha256" (bool)}
and prints one JSON object per line, in order:
  {"authorization", "date", "token", "canonical"}.

The signing time is frozen by replacing botocore.auth.get_current_datetime,
which SigV4Auth.add_auth calls for its timestamp. Exit 77 when botocore is
not installed, so the C test can skip.
"""
import datetime
import json
import sys

try:
    import botocore.auth as auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError:
    sys.stderr.write("botocore is not installed\n")
    sys.exit(77)


def sign(case):
    when = datetime.datetime.fromtimestamp(case["time"], datetime.timezone.utc)
    auth.get_current_datetime = lambda remove_tzinfo=True: when.replace(tzinfo=None)
    body = bytes.fromhex(case["body_hex"])
    request = AWSRequest(method=case["method"], url=case["url"], data=body,
                         params=[tuple(p) for p in case["params"]])
    for name, value in case["headers"]:
        request.headers[name] = value  # appends: repeated names stay repeated
    if case["content_sha256"]:
        request.headers["X-Amz-Content-SHA256"] = auth.sha256(body).hexdigest()
    creds = Credentials(case["access_key"], case["secret"], case["token"])
    signer = SigV4Auth(creds, case["service"], case["region"])
    seen = {}
    canonical_request = signer.canonical_request

    def capture(req):  # the canonical request that add_auth hashes
        seen["canonical"] = canonical_request(req)
        return seen["canonical"]

    signer.canonical_request = capture
    signer.add_auth(request)
    return {
        "authorization": request.headers["Authorization"],
        "date": request.headers["X-Amz-Date"],
        "token": request.headers.get("X-Amz-Security-Token"),
        "canonical": seen["canonical"],
    }


def main():
    for case in json.load(sys.stdin):
        sys.stdout.write(json.dumps(sign(case)) + "\n")


if __name__ == "__main__":
    main()
