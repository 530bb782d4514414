#!/usr/bin/python3
"""System test of the Kinesis Video Streams control plane with boto3's 'kinesisvideo' client
(Debian python3-boto3) and raw REST-JSON requests against the real server on a free loopback
port.

Covers every operation: CreateStream (all members, async CREATING -> ACTIVE), DescribeStream by
name and ARN, ListStreams pagination and StreamNameCondition, UpdateStream and
UpdateDataRetention with CurrentVersion (VersionMismatchException), GetDataEndpoint (listen
address and public_url), the six tag operations and the 50-tag limit, DeleteStream dropping
the stream's shard files; KVS's error answers (HTTP status, x-amzn-ErrorType, {"Message"}) for
bad input that botocore would refuse to send; video and data streams of the same name side by
side; concurrent creates of both kinds (one catalog); restarts after SIGTERM and kill -9.
"""
import base64
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
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
ARN_RE = re.compile(r"^arn:aws:kinesisvideo:us-east-1:000000000000:stream/([a-zA-Z0-9_.-]+)/(\d+)$")
DEFAULT_KEY = "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesisvideo"
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
        settings = {"stream_transition_ms": 0}
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

    def restart(self, sig=signal.SIGTERM, **conf):
        rc = self.stop(sig)
        self.start(**conf)
        return rc

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def shard_dirs(self):
        d = os.path.join(self.data, "shards")
        return set(os.listdir(d)) if os.path.isdir(d) else set()


SRV = None
KVS = None


def client(service="kinesisvideo"):
    return boto3.client(
        service, endpoint_url=SRV.url(), region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      connect_timeout=10, read_timeout=60))


def raw(path, body, method="POST"):
    """One request; returns (status, headers dict lower-cased, decoded body or raw bytes)."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    if isinstance(data, str):
        data = data.encode()
    c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=60)
    c.request(method, path, data, {
        "Content-Type": "application/json",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/"
                         "kinesisvideo/aws4_request, SignedHeaders=host, Signature=00"})
    r = c.getresponse()
    payload = r.read()
    headers = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        return r.status, headers, json.loads(payload) if payload else {}
    except ValueError:
        return r.status, headers, payload


def raw_ok(name, path, body):
    status, _, out = raw(path, body)
    check(f"{name}: 200", status == 200, f"status {status}: {out!r}"[:300])
    return out


def expect_raw_err(name, path, body, etype, status=400, contains=None):
    st, headers, out = raw(path, body)
    got = headers.get("x-amzn-errortype")
    msg = out.get("Message") if isinstance(out, dict) else None
    return check(name, st == status and got == etype and isinstance(msg, str) and
                 (contains is None or contains in msg) and
                 headers.get("content-type", "").startswith("application/json"),
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


def info(name):
    return KVS.describe_stream(StreamName=name)["StreamInfo"]


def new_shard_dir(before):
    after = SRV.shard_dirs()
    fresh = after - before
    return fresh.pop() if len(fresh) == 1 else None


# ---------------------------------------------------------------------------------------------
# Sections

def t_create_describe():
    before = SRV.shard_dirs()
    t = time.time()
    out = KVS.create_stream(StreamName="cam-1", DeviceName="pi-4.front", MediaType="video/h264",
                            KmsKeyId="arn:aws:kms:us-east-1:000000000000:key/k1",
                            DataRetentionInHours=24, Tags={"site": "home", "floor": "1"})
    arn = out.get("StreamARN", "")
    m = ARN_RE.match(arn)
    check("create: ARN arn:aws:kinesisvideo:...:stream/<name>/<ms>", m and m.group(1) == "cam-1",
          arn)
    check("create: ARN ends with the creation time in ms",
          m and abs(int(m.group(2)) / 1000 - t) < 5, arn)
    check("create: one new shard directory", new_shard_dir(before) is not None)
    s = info("cam-1")
    eq("describe: StreamName", s.get("StreamName"), "cam-1")
    eq("describe: StreamARN", s.get("StreamARN"), arn)
    eq("describe: DeviceName", s.get("DeviceName"), "pi-4.front")
    eq("describe: MediaType", s.get("MediaType"), "video/h264")
    eq("describe: KmsKeyId", s.get("KmsKeyId"), "arn:aws:kms:us-east-1:000000000000:key/k1")
    eq("describe: DataRetentionInHours", s.get("DataRetentionInHours"), 24)
    eq("describe: Version", s.get("Version"), "1")
    eq("describe: Status (stream_transition_ms = 0)", s.get("Status"), "ACTIVE")
    ct = s.get("CreationTime")
    check("describe: CreationTime is a datetime near now",
          isinstance(ct, datetime.datetime) and abs(ct.timestamp() - t) < 5, repr(ct))
    check("describe: CreationTime matches the ARN",
          m and isinstance(ct, datetime.datetime) and
          abs(ct.timestamp() * 1000 - int(m.group(2))) < 1.5, repr(ct))
    s2 = KVS.describe_stream(StreamARN=arn)["StreamInfo"]
    eq("describe by ARN", s2, s)
    eq("describe by name and ARN", KVS.describe_stream(StreamName="cam-1", StreamARN=arn)["StreamInfo"], s)

    # Defaults: no device, no media type, AWS's managed key, retention 0.
    KVS.create_stream(StreamName="bare")
    b = info("bare")
    check("defaults: no DeviceName, no MediaType", "DeviceName" not in b and "MediaType" not in b, b)
    eq("defaults: KmsKeyId is the managed key", b.get("KmsKeyId"), DEFAULT_KEY)
    eq("defaults: DataRetentionInHours 0", b.get("DataRetentionInHours"), 0)
    # A longest name and a multi-type media type.
    long_name = "L" * 256
    KVS.create_stream(StreamName=long_name, MediaType="video/h264,audio/aac")
    eq("256-character name", info(long_name)["StreamName"], long_name)
    eq("media type list", info(long_name)["MediaType"], "video/h264,audio/aac")
    raw_ok("StreamStorageConfiguration accepted", "/createStream",
           {"StreamName": "warm", "StreamStorageConfiguration": {"DefaultStorageTier": "WARM"}})

    expect_err("create: name taken -> ResourceInUseException",
               lambda: KVS.create_stream(StreamName="cam-1"), "ResourceInUseException")
    expect_err("describe missing -> 404 ResourceNotFoundException",
               lambda: KVS.describe_stream(StreamName="nope"), "ResourceNotFoundException", 404)
    expect_err("describe by a stale ARN -> 404",
               lambda: KVS.describe_stream(StreamARN=arn[:-3] + "000"),
               "ResourceNotFoundException", 404)
    expect_raw_err("raw 404: x-amzn-ErrorType and {Message}", "/describeStream",
                   {"StreamName": "nope"}, "ResourceNotFoundException", 404)
    st, headers, body = raw("/describeStream", {"StreamName": "nope"})
    check("404 carries x-amzn-RequestId", "x-amzn-requestid" in headers, headers)
    eq("404 body is exactly {Message}", sorted(body.keys()) if isinstance(body, dict) else body,
       ["Message"])


def t_validation():
    E = "InvalidArgumentException"
    cases = [
        ("name with a space", "/createStream", {"StreamName": "bad name"}, "regular expression"),
        ("name of 257", "/createStream", {"StreamName": "x" * 257}, "length less than"),
        ("empty name", "/createStream", {"StreamName": ""}, "length greater"),
        ("no name", "/createStream", {}, "must not be null"),
        ("bad DeviceName", "/createStream", {"StreamName": "v1", "DeviceName": "a/b"}, None),
        ("DeviceName of 129", "/createStream", {"StreamName": "v1", "DeviceName": "d" * 129}, None),
        ("MediaType without a slash", "/createStream", {"StreamName": "v1", "MediaType": "video"}, None),
        ("MediaType trailing comma", "/createStream",
         {"StreamName": "v1", "MediaType": "video/h264,"}, None),
        ("empty KmsKeyId", "/createStream", {"StreamName": "v1", "KmsKeyId": ""}, None),
        ("retention -1", "/createStream", {"StreamName": "v1", "DataRetentionInHours": -1}, None),
        ("retention 87601", "/createStream", {"StreamName": "v1", "DataRetentionInHours": 87601},
         "87600"),
        ("empty Tags map", "/createStream", {"StreamName": "v1", "Tags": {}}, None),
        ("51 tags at create", "/createStream",
         {"StreamName": "v1", "Tags": {f"k{i}": "v" for i in range(51)}}, None),
        ("tag key of 129", "/createStream", {"StreamName": "v1", "Tags": {"k" * 129: "v"}}, None),
        ("tag value of 257", "/createStream", {"StreamName": "v1", "Tags": {"k": "v" * 257}}, None),
        ("tag key with a bad character", "/createStream",
         {"StreamName": "v1", "Tags": {"a*b": "v"}}, None),
        ("bad storage tier", "/createStream",
         {"StreamName": "v1", "StreamStorageConfiguration": {"DefaultStorageTier": "COLD"}},
         "enum"),
        ("describe without name or ARN", "/describeStream", {}, "StreamName or StreamARN"),
        ("describe with a malformed ARN", "/describeStream", {"StreamARN": "arn:x"}, "pattern"),
        ("delete without ARN", "/deleteStream", {}, "must not be null"),
        ("delete with a bad version", "/deleteStream",
         {"StreamARN": "arn:aws:kinesisvideo:us-east-1:000000000000:stream/a/1",
          "CurrentVersion": "1.0"}, "pattern"),
        ("update without CurrentVersion", "/updateStream", {"StreamName": "cam-1"}, None),
        ("retention change 0", "/updateDataRetention",
         {"StreamName": "cam-1", "CurrentVersion": "1", "Operation": "INCREASE_DATA_RETENTION",
          "DataRetentionChangeInHours": 0}, None),
        ("bad retention operation", "/updateDataRetention",
         {"StreamName": "cam-1", "CurrentVersion": "1", "Operation": "DOUBLE",
          "DataRetentionChangeInHours": 1}, "enum"),
        ("bad APIName", "/getDataEndpoint", {"StreamName": "cam-1", "APIName": "PUT"}, "enum"),
        ("no APIName", "/getDataEndpoint", {"StreamName": "cam-1"}, None),
        ("MaxResults 0", "/listStreams", {"MaxResults": 0}, None),
        ("MaxResults 10001", "/listStreams", {"MaxResults": 10001}, None),
        ("bad comparison operator", "/listStreams",
         {"StreamNameCondition": {"ComparisonOperator": "ENDS_WITH", "ComparisonValue": "a"}},
         "enum"),
        ("NextToken not base64", "/listStreams", {"NextToken": "!!!"}, None),
        ("NextToken of no name", "/listStreams",
         {"NextToken": base64.b64encode(b"a b").decode()}, None),
        ("untag with an empty key list", "/untagStream", {"StreamName": "cam-1", "TagKeyList": []},
         None),
        ("TagResource without ResourceARN", "/TagResource", {"Tags": [{"Key": "a", "Value": "b"}]},
         None),
        ("TagResource with a Tag without Value", "/TagResource",
         {"ResourceARN": "arn:aws:kinesisvideo:us-east-1:000000000000:stream/a/1",
          "Tags": [{"Key": "a"}]}, None),
    ]
    for name, path, body, contains in cases:
        expect_raw_err(f"{name} -> {E}", path, body, E, 400, contains)
    expect_raw_err("malformed JSON -> SerializationException", "/createStream", "{nope",
                   "SerializationException")
    expect_raw_err("a number for StreamName -> SerializationException", "/createStream",
                   {"StreamName": 5}, "SerializationException")
    expect_raw_err("Tags as a list in CreateStream -> SerializationException", "/createStream",
                   {"StreamName": "v1", "Tags": [{"Key": "a", "Value": "b"}]},
                   "SerializationException")
    check("nothing was created by bad requests",
          all(i["StreamName"] != "v1" for i in KVS.list_streams()["StreamInfoList"]))
    st, _, _ = raw("/describeStream", {"StreamName": "cam-1"}, method="GET")
    eq("GET /describeStream is not a route", st, 404)


def t_list():
    names = sorted([f"door-{i:02d}" for i in range(12)] + [f"yard-{i}" for i in range(5)] +
                   ["doorbell", "do"])
    for n in names:
        KVS.create_stream(StreamName=n)
    everything = sorted(["cam-1", "bare", "L" * 256, "warm"] + names)
    got, token, pages = [], None, 0
    while True:
        kw = {"MaxResults": 7}
        if token:
            kw["NextToken"] = token
        out = KVS.list_streams(**kw)
        pages += 1
        page = [i["StreamName"] for i in out["StreamInfoList"]]
        check(f"list page {pages}: at most 7", len(page) <= 7, page)
        got += page
        token = out.get("NextToken")
        if not token:
            break
        if pages > 20:
            break
    eq("list: every stream once, in name order", got, everything)
    eq("list: pages of 7", pages, (len(everything) + 6) // 7)
    out = KVS.list_streams(MaxResults=len(everything))
    check("list: no NextToken when everything fits", "NextToken" not in out, out.get("NextToken"))
    full = KVS.list_streams()["StreamInfoList"]
    eq("list: default MaxResults returns all", len(full), len(everything))
    cam = [i for i in full if i["StreamName"] == "cam-1"][0]
    eq("list: StreamInfo as DescribeStream has it", cam, info("cam-1"))

    cond = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "door-"}
    got, token = [], None
    for _ in range(10):
        kw = {"MaxResults": 5, "StreamNameCondition": cond}
        if token:
            kw["NextToken"] = token
        out = KVS.list_streams(**kw)
        got += [i["StreamName"] for i in out["StreamInfoList"]]
        token = out.get("NextToken")
        if not token:
            break
    eq("BEGINS_WITH door- paginated", got, [f"door-{i:02d}" for i in range(12)])
    out = KVS.list_streams(StreamNameCondition={"ComparisonOperator": "BEGINS_WITH",
                                                "ComparisonValue": "do"})
    eq("BEGINS_WITH do", [i["StreamName"] for i in out["StreamInfoList"]],
       ["do", "door-00", "door-01", "door-02", "door-03", "door-04", "door-05", "door-06",
        "door-07", "door-08", "door-09", "door-10", "door-11", "doorbell"])
    out = KVS.list_streams(StreamNameCondition={"ComparisonOperator": "BEGINS_WITH",
                                                "ComparisonValue": "zzz"})
    eq("BEGINS_WITH nothing", out["StreamInfoList"], [])
    pages = KVS.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 4})
    eq("boto3 paginator", [i["StreamName"] for p in pages for i in p["StreamInfoList"]],
       everything)
    # A token names a position, so it survives the deletion of the stream it names.
    out = KVS.list_streams(MaxResults=1, StreamNameCondition=cond)
    token = out["NextToken"]
    KVS.delete_stream(StreamARN=info("door-00")["StreamARN"])
    out = KVS.list_streams(MaxResults=1, NextToken=token, StreamNameCondition=cond)
    eq("token after its stream is deleted", [i["StreamName"] for i in out["StreamInfoList"]],
       ["door-01"])


def t_update():
    s = info("cam-1")
    expect_err("update with a stale version -> VersionMismatchException",
               lambda: KVS.update_stream(StreamName="cam-1", CurrentVersion="99",
                                         DeviceName="x"), "VersionMismatchException")
    eq("version unchanged after a mismatch", info("cam-1")["Version"], s["Version"])
    KVS.update_stream(StreamName="cam-1", CurrentVersion=s["Version"], DeviceName="pi-5",
                      MediaType="video/h265")
    u = info("cam-1")
    eq("update: DeviceName", u.get("DeviceName"), "pi-5")
    eq("update: MediaType", u.get("MediaType"), "video/h265")
    check("update: Version changed", u["Version"] != s["Version"], u["Version"])
    eq("update: ARN unchanged", u["StreamARN"], s["StreamARN"])
    eq("update: other members unchanged", (u["KmsKeyId"], u["DataRetentionInHours"]),
       (s["KmsKeyId"], s["DataRetentionInHours"]))
    KVS.update_stream(StreamARN=u["StreamARN"], CurrentVersion=u["Version"], MediaType="video/h264")
    v = info("cam-1")
    eq("update by ARN: only MediaType changed", (v["DeviceName"], v["MediaType"]),
       ("pi-5", "video/h264"))
    expect_err("update a missing stream -> 404",
               lambda: KVS.update_stream(StreamName="nope", CurrentVersion="1"),
               "ResourceNotFoundException", 404)


def t_retention():
    s = info("bare")
    expect_err("decrease below 0 -> InvalidArgumentException",
               lambda: KVS.update_data_retention(StreamName="bare", CurrentVersion=s["Version"],
                                                 Operation="DECREASE_DATA_RETENTION",
                                                 DataRetentionChangeInHours=1),
               "InvalidArgumentException")
    expect_err("retention with a stale version -> VersionMismatchException",
               lambda: KVS.update_data_retention(StreamName="bare", CurrentVersion="77",
                                                 Operation="INCREASE_DATA_RETENTION",
                                                 DataRetentionChangeInHours=1),
               "VersionMismatchException")
    KVS.update_data_retention(StreamName="bare", CurrentVersion=s["Version"],
                              Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=10)
    r = info("bare")
    eq("increase by 10", r["DataRetentionInHours"], 10)
    check("retention change bumps Version", r["Version"] != s["Version"])
    KVS.update_data_retention(StreamARN=r["StreamARN"], CurrentVersion=r["Version"],
                              Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=4)
    r = info("bare")
    eq("decrease by 4", r["DataRetentionInHours"], 6)
    expect_err("increase past 87600 -> InvalidArgumentException",
               lambda: KVS.update_data_retention(StreamName="bare", CurrentVersion=r["Version"],
                                                 Operation="INCREASE_DATA_RETENTION",
                                                 DataRetentionChangeInHours=87595),
               "InvalidArgumentException")
    KVS.update_data_retention(StreamName="bare", CurrentVersion=r["Version"],
                              Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=87594)
    eq("up to exactly 87600", info("bare")["DataRetentionInHours"], 87600)


def t_data_endpoint():
    for api in ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
                "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP",
                "GET_IMAGES"]:
        eq(f"GetDataEndpoint {api}",
           KVS.get_data_endpoint(StreamName="cam-1", APIName=api).get("DataEndpoint"), SRV.url())
    arn = info("cam-1")["StreamARN"]
    eq("GetDataEndpoint by ARN",
       KVS.get_data_endpoint(StreamARN=arn, APIName="GET_MEDIA")["DataEndpoint"], SRV.url())
    expect_err("GetDataEndpoint for a missing stream -> 404",
               lambda: KVS.get_data_endpoint(StreamName="nope", APIName="PUT_MEDIA"),
               "ResourceNotFoundException", 404)


def t_tags():
    eq("tags from CreateStream", KVS.list_tags_for_stream(StreamName="cam-1")["Tags"],
       {"site": "home", "floor": "1"})
    KVS.tag_stream(StreamName="cam-1", Tags={"floor": "2", "owner": "ops@example.com"})
    eq("tag_stream adds and overwrites", KVS.list_tags_for_stream(StreamName="cam-1")["Tags"],
       {"site": "home", "floor": "2", "owner": "ops@example.com"})
    KVS.untag_stream(StreamName="cam-1", TagKeyList=["site", "absent"])
    eq("untag_stream", KVS.list_tags_for_stream(StreamName="cam-1")["Tags"],
       {"floor": "2", "owner": "ops@example.com"})
    arn = info("cam-1")["StreamARN"]
    eq("list_tags_for_stream by ARN", KVS.list_tags_for_stream(StreamARN=arn)["Tags"],
       {"floor": "2", "owner": "ops@example.com"})
    KVS.tag_resource(ResourceARN=arn, Tags=[{"Key": "a", "Value": ""}, {"Key": "b", "Value": "2"}])
    eq("tag_resource (list form) and list_tags_for_resource",
       KVS.list_tags_for_resource(ResourceARN=arn)["Tags"],
       {"floor": "2", "owner": "ops@example.com", "a": "", "b": "2"})
    KVS.untag_resource(ResourceARN=arn, TagKeyList=["a", "floor"])
    eq("untag_resource", KVS.list_tags_for_resource(ResourceARN=arn)["Tags"],
       {"owner": "ops@example.com", "b": "2"})
    check("tags do not change the Version", info("cam-1")["Version"] ==
          KVS.describe_stream(StreamARN=arn)["StreamInfo"]["Version"])
    v = info("cam-1")["Version"]
    KVS.tag_stream(StreamName="cam-1", Tags={"c": "3"})
    eq("Version after tag_stream", info("cam-1")["Version"], v)

    # The limit: 50 tags per stream, counted after the request; nothing of a refused request.
    KVS.create_stream(StreamName="tagged")
    KVS.tag_stream(StreamName="tagged", Tags={f"k{i:02d}": str(i) for i in range(48)})
    expect_err("tag_stream past 50 -> TagsPerResourceExceededLimitException",
               lambda: KVS.tag_stream(StreamName="tagged",
                                      Tags={"k00": "x", "n1": "1", "n2": "2", "n3": "3"}),
               "TagsPerResourceExceededLimitException")
    tags = KVS.list_tags_for_stream(StreamName="tagged")["Tags"]
    check("refused request changed nothing", len(tags) == 48 and tags["k00"] == "0", len(tags))
    tarn = info("tagged")["StreamARN"]
    expect_err("tag_resource past 50 -> TagsPerResourceExceededLimitException",
               lambda: KVS.tag_resource(ResourceARN=tarn, Tags=[{"Key": f"m{i}", "Value": "v"}
                                                                for i in range(3)]),
               "TagsPerResourceExceededLimitException")
    KVS.tag_stream(StreamName="tagged", Tags={"k00": "new", "n1": "1", "n2": "2"})
    eq("exactly 50 tags is fine", len(KVS.list_tags_for_stream(StreamName="tagged")["Tags"]), 50)
    expect_raw_err("51 tags in one request -> InvalidArgumentException", "/tagStream",
                   {"StreamName": "tagged", "Tags": {f"z{i}": "v" for i in range(51)}},
                   "InvalidArgumentException")
    expect_raw_err("51 keys in one untag -> InvalidArgumentException", "/untagStream",
                   {"StreamName": "tagged", "TagKeyList": [f"z{i}" for i in range(51)]},
                   "InvalidArgumentException")
    expect_err("tag a missing stream -> 404",
               lambda: KVS.tag_stream(StreamName="nope", Tags={"a": "b"}),
               "ResourceNotFoundException", 404)
    expect_err("list tags of a missing resource -> 404",
               lambda: KVS.list_tags_for_resource(
                   ResourceARN="arn:aws:kinesisvideo:us-east-1:000000000000:stream/nope/1"),
               "ResourceNotFoundException", 404)
    expect_err("untag a missing resource -> 404",
               lambda: KVS.untag_resource(
                   ResourceARN="arn:aws:kinesisvideo:us-east-1:000000000000:stream/nope/1",
                   TagKeyList=["a"]),
               "ResourceNotFoundException", 404)


def t_delete():
    before = SRV.shard_dirs()
    arn = KVS.create_stream(StreamName="doomed", Tags={"a": "b"})["StreamARN"]
    uid = new_shard_dir(before)
    check("doomed: its shard directory", uid is not None)
    v = info("doomed")["Version"]
    expect_err("delete with a stale version -> VersionMismatchException",
               lambda: KVS.delete_stream(StreamARN=arn, CurrentVersion="42"),
               "VersionMismatchException")
    eq("still there after the mismatch", info("doomed")["StreamARN"], arn)
    KVS.delete_stream(StreamARN=arn, CurrentVersion=v)
    expect_err("deleted: describe -> 404", lambda: KVS.describe_stream(StreamName="doomed"),
               "ResourceNotFoundException", 404)
    expect_err("deleted: delete again -> 404", lambda: KVS.delete_stream(StreamARN=arn),
               "ResourceNotFoundException", 404)
    path = os.path.join(SRV.data, "shards", uid or "none")
    for _ in range(200):
        if not os.path.exists(path):
            break
        time.sleep(0.02)
    check("deleted: the shard's files are removed", not os.path.exists(path), path)
    # The same name again is a new stream: new ARN, new shard, no tags, Version 1.
    time.sleep(0.002)
    before = SRV.shard_dirs()
    arn2 = KVS.create_stream(StreamName="doomed")["StreamARN"]
    check("recreated: a new ARN", arn2 != arn, arn2)
    check("recreated: a new shard", new_shard_dir(before) not in (None, uid))
    eq("recreated: no tags", KVS.list_tags_for_stream(StreamName="doomed")["Tags"], {})
    eq("recreated: Version 1", info("doomed")["Version"], "1")
    expect_err("the old ARN does not name the new stream",
               lambda: KVS.describe_stream(StreamARN=arn), "ResourceNotFoundException", 404)
    KVS.delete_stream(StreamARN=arn2)


def t_video_and_data_side_by_side():
    kin = client("kinesis")
    kin.create_stream(StreamName="shared", ShardCount=1)
    KVS.create_stream(StreamName="shared", MediaType="video/h264")
    eq("a data stream and a video stream may share a name", info("shared")["MediaType"],
       "video/h264")
    check("the data stream is not listed as video",
          len([i for i in KVS.list_streams()["StreamInfoList"] if i["StreamName"] == "shared"]) == 1)
    KVS.delete_stream(StreamARN=info("shared")["StreamARN"])
    eq("deleting the video stream keeps the data stream",
       kin.describe_stream_summary(StreamName="shared")["StreamDescriptionSummary"]["StreamName"],
       "shared")
    kin.delete_stream(StreamName="shared")

    # Both registries write one catalog: concurrent creates and tags of both kinds.
    errors = []

    def worker(i):
        try:
            c, k = client(), client("kinesis")
            for j in range(8):
                c.create_stream(StreamName=f"par-{i}-{j}", Tags={"w": str(i)})
                k.create_stream(StreamName=f"par-{i}-{j}", ShardCount=1)
                c.tag_stream(StreamName=f"par-{i}-{j}", Tags={"j": str(j)})
                k.add_tags_to_stream(StreamName=f"par-{i}-{j}", Tags={"j": str(j)})
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    eq("concurrent creates of both kinds: no errors", errors, [])
    out = KVS.list_streams(StreamNameCondition={"ComparisonOperator": "BEGINS_WITH",
                                                "ComparisonValue": "par-"})
    eq("concurrent creates: 32 video streams", len(out["StreamInfoList"]), 32)
    eq("concurrent creates: tags of each", KVS.list_tags_for_stream(StreamName="par-3-7")["Tags"],
       {"w": "3", "j": "7"})
    kin = client("kinesis")
    names = kin.list_streams(Limit=100)["StreamNames"]
    eq("concurrent creates: 32 data streams", len([n for n in names if n.startswith("par-")]), 32)
    for i in range(4):
        for j in range(8):
            kin.delete_stream(StreamName=f"par-{i}-{j}")
            KVS.delete_stream(StreamARN=info(f"par-{i}-{j}")["StreamARN"])


def snapshot_state():
    out = {}
    for i in KVS.list_streams()["StreamInfoList"]:
        out[i["StreamName"]] = (i, KVS.list_tags_for_stream(StreamName=i["StreamName"])["Tags"])
    return out


def settled_shard_dirs():
    """The shard directories once the drops of deleted streams (asynchronous) are done."""
    dirs = SRV.shard_dirs()
    for _ in range(50):
        time.sleep(0.1)
        now = SRV.shard_dirs()
        if now == dirs:
            break
        dirs = now
    return dirs


def t_restart():
    global KVS
    before = snapshot_state()
    dirs = settled_shard_dirs()
    eq("restart after SIGTERM: exit 0", SRV.restart(signal.SIGTERM), 0)
    KVS = client()
    eq("after SIGTERM: every stream, member and tag", snapshot_state(), before)
    eq("after SIGTERM: the same shard directories", SRV.shard_dirs(), dirs)
    arn = KVS.create_stream(StreamName="after-kill", DataRetentionInHours=1)["StreamARN"]
    KVS.tag_stream(StreamName="after-kill", Tags={"k": "v"})
    s = info("cam-1")
    KVS.update_stream(StreamName="cam-1", CurrentVersion=s["Version"], DeviceName="killed")
    before = snapshot_state()
    SRV.restart(signal.SIGKILL)
    KVS = client()
    eq("after kill -9: every acknowledged change", snapshot_state(), before)
    eq("after kill -9: the new stream's ARN", info("after-kill")["StreamARN"], arn)
    v = info("cam-1")["Version"]
    KVS.update_stream(StreamName="cam-1", CurrentVersion=v, DeviceName="again")
    check("versions go on after a restart", info("cam-1")["Version"] != v)


def t_transitions_and_public_url():
    global KVS
    SRV.restart(signal.SIGTERM, stream_transition_ms=1500, public_url="https://video.example.com/")
    KVS = client()
    eq("public_url is the DataEndpoint",
       KVS.get_data_endpoint(StreamName="cam-1", APIName="PUT_MEDIA")["DataEndpoint"],
       "https://video.example.com")
    eq("streams loaded at start are ACTIVE", info("cam-1")["Status"], "ACTIVE")
    KVS.create_stream(StreamName="slow")
    eq("CreateStream is asynchronous: CREATING", info("slow")["Status"], "CREATING")
    expect_err("update while CREATING -> ResourceInUseException",
               lambda: KVS.update_stream(StreamName="slow", CurrentVersion="1", DeviceName="d"),
               "ResourceInUseException")
    deadline = time.time() + 10
    while time.time() < deadline and info("slow")["Status"] != "ACTIVE":
        time.sleep(0.1)
    eq("then ACTIVE", info("slow")["Status"], "ACTIVE")
    KVS.update_stream(StreamName="slow", CurrentVersion="1", DeviceName="d")
    eq("UpdateStream: UPDATING", info("slow")["Status"], "UPDATING")
    v = info("slow")["Version"]
    expect_err("retention while UPDATING -> ResourceInUseException",
               lambda: KVS.update_data_retention(StreamName="slow", CurrentVersion=v,
                                                 Operation="INCREASE_DATA_RETENTION",
                                                 DataRetentionChangeInHours=1),
               "ResourceInUseException")
    deadline = time.time() + 10
    while time.time() < deadline and info("slow")["Status"] != "ACTIVE":
        time.sleep(0.1)
    eq("then ACTIVE again", info("slow")["Status"], "ACTIVE")


SECTIONS = [t_create_describe, t_validation, t_list, t_update, t_retention, t_data_endpoint,
            t_tags, t_delete, t_video_and_data_side_by_side, t_restart,
            t_transitions_and_public_url]


def main():
    global SRV, KVS
    work = tempfile.mkdtemp(prefix="tr-kvs-control-")
    SRV = Server(work)
    try:
        SRV.start()
        KVS = client()
        for section in SECTIONS:
            t = time.time()
            try:
                if not SRV.alive():
                    bad(f"{section.__name__}: server not running")
                    SRV.start()
                    KVS = client()
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
                for marker in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                               "level=error"):
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
    print(f"test_kvs_control: {PASSED} passed, {FAILED} failed ({time.time() - T0:.1f} s)")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
