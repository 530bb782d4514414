#!/usr/bin/python3
"""System test of the Kinesis Data Streams API with boto3 (Debian python3-boto3) and raw
JSON 1.1 / CBOR requests against the real server on a free loopback port.

Covers every operation the server serves except consumers and SubscribeToShard; split/merge
ordering; pagination; restart durability (SIGTERM and kill -9) with old iterators; iterator
expiry (iterator_ttl_ms); CBOR as the Java SDK sends it; and bad input that must neither crash
the server nor damage stored data.

Operations or members newer than Debian's botocore model (Tags and MaxRecordSizeInKiB on
CreateStream, StreamARN, NextToken of ListStreams, UpdateMaxRecordSize, TagResource...) are sent
as raw JSON 1.1 requests.
"""
import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "secret")
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

BIN = os.path.join(os.environ["TR_BUILD_DIR"], "tributary")
ACCOUNT = "000000000000"
MAX_HASH = 2**128 - 1
T0 = time.time()

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
    if cond:
        ok(name)
    else:
        bad(name, detail)
    return cond


def eq(name, got, want):
    return check(name, got == want, f"got {got!r}, want {want!r}")


# ---------------------------------------------------------------------------------------------
# A tiny CBOR codec (RFC 8949 subset: what the AWS SDKs use)

class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value

    def __repr__(self):
        return f"Tag({self.tag}, {self.value!r})"


def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    if n < 0x100:
        return bytes([major << 5 | 24, n])
    if n < 0x10000:
        return struct.pack(">BH", major << 5 | 25, n)
    if n < 0x100000000:
        return struct.pack(">BI", major << 5 | 26, n)
    return struct.pack(">BQ", major << 5 | 27, n)


def cbor_enc(v):
    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, int):
        if v >= 2**64 or v < -2**64:  # bignum: tag 2 or 3 + big-endian bytes
            m = v if v >= 0 else -1 - v
            return _head(6, 2 if v >= 0 else 3) + cbor_enc(m.to_bytes((m.bit_length() + 7) // 8, "big"))
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, (bytes, bytearray)):
        return _head(2, len(v)) + bytes(v)
    if isinstance(v, str):
        b = v.encode()
        return _head(3, len(b)) + b
    if isinstance(v, (list, tuple)):
        return _head(4, len(v)) + b"".join(cbor_enc(x) for x in v)
    if isinstance(v, dict):
        return _head(5, len(v)) + b"".join(cbor_enc(k) + cbor_enc(x) for k, x in v.items())
    if isinstance(v, Tag):
        return _head(6, v.tag) + cbor_enc(v.value)
    raise TypeError(type(v))


class _Break:
    pass


def _dec(b, i):
    ib = b[i]
    i += 1
    major, ai = ib >> 5, ib & 31
    if major == 7:
        if ai == 20:
            return False, i
        if ai == 21:
            return True, i
        if ai in (22, 23):
            return None, i
        if ai == 25:
            return struct.unpack(">e", b[i:i + 2])[0], i + 2
        if ai == 26:
            return struct.unpack(">f", b[i:i + 4])[0], i + 4
        if ai == 27:
            return struct.unpack(">d", b[i:i + 8])[0], i + 8
        if ai == 31:
            return _Break, i
        raise ValueError(f"simple value {ai}")
    if ai < 24:
        n = ai
    elif ai == 24:
        n, i = b[i], i + 1
    elif ai == 25:
        n, i = struct.unpack(">H", b[i:i + 2])[0], i + 2
    elif ai == 26:
        n, i = struct.unpack(">I", b[i:i + 4])[0], i + 4
    elif ai == 27:
        n, i = struct.unpack(">Q", b[i:i + 8])[0], i + 8
    elif ai == 31:
        n = None
    else:
        raise ValueError("bad additional info")
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major in (2, 3):
        if n is None:
            parts = []
            while True:
                v, i = _dec(b, i)
                if v is _Break:
                    break
                parts.append(v)
            return (b"" if major == 2 else "").join(parts), i
        raw = bytes(b[i:i + n])
        return (raw if major == 2 else raw.decode()), i + n
    if major == 4:
        out = []
        while n is None or len(out) < n:
            v, i = _dec(b, i)
            if v is _Break:
                break
            out.append(v)
        return out, i
    if major == 5:
        out = {}
        count = 0
        while n is None or count < n:
            k, i = _dec(b, i)
            if k is _Break:
                break
            v, i = _dec(b, i)
            out[k] = v
            count += 1
        return out, i
    if major == 6:
        v, i = _dec(b, i)
        return Tag(n, v), i
    raise ValueError("bad major type")


def cbor_dec(b):
    v, i = _dec(b, 0)
    if i != len(b):
        raise ValueError(f"trailing bytes: {len(b) - i}")
    return v


# ---------------------------------------------------------------------------------------------
# The server

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, workdir):
        self.workdir = workdir
        self.data = os.path.join(workdir, "data")
        self.port = free_port()
        self.proc = None
        self.log = None
        self.starts = 0

    def start(self, **conf):
        settings = {"stream_transition_ms": 0, "max_request_bytes": "20M"}
        settings.update(conf)
        path = os.path.join(self.workdir, "tributary.conf")
        with open(path, "w") as f:
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        self.starts += 1
        self.log = open(os.path.join(self.workdir, f"server{self.starts}.log"), "w")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data,
             "--config", path], stdout=self.log, stderr=subprocess.STDOUT)
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

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        return rc

    def url(self):
        return f"http://127.0.0.1:{self.port}"


SRV = None
KIN = None


def client(retries=1):
    return boto3.client(
        "kinesis", endpoint_url=SRV.url(), region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": retries, "mode": "standard"},
                      connect_timeout=10, read_timeout=60))


def raw(op, body, fmt="json", target=None, content_type=None):
    """One request; returns (status, content-type, decoded body or raw bytes)."""
    if fmt == "json":
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        ctype = content_type or "application/x-amz-json-1.1"
    else:
        data = body if isinstance(body, (bytes, bytearray)) else cbor_enc(body)
        ctype = content_type or "application/x-amz-cbor-1.1"
    if isinstance(data, str):
        data = data.encode()
    c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=60)
    c.request("POST", "/", data, {
        "X-Amz-Target": target if target is not None else f"Kinesis_20131202.{op}",
        "Content-Type": ctype,
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/kinesis/"
                         "aws4_request, SignedHeaders=host, Signature=00"})
    r = c.getresponse()
    payload = r.read()
    rtype = r.getheader("Content-Type", "")
    c.close()
    try:
        if "cbor" in rtype:
            return r.status, rtype, cbor_dec(payload)
        return r.status, rtype, json.loads(payload) if payload else {}
    except Exception:
        return r.status, rtype, payload


def raw_ok(name, op, body, fmt="json"):
    status, _, out = raw(op, body, fmt)
    check(f"{name}: 200", status == 200, f"status {status}: {out!r}"[:300])
    return out


def expect_raw_err(name, op, body, etype, status=400, fmt="json", **kw):
    st, _, out = raw(op, body, fmt, **kw)
    got = out.get("__type") if isinstance(out, dict) else None
    etypes = etype if isinstance(etype, tuple) else (etype,)
    return check(name, st == status and got in etypes,
                 f"status {st} type {got}: {out!r}"[:300])


def expect_err(name, fn, code, status=400, contains=None):
    try:
        fn()
    except ClientError as e:
        got = e.response["Error"]["Code"]
        st = e.response["ResponseMetadata"]["HTTPStatusCode"]
        msg = e.response["Error"].get("Message", "")
        return check(name, got == code and st == status and (contains is None or contains in msg),
                     f"got {got} {st} {msg!r}")
    return bad(name, "no error")


def md5_hash(key):
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big")


def shards_of(stream):
    out, token = [], None
    while True:
        r = KIN.list_shards(NextToken=token) if token else KIN.list_shards(StreamName=stream)
        out += r["Shards"]
        token = r.get("NextToken")
        if not token:
            return out


def shard_for(shards, h):
    for s in shards:
        if "EndingSequenceNumber" in s["SequenceNumberRange"]:
            continue
        if int(s["HashKeyRange"]["StartingHashKey"]) <= h <= int(s["HashKeyRange"]["EndingHashKey"]):
            return s["ShardId"]
    return None


def iterator(stream, shard, kind="TRIM_HORIZON", **kw):
    return KIN.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType=kind,
                                  **kw)["ShardIterator"]


def drain(it, limit=None, max_calls=1000, kin=None):
    """Reads from an iterator until the shard's end (closed) or no more records (open).
    Returns (records, last response)."""
    kin = kin or KIN
    recs, last = [], None
    for _ in range(max_calls):
        r = kin.get_records(ShardIterator=it, **({"Limit": limit} if limit else {}))
        last = r
        recs += r["Records"]
        it = r.get("NextShardIterator")
        if it is None or (not r["Records"] and r.get("MillisBehindLatest", 0) == 0):
            break
    return recs, last


def create(name, count=1, **kw):
    KIN.create_stream(StreamName=name, ShardCount=count, **kw)


# ---------------------------------------------------------------------------------------------
# Sections

def t_create_describe_delete():
    create("basic", 3)
    d = KIN.describe_stream(StreamName="basic")["StreamDescription"]
    eq("create: 3 shards", len(d["Shards"]), 3)
    eq("create: status ACTIVE (stream_transition_ms = 0)", d["StreamStatus"], "ACTIVE")
    eq("create: ARN", d["StreamARN"], f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/basic")
    eq("create: retention 24", d["RetentionPeriodHours"], 24)
    eq("create: HasMoreShards false", d["HasMoreShards"], False)
    eq("create: PROVISIONED", d["StreamModeDetails"]["StreamMode"], "PROVISIONED")
    eq("create: EncryptionType NONE", d.get("EncryptionType"), "NONE")
    check("create: StreamCreationTimestamp is recent",
          abs(d["StreamCreationTimestamp"].timestamp() - time.time()) < 60)
    ranges = [(int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
              for s in d["Shards"]]
    step = 2**128 // 3
    eq("create: even hash ranges", ranges,
       [(0, step - 1), (step, 2 * step - 1), (2 * step, MAX_HASH)])
    eq("create: shard ids", [s["ShardId"] for s in d["Shards"]],
       [f"shardId-{i:012d}" for i in range(3)])
    check("create: no parents, no ending seq",
          all("ParentShardId" not in s and "EndingSequenceNumber" not in s["SequenceNumberRange"]
              for s in d["Shards"]))

    # ON_DEMAND without a count: 4 shards.
    KIN.create_stream(StreamName="ondemand", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    s = KIN.describe_stream_summary(StreamName="ondemand")["StreamDescriptionSummary"]
    eq("create ON_DEMAND: 4 open shards", s["OpenShardCount"], 4)
    eq("create ON_DEMAND: mode", s["StreamModeDetails"]["StreamMode"], "ON_DEMAND")

    # Tags and MaxRecordSizeInKiB on create (newer than Debian's model: raw).
    raw_ok("create with Tags", "CreateStream",
           {"StreamName": "tagged", "ShardCount": 1, "Tags": {"team": "data", "env": "test"}})
    tags = KIN.list_tags_for_stream(StreamName="tagged")["Tags"]
    eq("create with Tags: listed", sorted((t["Key"], t["Value"]) for t in tags),
       [("env", "test"), ("team", "data")])
    raw_ok("create with MaxRecordSizeInKiB", "CreateStream",
           {"StreamName": "bigrec", "ShardCount": 1, "MaxRecordSizeInKiB": 2048})
    out = raw_ok("summary of bigrec", "DescribeStreamSummary", {"StreamName": "bigrec"})
    eq("create with MaxRecordSizeInKiB: summary",
       out.get("StreamDescriptionSummary", {}).get("MaxRecordSizeInKiB"), 2048)

    expect_err("duplicate create: ResourceInUseException", lambda: create("basic", 1),
               "ResourceInUseException", contains=f"Stream basic under account {ACCOUNT} already exists")
    expect_err("bad stream name: ValidationException", lambda: create("bad name!", 1),
               "ValidationException", contains="streamName")
    expect_raw_err("129-char stream name: ValidationException", "CreateStream",
                   {"StreamName": "x" * 129, "ShardCount": 1}, "ValidationException")
    expect_raw_err("create without StreamName: ValidationException", "CreateStream",
                   {"ShardCount": 1}, "ValidationException")
    expect_raw_err("ShardCount 0: ValidationException", "CreateStream",
                   {"StreamName": "zero", "ShardCount": 0}, "ValidationException")
    expect_raw_err("bad StreamMode: ValidationException", "CreateStream",
                   {"StreamName": "m", "StreamModeDetails": {"StreamMode": "FAST"}},
                   "ValidationException")
    expect_raw_err("ShardCount as a string: SerializationException", "CreateStream",
                   {"StreamName": "strcount", "ShardCount": "2"}, "SerializationException")
    expect_raw_err("51 tags on create: InvalidArgumentException", "CreateStream",
                   {"StreamName": "manytags", "ShardCount": 1,
                    "Tags": {f"k{i}": "v" for i in range(51)}}, "InvalidArgumentException")
    expect_err("describe unknown: ResourceNotFoundException",
               lambda: KIN.describe_stream(StreamName="nope"), "ResourceNotFoundException",
               contains=f"Stream nope under account {ACCOUNT} not found.")
    expect_err("summary unknown: ResourceNotFoundException",
               lambda: KIN.describe_stream_summary(StreamName="nope"), "ResourceNotFoundException")
    expect_err("put to unknown: ResourceNotFoundException",
               lambda: KIN.put_record(StreamName="nope", Data=b"x", PartitionKey="k"),
               "ResourceNotFoundException")

    # StreamARN instead of StreamName.
    arn = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/basic"
    out = raw_ok("summary by StreamARN", "DescribeStreamSummary", {"StreamARN": arn})
    eq("summary by StreamARN: name", out.get("StreamDescriptionSummary", {}).get("StreamName"),
       "basic")
    out = raw_ok("put by StreamARN", "PutRecord",
                 {"StreamARN": arn, "Data": base64.b64encode(b"arn").decode(), "PartitionKey": "a"})
    check("put by StreamARN: ShardId", str(out.get("ShardId", "")).startswith("shardId-"))
    expect_raw_err("unknown StreamARN: ResourceNotFoundException", "DescribeStreamSummary",
                   {"StreamARN": f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/nope"},
                   "ResourceNotFoundException")

    # Delete.
    create("doomed", 2)
    KIN.put_record(StreamName="doomed", Data=b"x", PartitionKey="k")
    KIN.delete_stream(StreamName="doomed")
    expect_err("deleted: describe is ResourceNotFoundException",
               lambda: KIN.describe_stream(StreamName="doomed"), "ResourceNotFoundException")
    check("deleted: not listed", "doomed" not in KIN.list_streams()["StreamNames"])
    expect_err("delete again: ResourceNotFoundException",
               lambda: KIN.delete_stream(StreamName="doomed"), "ResourceNotFoundException")
    create("doomed", 1)
    recs, _ = drain(iterator("doomed", "shardId-000000000000"))
    eq("recreated stream starts empty", recs, [])
    KIN.delete_stream(StreamName="doomed", EnforceConsumerDeletion=True)
    check("delete with EnforceConsumerDeletion", "doomed" not in KIN.list_streams()["StreamNames"])


def t_describe_paging():
    create("paged", 5)
    d = KIN.describe_stream(StreamName="paged", Limit=2)["StreamDescription"]
    eq("DescribeStream Limit 2: ids", [s["ShardId"] for s in d["Shards"]],
       ["shardId-000000000000", "shardId-000000000001"])
    eq("DescribeStream Limit 2: HasMoreShards", d["HasMoreShards"], True)
    d = KIN.describe_stream(StreamName="paged", Limit=2,
                            ExclusiveStartShardId="shardId-000000000001")["StreamDescription"]
    eq("DescribeStream ExclusiveStartShardId: ids", [s["ShardId"] for s in d["Shards"]],
       ["shardId-000000000002", "shardId-000000000003"])
    d = KIN.describe_stream(StreamName="paged", Limit=2,
                            ExclusiveStartShardId="shardId-000000000003")["StreamDescription"]
    eq("DescribeStream last page", ([s["ShardId"] for s in d["Shards"]], d["HasMoreShards"]),
       (["shardId-000000000004"], False))
    pages = list(KIN.get_paginator("describe_stream").paginate(
        StreamName="paged", PaginationConfig={"PageSize": 2}))
    eq("DescribeStream paginator: 3 pages, 5 shards",
       (len(pages), sum(len(p["StreamDescription"]["Shards"]) for p in pages)), (3, 5))

    # ListShards: MaxResults, NextToken, ExclusiveStartShardId.
    r = KIN.list_shards(StreamName="paged", MaxResults=2)
    eq("ListShards MaxResults 2", [s["ShardId"] for s in r["Shards"]],
       ["shardId-000000000000", "shardId-000000000001"])
    check("ListShards NextToken present", bool(r.get("NextToken")))
    ids = [s["ShardId"] for s in r["Shards"]]
    token = r.get("NextToken")
    while token:
        r = KIN.list_shards(NextToken=token, MaxResults=2)
        ids += [s["ShardId"] for s in r["Shards"]]
        token = r.get("NextToken")
    eq("ListShards NextToken pages: every shard once", ids, [f"shardId-{i:012d}" for i in range(5)])
    r = KIN.list_shards(StreamName="paged", ExclusiveStartShardId="shardId-000000000002")
    eq("ListShards ExclusiveStartShardId", [s["ShardId"] for s in r["Shards"]],
       ["shardId-000000000003", "shardId-000000000004"])
    check("ListShards all in one page: no NextToken",
          "NextToken" not in KIN.list_shards(StreamName="paged"))
    tok = KIN.list_shards(StreamName="paged", MaxResults=1)["NextToken"]
    expect_err("ListShards NextToken with StreamName: InvalidArgumentException",
               lambda: KIN.list_shards(StreamName="paged", NextToken=tok),
               "InvalidArgumentException")
    expect_err("ListShards garbage NextToken: error, not a crash",
               lambda: KIN.list_shards(NextToken="bm90IGEgdG9rZW4="), "InvalidArgumentException")
    expect_err("ListShards unknown stream", lambda: KIN.list_shards(StreamName="nope"),
               "ResourceNotFoundException")
    pages = list(KIN.get_paginator("list_shards").paginate(StreamName="paged"))
    eq("ListShards paginator (one page)", sum(len(p["Shards"]) for p in pages), 5)


def t_list_streams():
    names = [f"ls-{i:02d}" for i in range(7)]
    for n in names:
        create(n, 1)
    allnames = KIN.list_streams()["StreamNames"]
    check("ListStreams sorted", allnames == sorted(allnames), str(allnames))
    check("ListStreams has the new streams", all(n in allnames for n in names))
    r = KIN.list_streams(Limit=3)
    eq("ListStreams Limit 3", (len(r["StreamNames"]), r["HasMoreStreams"]), (3, True))
    r = KIN.list_streams(ExclusiveStartStreamName="ls-02", Limit=2)
    eq("ListStreams ExclusiveStartStreamName", r["StreamNames"], ["ls-03", "ls-04"])
    got = []
    for page in KIN.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 2}):
        got += page["StreamNames"]
    eq("ListStreams boto3 paginator", got, allnames)
    # NextToken (newer than the model: raw).
    got, token, calls = [], None, 0
    while True:
        body = {"Limit": 3}
        if token:
            body = {"NextToken": token, "Limit": 3}
        out = raw_ok(f"ListStreams NextToken page {calls}", "ListStreams", body)
        calls += 1
        got += out["StreamNames"]
        eq(f"ListStreams page {calls}: summaries match names",
           [s["StreamName"] for s in out.get("StreamSummaries", [])], out["StreamNames"])
        token = out.get("NextToken")
        if not out.get("HasMoreStreams"):
            check("ListStreams last page: no NextToken", token is None)
            break
        if calls > 50:
            break
    eq("ListStreams NextToken: every stream once", got, allnames)
    expect_raw_err("ListStreams bad NextToken", "ListStreams", {"NextToken": "!!!"},
                   "ExpiredNextTokenException")
    expect_raw_err("ListStreams Limit 0: ValidationException", "ListStreams", {"Limit": 0},
                   "ValidationException")


def t_put_routing():
    create("route", 4)
    shards = shards_of("route")
    # PartitionKey routing: MD5 of the key.
    bad_routes = []
    for i in range(40):
        key = f"pk-{i}"
        r = KIN.put_record(StreamName="route", Data=f"d{i}".encode(), PartitionKey=key)
        if r["ShardId"] != shard_for(shards, md5_hash(key)):
            bad_routes.append(key)
        if i == 0:
            eq("PutRecord EncryptionType NONE", r.get("EncryptionType"), "NONE")
    eq("PutRecord routes by MD5(PartitionKey)", bad_routes, [])
    # ExplicitHashKey routing.
    r = KIN.put_record(StreamName="route", Data=b"x", PartitionKey="any", ExplicitHashKey="0")
    eq("ExplicitHashKey 0 -> shard 0", r["ShardId"], "shardId-000000000000")
    r = KIN.put_record(StreamName="route", Data=b"x", PartitionKey="any",
                       ExplicitHashKey=str(MAX_HASH))
    eq("ExplicitHashKey 2^128-1 -> shard 3", r["ShardId"], "shardId-000000000003")
    r = KIN.put_record(StreamName="route", Data=b"x", PartitionKey="any",
                       ExplicitHashKey=str(2**128 // 4))
    eq("ExplicitHashKey 2^126 -> shard 1", r["ShardId"], "shardId-000000000001")
    expect_err("ExplicitHashKey 2^128: ValidationException",
               lambda: KIN.put_record(StreamName="route", Data=b"x", PartitionKey="k",
                                      ExplicitHashKey=str(2**128)), "ValidationException")
    expect_err("ExplicitHashKey not a number: ValidationException",
               lambda: KIN.put_record(StreamName="route", Data=b"x", PartitionKey="k",
                                      ExplicitHashKey="12ab"), "ValidationException")
    # SequenceNumberForOrdering accepted; sequence numbers increase.
    a = KIN.put_record(StreamName="route", Data=b"1", PartitionKey="same")
    b = KIN.put_record(StreamName="route", Data=b"2", PartitionKey="same",
                       SequenceNumberForOrdering=a["SequenceNumber"])
    check("SequenceNumberForOrdering: later seq on the same shard",
          a["ShardId"] == b["ShardId"] and int(b["SequenceNumber"]) > int(a["SequenceNumber"]))

    # PutRecords: 500 records spread over the shards, answered in request order, grouped per
    # shard with increasing sequence numbers.
    create("batch", 4)
    bshards = shards_of("batch")
    entries, want_shard = [], []
    for i in range(500):
        q = (i * 7) % 4
        h = q * (2**128 // 4) + 12345 + i
        entries.append({"Data": f"rec-{i}".encode(), "PartitionKey": f"p{i}",
                        "ExplicitHashKey": str(h)})
        want_shard.append(shard_for(bshards, h))
    r = KIN.put_records(StreamName="batch", Records=entries)
    eq("PutRecords 500: FailedRecordCount 0", r["FailedRecordCount"], 0)
    eq("PutRecords 500: 500 results", len(r["Records"]), 500)
    eq("PutRecords: ShardId per ExplicitHashKey", [x.get("ShardId") for x in r["Records"]],
       want_shard)
    per_shard_ok = True
    last = {}
    for x in r["Records"]:
        seq = int(x["SequenceNumber"])
        if x["ShardId"] in last and seq <= last[x["ShardId"]]:
            per_shard_ok = False
        last[x["ShardId"]] = seq
    check("PutRecords: per-shard sequence numbers increase in request order", per_shard_ok)
    read_ok = True
    for sh in bshards:
        recs, _ = drain(iterator("batch", sh["ShardId"]))
        want = [(entries[i]["Data"], r["Records"][i]["SequenceNumber"])
                for i in range(500) if want_shard[i] == sh["ShardId"]]
        if [(x["Data"], x["SequenceNumber"]) for x in recs] != want:
            read_ok = False
    check("PutRecords: each shard reads back its records in request order", read_ok)
    expect_err("PutRecords 501 records: ValidationException",
               lambda: KIN.put_records(StreamName="batch",
                                       Records=[{"Data": b"x", "PartitionKey": "k"}] * 501),
               "ValidationException")
    expect_raw_err("PutRecords 0 records: ValidationException", "PutRecords",
                   {"StreamName": "batch", "Records": []}, "ValidationException")
    expect_raw_err("PutRecords record without PartitionKey: ValidationException", "PutRecords",
                   {"StreamName": "batch", "Records": [{"Data": "eA=="}, {"Data": "eA=="}]},
                   "ValidationException")
    big = b"z" * (1000 * 1024)
    expect_err("PutRecords over 5 MiB: InvalidArgumentException",
               lambda: KIN.put_records(StreamName="batch",
                                       Records=[{"Data": big, "PartitionKey": "k"}] * 6),
               "InvalidArgumentException")
    total = sum(len(drain(iterator("batch", s["ShardId"]))[0]) for s in bshards)
    eq("rejected batches stored nothing", total, 500)
    # Empty data is a valid record; a 256-char key is the maximum.
    r = KIN.put_record(StreamName="batch", Data=b"", PartitionKey="k" * 256)
    check("empty Data and 256-char PartitionKey accepted", "SequenceNumber" in r)
    expect_raw_err("257-char PartitionKey: ValidationException", "PutRecord",
                   {"StreamName": "batch", "Data": "", "PartitionKey": "k" * 257},
                   "ValidationException")
    expect_raw_err("PutRecord without PartitionKey: ValidationException", "PutRecord",
                   {"StreamName": "batch", "Data": "eA=="}, "ValidationException")
    expect_raw_err("PutRecord without Data: ValidationException", "PutRecord",
                   {"StreamName": "batch", "PartitionKey": "k"}, "ValidationException")
    expect_raw_err("PutRecord Data not base64: SerializationException", "PutRecord",
                   {"StreamName": "batch", "Data": "***", "PartitionKey": "k"},
                   "SerializationException")


def t_iterators_and_reads():
    create("reads", 1)
    sid = "shardId-000000000000"
    it_latest = iterator("reads", sid, "LATEST")
    seqs = []
    for i in range(10):
        r = KIN.put_record(StreamName="reads", Data=f"r{i}".encode(), PartitionKey=f"k{i}")
        seqs.append(r["SequenceNumber"])
        if i == 4:
            time.sleep(0.25)
    recs, last = drain(iterator("reads", sid))
    eq("TRIM_HORIZON reads all 10", [x["Data"] for x in recs], [f"r{i}".encode() for i in range(10)])
    eq("GetRecords sequence numbers match PutRecord", [x["SequenceNumber"] for x in recs], seqs)
    eq("GetRecords PartitionKey", [x["PartitionKey"] for x in recs], [f"k{i}" for i in range(10)])
    check("ApproximateArrivalTimestamp is recent",
          all(abs(x["ApproximateArrivalTimestamp"].timestamp() - time.time()) < 60 for x in recs))
    times = [x["ApproximateArrivalTimestamp"].timestamp() for x in recs]
    check("arrival times never decrease", times == sorted(times))
    eq("caught up: MillisBehindLatest 0", last.get("MillisBehindLatest"), 0)
    check("open shard: NextShardIterator present", bool(last.get("NextShardIterator")))

    recs, _ = drain(it_latest)
    eq("LATEST taken before the puts reads them", len(recs), 10)
    it = iterator("reads", sid, "LATEST")
    eq("LATEST now: empty", KIN.get_records(ShardIterator=it)["Records"], [])
    KIN.put_record(StreamName="reads", Data=b"after-latest", PartitionKey="z")
    seqs.append(None)
    r = KIN.get_records(ShardIterator=it)
    eq("LATEST then a put: that record", [x["Data"] for x in r["Records"]], [b"after-latest"])

    r = KIN.get_records(ShardIterator=iterator("reads", sid, "AT_SEQUENCE_NUMBER",
                                                StartingSequenceNumber=seqs[3]), Limit=1)
    eq("AT_SEQUENCE_NUMBER", [x["SequenceNumber"] for x in r["Records"]], [seqs[3]])
    r = KIN.get_records(ShardIterator=iterator("reads", sid, "AFTER_SEQUENCE_NUMBER",
                                                StartingSequenceNumber=seqs[3]), Limit=2)
    eq("AFTER_SEQUENCE_NUMBER", [x["SequenceNumber"] for x in r["Records"]], seqs[4:6])

    # AT_TIMESTAMP: the first record that arrived at or after the time. botocore sends
    # whole epoch seconds; a raw request carries milliseconds as a fractional number.
    allrecs, _ = drain(iterator("reads", sid))
    t = allrecs[5]["ApproximateArrivalTimestamp"]
    whole = t.replace(microsecond=0)
    want = next(x for x in allrecs if x["ApproximateArrivalTimestamp"] >= whole)
    r = KIN.get_records(ShardIterator=iterator("reads", sid, "AT_TIMESTAMP", Timestamp=t), Limit=1)
    eq("AT_TIMESTAMP (boto3, whole seconds): first record at or after",
       [x["SequenceNumber"] for x in r["Records"]], [want["SequenceNumber"]])
    t_ms = round(t.timestamp() * 1000)
    want = next(x for x in allrecs if round(x["ApproximateArrivalTimestamp"].timestamp() * 1000) >= t_ms)
    out = raw_ok("AT_TIMESTAMP with fractional seconds", "GetShardIterator",
                 {"StreamName": "reads", "ShardId": sid, "ShardIteratorType": "AT_TIMESTAMP",
                  "Timestamp": t_ms / 1000})
    r = KIN.get_records(ShardIterator=out["ShardIterator"], Limit=1)
    eq("AT_TIMESTAMP (ms): first record at or after", [x["SequenceNumber"] for x in r["Records"]],
       [want["SequenceNumber"]])
    check("AT_TIMESTAMP (ms) after the pause skips the first five",
          want["SequenceNumber"] == seqs[5], f"{want['SequenceNumber']} vs {seqs[5]}")
    r = KIN.get_records(ShardIterator=iterator(
        "reads", sid, "AT_TIMESTAMP", Timestamp=datetime.datetime(2000, 1, 1)), Limit=1)
    eq("AT_TIMESTAMP in the past: first record", [x["SequenceNumber"] for x in r["Records"]],
       [seqs[0]])
    r = KIN.get_records(ShardIterator=iterator(
        "reads", sid, "AT_TIMESTAMP", Timestamp=time.time() + 3600))
    eq("AT_TIMESTAMP in the future: empty", r["Records"], [])

    # Limit and NextShardIterator.
    r = KIN.get_records(ShardIterator=iterator("reads", sid), Limit=3)
    eq("Limit 3: three records", len(r["Records"]), 3)
    check("Limit 3 behind the tip: MillisBehindLatest > 100 (pause of 250 ms)",
          r["MillisBehindLatest"] > 100, str(r["MillisBehindLatest"]))
    r2 = KIN.get_records(ShardIterator=r["NextShardIterator"], Limit=3)
    eq("NextShardIterator continues", [x["SequenceNumber"] for x in r2["Records"]], seqs[3:6])
    r3 = KIN.get_records(ShardIterator=r["NextShardIterator"], Limit=3)
    eq("an iterator can be used again", [x["SequenceNumber"] for x in r3["Records"]], seqs[3:6])

    # Errors.
    expect_err("AT_SEQUENCE_NUMBER without a number: InvalidArgumentException",
               lambda: iterator("reads", sid, "AT_SEQUENCE_NUMBER"), "InvalidArgumentException")
    expect_err("AT_TIMESTAMP without Timestamp: InvalidArgumentException",
               lambda: iterator("reads", sid, "AT_TIMESTAMP"), "InvalidArgumentException")
    expect_err("bad iterator type: ValidationException",
               lambda: iterator("reads", sid, "SOMEWHERE"), "ValidationException")
    expect_err("unknown shard: ResourceNotFoundException",
               lambda: iterator("reads", "shardId-000000000009"), "ResourceNotFoundException")
    expect_err("StartingSequenceNumber not digits: ValidationException",
               lambda: iterator("reads", sid, "AT_SEQUENCE_NUMBER", StartingSequenceNumber="12x"),
               "ValidationException")
    expect_err("StartingSequenceNumber of another stream: InvalidArgumentException",
               lambda: iterator("reads", sid, "AT_SEQUENCE_NUMBER",
                                StartingSequenceNumber=KIN.put_record(
                                    StreamName="basic", Data=b"x", PartitionKey="k")["SequenceNumber"]),
               "InvalidArgumentException")
    expect_err("StartingSequenceNumber garbage digits: InvalidArgumentException",
               lambda: iterator("reads", sid, "AT_SEQUENCE_NUMBER", StartingSequenceNumber="12345"),
               "InvalidArgumentException")
    expect_err("invalid iterator: InvalidArgumentException",
               lambda: KIN.get_records(ShardIterator="not-an-iterator"), "InvalidArgumentException")
    good = iterator("reads", sid)
    tampered = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
    expect_err("tampered iterator: InvalidArgumentException",
               lambda: KIN.get_records(ShardIterator=tampered), "InvalidArgumentException")
    expect_raw_err("GetRecords Limit 0: ValidationException", "GetRecords",
                   {"ShardIterator": good, "Limit": 0}, "ValidationException")
    expect_raw_err("GetRecords Limit 10001: ValidationException", "GetRecords",
                   {"ShardIterator": good, "Limit": 10001}, "ValidationException")
    expect_raw_err("GetRecords without ShardIterator: ValidationException", "GetRecords", {},
                   "ValidationException")
    expect_raw_err("GetShardIterator without ShardId: ValidationException", "GetShardIterator",
                   {"StreamName": "reads", "ShardIteratorType": "LATEST"}, "ValidationException")
    # An iterator of a deleted stream.
    create("gone", 1)
    git = iterator("gone", sid)
    KIN.delete_stream(StreamName="gone")
    expect_err("iterator of a deleted stream: ResourceNotFoundException",
               lambda: KIN.get_records(ShardIterator=git), "ResourceNotFoundException")


def t_retention_attrs():
    create("attrs", 2)
    KIN.increase_stream_retention_period(StreamName="attrs", RetentionPeriodHours=48)
    eq("IncreaseStreamRetentionPeriod 48",
       KIN.describe_stream_summary(StreamName="attrs")["StreamDescriptionSummary"]["RetentionPeriodHours"], 48)
    expect_err("increase to less: InvalidArgumentException",
               lambda: KIN.increase_stream_retention_period(StreamName="attrs", RetentionPeriodHours=30),
               "InvalidArgumentException")
    expect_err("decrease to more: InvalidArgumentException",
               lambda: KIN.decrease_stream_retention_period(StreamName="attrs", RetentionPeriodHours=72),
               "InvalidArgumentException")
    KIN.decrease_stream_retention_period(StreamName="attrs", RetentionPeriodHours=24)
    eq("DecreaseStreamRetentionPeriod 24",
       KIN.describe_stream(StreamName="attrs")["StreamDescription"]["RetentionPeriodHours"], 24)
    expect_err("retention 10 h: InvalidArgumentException",
               lambda: KIN.decrease_stream_retention_period(StreamName="attrs", RetentionPeriodHours=10),
               "InvalidArgumentException")
    expect_err("retention 8761 h: error",
               lambda: KIN.increase_stream_retention_period(StreamName="attrs", RetentionPeriodHours=8761),
               "ValidationException")
    KIN.increase_stream_retention_period(StreamName="attrs", RetentionPeriodHours=8760)
    eq("retention 8760 h",
       KIN.describe_stream_summary(StreamName="attrs")["StreamDescriptionSummary"]["RetentionPeriodHours"], 8760)

    # Encryption flags.
    KIN.start_stream_encryption(StreamName="attrs", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    s = KIN.describe_stream_summary(StreamName="attrs")["StreamDescriptionSummary"]
    eq("StartStreamEncryption: KMS + KeyId", (s.get("EncryptionType"), s.get("KeyId")),
       ("KMS", "alias/aws/kinesis"))
    r = KIN.put_record(StreamName="attrs", Data=b"secret", PartitionKey="k")
    eq("PutRecord on an encrypted stream: EncryptionType KMS", r.get("EncryptionType"), "KMS")
    r = KIN.put_records(StreamName="attrs", Records=[{"Data": b"s2", "PartitionKey": "k"}])
    eq("PutRecords on an encrypted stream: EncryptionType KMS", r.get("EncryptionType"), "KMS")
    recs, _ = drain(iterator("attrs", r["Records"][0]["ShardId"]))
    check("GetRecords on an encrypted stream: EncryptionType KMS",
          recs and all(x.get("EncryptionType") == "KMS" for x in recs))
    eq("encrypted data reads back as written", [x["Data"] for x in recs], [b"secret", b"s2"])
    expect_err("StartStreamEncryption type NONE: ValidationException",
               lambda: KIN.start_stream_encryption(StreamName="attrs", EncryptionType="NONE",
                                                   KeyId="k"), "ValidationException")
    KIN.stop_stream_encryption(StreamName="attrs", EncryptionType="KMS", KeyId="alias/aws/kinesis")
    s = KIN.describe_stream_summary(StreamName="attrs")["StreamDescriptionSummary"]
    eq("StopStreamEncryption: NONE", s.get("EncryptionType"), "NONE")
    check("StopStreamEncryption: no KeyId", not s.get("KeyId"))

    # Enhanced monitoring.
    r = KIN.enable_enhanced_monitoring(StreamName="attrs",
                                       ShardLevelMetrics=["IncomingBytes", "OutgoingRecords"])
    eq("EnableEnhancedMonitoring: current", r["CurrentShardLevelMetrics"], [])
    eq("EnableEnhancedMonitoring: desired", sorted(r["DesiredShardLevelMetrics"]),
       ["IncomingBytes", "OutgoingRecords"])
    eq("EnableEnhancedMonitoring: StreamName", r["StreamName"], "attrs")
    s = KIN.describe_stream_summary(StreamName="attrs")["StreamDescriptionSummary"]
    eq("summary shows the metrics", sorted(s["EnhancedMonitoring"][0]["ShardLevelMetrics"]),
       ["IncomingBytes", "OutgoingRecords"])
    r = KIN.enable_enhanced_monitoring(StreamName="attrs", ShardLevelMetrics=["ALL"])
    eq("enable ALL: seven metrics", len(r["DesiredShardLevelMetrics"]), 7)
    r = KIN.disable_enhanced_monitoring(StreamName="attrs", ShardLevelMetrics=["IncomingBytes"])
    eq("DisableEnhancedMonitoring one: six left", len(r["DesiredShardLevelMetrics"]), 6)
    check("DisableEnhancedMonitoring: IncomingBytes gone",
          "IncomingBytes" not in r["DesiredShardLevelMetrics"])
    r = KIN.disable_enhanced_monitoring(StreamName="attrs", ShardLevelMetrics=["ALL"])
    eq("disable ALL: none", r["DesiredShardLevelMetrics"], [])
    expect_err("unknown metric: ValidationException",
               lambda: KIN.enable_enhanced_monitoring(StreamName="attrs",
                                                      ShardLevelMetrics=["Bogus"]),
               "ValidationException")

    # Stream mode (UpdateStreamMode takes a StreamARN) and DescribeLimits.
    before = KIN.describe_limits()
    arn = KIN.describe_stream_summary(StreamName="attrs")["StreamDescriptionSummary"]["StreamARN"]
    KIN.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    eq("UpdateStreamMode ON_DEMAND",
       KIN.describe_stream_summary(StreamName="attrs")["StreamDescriptionSummary"]["StreamModeDetails"]["StreamMode"],
       "ON_DEMAND")
    after = KIN.describe_limits()
    eq("DescribeLimits: OnDemandStreamCount + 1",
       after["OnDemandStreamCount"], before["OnDemandStreamCount"] + 1)
    KIN.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    eq("UpdateStreamMode PROVISIONED",
       KIN.describe_stream(StreamName="attrs")["StreamDescription"]["StreamModeDetails"]["StreamMode"],
       "PROVISIONED")
    expect_err("UpdateStreamMode unknown ARN: ResourceNotFoundException",
               lambda: KIN.update_stream_mode(StreamARN=arn + "x",
                                              StreamModeDetails={"StreamMode": "ON_DEMAND"}),
               "ResourceNotFoundException")
    create("limits3", 3)
    after3 = KIN.describe_limits()
    eq("DescribeLimits: OpenShardCount + 3", after3["OpenShardCount"], after["OpenShardCount"] + 3)
    check("DescribeLimits: ShardLimit and OnDemandStreamCountLimit",
          after3["ShardLimit"] > 0 and after3["OnDemandStreamCountLimit"] > 0)


def t_tags():
    create("tags", 1)
    KIN.add_tags_to_stream(StreamName="tags", Tags={"a": "1", "b": "2", "c": "3"})
    r = KIN.list_tags_for_stream(StreamName="tags")
    eq("AddTagsToStream + ListTagsForStream", [(t["Key"], t["Value"]) for t in r["Tags"]],
       [("a", "1"), ("b", "2"), ("c", "3")])
    eq("HasMoreTags false", r["HasMoreTags"], False)
    r = KIN.list_tags_for_stream(StreamName="tags", Limit=2)
    eq("ListTagsForStream Limit 2", ([t["Key"] for t in r["Tags"]], r["HasMoreTags"]),
       (["a", "b"], True))
    r = KIN.list_tags_for_stream(StreamName="tags", ExclusiveStartTagKey="b")
    eq("ListTagsForStream ExclusiveStartTagKey", [t["Key"] for t in r["Tags"]], ["c"])
    KIN.add_tags_to_stream(StreamName="tags", Tags={"a": "changed"})
    eq("AddTagsToStream overwrites", KIN.list_tags_for_stream(StreamName="tags")["Tags"][0],
       {"Key": "a", "Value": "changed"})
    KIN.remove_tags_from_stream(StreamName="tags", TagKeys=["b", "missing"])
    eq("RemoveTagsFromStream", [t["Key"] for t in KIN.list_tags_for_stream(StreamName="tags")["Tags"]],
       ["a", "c"])
    expect_err("over 50 tags: InvalidArgumentException",
               lambda: KIN.add_tags_to_stream(StreamName="tags",
                                              Tags={f"t{i:02d}": "v" for i in range(49)}),
               "InvalidArgumentException")
    eq("a rejected AddTagsToStream adds nothing",
       len(KIN.list_tags_for_stream(StreamName="tags")["Tags"]), 2)
    expect_err("tags of an unknown stream", lambda: KIN.list_tags_for_stream(StreamName="nope"),
               "ResourceNotFoundException")
    # Resource-ARN forms (raw).
    arn = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/tags"
    raw_ok("TagResource", "TagResource", {"ResourceARN": arn, "Tags": {"x": "9"}})
    out = raw_ok("ListTagsForResource", "ListTagsForResource", {"ResourceARN": arn})
    eq("ListTagsForResource: tags", sorted((t["Key"], t["Value"]) for t in out.get("Tags", [])),
       [("a", "changed"), ("c", "3"), ("x", "9")])
    raw_ok("UntagResource", "UntagResource", {"ResourceARN": arn, "TagKeys": ["a", "x"]})
    eq("UntagResource removed", [t["Key"] for t in KIN.list_tags_for_stream(StreamName="tags")["Tags"]],
       ["c"])
    expect_raw_err("TagResource unknown ARN", "TagResource",
                   {"ResourceARN": arn + "-nope", "Tags": {"x": "1"}}, "ResourceNotFoundException")
    expect_raw_err("TagResource without Tags: ValidationException", "TagResource",
                   {"ResourceARN": arn}, "ValidationException")
    expect_raw_err("UntagResource TagKeys not a list: SerializationException", "UntagResource",
                   {"ResourceARN": arn, "TagKeys": "a"}, "SerializationException")


def t_max_record_size():
    create("maxrec", 1)
    one_mib = b"m" * (1024 * 1024)
    r = KIN.put_record(StreamName="maxrec", Data=one_mib, PartitionKey="k")
    check("1 MiB record accepted by default", "SequenceNumber" in r)
    expect_raw_err("1 MiB + 1 by default: ValidationException", "PutRecord",
                   {"StreamName": "maxrec", "Data": base64.b64encode(one_mib + b"!").decode(),
                    "PartitionKey": "k"}, "ValidationException")
    expect_raw_err("UpdateMaxRecordSize 1023: ValidationException", "UpdateMaxRecordSize",
                   {"StreamName": "maxrec", "MaxRecordSizeInKiB": 1023}, "ValidationException")
    raw_ok("UpdateMaxRecordSize 10240", "UpdateMaxRecordSize",
           {"StreamName": "maxrec", "MaxRecordSizeInKiB": 10240})
    out = raw_ok("summary after UpdateMaxRecordSize", "DescribeStreamSummary",
                 {"StreamName": "maxrec"})
    eq("summary MaxRecordSizeInKiB 10240",
       out.get("StreamDescriptionSummary", {}).get("MaxRecordSizeInKiB"), 10240)
    ten = bytes(range(256)) * (10 * 4096)  # 10 MiB
    r = KIN.put_record(StreamName="maxrec", Data=ten, PartitionKey="big")
    check("10 MiB record accepted after raising", "SequenceNumber" in r)
    expect_raw_err("10 MiB + 1: ValidationException", "PutRecord",
                   {"StreamName": "maxrec", "Data": base64.b64encode(ten + b"!").decode(),
                    "PartitionKey": "k"}, "ValidationException")
    got = KIN.get_records(ShardIterator=iterator("maxrec", "shardId-000000000000",
                                                 "AT_SEQUENCE_NUMBER",
                                                 StartingSequenceNumber=r["SequenceNumber"]))
    check("10 MiB record reads back intact",
          len(got["Records"]) >= 1 and got["Records"][0]["Data"] == ten,
          f"{len(got['Records'])} records")
    recs, _ = drain(iterator("maxrec", "shardId-000000000000"))
    eq("1 MiB then 10 MiB record read in order", [len(x["Data"]) for x in recs],
       [len(one_mib), len(ten)])


def t_reshard():
    create("split", 1)
    for i in range(5):
        KIN.put_record(StreamName="split", Data=f"p{i}".encode(), PartitionKey=f"k{i}")
    mid = str(2**127)
    KIN.split_shard(StreamName="split", ShardToSplit="shardId-000000000000", NewStartingHashKey=mid)
    d = KIN.describe_stream(StreamName="split")["StreamDescription"]
    sh = {s["ShardId"]: s for s in d["Shards"]}
    eq("SplitShard: three shards", sorted(sh), [f"shardId-{i:012d}" for i in range(3)])
    check("SplitShard: parent closed", "EndingSequenceNumber" in sh["shardId-000000000000"]["SequenceNumberRange"])
    eq("SplitShard: children's parent",
       [sh[f"shardId-{i:012d}"].get("ParentShardId") for i in (1, 2)],
       ["shardId-000000000000"] * 2)
    eq("SplitShard: children's ranges",
       [(sh[f"shardId-{i:012d}"]["HashKeyRange"]["StartingHashKey"],
         sh[f"shardId-{i:012d}"]["HashKeyRange"]["EndingHashKey"]) for i in (1, 2)],
       [("0", str(2**127 - 1)), (mid, str(MAX_HASH))])
    eq("SplitShard: ACTIVE afterwards", d["StreamStatus"], "ACTIVE")
    # Reading the closed parent: records, then no NextShardIterator and the ChildShards.
    recs, last = drain(iterator("split", "shardId-000000000000"))
    eq("closed parent: its records", [x["Data"] for x in recs], [f"p{i}".encode() for i in range(5)])
    check("closed parent end: no NextShardIterator", last.get("NextShardIterator") is None)
    eq("closed parent end: ChildShards",
       sorted((c["ShardId"], tuple(c["ParentShards"])) for c in last.get("ChildShards", [])),
       [("shardId-000000000001", ("shardId-000000000000",)),
        ("shardId-000000000002", ("shardId-000000000000",))])
    check("closed parent end: child hash ranges",
          all("HashKeyRange" in c for c in last.get("ChildShards", [])))
    ending = sh["shardId-000000000000"]["SequenceNumberRange"]["EndingSequenceNumber"]
    eq("EndingSequenceNumber is the last record's", ending, recs[-1]["SequenceNumber"])
    r = KIN.get_records(ShardIterator=iterator("split", "shardId-000000000000", "LATEST"))
    check("LATEST on a closed shard: empty, ChildShards, no NextShardIterator",
          r["Records"] == [] and r.get("NextShardIterator") is None and len(r.get("ChildShards", [])) == 2)
    r = KIN.put_record(StreamName="split", Data=b"x", PartitionKey="k", ExplicitHashKey="5")
    eq("put after split goes to a child", r["ShardId"], "shardId-000000000001")
    expect_err("split a closed shard: InvalidArgumentException",
               lambda: KIN.split_shard(StreamName="split", ShardToSplit="shardId-000000000000",
                                       NewStartingHashKey=mid), "InvalidArgumentException")
    expect_err("split at the shard's start: InvalidArgumentException",
               lambda: KIN.split_shard(StreamName="split", ShardToSplit="shardId-000000000002",
                                       NewStartingHashKey=mid), "InvalidArgumentException")
    expect_err("split unknown shard: ResourceNotFoundException",
               lambda: KIN.split_shard(StreamName="split", ShardToSplit="shardId-000000000042",
                                       NewStartingHashKey=mid), "ResourceNotFoundException")
    expect_err("split bad hash key: ValidationException",
               lambda: KIN.split_shard(StreamName="split", ShardToSplit="shardId-000000000001",
                                       NewStartingHashKey="-5"), "ValidationException")

    # ListShards filters: now 0 (closed), 1, 2 (children of 0).
    f = lambda **flt: [s["ShardId"] for s in KIN.list_shards(StreamName="split", ShardFilter=flt)["Shards"]]  # noqa: E731
    ids = [f"shardId-{i:012d}" for i in range(3)]
    eq("ShardFilter AFTER_SHARD_ID", f(Type="AFTER_SHARD_ID", ShardId=ids[0]), ids[1:])
    eq("ShardFilter AT_TRIM_HORIZON", f(Type="AT_TRIM_HORIZON"), ids[:1])
    eq("ShardFilter FROM_TRIM_HORIZON", f(Type="FROM_TRIM_HORIZON"), ids)
    eq("ShardFilter AT_LATEST", f(Type="AT_LATEST"), ids[1:])
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    eq("ShardFilter AT_TIMESTAMP (before the split)", f(Type="AT_TIMESTAMP", Timestamp=past), ids[:1])
    eq("ShardFilter FROM_TIMESTAMP (before the split)", f(Type="FROM_TIMESTAMP", Timestamp=past), ids)
    future = time.time() + 5
    eq("ShardFilter AT_TIMESTAMP (now)", f(Type="AT_TIMESTAMP", Timestamp=future), ids[1:])
    eq("ShardFilter FROM_TIMESTAMP (now)", f(Type="FROM_TIMESTAMP", Timestamp=future), ids[1:])
    expect_err("ShardFilter AFTER_SHARD_ID without ShardId: InvalidArgumentException",
               lambda: f(Type="AFTER_SHARD_ID"), "InvalidArgumentException")
    expect_err("ShardFilter AT_TIMESTAMP without Timestamp: InvalidArgumentException",
               lambda: f(Type="AT_TIMESTAMP"), "InvalidArgumentException")
    expect_err("ShardFilter bad type: ValidationException", lambda: f(Type="SOMETIME"),
               "ValidationException")
    r = KIN.list_shards(StreamName="split", ShardFilter={"Type": "FROM_TRIM_HORIZON"}, MaxResults=1)
    got = [s["ShardId"] for s in r["Shards"]]
    while r.get("NextToken"):
        r = KIN.list_shards(NextToken=r["NextToken"], MaxResults=1)
        got += [s["ShardId"] for s in r["Shards"]]
    eq("ShardFilter kept across NextToken pages", got, ids)
    r = KIN.list_shards(StreamName="split", ShardFilter={"Type": "AT_LATEST"}, MaxResults=1)
    got = [s["ShardId"] for s in r["Shards"]]
    while r.get("NextToken"):
        r = KIN.list_shards(NextToken=r["NextToken"], MaxResults=1)
        got += [s["ShardId"] for s in r["Shards"]]
    eq("AT_LATEST across NextToken pages", got, ids[1:])

    # MergeShards.
    expect_err("merge non-adjacent: InvalidArgumentException",
               lambda: KIN.merge_shards(StreamName="split", ShardToMerge="shardId-000000000000",
                                        AdjacentShardToMerge="shardId-000000000001"),
               "InvalidArgumentException")
    KIN.merge_shards(StreamName="split", ShardToMerge="shardId-000000000001",
                     AdjacentShardToMerge="shardId-000000000002")
    d = {s["ShardId"]: s for s in shards_of("split")}
    m = d.get("shardId-000000000003", {})
    eq("MergeShards: parents", (m.get("ParentShardId"), m.get("AdjacentParentShardId")),
       ("shardId-000000000001", "shardId-000000000002"))
    eq("MergeShards: full range", (m.get("HashKeyRange", {}).get("StartingHashKey"),
                                    m.get("HashKeyRange", {}).get("EndingHashKey")),
       ("0", str(MAX_HASH)))
    r = KIN.get_records(ShardIterator=iterator("split", "shardId-000000000002"))
    eq("merged parent end: ChildShards with both parents",
       [(c["ShardId"], sorted(c["ParentShards"])) for c in r.get("ChildShards", [])],
       [("shardId-000000000003", ["shardId-000000000001", "shardId-000000000002"])])
    expect_err("merge closed shards: InvalidArgumentException",
               lambda: KIN.merge_shards(StreamName="split", ShardToMerge="shardId-000000000001",
                                        AdjacentShardToMerge="shardId-000000000002"),
               "InvalidArgumentException")

    # An empty parent: its end comes at once.
    create("emptysplit", 1)
    KIN.split_shard(StreamName="emptysplit", ShardToSplit="shardId-000000000000",
                    NewStartingHashKey="1000")
    r = KIN.get_records(ShardIterator=iterator("emptysplit", "shardId-000000000000"))
    check("empty closed parent: no records, ChildShards, no NextShardIterator",
          r["Records"] == [] and "NextShardIterator" not in r and len(r.get("ChildShards", [])) == 2,
          repr(r)[:300])

    # UpdateShardCount.
    create("usc", 2)
    r = KIN.update_shard_count(StreamName="usc", TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    eq("UpdateShardCount 2 -> 4: answer", (r["CurrentShardCount"], r["TargetShardCount"]), (2, 4))
    open_ = [s for s in shards_of("usc") if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    eq("UpdateShardCount: 4 open shards", len(open_), 4)
    rng = sorted((int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"]))
                 for s in open_)
    check("UpdateShardCount: open shards cover the key space without gaps",
          rng[0][0] == 0 and rng[-1][1] == MAX_HASH and all(rng[i][1] + 1 == rng[i + 1][0]
                                                            for i in range(len(rng) - 1)))
    KIN.update_shard_count(StreamName="usc", TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    eq("UpdateShardCount 4 -> 2",
       KIN.describe_stream_summary(StreamName="usc")["StreamDescriptionSummary"]["OpenShardCount"], 2)
    expect_err("UpdateShardCount over double: InvalidArgumentException",
               lambda: KIN.update_shard_count(StreamName="usc", TargetShardCount=5,
                                              ScalingType="UNIFORM_SCALING"),
               "InvalidArgumentException")
    expect_err("UpdateShardCount bad ScalingType: ValidationException",
               lambda: KIN.update_shard_count(StreamName="usc", TargetShardCount=3,
                                              ScalingType="SOMETIMES"), "ValidationException")


def read_in_order(stream, kin=None):
    """Reads a stream as a KCL-style reader does: a shard only after all its parents are
    drained. Returns the records in reading order and the ChildShards each parent named."""
    kin = kin or KIN
    shards = {s["ShardId"]: s for s in shards_of(stream)}
    done, order, children_of = set(), [], {}
    progress = True
    while progress and len(done) < len(shards):
        progress = False
        for sid, s in sorted(shards.items()):
            if sid in done:
                continue
            parents = [p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p]
            if any(p in shards and p not in done for p in parents):
                continue
            recs, last = drain(iterator(stream, sid), kin=kin)
            order += [(sid, x) for x in recs]
            children_of[sid] = sorted(c["ShardId"] for c in (last or {}).get("ChildShards", []))
            done.add(sid)
            progress = True
    return order, children_of, shards


def t_ordering():
    """Per-key order across splits and merges: a writer keeps writing numbered records for a
    dozen keys while the stream is split, merged and rescaled; a reader that drains parents
    before children sees every key's numbers in order, each once."""
    create("order", 1)
    wk = client()
    keys = [f"key-{i}" for i in range(12)]
    counter = {k: 0 for k in keys}
    acked = []
    failures = []
    stop = threading.Event()
    writes = [0]

    def writer():
        n = 0
        while not stop.is_set():
            if n % 3 == 2:
                # A batch: each key at most once, so a partial failure can be retried in order.
                batch_keys = [keys[(n + j) % len(keys)] for j in range(4)]
                pending = list(batch_keys)
                while pending and not stop.is_set():
                    try:
                        r = wk.put_records(StreamName="order", Records=[
                            {"Data": f"{k}:{counter[k]}".encode(), "PartitionKey": k} for k in pending])
                    except ClientError as e:
                        failures.append(e.response["Error"]["Code"])
                        time.sleep(0.01)
                        continue
                    retry = []
                    for k, x in zip(pending, r["Records"]):
                        if "SequenceNumber" in x:
                            acked.append((k, counter[k], x["ShardId"], x["SequenceNumber"]))
                            counter[k] += 1
                        else:
                            failures.append(x.get("ErrorCode"))
                            retry.append(k)
                    pending = retry
            else:
                k = keys[n % len(keys)]
                while not stop.is_set():
                    try:
                        r = wk.put_record(StreamName="order", Data=f"{k}:{counter[k]}".encode(),
                                          PartitionKey=k)
                    except ClientError as e:
                        failures.append(e.response["Error"]["Code"])
                        time.sleep(0.01)
                        continue
                    acked.append((k, counter[k], r["ShardId"], r["SequenceNumber"]))
                    counter[k] += 1
                    break
            n += 1
            writes[0] = n

    th = threading.Thread(target=writer)
    th.start()

    def wait_writes(k):
        target = writes[0] + k
        deadline = time.time() + 20
        while writes[0] < target and time.time() < deadline and th.is_alive():
            time.sleep(0.005)

    try:
        wait_writes(20)
        KIN.split_shard(StreamName="order", ShardToSplit="shardId-000000000000",
                        NewStartingHashKey=str(2**127))
        wait_writes(20)
        KIN.merge_shards(StreamName="order", ShardToMerge="shardId-000000000001",
                         AdjacentShardToMerge="shardId-000000000002")
        wait_writes(20)
        KIN.update_shard_count(StreamName="order", TargetShardCount=2, ScalingType="UNIFORM_SCALING")
        wait_writes(20)
        KIN.update_shard_count(StreamName="order", TargetShardCount=4, ScalingType="UNIFORM_SCALING")
        wait_writes(20)
        KIN.update_shard_count(StreamName="order", TargetShardCount=2, ScalingType="UNIFORM_SCALING")
        wait_writes(20)
    finally:
        stop.set()
        th.join()
    print(f"# ordering: {len(acked)} records acknowledged, {len(failures)} put failures "
          f"during resharding {sorted(set(failures))}", flush=True)
    check("writes continue during resharding", len(acked) >= 100, str(len(acked)))
    eq("no put fails while resharding", failures, [])
    order, children_of, shards = read_in_order("order")
    eq("every shard was drained", len(children_of), len(shards))
    per_key = {k: [] for k in keys}
    for sid, x in order:
        k, _, num = x["Data"].decode().partition(":")
        per_key[k].append(int(num))
    eq("per key: numbers in order, each once, none lost",
       {k: v for k, v in per_key.items() if v != list(range(counter[k]))}, {})
    located = {(sid, x["SequenceNumber"]): x["Data"] for sid, x in order}
    check("every acknowledged record is at its shard and sequence number",
          all(located.get((sid, seq)) == f"{k}:{n}".encode() for k, n, sid, seq in acked))
    for sid, s in shards.items():
        kids = sorted(c for c, cs in shards.items()
                      if sid in (cs.get("ParentShardId"), cs.get("AdjacentParentShardId")))
        if children_of.get(sid) != kids:
            bad(f"ChildShards of {sid}", f"{children_of.get(sid)} vs {kids}")
            break
    else:
        ok("ChildShards of each closed shard match ListShards' parent links")


def t_cbor():
    """CBOR as the Java SDK / KCL send it."""
    create("cbor", 1)
    payload = bytes([0, 1, 2, 0xff, 0xfe, 0x80, 0x00, 0x7f]) + b"binary\x00tail"
    st, ctype, out = raw("PutRecord", {"StreamName": "cbor", "Data": payload, "PartitionKey": "pk"},
                         fmt="cbor")
    eq("CBOR PutRecord: 200", st, 200)
    eq("CBOR answer content type", ctype, "application/x-amz-cbor-1.1")
    check("CBOR PutRecord: ShardId and SequenceNumber as text",
          isinstance(out, dict) and out.get("ShardId") == "shardId-000000000000"
          and isinstance(out.get("SequenceNumber"), str), repr(out)[:200])
    seq1 = out.get("SequenceNumber") if isinstance(out, dict) else None
    # Indefinite-length byte string (chunks), as some encoders stream blobs.
    body = (b"\xa3" + cbor_enc("StreamName") + cbor_enc("cbor") + cbor_enc("Data")
            + b"\x5f" + cbor_enc(b"chunk1-") + cbor_enc(b"chunk2") + b"\xff"
            + cbor_enc("PartitionKey") + cbor_enc("pk"))
    st, _, out = raw("PutRecord", body, fmt="cbor")
    eq("CBOR PutRecord with an indefinite-length byte string: 200", st, 200)
    time.sleep(0.05)
    t_ms = int(time.time() * 1000)
    time.sleep(0.05)
    st, _, out = raw("PutRecords", {"StreamName": "cbor", "Records": [
        {"Data": b"\x00after", "PartitionKey": "pk"}, {"Data": b"\x01after", "PartitionKey": "q"}]},
        fmt="cbor")
    eq("CBOR PutRecords: 200", st, 200)
    eq("CBOR PutRecords: FailedRecordCount 0", out.get("FailedRecordCount") if isinstance(out, dict) else out, 0)

    st, _, out = raw("GetShardIterator", {"StreamName": "cbor", "ShardId": "shardId-000000000000",
                                          "ShardIteratorType": "AT_TIMESTAMP",
                                          "Timestamp": Tag(1, t_ms)}, fmt="cbor")
    eq("CBOR GetShardIterator AT_TIMESTAMP (tag 1 + epoch ms): 200", st, 200)
    it = out.get("ShardIterator") if isinstance(out, dict) else None
    st, _, out = raw("GetRecords", {"ShardIterator": it}, fmt="cbor")
    eq("CBOR GetRecords: 200", st, 200)
    recs = out.get("Records", []) if isinstance(out, dict) else []
    eq("AT_TIMESTAMP (tag 1 ms) starts after the first two records",
       [r.get("Data") for r in recs], [b"\x00after", b"\x01after"])
    st, _, out = raw("GetShardIterator", {"StreamName": "cbor", "ShardId": "shardId-000000000000",
                                          "ShardIteratorType": "AT_TIMESTAMP",
                                          "Timestamp": Tag(1, t_ms / 1000.0)}, fmt="cbor")
    st, _, out = raw("GetRecords", {"ShardIterator": out.get("ShardIterator"), "Limit": 1}, fmt="cbor")
    eq("AT_TIMESTAMP as tag 1 + float seconds", [r.get("Data") for r in out.get("Records", [])],
       [b"\x00after"])

    st, _, out = raw("GetShardIterator", {"StreamName": "cbor", "ShardId": "shardId-000000000000",
                                          "ShardIteratorType": "TRIM_HORIZON"}, fmt="cbor")
    st, _, out = raw("GetRecords", {"ShardIterator": out["ShardIterator"], "Limit": 10}, fmt="cbor")
    recs = out.get("Records", [])
    eq("CBOR GetRecords: Data are byte strings, bytes intact", [r.get("Data") for r in recs],
       [payload, b"chunk1-chunk2", b"\x00after", b"\x01after"])
    eq("CBOR GetRecords: first SequenceNumber", recs[0].get("SequenceNumber") if recs else None, seq1)
    ts = recs[0].get("ApproximateArrivalTimestamp") if recs else None
    check("CBOR ApproximateArrivalTimestamp: tag 1 + integer epoch ms",
          isinstance(ts, Tag) and ts.tag == 1 and isinstance(ts.value, int)
          and abs(ts.value - time.time() * 1000) < 60000, repr(ts))
    check("CBOR MillisBehindLatest integer", isinstance(out.get("MillisBehindLatest"), int))
    check("CBOR NextShardIterator text", isinstance(out.get("NextShardIterator"), str))

    st, _, out = raw("DescribeStreamSummary", {"StreamName": "cbor"}, fmt="cbor")
    s = out.get("StreamDescriptionSummary", {}) if isinstance(out, dict) else {}
    created = s.get("StreamCreationTimestamp")
    check("CBOR StreamCreationTimestamp: tag 1 + integer ms",
          isinstance(created, Tag) and created.tag == 1 and isinstance(created.value, int)
          and abs(created.value - time.time() * 1000) < 600000, repr(created))
    eq("CBOR summary: OpenShardCount", s.get("OpenShardCount"), 1)

    # Errors come back as CBOR maps.
    st, ctype, out = raw("DescribeStream", {"StreamName": "nope"}, fmt="cbor")
    check("CBOR ResourceNotFoundException: 400, CBOR map",
          st == 400 and ctype == "application/x-amz-cbor-1.1" and isinstance(out, dict)
          and out.get("__type") == "ResourceNotFoundException" and "message" in out, repr(out)[:200])
    expect_raw_err("CBOR missing PartitionKey: ValidationException", "PutRecord",
                   {"StreamName": "cbor", "Data": b"x"}, "ValidationException", fmt="cbor")
    expect_raw_err("CBOR Data as an integer: SerializationException",
                   "PutRecord", {"StreamName": "cbor", "Data": 12, "PartitionKey": "k"},
                   "SerializationException", fmt="cbor")
    st, ctype, out = raw("PutRecord", b"\xa3\x6aStreamNa", fmt="cbor")
    check("truncated CBOR: SerializationException (capital Message) in CBOR",
          st == 400 and isinstance(out, dict) and out.get("__type") == "SerializationException"
          and "Message" in out, repr(out)[:200])
    expect_raw_err("CBOR reserved byte: SerializationException", "PutRecord", b"\xfc\x00\x01",
                   "SerializationException", fmt="cbor")
    expect_raw_err("CBOR trailing garbage: SerializationException", "PutRecord",
                   cbor_enc({"StreamName": "cbor"}) + b"\x00", "SerializationException", fmt="cbor")
    expect_raw_err("CBOR top-level array: SerializationException", "PutRecord",
                   cbor_enc(["StreamName"]), "SerializationException", fmt="cbor")
    expect_raw_err("CBOR map with an integer key: SerializationException", "PutRecord",
                   b"\xa1\x01\x02", "SerializationException", fmt="cbor")
    expect_raw_err("CBOR invalid UTF-8 text: SerializationException", "PutRecord",
                   b"\xa1\x62\xff\xfe\x01", "SerializationException", fmt="cbor")
    expect_raw_err("CBOR huge declared length: SerializationException", "PutRecord",
                   b"\xa1\x7b\x7f\xff\xff\xff\xff\xff\xff\xff", "SerializationException", fmt="cbor")
    expect_raw_err("CBOR deep nesting: SerializationException", "PutRecord",
                   b"\x81" * 5000 + b"\x00", "SerializationException", fmt="cbor")
    expect_raw_err("CBOR unknown target: UnknownOperationException", "X", {}, "UnknownOperationException",
                   fmt="cbor", target="Kinesis_20131202.Nope")

    # Text members sent as byte strings that are not UTF-8 would be stored and then break
    # every JSON answer that carries them: refused.
    expect_raw_err("CBOR PartitionKey not UTF-8: SerializationException", "PutRecord",
                   {"StreamName": "cbor", "Data": b"x", "PartitionKey": b"\xff\xfe"},
                   "SerializationException", fmt="cbor")
    expect_raw_err("CBOR PutRecords PartitionKey not UTF-8: SerializationException", "PutRecords",
                   {"StreamName": "cbor", "Records": [{"Data": b"x", "PartitionKey": b"\xc3"}]},
                   "SerializationException", fmt="cbor")
    expect_raw_err("CBOR tag value not UTF-8: SerializationException", "AddTagsToStream",
                   {"StreamName": "cbor", "Tags": {"k": b"\x80"}}, "SerializationException", fmt="cbor")
    expect_raw_err("CBOR KeyId not UTF-8: SerializationException", "StartStreamEncryption",
                   {"StreamName": "cbor", "EncryptionType": "KMS", "KeyId": b"\xed\xa0\x80"},
                   "SerializationException", fmt="cbor")
    try:
        recs, _ = drain(iterator("cbor", "shardId-000000000000"))
        s = KIN.describe_stream_summary(StreamName="cbor")["StreamDescriptionSummary"]
        tags = KIN.list_tags_for_stream(StreamName="cbor")["Tags"]
        check("after refused CBOR text: JSON clients still read records, summary and tags",
              len(recs) == 4 and s.get("EncryptionType") == "NONE" and tags == [])
    except Exception as e:
        bad("after refused CBOR text: JSON clients still read records, summary and tags", repr(e))
    # Lengths count characters, as AWS does.
    r = KIN.put_record(StreamName="cbor", Data=b"x", PartitionKey="\u00e9" * 256)
    check("PartitionKey of 256 two-byte characters accepted", "SequenceNumber" in r)
    expect_err("PartitionKey of 257 characters: ValidationException",
               lambda: KIN.put_record(StreamName="cbor", Data=b"x", PartitionKey="\u00e9" * 257),
               "ValidationException")
    recs, _ = drain(iterator("cbor", "shardId-000000000000"))
    eq("multi-byte PartitionKey reads back", recs[-1]["PartitionKey"] if recs else None, "\u00e9" * 256)
    KIN.add_tags_to_stream(StreamName="cbor", Tags={"k": "\u00e9" * 256})
    eq("tag value of 256 two-byte characters", KIN.list_tags_for_stream(StreamName="cbor")["Tags"],
       [{"Key": "k", "Value": "\u00e9" * 256}])
    KIN.remove_tags_from_stream(StreamName="cbor", TagKeys=["k"])


def t_chaos():
    """Robustness: structure-aware mutations of valid requests (wrong types, missing and
    extra members, extreme numbers, bytes for text, in JSON and CBOR) never get a 5xx or
    crash the server; then clients racing create/delete/put/read/reshard/tag on the same
    streams get only 4xx errors."""
    import random
    create("mut", 2)
    KIN.put_record(StreamName="mut", Data=b"x", PartitionKey="a")
    it = iterator("mut", "shardId-000000000000")
    seq = KIN.put_record(StreamName="mut", Data=b"x", PartitionKey="a", ExplicitHashKey="1")["SequenceNumber"]
    arn = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/mut"
    base = [
        ("CreateStream", {"StreamName": "mut2", "ShardCount": 1, "Tags": {"a": "b"},
                          "StreamModeDetails": {"StreamMode": "PROVISIONED"}, "MaxRecordSizeInKiB": 1024}),
        ("DeleteStream", {"StreamName": "mut2", "EnforceConsumerDeletion": True}),
        ("DescribeStream", {"StreamName": "mut", "Limit": 1, "ExclusiveStartShardId": "shardId-000000000000"}),
        ("DescribeStreamSummary", {"StreamARN": arn}),
        ("ListStreams", {"Limit": 1, "ExclusiveStartStreamName": "a", "NextToken": "bQ=="}),
        ("ListShards", {"StreamName": "mut", "MaxResults": 1,
                        "ShardFilter": {"Type": "AT_TIMESTAMP", "Timestamp": 1.5, "ShardId": "shardId-000000000000"}}),
        ("ListShards", {"NextToken": "bXV0CjAKMAowCg=="}),
        ("PutRecord", {"StreamName": "mut", "Data": b"x", "PartitionKey": "k", "ExplicitHashKey": "5",
                       "SequenceNumberForOrdering": seq}),
        ("PutRecords", {"StreamName": "mut", "Records": [{"Data": b"x", "PartitionKey": "k", "ExplicitHashKey": "5"},
                                                         {"Data": b"y", "PartitionKey": "j"}]}),
        ("GetShardIterator", {"StreamName": "mut", "ShardId": "shardId-000000000000",
                              "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": seq,
                              "Timestamp": 5}),
        ("GetRecords", {"ShardIterator": it, "Limit": 5}),
        ("IncreaseStreamRetentionPeriod", {"StreamName": "mut", "RetentionPeriodHours": 30}),
        ("DecreaseStreamRetentionPeriod", {"StreamName": "mut", "RetentionPeriodHours": 24}),
        ("SplitShard", {"StreamName": "mut2", "ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "100"}),
        ("MergeShards", {"StreamName": "mut2", "ShardToMerge": "shardId-000000000001",
                         "AdjacentShardToMerge": "shardId-000000000002"}),
        ("UpdateShardCount", {"StreamName": "mut2", "TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING"}),
        ("StartStreamEncryption", {"StreamName": "mut", "EncryptionType": "KMS", "KeyId": "k"}),
        ("StopStreamEncryption", {"StreamName": "mut", "EncryptionType": "KMS", "KeyId": "k"}),
        ("EnableEnhancedMonitoring", {"StreamName": "mut", "ShardLevelMetrics": ["ALL"]}),
        ("DisableEnhancedMonitoring", {"StreamName": "mut", "ShardLevelMetrics": ["IncomingBytes"]}),
        ("UpdateStreamMode", {"StreamARN": arn, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        ("UpdateMaxRecordSize", {"StreamName": "mut", "MaxRecordSizeInKiB": 2048}),
        ("DescribeLimits", {}),
        ("AddTagsToStream", {"StreamName": "mut", "Tags": {"x": "y"}}),
        ("RemoveTagsFromStream", {"StreamName": "mut", "TagKeys": ["x"]}),
        ("ListTagsForStream", {"StreamName": "mut", "ExclusiveStartTagKey": "a", "Limit": 2}),
        ("TagResource", {"ResourceARN": arn, "Tags": {"x": "y"}}),
        ("UntagResource", {"ResourceARN": arn, "TagKeys": ["x"]}),
        ("ListTagsForResource", {"ResourceARN": arn}),
    ]
    rng = random.Random(20240601)

    def value(depth=0):
        c = rng.randrange(13)
        if c == 0:
            return None
        if c == 1:
            return rng.choice([True, False])
        if c == 2:
            return rng.choice([0, -1, 1, 2**31, 2**63 - 1, -2**63, 2**64 - 1, 10**30])
        if c == 3:
            return rng.choice([0.5, -1e308, 1e308, 3.14])
        if c == 4:
            return "x" * rng.choice([0, 1, 128, 129, 256, 257, 2049, 5000])
        if c == 5:
            return rng.choice(["shardId-000000000000", "shardId-", "shardId-999999999999999999999", "-1",
                               "340282366920938463463374607431768211456", "ALL", "AT_LATEST", "ON_DEMAND",
                               "KMS", f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/", "arn:", "\u00e9\u0000"])
        if c == 6 and depth < 3:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        if c == 7 and depth < 3:
            return {rng.choice(["Type", "ShardId", "Timestamp", "StreamMode", "Data", "PartitionKey", "a"]):
                    value(depth + 1) for _ in range(rng.randrange(4))}
        if c == 8:
            return b"\xff\x00"
        if c == 9:
            return [{}] * rng.choice([0, 1, 501])
        if c == 10:
            return Tag(1, rng.choice([0, -5, 2**63 - 1, 1.5]))
        return rng.choice(["mut", "mut2", "nope"])

    def mutate(body):
        b = dict(body)
        for _ in range(rng.randint(1, 3)):
            op, keys = rng.randrange(4), list(b)
            if op == 0 and keys:
                b[rng.choice(keys)] = value()
            elif op == 1 and keys:
                del b[rng.choice(keys)]
            elif op == 2:
                b[rng.choice(["StreamName", "StreamARN", "NextToken", "ShardId", "Records", "Tags", "Limit",
                              "Timestamp"])] = value()
            elif op == 3 and keys:
                k = rng.choice(keys)
                if isinstance(b[k], list) and b[k]:
                    b[k] = list(b[k])
                    b[k][rng.randrange(len(b[k]))] = value()
                elif isinstance(b[k], dict) and b[k]:
                    b[k] = dict(b[k])
                    b[k][rng.choice(list(b[k]))] = value()
        return b

    def as_json(v):
        if isinstance(v, bytes):
            return base64.b64encode(v).decode() if rng.random() < 0.5 else v.decode("latin-1")
        if isinstance(v, Tag):
            return v.value
        if isinstance(v, list):
            return [as_json(x) for x in v]
        if isinstance(v, dict):
            return {k: as_json(x) for k, x in v.items()}
        return v

    n, bad5xx = 0, []
    end = time.time() + 3
    while time.time() < end:
        op, body = rng.choice(base)
        m = mutate(body)
        fmt = rng.choice(["json", "cbor"])
        st, _, out = raw(op, json.dumps(as_json(m)) if fmt == "json" else m, fmt=fmt)
        n += 1
        if st >= 500:
            bad5xx.append((op, fmt, repr(m)[:200], st, repr(out)[:200]))
    print(f"# mutations: {n} requests", flush=True)
    eq("mutated requests: no 5xx", bad5xx[:3], [])
    check("mutated requests: server alive", SRV.alive())

    # Racing clients.
    names = ["race-0", "race-1", "race-2"]
    clients = [client() for _ in range(6)]
    errors, fivexx = {}, []
    end = time.time() + 4

    def worker(seed):
        r, k = random.Random(seed), clients[seed]
        while time.time() < end:
            n, op = r.choice(names), r.randrange(10)
            try:
                if op == 0:
                    k.create_stream(StreamName=n, ShardCount=r.randint(1, 3))
                elif op == 1 and r.random() < 0.3:
                    k.delete_stream(StreamName=n)
                elif op in (2, 3):
                    k.put_records(StreamName=n, Records=[{"Data": b"x" * r.randint(0, 100), "PartitionKey": str(r.random())}
                                                         for _ in range(r.randint(1, 20))])
                elif op == 4:
                    k.put_record(StreamName=n, Data=b"y", PartitionKey=str(r.random()))
                elif op == 5:
                    s = r.choice(k.list_shards(StreamName=n)["Shards"])
                    it = k.get_shard_iterator(StreamName=n, ShardId=s["ShardId"],
                                              ShardIteratorType=r.choice(["TRIM_HORIZON", "LATEST"]))["ShardIterator"]
                    for _ in range(3):
                        it = k.get_records(ShardIterator=it, Limit=r.randint(1, 50)).get("NextShardIterator")
                        if not it:
                            break
                elif op == 6:
                    sh = sorted((s for s in k.list_shards(StreamName=n)["Shards"]
                                 if "EndingSequenceNumber" not in s["SequenceNumberRange"]),
                                key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
                    if r.random() < 0.5 or len(sh) < 2:
                        s = r.choice(sh)
                        a, b = int(s["HashKeyRange"]["StartingHashKey"]), int(s["HashKeyRange"]["EndingHashKey"])
                        k.split_shard(StreamName=n, ShardToSplit=s["ShardId"], NewStartingHashKey=str((a + b) // 2 + 1))
                    else:
                        i = r.randrange(len(sh) - 1)
                        k.merge_shards(StreamName=n, ShardToMerge=sh[i]["ShardId"],
                                       AdjacentShardToMerge=sh[i + 1]["ShardId"])
                elif op == 7:
                    o = k.describe_stream_summary(StreamName=n)["StreamDescriptionSummary"]["OpenShardCount"]
                    k.update_shard_count(StreamName=n, TargetShardCount=max(1, min(2 * o, r.randint(1, 6))),
                                         ScalingType="UNIFORM_SCALING")
                elif op == 8:
                    k.describe_stream(StreamName=n)
                    k.list_streams()
                else:
                    k.add_tags_to_stream(StreamName=n, Tags={str(r.randrange(60)): "v"})
                    k.list_tags_for_stream(StreamName=n)
            except ClientError as e:
                code = e.response["Error"]["Code"]
                errors[code] = errors.get(code, 0) + 1
                if e.response["ResponseMetadata"]["HTTPStatusCode"] >= 500:
                    fivexx.append(f"{code}: {e.response['Error'].get('Message')}")
            except Exception as e:
                fivexx.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(clients))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(f"# racing clients: errors {errors}", flush=True)
    eq("racing clients: no 5xx", fivexx[:3], [])
    check("racing clients: server alive", SRV.alive())
    for n in names:
        try:
            KIN.delete_stream(StreamName=n)
        except ClientError:
            pass


def stored_snapshot(stream):
    out = {}
    for s in shards_of(stream):
        recs, _ = drain(iterator(stream, s["ShardId"]))
        out[s["ShardId"]] = [(x["SequenceNumber"], x["PartitionKey"], x["Data"]) for x in recs]
    return out


def raw_text(op, text):
    """One JSON 1.1 request with a body sent exactly as given; (status, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=60)
    c.request("POST", "/", text.encode(), {
        "X-Amz-Target": f"Kinesis_20131202.{op}",
        "Content-Type": "application/x-amz-json-1.1"})
    r = c.getresponse()
    payload = r.read()
    c.close()
    return r.status, payload


def t_put_records_paths():
    """A PutRecords body in JSON of the usual shape is read by a scanner (wire/put_records.h)
    and any other by the tree parser; one unknown member more sends the same body the tree's
    way. Both must answer alike: the same status and error, or the same answer text but for
    the sequence numbers (which must be 56 digits)."""
    create("paths", 4)
    arn = f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/paths"

    def b64(b):
        return base64.b64encode(b).decode()

    def body(records, name="paths", stream_arn=None, spaced=False):
        d = {}
        if name is not None:
            d["StreamName"] = name
        if stream_arn is not None:
            d["StreamARN"] = stream_arn
        d["Records"] = records
        if spaced:
            return " \n{ " + json.dumps(d, ensure_ascii=False, indent="\t",
                                        separators=(" , ", " : "))[1:]
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))

    def r(data=b"x", pk="k", ehk=None, raw_data=None):
        x = {}
        if data is not None:
            x["Data"] = raw_data if raw_data is not None else b64(data)
        if pk is not None:
            x["PartitionKey"] = pk
        if ehk is not None:
            x["ExplicitHashKey"] = ehk
        return x

    three = [r(b"a", "k1"), r(b"bb", "k2\u00e9"), r(b"", "k3", ehk="0")]
    cases = [
        ("three records", body(three)),
        ("whitespace everywhere", body(three, spaced=True)),
        ("by StreamARN", body(three, name=None, stream_arn=arn)),
        ("name and ARN", body(three, stream_arn=arn)),
        ("ARN of no stream", body(three, name=None, stream_arn=arn + "x")),
        ("no such stream", body(three, name="nope")),
        ("no stream member", body(three, name=None)),
        ("empty name", body(three, name="")),
        ("bad name", body(three, name="bad name!")),
        ("129-char name", body(three, name="n" * 129)),
        ("ExplicitHashKey max", body([r(ehk=str(MAX_HASH)), r(ehk=str(2**127))])),
        ("ExplicitHashKey 2^128", body([r(), r(ehk=str(2**128))])),
        ("ExplicitHashKey not a number", body([r(ehk="12ab")])),
        ("ExplicitHashKey empty", body([r(ehk="")])),
        ("ExplicitHashKey -1", body([r(ehk="-1")])),
        ("empty PartitionKey", body([r(pk="")])),
        ("256-char PartitionKey", body([r(pk="k" * 256)])),
        ("257-char PartitionKey", body([r(), r(pk="k" * 257)])),
        ("256 two-byte characters", body([r(pk="\u00e9" * 256)])),
        ("257 two-byte characters", body([r(pk="\u00e9" * 257)])),
        ("four-byte characters", body([r(pk="\U0001f600" * 3)])),
        ("empty Data", body([r(data=b"")])),
        ("Data of 1 MiB", body([r(data=b"z" * (1024 * 1024))])),
        ("Data over 1 MiB", body([r(), r(data=b"z" * (1024 * 1024 + 1))])),
        ("over 5 MiB in all", body([r(data=b"y" * (1000 * 1024))] * 6)),
        ("non-canonical base64", body([r(raw_data="Zh=="), r(raw_data="Zm9=")])),
        ("Data not base64", body([r(), r(raw_data="***=")])),
        ("record without Data", body([r(), r(data=None)])),
        ("record without PartitionKey", body([r(), r(pk=None)])),
        ("empty record", body([{}])),
        ("no records", body([])),
        ("500 records", body([r(bytes([i % 256]) * (i % 40), f"p{i}") for i in range(500)])),
        ("501 records", body([r()] * 501)),
    ]
    seq = re.compile(rb'"SequenceNumber":"(\d*)"')
    for label, text in cases:
        assert text.endswith("}")
        tree_text = text[:-1] + ',"Zz":0}'
        fast = raw_text("PutRecords", text)
        tree = raw_text("PutRecords", tree_text)
        seqs = seq.findall(fast[1]) + seq.findall(tree[1])
        check(f"PutRecords paths, {label}: sequence numbers of 56 digits",
              all(len(x) == 56 for x in seqs), repr(seqs[:3]))
        a = (fast[0], seq.sub(b'"SequenceNumber":"N"', fast[1]))
        b = (tree[0], seq.sub(b'"SequenceNumber":"N"', tree[1]))
        check(f"PutRecords paths, {label}: the same answer", a == b,
              f"scanned {a!r:.300} tree {b!r:.300}")


def t_bad_input():
    create("victim", 2)
    KIN.put_records(StreamName="victim", Records=[{"Data": f"v{i}".encode(), "PartitionKey": f"k{i}"}
                                                  for i in range(20)])
    before = stored_snapshot("victim")
    expect_raw_err("malformed JSON: SerializationException", "PutRecord", b"{not json",
                   "SerializationException")
    st, _, out = raw("PutRecord", b'{"StreamName": "victim",')
    check("truncated JSON: 400 with capital Message",
          st == 400 and isinstance(out, dict) and out.get("__type") == "SerializationException"
          and "Message" in out, repr(out)[:200])
    expect_raw_err("JSON array body: SerializationException", "PutRecord", b"[1,2]",
                   "SerializationException")
    expect_raw_err("JSON string body: SerializationException", "DescribeStream", b'"victim"',
                   "SerializationException")
    expect_raw_err("JSON duplicate keys: SerializationException", "DescribeStream",
                   b'{"StreamName":"victim","StreamName":"x"}', "SerializationException")
    expect_raw_err("StreamName a number: SerializationException", "DescribeStream",
                   {"StreamName": 5}, "SerializationException")
    expect_raw_err("Records not a list: SerializationException", "PutRecords",
                   {"StreamName": "victim", "Records": {"a": 1}}, "SerializationException")
    expect_raw_err("Records holding a number: SerializationException", "PutRecords",
                   {"StreamName": "victim", "Records": [1]}, "SerializationException")
    expect_raw_err("Tags not a map: SerializationException", "AddTagsToStream",
                   {"StreamName": "victim", "Tags": ["a"]}, "SerializationException")
    expect_raw_err("ShardFilter not a map: SerializationException", "ListShards",
                   {"StreamName": "victim", "ShardFilter": 3}, "SerializationException")
    expect_raw_err("ShardLevelMetrics holding numbers: ValidationException", "EnableEnhancedMonitoring",
                   {"StreamName": "victim", "ShardLevelMetrics": [1]}, "ValidationException")
    expect_raw_err("deep JSON nesting: SerializationException", "PutRecord",
                   b"[" * 100000 + b"]" * 100000, "SerializationException")
    expect_raw_err("NUL in a JSON string: handled", "DescribeStream",
                   b'{"StreamName":"vic\\u0000tim"}', ("ValidationException", "SerializationException"))
    expect_raw_err("invalid UTF-8 in JSON: SerializationException", "DescribeStream",
                   b'{"StreamName":"\xff\xfe"}', "SerializationException")
    expect_raw_err("unknown target: UnknownOperationException", "X", {},
                   "UnknownOperationException", target="Kinesis_20131202.NoSuchOperation")
    expect_raw_err("target of another service: UnknownOperationException", "X", {},
                   "UnknownOperationException", target="Kinesis_20131202.")
    expect_raw_err("empty body for DescribeStream: ValidationException", "DescribeStream", b"",
                   "ValidationException")
    expect_raw_err("empty object for PutRecords: ValidationException", "PutRecords", {},
                   "ValidationException")
    expect_raw_err("missing ShardIteratorType: ValidationException", "GetShardIterator",
                   {"StreamName": "victim", "ShardId": "shardId-000000000000"}, "ValidationException")
    expect_raw_err("missing ShardToSplit: ValidationException", "SplitShard",
                   {"StreamName": "victim", "NewStartingHashKey": "5"}, "ValidationException")
    expect_raw_err("missing TargetShardCount: ValidationException", "UpdateShardCount",
                   {"StreamName": "victim", "ScalingType": "UNIFORM_SCALING"}, "ValidationException")
    expect_raw_err("missing RetentionPeriodHours: ValidationException",
                   "IncreaseStreamRetentionPeriod", {"StreamName": "victim"}, "ValidationException")
    expect_raw_err("missing KeyId: ValidationException", "StartStreamEncryption",
                   {"StreamName": "victim", "EncryptionType": "KMS"}, "ValidationException")
    expect_raw_err("missing StreamModeDetails: ValidationException", "UpdateStreamMode",
                   {"StreamARN": f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/victim"},
                   "ValidationException")
    expect_raw_err("missing TagKeys: ValidationException", "RemoveTagsFromStream",
                   {"StreamName": "victim"}, "ValidationException")
    expect_raw_err("missing ShardLevelMetrics: ValidationException", "EnableEnhancedMonitoring",
                   {"StreamName": "victim"}, "ValidationException")
    expect_raw_err("missing AdjacentShardToMerge: ValidationException", "MergeShards",
                   {"StreamName": "victim", "ShardToMerge": "shardId-000000000000"},
                   "ValidationException")
    expect_raw_err("missing ResourceARN: ValidationException", "ListTagsForResource", {},
                   "ValidationException")
    expect_raw_err("invalid StreamARN: error", "DescribeStreamSummary", {"StreamARN": "arn:nope"},
                   "InvalidArgumentException")
    expect_raw_err("huge number: SerializationException",
                   "DescribeStream", b'{"StreamName":"victim","Limit":1e400}', "SerializationException")
    # Oversized body: 413 (max_request_bytes = 20M in this test's config).
    try:
        c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=60)
        c.putrequest("POST", "/")
        c.putheader("X-Amz-Target", "Kinesis_20131202.PutRecord")
        c.putheader("Content-Type", "application/x-amz-json-1.1")
        c.putheader("Content-Length", str(21 * 1024 * 1024))
        c.endheaders()
        status = None
        try:
            chunk = b"a" * (1024 * 1024)
            for _ in range(21):
                c.send(chunk)
        except OSError:
            pass
        try:
            status = c.getresponse().status
        except OSError as e:
            status = repr(e)
        c.close()
    except OSError as e:
        status = repr(e)
    eq("oversized body: 413", status, 413)
    check("server alive after bad input", SRV.alive())
    eq("stored data unchanged by bad input", stored_snapshot("victim"), before)


def t_restart():
    """Every acknowledged record survives a SIGTERM restart and a kill -9; iterators issued
    before a restart still work after it (the iterator key is in the data dir)."""
    global KIN
    create("durable", 3)
    acked = {}

    def put_some(prefix, n):
        for i in range(0, n, 25):
            r = KIN.put_records(StreamName="durable", Records=[
                {"Data": f"{prefix}-{j}".encode(), "PartitionKey": f"{prefix}{j}"}
                for j in range(i, min(n, i + 25))])
            for j, x in zip(range(i, i + 25), r["Records"]):
                if "SequenceNumber" in x:
                    acked[(x["ShardId"], x["SequenceNumber"])] = f"{prefix}-{j}".encode()
        r = KIN.put_record(StreamName="durable", Data=f"{prefix}-single".encode(), PartitionKey="s")
        acked[(r["ShardId"], r["SequenceNumber"])] = f"{prefix}-single".encode()

    put_some("a", 150)
    KIN.add_tags_to_stream(StreamName="durable", Tags={"keep": "me"})
    KIN.increase_stream_retention_period(StreamName="durable", RetentionPeriodHours=72)
    KIN.start_stream_encryption(StreamName="durable", EncryptionType="KMS",
                                KeyId="alias/aws/kinesis")
    KIN.enable_enhanced_monitoring(StreamName="durable", ShardLevelMetrics=["IncomingRecords"])
    desc_before = KIN.describe_stream(StreamName="durable")["StreamDescription"]
    old_iters = {s["ShardId"]: iterator("durable", s["ShardId"]) for s in desc_before["Shards"]}
    split_before = stored_snapshot("split")
    order_before = stored_snapshot("order")

    def verify(label):
        got = {}
        for sid, it in old_iters.items():
            try:
                recs, _ = drain(it)
            except ClientError as e:
                bad(f"{label}: old iterator of {sid}", e.response["Error"]["Code"])
                return
            for x in recs:
                got[(sid, x["SequenceNumber"])] = x["Data"]
        ok(f"{label}: iterators from before the restart still work")
        missing = [k for k, v in acked.items() if got.get(k) != v]
        eq(f"{label}: every acknowledged record readable", len(missing), 0)

    eq("SIGTERM: exit 0", SRV.stop(signal.SIGTERM), 0)
    SRV.start()
    KIN = client()
    verify("after SIGTERM")
    d = KIN.describe_stream(StreamName="durable")["StreamDescription"]
    eq("after restart: same shards", d["Shards"], desc_before["Shards"])
    eq("after restart: retention", d["RetentionPeriodHours"], 72)
    eq("after restart: encryption", (d.get("EncryptionType"), d.get("KeyId")), ("KMS", "alias/aws/kinesis"))
    eq("after restart: monitoring", d["EnhancedMonitoring"][0]["ShardLevelMetrics"], ["IncomingRecords"])
    eq("after restart: tags", KIN.list_tags_for_stream(StreamName="durable")["Tags"],
       [{"Key": "keep", "Value": "me"}])
    eq("after restart: resharded stream intact", stored_snapshot("split"), split_before)
    eq("after restart: ordering stream intact", stored_snapshot("order"), order_before)
    r = KIN.put_record(StreamName="durable", Data=b"post", PartitionKey="s")
    prev = max(int(seq) for (sid, seq) in acked if sid == r["ShardId"])
    check("after restart: sequence numbers keep growing", int(r["SequenceNumber"]) > prev)
    acked[(r["ShardId"], r["SequenceNumber"])] = b"post"

    # kill -9 while a writer is busy: what was acknowledged before the kill is there.
    put_some("b", 100)
    stop = threading.Event()
    wk = client()
    inflight = {}

    def writer():
        n = 0
        while not stop.is_set():
            try:
                r = wk.put_record(StreamName="durable", Data=f"c-{n}".encode(), PartitionKey=f"c{n}")
                inflight[(r["ShardId"], r["SequenceNumber"])] = f"c-{n}".encode()
            except Exception:
                return
            n += 1

    th = threading.Thread(target=writer)
    th.start()
    time.sleep(0.4)
    SRV.stop(signal.SIGKILL)
    stop.set()
    th.join()
    acked.update(inflight)
    check("kill -9: the writer had records acknowledged", len(inflight) > 0, str(len(inflight)))
    SRV.start()
    KIN = client()
    verify("after kill -9")
    seqs = {}
    dup = False
    for sid in old_iters:
        recs, _ = drain(iterator("durable", sid))
        nums = [int(x["SequenceNumber"]) for x in recs]
        dup |= nums != sorted(set(nums))
        seqs[sid] = nums[-1] if nums else 0
    check("after kill -9: sequence numbers unique and increasing", not dup)
    r = KIN.put_record(StreamName="durable", Data=b"post-kill", PartitionKey="s")
    check("after kill -9: new records get larger sequence numbers",
          int(r["SequenceNumber"]) > seqs[r["ShardId"]])
    eq("after kill -9: resharded stream intact", stored_snapshot("split"), split_before)
    eq("after kill -9: tags kept", KIN.list_tags_for_stream(StreamName="durable")["Tags"],
       [{"Key": "keep", "Value": "me"}])


def t_expiry_and_transitions():
    """iterator_ttl_ms shortens AWS's 5 minutes; stream_transition_ms makes CREATING and
    UPDATING observable."""
    global KIN
    SRV.stop(signal.SIGTERM)
    SRV.start(iterator_ttl_ms=2000, stream_transition_ms=1500)
    KIN = client()
    sid = "shardId-000000000000"
    it = iterator("reads", sid)
    r = KIN.get_records(ShardIterator=it, Limit=1)
    check("fresh iterator works", len(r["Records"]) == 1)
    nxt = r["NextShardIterator"]
    time.sleep(2.3)
    expect_err("iterator older than iterator_ttl_ms: ExpiredIteratorException",
               lambda: KIN.get_records(ShardIterator=it), "ExpiredIteratorException")
    expect_err("NextShardIterator older than iterator_ttl_ms: ExpiredIteratorException",
               lambda: KIN.get_records(ShardIterator=nxt), "ExpiredIteratorException")
    st, _, out = raw("GetRecords", {"ShardIterator": it}, fmt="cbor")
    check("CBOR expired iterator: ExpiredIteratorException",
          st == 400 and isinstance(out, dict) and out.get("__type") == "ExpiredIteratorException")
    r = KIN.get_records(ShardIterator=iterator("reads", sid), Limit=1)
    check("a new iterator works again", len(r["Records"]) == 1)

    create("slow", 1)
    s1 = KIN.describe_stream_summary(StreamName="slow")["StreamDescriptionSummary"]["StreamStatus"]
    eq("new stream: CREATING", s1, "CREATING")
    KIN.get_waiter("stream_exists").wait(StreamName="slow", WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    eq("stream_exists waiter: ACTIVE",
       KIN.describe_stream(StreamName="slow")["StreamDescription"]["StreamStatus"], "ACTIVE")
    KIN.update_shard_count(StreamName="slow", TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    eq("after UpdateShardCount: UPDATING",
       KIN.describe_stream_summary(StreamName="slow")["StreamDescriptionSummary"]["StreamStatus"],
       "UPDATING")
    r = KIN.put_record(StreamName="slow", Data=b"while updating", PartitionKey="k")
    check("writes continue while UPDATING", "SequenceNumber" in r)
    expect_err("reshard while UPDATING: ResourceInUseException",
               lambda: KIN.update_shard_count(StreamName="slow", TargetShardCount=1,
                                              ScalingType="UNIFORM_SCALING"),
               "ResourceInUseException")
    status, deadline = None, time.time() + 5
    while status != "ACTIVE" and time.time() < deadline:
        time.sleep(0.1)
        status = KIN.describe_stream_summary(StreamName="slow")["StreamDescriptionSummary"]["StreamStatus"]
    eq("UPDATING -> ACTIVE", status, "ACTIVE")
    KIN.delete_stream(StreamName="slow")
    KIN.get_waiter("stream_not_exists").wait(StreamName="slow",
                                             WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    ok("stream_not_exists waiter")


SECTIONS = [t_create_describe_delete, t_describe_paging, t_list_streams, t_put_routing,
            t_iterators_and_reads, t_retention_attrs, t_tags, t_max_record_size, t_reshard,
            t_ordering, t_cbor, t_put_records_paths, t_bad_input, t_chaos, t_restart,
            t_expiry_and_transitions]


def main():
    global SRV, KIN
    work = tempfile.mkdtemp(prefix="tr-kinesis-boto3-")
    SRV = Server(work)
    try:
        SRV.start()
        KIN = client()
        for section in SECTIONS:
            t = time.time()
            try:
                if not SRV.alive():
                    bad(f"{section.__name__}: server not running")
                    SRV.start()
                    KIN = client()
                section()
            except Exception as e:  # a section that blows up counts once and the rest go on
                bad(f"{section.__name__} raised {type(e).__name__}: {e}")
                traceback.print_exc()
            print(f"# {section.__name__}: {time.time() - t:.1f} s", flush=True)
        if SRV.alive():
            eq("final SIGTERM: exit 0", SRV.stop(signal.SIGTERM), 0)
        else:
            bad("server alive at the end", f"exit {SRV.proc.returncode}")
        for name in sorted(os.listdir(work)):
            if name.startswith("server") and name.endswith(".log"):
                with open(os.path.join(work, name), errors="replace") as f:
                    text = f.read()
                for marker in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer"):
                    if marker in text:
                        bad(f"{name}: {marker}")
                        print(text[-6000:])
    finally:
        if SRV.proc is not None and SRV.proc.poll() is None:
            SRV.proc.kill()
            SRV.proc.wait()
        if FAILED and os.environ.get("TR_KEEP"):
            print(f"# kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"test_kinesis_boto3: {PASSED} passed, {FAILED} failed ({time.time() - T0:.1f} s)")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
