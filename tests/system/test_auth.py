#!/usr/bin/python3
"""System test of authentication (SigV4) and authorization (policies per principal) against the
real server with credentials_file and policy_file (docs/security.md).

Covers: boto3 and the AWS CLI with real keys (Kinesis, the Video control plane, ListFragments,
GetMedia, PutMedia signed with UNSIGNED-PAYLOAD); a wrong secret, an unknown key, a tampered
body, a replay 20 minutes old, no Authorization at all; presigned URLs (valid, then expired);
policies (AccessDeniedException for Data Streams and KMS, NotAuthorizedException for Video;
kms:<Op> on the key's ARN, Decrypt on the ciphertext's key); SIGHUP
adding a key; /health open; the refusals at start (non-loopback without credentials, a
group/world-readable credentials file); secrets never in the log.
"""
import datetime
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(k, None)

import boto3  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

BIN = os.path.join(os.environ["TR_BUILD_DIR"], "tributary")
ALICE = ("AKIDALICE0000000001", "alice-secret-Zq9wXv7u")
BOB = ("AKIDBOB000000000002", "bob-secret-Kp3mNr8t")
CAROL = ("AKIDCAROL0000000003", "carol-secret-Hy6tRe2w")
DAVE = ("AKIDDAVE00000000004", "dave-secret-Wm5pLc1x")
ERIN = ("AKIDERIN00000000005", "erin-secret-Tg8bVn4q")
SECRETS = [ALICE[1], BOB[1], CAROL[1], DAVE[1], ERIN[1]]

PASSED = 0
FAILED = 0


def ok(name):
    global PASSED
    PASSED += 1
    print(f"ok   - {name}", flush=True)


def bad(name, detail=""):
    global FAILED
    FAILED += 1
    print(f"FAIL - {name}" + (f": {detail}" if detail else ""), flush=True)


def check(name, cond, detail=""):
    (ok if cond else bad)(name, *(() if cond else (detail,)))
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.proc = None
        self.logpath = os.path.join(workdir, "server.log")

    def start(self, **conf):
        settings = {"stream_transition_ms": 0}
        settings.update(conf)
        path = os.path.join(self.workdir, "tributary.conf")
        with open(path, "w") as f:
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        self.log = open(self.logpath, "a")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
             os.path.join(self.workdir, "data"), "--config", path, "--log-level", "debug"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    c.close()
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.log.close()

    def url(self):
        return f"http://127.0.0.1:{self.port}"


SRV = None


def client(service, key=ALICE, endpoint=None):
    return boto3.client(
        service, endpoint_url=endpoint or SRV.url(), region_name="us-east-1",
        aws_access_key_id=key[0], aws_secret_access_key=key[1],
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      connect_timeout=10, read_timeout=30))


def expect_err(name, fn, code, status=None, contains=None):
    try:
        fn()
    except ClientError as e:
        err = e.response["Error"]
        got_status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        msg = err.get("Message", "")
        return check(name, err["Code"] == code and (status is None or got_status == status) and
                     (contains is None or contains in msg),
                     f"got {err['Code']} {got_status}: {msg!r}")
    except Exception as e:  # noqa: BLE001
        return bad(name, f"unexpected {type(e).__name__}: {e}")
    return bad(name, "no error")


def sign(method, path, body, headers, key, service, amz_date=None):
    """A request signed by botocore's own SigV4 signer; returns the headers to send. With
    amz_date, signed by hand as at that time instead (a replay of an old request)."""
    if amz_date is not None:
        return sign_at(method, path, body, headers, key, service, amz_date)
    req = AWSRequest(method=method, url=SRV.url() + path, data=body, headers=dict(headers))
    SigV4Auth(Credentials(key[0], key[1]), service, "us-east-1").add_auth(req)
    return dict(req.headers.items())


def sign_at(method, path, body, headers, key, service, when):
    """SigV4 by hand (no query string), dated `when`."""
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    hdrs = {k.lower(): v.strip() for k, v in headers.items()}
    hdrs["host"] = f"127.0.0.1:{SRV.port}"
    hdrs["x-amz-date"] = stamp
    names = sorted(hdrs)
    canonical = "\n".join([method, path, "", "".join(f"{n}:{hdrs[n]}\n" for n in names),
                           ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = f"{stamp[:8]}/us-east-1/{service}/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                     hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + key[1]).encode()
    for part in (stamp[:8], "us-east-1", service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    out = dict(headers)
    out["X-Amz-Date"] = stamp
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={key[0]}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return out


def raw(method, path, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=30)
    c.request(method, path, body, headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        out = json.loads(data) if data else {}
    except ValueError:
        out = data
    return r.status, hdrs, out


def kinesis_raw(op, body, key=ALICE, amz_date=None, tamper=None, drop_auth=False):
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/x-amz-json-1.1",
               "X-Amz-Target": f"Kinesis_20131202.{op}"}
    signed = sign("POST", "/", data, headers, key, "kinesis", amz_date)
    if drop_auth:
        signed.pop("Authorization", None)
    if tamper is not None:
        data = tamper(data)
    return raw("POST", "/", data, signed)


def err_of(out):
    if not isinstance(out, dict):
        return None, None
    return out.get("__type"), out.get("message") or out.get("Message")


# ---------------------------------------------------------------------------------------------

def test_open_endpoints():
    st, _, _ = raw("GET", "/health")
    check("/health needs no signature", st == 200, f"status {st}")
    st, _, _ = raw("GET", "/metrics")
    check("/metrics needs no signature", st == 200, f"status {st}")


def test_valid_clients():
    k = client("kinesis")
    k.create_stream(StreamName="app-orders", ShardCount=1)
    k.get_waiter("stream_exists").wait(StreamName="app-orders",
                                       WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    r = k.put_record(StreamName="app-orders", Data=b"hello", PartitionKey="p")
    check("boto3 PutRecord with real keys", "SequenceNumber" in r)
    it = k.get_shard_iterator(StreamName="app-orders", ShardId=r["ShardId"],
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    recs = k.get_records(ShardIterator=it)["Records"]
    check("boto3 GetRecords with real keys", [x["Data"] for x in recs] == [b"hello"])
    k.create_stream(StreamName="protected-1", ShardCount=1)

    env = dict(os.environ, AWS_ACCESS_KEY_ID=ALICE[0], AWS_SECRET_ACCESS_KEY=ALICE[1])
    if shutil.which("aws"):
        p = subprocess.run(["aws", "--endpoint-url", SRV.url(), "kinesis", "list-streams",
                            "--output", "json"], env=env, capture_output=True, text=True,
                           timeout=120)
        check("aws CLI list-streams with real keys",
              p.returncode == 0 and "app-orders" in p.stdout, p.stderr[-300:])
        env_bad = dict(env, AWS_SECRET_ACCESS_KEY="wrong")
        p = subprocess.run(["aws", "--endpoint-url", SRV.url(), "kinesis", "list-streams"],
                           env=env_bad, capture_output=True, text=True, timeout=120)
        check("aws CLI with a wrong secret fails with InvalidSignatureException",
              p.returncode != 0 and "InvalidSignatureException" in p.stderr, p.stderr[-300:])
    else:
        ok("aws CLI not installed: skipped")

    v = client("kinesisvideo")
    arn = v.create_stream(StreamName="cam-1", DataRetentionInHours=1)["StreamARN"]
    check("boto3 kinesisvideo CreateStream", arn.startswith("arn:aws:kinesisvideo:"))
    d = v.describe_stream(StreamName="cam-1")["StreamInfo"]
    check("boto3 kinesisvideo DescribeStream", d["StreamName"] == "cam-1")
    ep = v.get_data_endpoint(StreamName="cam-1", APIName="LIST_FRAGMENTS")["DataEndpoint"]
    am = client("kinesis-video-archived-media", endpoint=ep)
    fr = am.list_fragments(StreamName="cam-1")
    check("boto3 ListFragments", fr["Fragments"] == [])
    media = client("kinesis-video-media", endpoint=ep)
    g = media.get_media(StreamName="cam-1", StartSelector={"StartSelectorType": "EARLIEST"})
    check("boto3 GetMedia answers 200", g["ResponseMetadata"]["HTTPStatusCode"] == 200)
    g["Payload"].close()

    # PutMedia: signed by botocore with x-amz-content-sha256: UNSIGNED-PAYLOAD.
    headers = {"x-amzn-stream-name": "cam-1", "x-amzn-fragment-timecode-type": "RELATIVE",
               "x-amzn-producer-start-timestamp": f"{time.time():.3f}",
               "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    signed = sign("POST", "/putMedia", b"", headers, ALICE, "kinesisvideo")
    c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=30)
    c.putrequest("POST", "/putMedia", skip_accept_encoding=True)
    for hk, hv in signed.items():
        c.putheader(hk, hv)
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    r.read()
    check("PutMedia signed with UNSIGNED-PAYLOAD is accepted", r.status == 200,
          f"status {r.status}")
    c.close()
    signed["Authorization"] = signed["Authorization"][:-4] + "0000"
    st, hd, out = raw("POST", "/putMedia", b"", signed)
    check("PutMedia with a bad signature: 403 InvalidSignatureException",
          st == 403 and hd.get("x-amzn-errortype") == "InvalidSignatureException" and
          isinstance(out, dict) and "Message" in out, f"{st} {hd.get('x-amzn-errortype')} {out}")


def test_signature_errors():
    k_wrong = client("kinesis", key=(ALICE[0], "not-the-secret"))
    expect_err("wrong secret -> InvalidSignatureException", lambda: k_wrong.list_streams(),
               "InvalidSignatureException", 400,
               "The request signature we calculated does not match the signature you provided")
    k_unknown = client("kinesis", key=("AKIDUNKNOWN", "whatever"))
    expect_err("unknown key -> UnrecognizedClientException", lambda: k_unknown.list_streams(),
               "UnrecognizedClientException", 400,
               "The security token included in the request is invalid.")
    v_wrong = client("kinesisvideo", key=(ALICE[0], "not-the-secret"))
    expect_err("Video: wrong secret -> 403 InvalidSignatureException",
               lambda: v_wrong.list_streams(), "InvalidSignatureException", 403)
    v_unknown = client("kinesisvideo", key=("AKIDUNKNOWN", "x"))
    expect_err("Video: unknown key -> 403 UnrecognizedClientException",
               lambda: v_unknown.list_streams(), "UnrecognizedClientException", 403)

    st, _, out = kinesis_raw("PutRecord", {"StreamName": "app-orders", "Data": "aGVsbG8=",
                                           "PartitionKey": "p"})
    check("a raw signed PutRecord passes", st == 200, f"{st} {out}")
    st, hd, out = kinesis_raw("PutRecord", {"StreamName": "app-orders", "Data": "aGVsbG8=",
                                            "PartitionKey": "p"},
                              tamper=lambda d: d.replace(b"aGVsbG8=", b"aGVsbG9="))
    t, m = err_of(out)
    check("tampered body -> InvalidSignatureException",
          st == 400 and t == "InvalidSignatureException" and
          hd.get("x-amzn-errortype") == "InvalidSignatureException", f"{st} {out}")

    now = datetime.datetime.now(datetime.timezone.utc)
    st, _, out = kinesis_raw("ListStreams", {}, amz_date=now)
    check("a request signed by hand now passes", st == 200, f"{st} {out}")
    old = now - datetime.timedelta(minutes=20)
    st, _, out = kinesis_raw("ListStreams", {}, amz_date=old)
    t, m = err_of(out)
    check("replay 20 minutes old -> Signature expired",
          t == "InvalidSignatureException" and m is not None and
          m.startswith("Signature expired: " + old.strftime("%Y%m%dT%H%M%SZ") +
                       " is now earlier than ") and "- 5 min.)" in m, f"{st} {out}")

    st, hd, out = kinesis_raw("ListStreams", {}, drop_auth=True)
    t, m = err_of(out)
    check("no Authorization -> 403 MissingAuthenticationTokenException",
          st == 403 and t == "MissingAuthenticationTokenException" and
          m == "Missing Authentication Token", f"{st} {out}")
    st, hd, out = raw("POST", "/listStreams", b"{}", {"Content-Type": "application/json"})
    check("Video without Authorization -> 403 MissingAuthenticationTokenException",
          st == 403 and hd.get("x-amzn-errortype") == "MissingAuthenticationTokenException" and
          isinstance(out, dict) and out.get("Message") == "Missing Authentication Token",
          f"{st} {hd} {out}")


def test_presigned():
    v = client("kinesisvideo")
    url = v.generate_presigned_url("describe_stream", Params={"StreamName": "cam-1"},
                                   ExpiresIn=2)
    u = urllib.parse.urlsplit(url)
    path = u.path + "?" + u.query
    check("presigned URL carries X-Amz-Signature", "X-Amz-Signature=" in u.query)
    st, _, out = raw("POST", path, json.dumps({"StreamName": "cam-1"}).encode(),
                     {"Content-Type": "application/json"})
    check("presigned URL works while valid", st == 200 and
          isinstance(out, dict) and out.get("StreamInfo", {}).get("StreamName") == "cam-1",
          f"{st} {out}")
    bad_path = path.replace("X-Amz-Signature=", "X-Amz-Signature=0")[:len(path)]
    st, hd, out = raw("POST", bad_path, b'{"StreamName": "cam-1"}',
                      {"Content-Type": "application/json"})
    check("presigned URL with a changed signature is refused",
          st == 403 and hd.get("x-amzn-errortype") == "InvalidSignatureException", f"{st}")
    time.sleep(3.2)
    st, hd, out = raw("POST", path, b'{"StreamName": "cam-1"}',
                      {"Content-Type": "application/json"})
    check("expired presigned URL -> 403 Signature expired",
          st == 403 and hd.get("x-amzn-errortype") == "InvalidSignatureException" and
          isinstance(out, dict) and out.get("Message", "").startswith("Signature expired"),
          f"{st} {out}")


def test_policies():
    kb = client("kinesis", key=BOB)
    names = kb.list_streams()["StreamNames"]
    check("bob may ListStreams", "app-orders" in names)
    expect_err("bob PutRecord -> AccessDeniedException",
               lambda: kb.put_record(StreamName="app-orders", Data=b"x", PartitionKey="p"),
               "AccessDeniedException", 400,
               "User: bob is not authorized to perform: kinesis:PutRecord on resource: "
               "arn:aws:kinesis:us-east-1:000000000000:stream/app-orders")
    ka = client("kinesis")
    expect_err("explicit Deny wins over Allow (alice DeleteStream protected-1)",
               lambda: ka.delete_stream(StreamName="protected-1"), "AccessDeniedException", 400,
               "kinesis:DeleteStream")
    vb = client("kinesisvideo", key=BOB)
    check("bob may DescribeStream (kinesisvideo:Describe*)",
          vb.describe_stream(StreamName="cam-1")["StreamInfo"]["StreamName"] == "cam-1")
    expect_err("bob kinesisvideo CreateStream -> 401 NotAuthorizedException",
               lambda: vb.create_stream(StreamName="cam-2"), "NotAuthorizedException", 401,
               "kinesisvideo:CreateStream")
    ep = vb.get_data_endpoint(StreamName="cam-1", APIName="GET_MEDIA")["DataEndpoint"]
    mb = client("kinesis-video-media", key=BOB, endpoint=ep)
    expect_err("bob GetMedia -> NotAuthorizedException",
               lambda: mb.get_media(StreamName="cam-1",
                                    StartSelector={"StartSelectorType": "EARLIEST"}),
               "NotAuthorizedException", 401)


def test_kms_policies(policy_path):
    """The KMS face authorizes kms:<Op> as the Kinesis face does: on the key's ARN, "*" for
    CreateKey, ListKeys and ListAliases; Decrypt on the key the ciphertext names."""
    if shutil.which("aws"):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ALICE[0], AWS_SECRET_ACCESS_KEY=ALICE[1])
        p = subprocess.run(["aws", "--endpoint-url", SRV.url(), "kms", "list-keys"], env=env,
                           capture_output=True, text=True, timeout=120)
        check("kinesis:* but no kms:*: aws kms list-keys -> AccessDeniedException",
              p.returncode != 0 and "AccessDeniedException" in p.stderr and
              "kms:ListKeys on resource: *" in p.stderr, p.stderr[-300:])
    else:
        ok("aws CLI not installed: skipped")
    ka = client("kms")
    expect_err("alice (kinesis:*, no kms:*) ListKeys -> 400 AccessDeniedException",
               lambda: ka.list_keys(), "AccessDeniedException", 400,
               "User: alice is not authorized to perform: kms:ListKeys on resource: *")
    expect_err("alice CreateKey -> AccessDeniedException", lambda: ka.create_key(),
               "AccessDeniedException", 400, "kms:CreateKey on resource: *")

    kd = client("kms", key=DAVE)  # kms:* on "*"
    a = kd.create_key(Description="erin's")["KeyMetadata"]
    b = kd.create_key(Description="not erin's")["KeyMetadata"]
    check("dave (kms:*) CreateKey and ListKeys",
          {a["KeyId"], b["KeyId"]} <= {k["KeyId"] for k in kd.list_keys()["Keys"]})
    kd.create_alias(AliasName="alias/erin-a", TargetKeyId=a["KeyId"])
    blob_a = kd.encrypt(KeyId=a["KeyId"], Plaintext=b"for erin")["CiphertextBlob"]
    blob_b = kd.encrypt(KeyId=b["KeyId"], Plaintext=b"not for erin")["CiphertextBlob"]

    ke = client("kms", key=ERIN)
    expect_err("erin without a policy: Decrypt -> AccessDeniedException",
               lambda: ke.decrypt(CiphertextBlob=blob_a), "AccessDeniedException", 400,
               f"kms:Decrypt on resource: {a['Arn']}")
    pol = json.load(open(policy_path))
    pol["erin"] = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": a["Arn"]}]}
    json.dump(pol, open(policy_path, "w"))
    SRV.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    got = None
    while time.time() < deadline and got is None:
        try:
            got = ke.decrypt(CiphertextBlob=blob_a)
        except ClientError:
            time.sleep(0.1)
    check("kms:Decrypt on key A: erin decrypts A's ciphertext",
          got is not None and got["Plaintext"] == b"for erin" and got["KeyId"] == a["Arn"],
          str(got))
    expect_err("erin Decrypt of key B's ciphertext -> AccessDeniedException",
               lambda: ke.decrypt(CiphertextBlob=blob_b), "AccessDeniedException", 400,
               f"User: erin is not authorized to perform: kms:Decrypt on resource: {b['Arn']}")
    expect_err("erin Decrypt of B's ciphertext naming KeyId A -> AccessDeniedException",
               lambda: ke.decrypt(CiphertextBlob=blob_b, KeyId=a["KeyId"]),
               "AccessDeniedException", 400, f"kms:Decrypt on resource: {b['Arn']}")
    expect_err("erin Encrypt under A (only Decrypt allowed) -> AccessDeniedException",
               lambda: ke.encrypt(KeyId="alias/erin-a", Plaintext=b"x"),
               "AccessDeniedException", 400, f"kms:Encrypt on resource: {a['Arn']}")
    expect_err("erin DescribeKey A -> AccessDeniedException",
               lambda: ke.describe_key(KeyId=a["Arn"]), "AccessDeniedException", 400,
               "kms:DescribeKey")
    expect_err("erin ListKeys -> AccessDeniedException", lambda: ke.list_keys(),
               "AccessDeniedException", 400, "kms:ListKeys on resource: *")
    expect_err("erin may not create an alias on A",
               lambda: ke.create_alias(AliasName="alias/erin-b", TargetKeyId=a["KeyId"]),
               "AccessDeniedException", 400, "kms:CreateAlias")


def test_reload(workdir, cred_path, policy_path):
    kc = client("kinesis", key=CAROL)
    expect_err("carol is unknown before the reload", lambda: kc.list_streams(),
               "UnrecognizedClientException")
    write_creds(cred_path, [ALICE + ("alice",), BOB + ("bob",), CAROL + ("carol",),
                            DAVE + ("dave",), ERIN + ("erin",)])
    pol = json.load(open(policy_path))
    pol["carol"] = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kinesis:List*", "Resource": "*"}]}
    json.dump(pol, open(policy_path, "w"))
    SRV.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            kc.list_streams()
            break
        except ClientError:
            time.sleep(0.1)
    try:
        check("SIGHUP reload adds a key (and its policy)", "app-orders" in kc.list_streams()["StreamNames"])
    except ClientError as e:
        bad("SIGHUP reload adds a key", str(e))
    check("the server survived SIGHUP", SRV.proc.poll() is None)


def write_creds(path, rows, mode=0o600):
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write("# access_key_id secret_access_key principal\n")
        for key, secret, who in rows:
            f.write(f"{key} {secret} {who}\n")
    os.chmod(path + ".tmp", mode)
    os.replace(path + ".tmp", path)


def test_refusals(workdir, cred_path, policy_path):
    port = free_port()
    p = subprocess.run([BIN, "serve", "--listen", f"0.0.0.0:{port}", "--data-dir",
                        os.path.join(workdir, "data2")], capture_output=True, text=True,
                       timeout=30)
    check("non-loopback listen without credentials: exit 2 and why",
          p.returncode == 2 and "without credentials" in p.stderr, f"{p.returncode} {p.stderr}")
    loose = os.path.join(workdir, "loose.creds")
    write_creds(loose, [ALICE + ("alice",)], mode=0o644)
    conf = os.path.join(workdir, "loose.conf")
    with open(conf, "w") as f:
        f.write(f"credentials_file = {loose}\n")
    p = subprocess.run([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                        os.path.join(workdir, "data2"), "--config", conf],
                       capture_output=True, text=True, timeout=30)
    check("a group/world-readable credentials file is refused",
          p.returncode == 2 and "readable by group or others" in p.stderr and
          ALICE[1] not in p.stderr, f"{p.returncode} {p.stderr}")


def main():
    global SRV
    workdir = tempfile.mkdtemp(prefix="tr-auth-")
    try:
        cred_path = os.path.join(workdir, "credentials")
        policy_path = os.path.join(workdir, "policy.json")
        write_creds(cred_path, [ALICE + ("alice",), BOB + ("bob",), DAVE + ("dave",),
                                ERIN + ("erin",)])
        policies = {
            "alice": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["kinesis:*", "kinesisvideo:*"], "Resource": "*"},
                {"Effect": "Deny", "Action": "kinesis:DeleteStream",
                 "Resource": "arn:aws:kinesis:us-east-1:000000000000:stream/protected-*"}]},
            "bob": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["kinesis:List*", "kinesis:Describe*",
                                               "kinesisvideo:Describe*",
                                               "kinesisvideo:GetDataEndpoint"],
                 "Resource": "*"}]},
            "dave": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]},
        }
        with open(policy_path, "w") as f:
            json.dump(policies, f)
        SRV = Server(workdir)
        SRV.start(credentials_file=cred_path, policy_file=policy_path)
        for t in (test_open_endpoints, test_valid_clients, test_signature_errors,
                  test_presigned, test_policies):
            try:
                t()
            except Exception:  # noqa: BLE001
                bad(t.__name__, traceback.format_exc())
        try:
            test_kms_policies(policy_path)
        except Exception:  # noqa: BLE001
            bad("test_kms_policies", traceback.format_exc())
        try:
            test_reload(workdir, cred_path, policy_path)
        except Exception:  # noqa: BLE001
            bad("test_reload", traceback.format_exc())
        SRV.stop()
        log = open(SRV.logpath).read()
        check("the server log names no secret", not any(s in log for s in SECRETS))
        check("the server log records refusals", "request refused" in log)
        test_refusals(workdir, cred_path, policy_path)
    finally:
        if SRV is not None and SRV.proc is not None:
            SRV.stop()
        if FAILED == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"# kept {workdir}")
    print(f"# {PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
