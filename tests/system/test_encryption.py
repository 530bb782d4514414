#!/usr/bin/python3
"""System test of encryption at rest and the KMS API against the real server.

`aws kms` CLI and boto3 kms calls (keys, aliases, enable/disable, rotation status, Encrypt,
Decrypt, GenerateDataKey and AWS's error names); known plaintext markers written through an
encrypted Data Stream (PutRecord, PutRecords) and through PutMedia (a GStreamer-made clip with
the marker in its tags); then every file of the data directory is scanned for the markers
(none may appear); the server restarts and everything reads back intact; the master keys are
rotated (RotateKeyOnDemand) and everything still reads back; a wrong root key is refused with
a clear message and leaves the keyring as it was; keyring and key files are 0600.
"""
import base64
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "secret")
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ.pop("TRIBUTARY_ROOT_KEY", None)

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

BIN = os.path.join(os.environ["TR_BUILD_DIR"], "tributary")
DATA_MARK = b"TRIBUTARY-DATA-MARKER-7f3a"
VIDEO_MARK = "TRIBUTARYVIDEOMARKER9c1e"
PASSED = 0
FAILED = 0


def check(name, cond, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print(f"ok   - {name}", flush=True)
    else:
        FAILED += 1
        print(f"FAIL - {name}" + (f": {detail}" if detail else ""), flush=True)
    return cond


def eq(name, got, want):
    return check(name, got == want, f"got {got!r}, want {want!r}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, data_dir, root_key_file=None):
        self.data_dir = data_dir
        self.root_key_file = root_key_file
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(os.path.dirname(data_dir), "server.log")

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def args(self):
        a = [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir]
        if self.root_key_file:
            cfg = os.path.join(os.path.dirname(self.data_dir), "tributary.conf")
            with open(cfg, "w") as f:
                f.write(f"root_key_file = {self.root_key_file}\n")
            a += ["--config", cfg]
        return a

    def start(self):
        self.proc = subprocess.Popen(self.args(), stdout=open(self.log, "a"),
                                     stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {open(self.log).read()[-2000:]}")
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None


def client(srv, name):
    return boto3.client(name, endpoint_url=srv.url(), region_name="us-east-1")


def aws(srv, *args):
    out = subprocess.run(["aws", "--endpoint-url", srv.url(), "--output", "json", *args],
                         capture_output=True, text=True, timeout=60)
    return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else {}), out.stderr


def kms_raw(srv, op, body):
    req = urllib.request.Request(srv.url() + "/", data=json.dumps(body).encode(), method="POST",
                                 headers={"X-Amz-Target": f"TrentService.{op}",
                                          "Content-Type": "application/x-amz-json-1.1"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def error_code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def kms_api(srv):
    rc, out, err = aws(srv, "kms", "create-key", "--description", "cli key")
    check("aws kms create-key", rc == 0, err)
    key = out["KeyMetadata"]["KeyId"]
    eq("key ARN", out["KeyMetadata"]["Arn"], f"arn:aws:kms:us-east-1:000000000000:key/{key}")
    eq("key state", out["KeyMetadata"]["KeyState"], "Enabled")
    rc, _, err = aws(srv, "kms", "create-alias", "--alias-name", "alias/cli",
                     "--target-key-id", key)
    check("aws kms create-alias", rc == 0, err)
    rc, _, err = aws(srv, "kms", "create-alias", "--alias-name", "alias/cli",
                     "--target-key-id", key)
    check("alias taken: AlreadyExistsException", rc != 0 and "AlreadyExistsException" in err, err)
    rc, out, err = aws(srv, "kms", "list-aliases")
    check("aws kms list-aliases", rc == 0 and any(a["AliasName"] == "alias/cli"
                                                  for a in out["Aliases"]), err)
    rc, out, err = aws(srv, "kms", "describe-key", "--key-id", "alias/cli")
    eq("describe-key by alias", out.get("KeyMetadata", {}).get("KeyId"), key)
    rc, out, err = aws(srv, "kms", "list-keys")
    check("aws kms list-keys", rc == 0 and any(k["KeyId"] == key for k in out["Keys"]), err)

    k = client(srv, "kms")
    k.enable_key_rotation(KeyId=key)
    eq("rotation status", k.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"], True)
    ct = k.encrypt(KeyId="alias/cli", Plaintext=b"hello kms",
                   EncryptionContext={"a": "b"})["CiphertextBlob"]
    eq("decrypt", k.decrypt(CiphertextBlob=ct, EncryptionContext={"a": "b"})["Plaintext"],
       b"hello kms")
    eq("decrypt with another context", error_code(lambda: k.decrypt(
        CiphertextBlob=ct, EncryptionContext={"a": "c"})), "InvalidCiphertextException")
    eq("decrypt garbage", error_code(lambda: k.decrypt(CiphertextBlob=b"x" * 40)),
       "InvalidCiphertextException")
    dk = k.generate_data_key(KeyId=key, KeySpec="AES_256")
    eq("data key length", len(dk["Plaintext"]), 32)
    eq("data key decrypts", k.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"],
       dk["Plaintext"])
    eq("unknown key", error_code(lambda: k.describe_key(KeyId="alias/none")), "NotFoundException")
    eq("encrypt too large", error_code(lambda: k.encrypt(KeyId=key, Plaintext=b"x" * 4097)),
       "ValidationException")
    k.disable_key(KeyId=key)
    eq("disabled key", error_code(lambda: k.encrypt(KeyId=key, Plaintext=b"x")),
       "DisabledException")
    eq("disabled key decrypt", error_code(lambda: k.decrypt(CiphertextBlob=ct,
                                                            EncryptionContext={"a": "b"})),
       "DisabledException")
    k.enable_key(KeyId=key)
    eq("enabled again", k.describe_key(KeyId=key)["KeyMetadata"]["Enabled"], True)
    return key, ct


def data_streams(srv, key):
    kin = client(srv, "kinesis")
    kin.create_stream(StreamName="enc", ShardCount=1)
    kin.get_waiter("stream_exists").wait(StreamName="enc", WaiterConfig={"Delay": 0.2})
    kin.put_record(StreamName="enc", Data=b"clear before encryption", PartitionKey="p0")
    eq("StartStreamEncryption with an unknown key", error_code(lambda: kin.start_stream_encryption(
        StreamName="enc", EncryptionType="KMS", KeyId="alias/nope")), "KMSNotFoundException")
    kin.start_stream_encryption(StreamName="enc", EncryptionType="KMS", KeyId="alias/cli")
    time.sleep(0.7)
    r = kin.put_record(StreamName="enc", Data=DATA_MARK + b"-one", PartitionKey="p1")
    eq("PutRecord EncryptionType", r.get("EncryptionType"), "KMS")
    kin.put_records(StreamName="enc", Records=[
        {"Data": DATA_MARK + b"-%d" % i, "PartitionKey": f"k{i}"} for i in range(20)])
    big = DATA_MARK * (65536 // len(DATA_MARK))
    kin.put_record(StreamName="enc", Data=big, PartitionKey="big")


def read_stream(srv):
    kin = client(srv, "kinesis")
    it = kin.get_shard_iterator(StreamName="enc", ShardId="shardId-000000000000",
                                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    recs = kin.get_records(ShardIterator=it)["Records"]
    return recs


def check_stream(srv, label):
    recs = read_stream(srv)
    check(f"{label}: records read", len(recs) >= 23, f"{len(recs)} records")
    if len(recs) >= 23:
        eq(f"{label}: the clear record", recs[0]["Data"], b"clear before encryption")
        check(f"{label}: clear record has no EncryptionType", "EncryptionType" not in recs[0])
        eq(f"{label}: first sealed record", recs[1]["Data"], DATA_MARK + b"-one")
        eq(f"{label}: EncryptionType KMS", recs[1].get("EncryptionType"), "KMS")
        eq(f"{label}: PutRecords records", [r["Data"] for r in recs[2:22]],
           [DATA_MARK + b"-%d" % i for i in range(20)])
        eq(f"{label}: 64 KiB record", len(recs[22]["Data"]), len(DATA_MARK) *
           (65536 // len(DATA_MARK)))


def make_clip(tmp):
    path = os.path.join(tmp, "clip.mkv")
    cmd = (f"gst-launch-1.0 -q videotestsrc num-buffers=60 ! "
           f"video/x-raw,width=320,height=240,framerate=30/1 ! "
           f"x264enc key-int-max=30 bframes=0 ! h264parse ! "
           f"taginject tags=\"title={VIDEO_MARK},comment={VIDEO_MARK}\" ! "
           f"matroskamux streamable=true ! filesink location={path}")
    subprocess.run(cmd, shell=True, check=True, timeout=120)
    return path


def put_media(srv, name, clip):
    out = subprocess.run(["curl", "-sS", "--http1.1", "-H", "Expect:", "-H",
                          f"x-amzn-stream-name: {name}", "-H",
                          "x-amzn-fragment-timecode-type: RELATIVE", "-H",
                          f"x-amzn-producer-start-timestamp: {time.time():.3f}",
                          "--data-binary", f"@{clip}", f"{srv.url()}/putMedia"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout


def get_media(srv, name):
    body = json.dumps({"StreamName": name,
                       "StartSelector": {"StartSelectorType": "EARLIEST"}})
    out = subprocess.run(["curl", "-sS", "--http1.1", "-m", "8", "-H",
                          "Content-Type: application/json", "-d", body,
                          f"{srv.url()}/getMedia"], capture_output=True, timeout=30)
    return out.stdout


def scan(data_dir, marks):
    found = []
    for root, _, files in os.walk(data_dir):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                b = fh.read()
            for m in marks:
                if m in b:
                    found.append((p, m))
    return found


def main():
    tmp = tempfile.mkdtemp(prefix="tr-enc-")
    data = os.path.join(tmp, "data")
    srv = Server(data)
    try:
        srv.start()
        key, ct = kms_api(srv)
        data_streams(srv, key)
        check_stream(srv, "first run")
        kv = client(srv, "kinesisvideo")
        kv.create_stream(StreamName="cam", DataRetentionInHours=24)
        time.sleep(0.7)
        clip = make_clip(tmp)
        acks = put_media(srv, "cam", clip)
        check("PutMedia persisted", acks.count("PERSISTED") >= 2, acks[-500:])
        media = get_media(srv, "cam")
        check("GetMedia returns the clip with its marker",
              VIDEO_MARK.encode() in media and len(media) > 20000, f"{len(media)} bytes")

        # A disabled key: PutMedia answers 4501 KMS_KEY_DISABLED.
        kmsc = client(srv, "kms")
        kv.create_stream(StreamName="cam2", DataRetentionInHours=24, KmsKeyId="alias/cli")
        time.sleep(0.7)
        kmsc.disable_key(KeyId=key)
        acks2 = put_media(srv, "cam2", clip)
        check("PutMedia with a disabled key: 4501", "4501" in acks2 and "KMS_KEY_DISABLED" in acks2,
              acks2[-400:])
        kin = client(srv, "kinesis")
        it = kin.get_shard_iterator(StreamName="enc", ShardId="shardId-000000000000",
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        eq("GetRecords with a disabled key",
           error_code(lambda: kin.get_records(ShardIterator=it)), "KMSDisabledException")
        eq("PutRecord with a disabled key", error_code(lambda: kin.put_record(
            StreamName="enc", Data=b"x", PartitionKey="p")), "KMSDisabledException")
        kmsc.enable_key(KeyId=key)

        srv.stop()
        found = scan(data, [DATA_MARK, VIDEO_MARK.encode()])
        check("no marker anywhere in the data directory", not found, repr(found[:5]))
        for f in ("keyring.bin", "root.key"):
            p = os.path.join(data, f)
            eq(f"{f} is 0600", stat.S_IMODE(os.stat(p).st_mode), 0o600)

        srv.start()
        check_stream(srv, "after restart")
        check("GetMedia after restart", VIDEO_MARK.encode() in get_media(srv, "cam"))
        eq("KMS blob after restart", client(srv, "kms").decrypt(
            CiphertextBlob=ct, EncryptionContext={"a": "b"})["Plaintext"], b"hello kms")

        # Rotation: new key material; everything sealed before still opens.
        for ref in (key, "alias/aws/kinesisvideo"):
            out = kms_raw(srv, "RotateKeyOnDemand", {"KeyId": ref})
            check(f"RotateKeyOnDemand {ref}", "KeyId" in out, repr(out))
        client(srv, "kinesis").put_record(StreamName="enc", Data=b"after rotation",
                                          PartitionKey="r")
        recs = read_stream(srv)
        eq("after rotation: records", [r["Data"] for r in recs[1:22]],
           [DATA_MARK + b"-one"] + [DATA_MARK + b"-%d" % i for i in range(20)])
        eq("after rotation: new record", recs[-1]["Data"] if recs else None, b"after rotation")
        check("GetMedia after rotation", VIDEO_MARK.encode() in get_media(srv, "cam"))
        srv.stop()
        srv.start()
        check_stream(srv, "after rotation and restart")
        srv.stop()

        # A wrong root key: refused with a clear message; the keyring is untouched.
        ring = os.path.join(data, "keyring.bin")
        before = open(ring, "rb").read()
        wrong = os.path.join(tmp, "wrong.key")
        with open(wrong, "w") as f:
            f.write("ab" * 32 + "\n")
        os.chmod(wrong, 0o600)
        bad_srv = Server(data, root_key_file=wrong)
        p = subprocess.run(bad_srv.args(), capture_output=True, text=True, timeout=30)
        check("wrong root key: refused", p.returncode != 0, p.stderr)
        check("wrong root key: clear message", "root key" in p.stderr and "keyring" in p.stderr,
              p.stderr)
        check("wrong root key: keyring unchanged", open(ring, "rb").read() == before)
        os.chmod(wrong, 0o644)
        p = subprocess.run(bad_srv.args(), capture_output=True, text=True, timeout=30)
        check("root key readable by others: refused", p.returncode != 0 and "chmod 600" in p.stderr,
              p.stderr)
        # The right one, moved out of the data directory, works.
        right = os.path.join(tmp, "root.key")
        shutil.move(os.path.join(data, "root.key"), right)
        good = Server(data, root_key_file=right)
        good.start()
        check_stream(good, "root key kept elsewhere")
        good.stop()
    except Exception:
        traceback.print_exc()
        check("no exception", False)
    finally:
        srv.stop()
        if FAILED:
            print(open(srv.log).read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
