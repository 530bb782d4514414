#!/usr/bin/python3
"""System test of the Kinesis Video Streams data plane against the real server on a free
loopback port: PutMedia from a chunked HTTP/1.1 client written here (and over HTTP/2 prior
knowledge with curl), ListFragments, GetMedia and GetMediaForFragmentList with boto3's
'kinesis-video-archived-media' and 'kinesis-video-media' clients (Debian python3-boto3).

The media are GStreamer clips (x264 video, and x264 + AAC) in matroskamux's streamable form,
re-timed by the test (cluster Timecodes rewritten, blocks untouched). Every GetMedia answer is
split into its chunks and read with a small EBML reader: frame count, track, timestamp,
keyframe flag and frame bytes equal what was sent, the AWS_KINESISVIDEO_* tags are checked,
and ffprobe reads the output with the same packets as the input.

Covers: acks (BUFFERING/RECEIVED/PERSISTED per cluster in order, FragmentTimecode echoing
the cluster timecode, increasing FragmentNumbers, IDLE while the producer pauses) at real
time and flat out; ABSOLUTE and RELATIVE timecodes with x-amzn-producer-start-timestamp;
ListFragments (selectors, ranges, MaxResults, NextToken); every GetMedia StartSelector and
live tailing; GetMediaForFragmentList; PutMedia over HTTP/2; every ERROR ack crafted input
provokes (4001 4002 4004 4006 4008 4009 4010 4011 4012) and the 404 for an unknown stream;
PutMedia with Content-Length and with curl's chunked upload; a 30-fragment HTTP/2 upload and
GetMediaForFragmentList over HTTP/2; kill -9 during a flat-out ingest and the restart;
concurrent producers on one stream and a producer that reconnects and re-sends; producers
that hang up; a stream deleted under a producer and a live reader; a slow GetMedia reader and
readers that hang up; SIGTERM with a producer and a live reader connected; HTTP/1.1
uploads past 100 MiB and pauses longer than 5 s (our own HTTP/1.1 reader, not lws's); the
idle close (a server with putmedia_idle_*_ms shortened: IDLE acks, the answer's end, then a
clean close while the producer still holds the connection) and an ERROR answer ending while
the body still flows; refusals of bad request heads (400, 431, 501) and 100-continue. The
server must exit 0 after SIGTERM with nothing from the sanitizers in its log.
"""
import http.client
import json
import os
import random
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
T0 = time.time()
NUMBER_RE = re.compile(r"^91\d{35}$")

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
    return check(name, got == want, f"got {got!r}, want {want!r}"[:600])


def now_ms():
    return int(time.time() * 1000)


def seconds(ms):
    """Epoch ms as KVS writes them in GetMedia tags: '1726677687.758'."""
    return f"{ms // 1000}.{ms % 1000:03d}"


def dt_ms(dt):
    return round(dt.timestamp() * 1000)


# ---------------------------------------------------------------------------------------------
# EBML: just enough Matroska to read GStreamer's clips and GetMedia's chunks, and to write
# crafted bodies.

ID_EBML = 0x1A45DFA3
ID_SEGMENT = 0x18538067
ID_SEEKHEAD = 0x114D9B74
ID_INFO = 0x1549A966
ID_TRACKS = 0x1654AE6B
ID_TAGS = 0x1254C367
ID_CLUSTER = 0x1F43B675
ID_CUES = 0x1C53BB6B
ID_TIMECODE = 0xE7
ID_SIMPLEBLOCK = 0xA3
ID_BLOCKGROUP = 0xA0
ID_BLOCK = 0xA1
ID_REFERENCEBLOCK = 0xFB
ID_TAG = 0x7373
ID_TARGETS = 0x63C0
ID_TARGETTYPEVALUE = 0x68CA
ID_SIMPLETAG = 0x67C8
ID_TAGNAME = 0x45A3
ID_TAGSTRING = 0x4487
LEVEL1 = {ID_SEEKHEAD, ID_INFO, ID_TRACKS, ID_TAGS, ID_CLUSTER, ID_CUES, 0x1941A469, 0x1043A770}
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


class Incomplete(Exception):
    """The bytes stop inside an element: wait for more."""


def read_id(b, p):
    if p >= len(b):
        raise Incomplete
    x = b[p]
    n = 1
    while n <= 4 and not x & (0x80 >> (n - 1)):
        n += 1
    if n > 4:
        raise ValueError(f"bad element ID at {p}")
    if p + n > len(b):
        raise Incomplete
    return int.from_bytes(b[p:p + n], "big"), p + n


def read_vint(b, p):
    """(value or None for 'unknown', next position)."""
    if p >= len(b):
        raise Incomplete
    x = b[p]
    n = 1
    while n <= 8 and not x & (0x80 >> (n - 1)):
        n += 1
    if n > 8:
        raise ValueError(f"bad vint at {p}")
    if p + n > len(b):
        raise Incomplete
    mask = (0x80 >> (n - 1)) - 1
    v = x & mask
    ones = v == mask
    for i in range(1, n):
        v = (v << 8) | b[p + i]
        ones = ones and b[p + i] == 0xFF
    return (None if ones else v), p + n


def element(b, p):
    """(id, data start, data end or None for unknown size) of the element at p."""
    i, q = read_id(b, p)
    s, q = read_vint(b, q)
    if s is not None and q + s > len(b):
        raise Incomplete
    return i, q, (None if s is None else q + s)


def children(b, s, e):
    p = s
    while p < e:
        i, ds, de = element(b, p)
        if de is None or de > e:
            raise ValueError(f"bad child 0x{i:X} at {p}")
        yield i, p, ds, de
        p = de


def uint(b, s, e):
    return int.from_bytes(b[s:e], "big")


def parse_block(b, s, e, key):
    track, q = read_vint(b, s)
    rel = int.from_bytes(b[q:q + 2], "big", signed=True)
    flags = b[q + 2]
    if flags & 0x06:
        raise ValueError("a laced block")
    return {"track": track, "rel": rel, "key": bool(flags & 0x80) if key is None else key,
            "data": bytes(b[q + 3:e])}


def parse_cluster(b, hs, ds, de):
    """A Cluster; of unknown size (de None) it runs to the next level-1 element or the end.
    children: [(id, element bytes, block or None)] in order."""
    end = len(b) if de is None else de
    p = ds
    tc = None
    kids = []
    while p < end:
        i, _ = read_id(b, p)
        if de is None and (i in LEVEL1 or i in (ID_EBML, ID_SEGMENT)):
            break
        _, cs, ce = element(b, p)
        if ce is None or ce > end:
            raise ValueError(f"bad cluster child 0x{i:X} at {p}")
        blk = None
        if i == ID_TIMECODE:
            tc = uint(b, cs, ce)
        elif i == ID_SIMPLEBLOCK:
            blk = parse_block(b, cs, ce, None)
        elif i == ID_BLOCKGROUP:
            key, inner = True, None
            for ci, _, s2, e2 in children(b, cs, ce):
                if ci == ID_BLOCK:
                    inner = (s2, e2)
                elif ci == ID_REFERENCEBLOCK:
                    key = False
            blk = parse_block(b, inner[0], inner[1], key)
        kids.append((i, bytes(b[p:ce]), blk))
        p = ce
    if tc is None:
        raise ValueError(f"a cluster without a Timecode at {hs}")
    return {"start": hs, "end": p, "tc": tc, "children": kids,
            "frames": [(k["track"], tc + k["rel"], k["key"], k["data"])
                       for _, _, k in kids if k is not None]}


def parse_tags(b, s, e):
    out = []
    for i, _, s1, e1 in children(b, s, e):
        if i != ID_TAG:
            continue
        for j, _, s2, e2 in children(b, s1, e1):
            if j != ID_SIMPLETAG:
                continue
            name = value = None
            for k, _, s3, e3 in children(b, s2, e2):
                if k == ID_TAGNAME:
                    name = bytes(b[s3:e3]).rstrip(b"\0").decode()
                elif k == ID_TAGSTRING:
                    value = bytes(b[s3:e3]).rstrip(b"\0").decode()
            out.append((name, value))
    return out


def parse_mkv(b):
    """A producer's file: {header: bytes before the first cluster, clusters: [...]}."""
    i, _, de = element(b, 0)
    if i != ID_EBML:
        raise ValueError("not EBML")
    i, sds, sde = element(b, de)
    if i != ID_SEGMENT:
        raise ValueError("no Segment")
    end = len(b) if sde is None else sde
    p, first, clusters = sds, None, []
    while p < end:
        i, _ = read_id(b, p)
        if i == ID_EBML:
            break
        _, ds, de = element(b, p)
        if i == ID_CLUSTER:
            c = parse_cluster(b, p, ds, de)
            clusters.append(c)
            first = p if first is None else first
            p = c["end"]
        else:
            p = de
    return {"header": bytes(b[:first]), "clusters": clusters}


AWS_HEAD_TAGS = ["AWS_KINESISVIDEO_FRAGMENT_NUMBER", "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
                 "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"]
AWS_TAIL_TAGS = ["AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "AWS_KINESISVIDEO_CONTINUATION_TOKEN"]


def parse_chunk(b, p):
    """One GetMedia chunk at p: (chunk, end). Incomplete until its last Tags are in."""
    i, _, de = element(b, p)
    if i != ID_EBML:
        raise ValueError(f"no EBML header at {p}")
    i, sds, sde = element(b, de)
    if i != ID_SEGMENT or sde is not None:
        raise ValueError(f"no Segment of unknown size at {de}")
    q, cluster, groups, header_end = sds, None, [], None
    while q < len(b):
        i, _ = read_id(b, q)
        if i == ID_EBML:
            break
        _, cs, ce = element(b, q)
        if ce is None:
            raise ValueError(f"element 0x{i:X} of unknown size in a chunk at {q}")
        if i == ID_CLUSTER:
            cluster = parse_cluster(b, q, cs, ce)
        elif i == ID_TAGS:
            if header_end is None:
                header_end = q
            groups.append(parse_tags(b, cs, ce))
        q = ce
    names = [n for g in groups for n, _ in g]
    if "AWS_KINESISVIDEO_CONTINUATION_TOKEN" not in names and \
            "AWS_KINESISVIDEO_ERROR_ID" not in names:
        raise Incomplete
    aws = {n: v for g in groups for n, v in g if n and n.startswith("AWS_")}
    return {"raw": bytes(b[p:q]), "header": bytes(b[p:header_end or q]), "cluster": cluster,
            "groups": groups, "tags": aws,
            "producer_tags": [(n, v) for g in groups for n, v in g
                              if not (n or "").startswith("AWS_")]}, q


def header_tracks(b):
    """How many TrackEntry elements the Tracks of a header (EBML header + Segment...) has."""
    _, _, de = element(b, 0)
    _, sds, _ = element(b, de)
    for i, _, cs, ce in children(b, sds, len(b)):
        if i == ID_TRACKS:
            return sum(1 for t, _, _, _ in children(b, cs, ce) if t == 0xAE)
    return 0


def split_chunks(b):
    out, p = [], 0
    while p < len(b):
        c, p = parse_chunk(b, p)
        out.append(c)
    return out


# Writing.

def vint(v, n=None):
    if n is None:
        n = 1
        while v >= (1 << (7 * n)) - 1:
            n += 1
    return ((1 << (7 * n)) | v).to_bytes(n, "big")


def el(eid, payload):
    ib = eid.to_bytes((eid.bit_length() + 7) // 8, "big")
    return ib + vint(len(payload)) + payload


def el_uint(eid, v):
    return el(eid, v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big"))


def el_str(eid, s):
    return el(eid, s.encode())


def el_float(eid, v):
    import struct
    return el(eid, struct.pack(">d", v))


def ebml_header():
    return el(ID_EBML, el_uint(0x4286, 1) + el_uint(0x42F7, 1) + el_uint(0x42F2, 4) +
              el_uint(0x42F3, 8) + el_str(0x4282, "matroska") + el_uint(0x4287, 4) +
              el_uint(0x4285, 2))


def track_entry(number, kind):
    e = el_uint(0xD7, number) + el_uint(0x73C5, 1000 + number)
    if kind == "video":
        e += el_uint(0x83, 1) + el_str(0x86, "V_MPEG4/ISO/AVC") + \
            el(0xE0, el_uint(0xB0, 320) + el_uint(0xBA, 240))
    else:
        e += el_uint(0x83, 2) + el_str(0x86, "A_AAC") + \
            el(0xE1, el_float(0xB5, 44100.0) + el_uint(0x9F, 1))
    return el(0xAE, e)


def crafted_header(kinds=("video",)):
    """EBML header + Segment of unknown size + Info + Tracks."""
    info = el_uint(0x2AD7B1, 1000000) + el_str(0x4D80, "tributary-test") + \
        el_str(0x5741, "tributary-test")
    tracks = b"".join(track_entry(n + 1, k) for n, k in enumerate(kinds))
    return ebml_header() + ID_SEGMENT.to_bytes(4, "big") + UNKNOWN_SIZE + el(ID_INFO, info) + \
        el(ID_TRACKS, tracks)


def simple_block(track, rel, key, data):
    return el(ID_SIMPLEBLOCK, vint(track) + rel.to_bytes(2, "big", signed=True) +
              bytes([0x80 if key else 0]) + data)


def crafted_cluster(tc, blocks, known=True):
    body = el_uint(ID_TIMECODE, tc) + b"".join(simple_block(*blk) for blk in blocks)
    return el(ID_CLUSTER, body) if known else ID_CLUSTER.to_bytes(4, "big") + UNKNOWN_SIZE + body


def crafted_tags(pairs):
    tag = el(ID_TARGETS, el_uint(ID_TARGETTYPEVALUE, 50)) + b"".join(
        el(ID_SIMPLETAG, el_str(ID_TAGNAME, n) + el_str(ID_TAGSTRING, v)) for n, v in pairs)
    return el(ID_TAGS, el(ID_TAG, tag))


def gop(n=30, spacing=33, track=1):
    """Blocks of a made-up GOP: a keyframe, then n - 1 delta frames."""
    return [(track, i * spacing, i == 0, bytes([i % 256]) * (100 + i)) for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Clips

class Clip:
    """A GStreamer clip, replayable with new cluster timecodes."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        m = parse_mkv(self.data)
        self.header = m["header"]
        self.clusters = m["clusters"]

    def cluster_parts(self, ci, tc):
        """Cluster ci with Timecode tc, as [(frame time ms or None, bytes)]: the cluster head
        with its first block, then one part per block (a block carries the non-block children
        that follow it). Unknown size, as matroskamux streamable=true writes it."""
        parts = [[None, ID_CLUSTER.to_bytes(4, "big") + UNKNOWN_SIZE + el_uint(ID_TIMECODE, tc)]]
        for i, raw, blk in self.clusters[ci]["children"]:
            if i == ID_TIMECODE:
                continue
            if blk is not None:
                if parts[-1][0] is None and len(parts) == 1:
                    parts[-1][0] = tc + blk["rel"]
                    parts[-1][1] += raw
                else:
                    parts.append([tc + blk["rel"], raw])
            else:
                parts[-1][1] += raw
        return [tuple(p) for p in parts]

    def frames(self, ci, tc):
        return [(t, tc + (ft - self.clusters[ci]["tc"]), k, d)
                for t, ft, k, d in self.clusters[ci]["frames"]]

    def session(self, seq, header=True):
        """A body of clusters [(cluster index, timecode)]: (parts, expected fragments)."""
        parts = [(None, self.header)] if header else []
        expect = []
        for ci, tc in seq:
            cp = self.cluster_parts(ci, tc)
            parts.append(("cluster", len(expect)))
            parts.extend(cp)
            expect.append({"tc": tc, "frames": self.frames(ci, tc), "ci": ci})
        return parts, expect


def make_clips(work):
    out = {}
    v = os.path.join(work, "v.mkv")
    av = os.path.join(work, "av.mkv")
    video = ("videotestsrc num-buffers=90 ! video/x-raw,width=320,height=240,framerate=30/1 ! "
             "x264enc key-int-max=30 bframes=0 tune=zerolatency ! h264parse ! ")
    aac = "voaacenc" if subprocess.run(["gst-inspect-1.0", "voaacenc"], capture_output=True
                                       ).returncode == 0 else "avenc_aac"
    cmds = [f"gst-launch-1.0 -q {video} matroskamux streamable=true ! filesink location={v}",
            f"gst-launch-1.0 -q {video} matroskamux name=mux streamable=true ! "
            f"filesink location={av} audiotestsrc num-buffers=130 ! {aac} ! aacparse ! mux."]
    for cmd in cmds:
        r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{cmd}: {r.stderr}")
    out["v"] = Clip(v)
    out["av"] = Clip(av)
    return out


def ffprobe_packets(path):
    """[(stream index, pts in ms, size, keyframe)] as ffprobe demuxes them."""
    r = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                        "packet=stream_index,pts,size,flags", "-of", "json", path],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"ffprobe {path}: {r.stderr}")
    return [(p["stream_index"], int(p["pts"]), int(p["size"]), "K" in p.get("flags", ""))
            for p in json.loads(r.stdout).get("packets", [])], r.stderr


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
        os.makedirs(workdir, exist_ok=True)
        self.data = os.path.join(workdir, "data")
        self.port = free_port()
        self.proc = None
        self.log = None
        self.starts = 0

    def start(self, **conf):
        settings = {"stream_transition_ms": 0}
        settings.update(EXTRA_CONF)
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
        deadline = time.time() + 30
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
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        return rc

    def url(self):
        return f"http://127.0.0.1:{self.port}"


SRV = None
EXTRA_CONF = {}
KVS = None
ARCH = None
MEDIA_URL = None


def client(service, srv=None, read_timeout=60):
    return boto3.client(
        service, endpoint_url=(srv or SRV).url() if service == "kinesisvideo" else MEDIA_URL,
        region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      connect_timeout=10, read_timeout=read_timeout))


def connect_clients():
    global KVS, ARCH, MEDIA_URL
    KVS = client("kinesisvideo")
    MEDIA_URL = None
    for api in ("PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST"):
        url = KVS.get_data_endpoint(StreamName=STREAMS[0], APIName=api)["DataEndpoint"]
        MEDIA_URL = MEDIA_URL or url
        if url != MEDIA_URL:
            bad(f"GetDataEndpoint({api})", f"{url} != {MEDIA_URL}")
    ARCH = client("kinesis-video-archived-media")


def media_client(read_timeout=5):
    return client("kinesis-video-media", read_timeout=read_timeout)


STREAMS = ["rt"]


def create(name, retention=24, srv=None):
    kvs = KVS if srv is None and KVS is not None else client("kinesisvideo", srv)
    return kvs.create_stream(StreamName=name, DataRetentionInHours=retention,
                             MediaType="video/h264")["StreamARN"]


# ---------------------------------------------------------------------------------------------
# PutMedia: a chunked HTTP/1.1 client reading the acks as they come

class AckLog:
    """Acks as read from a PutMedia answer: [(arrival time, ack)]."""

    def __init__(self, lines=(), status=None):
        self.acks = []
        self.bad_lines = []
        self.status = status
        self.body = b""
        for t, line in lines:
            try:
                self.acks.append((t, json.loads(line)))
            except ValueError:
                self.bad_lines.append(line)

    def events(self, kind=None):
        return [a for _, a in self.acks
                if a.get("EventType") != "IDLE" and (kind is None or a.get("EventType") == kind)]

    def persisted(self):
        return [a["FragmentNumber"] for a in self.events("PERSISTED")]


def curl_acks(stdout, times=None):
    """curl's output: ack lines, then 'CURL <http version> <status>' from -w."""
    lines = stdout if times is not None else [(0, x) for x in stdout.decode().splitlines()]
    tail = [x for _, x in lines if x.startswith("CURL ")]
    log = AckLog([(t, x) for t, x in lines if x and not x.startswith("CURL ")])
    log.curl = tail[0].split()[1:] if tail else None
    log.status = int(log.curl[1]) if log.curl else None
    return log


class PutMedia(AckLog):
    def __init__(self, name=None, arn=None, tc_type="ABSOLUTE", start=None, port=None,
                 extra=None):
        self.port = port or SRV.port
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=None)
        headers = [("Host", f"127.0.0.1:{self.port}"), ("User-Agent", "tributary-test/1"),
                   ("Accept", "*/*"), ("Transfer-Encoding", "chunked"),
                   ("x-amzn-fragment-acknowledgment-required", "1"),
                   ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/"
                    "us-east-1/kinesisvideo/aws4_request, SignedHeaders=host, Signature=00")]
        if name is not None:
            headers.append(("x-amzn-stream-name", name))
        if arn is not None:
            headers.append(("x-amzn-stream-arn", arn))
        if tc_type is not None:
            headers.append(("x-amzn-fragment-timecode-type", tc_type))
        if start is not None:
            headers.append(("x-amzn-producer-start-timestamp", start))
        headers += extra or []
        req = "POST /putMedia HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        self.sock.sendall(req.encode())
        super().__init__()
        self.headers = {}
        self.ended = False      # the answer's last chunk arrived
        self.eof = False
        self.send_failed = False
        self.finished_at = None
        self.sent_at = {}       # fragment index -> time its first bytes went out
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        f = self.sock.makefile("rb")
        try:
            line = f.readline()
            if not line:
                return
            self.status = int(line.split()[1])
            while True:
                h = f.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode().partition(":")
                self.headers[k.strip().lower()] = v.strip()
            if self.headers.get("transfer-encoding", "").lower() != "chunked":
                n = int(self.headers.get("content-length", "0"))
                self.body = f.read(n)
                self.ended = True
                return
            pending = b""
            while True:
                size_line = f.readline()
                if not size_line:
                    return
                n = int(size_line.split(b";")[0], 16)
                if n == 0:
                    while f.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self.ended = True
                    return
                data = f.read(n)
                f.read(2)
                pending += data
                while b"\n" in pending:
                    one, pending = pending.split(b"\n", 1)
                    t = time.time()
                    try:
                        a = json.loads(one)
                        if len(one) > 1024 or not isinstance(a, dict):
                            raise ValueError("not an ack")
                        with self.cv:
                            self.acks.append((t, a))
                            self.cv.notify_all()
                    except ValueError:
                        self.bad_lines.append(one)
        except (OSError, ValueError):
            pass
        finally:
            with self.cv:
                self.eof = True
                self.cv.notify_all()

    def send(self, data):
        if self.send_failed or not data:
            return not self.send_failed
        try:
            self.sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
            return True
        except OSError:
            self.send_failed = True
            return False

    def finish(self):
        try:
            self.sock.sendall(b"0\r\n\r\n")
        except OSError:
            self.send_failed = True
        self.finished_at = time.time()

    def wait(self, pred, timeout=30):
        deadline = time.time() + timeout
        with self.cv:
            while not pred(self):
                left = deadline - time.time()
                if left <= 0 or (self.eof and not pred(self)):
                    return pred(self)
                self.cv.wait(min(left, 0.2))
            return True

    def wait_end(self, timeout=30):
        self.reader.join(timeout)
        return self.ended

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(5)


def push(put, parts, speed=None, pauses=None, seed=1, piece=65536):
    """Sends a body's parts. speed None: flat out, in random pieces of 1..piece bytes; else
    each frame at its timecode (speed x real time). pauses: {fragment index: seconds} to
    wait after that fragment's last frame."""
    pauses = pauses or {}
    if speed is None:
        rnd = random.Random(seed)
        buf = bytearray()
        for p in parts:
            if p[0] == "cluster":
                put.send(bytes(buf))
                buf.clear()
                put.sent_at[p[1]] = time.time()
                continue
            buf += p[1]
            while len(buf) > piece:
                n = rnd.randint(1, piece)
                put.send(bytes(buf[:n]))
                del buf[:n]
        while buf:
            n = rnd.randint(1, piece)
            put.send(bytes(buf[:n]))
            del buf[:n]
        return
    t0 = None
    frag = None
    for p in parts:
        if p[0] == "cluster":
            if frag in pauses:
                time.sleep(pauses[frag])
                t0 += pauses[frag]
            frag = p[1]
            continue
        when, data = p
        if when is not None:
            if t0 is None:
                t0 = time.time()
                first = when
            delay = t0 + (when - first) / 1000.0 / speed - time.time()
            if delay > 0:
                time.sleep(delay)
        if frag is not None and frag not in put.sent_at:
            put.sent_at[frag] = time.time()
        put.send(data)


def put_session(name, parts, tc_type="ABSOLUTE", start=None, speed=None, pauses=None, seed=1,
                finish=True, arn=None):
    put = PutMedia(name=name if arn is None else None, arn=arn, tc_type=tc_type, start=start)
    push(put, parts, speed=speed, pauses=pauses, seed=seed)
    if finish:
        put.finish()
        put.wait_end(60)
    return put


def check_acks(name, put, tcs, persisted=True):
    """BUFFERING, RECEIVED and PERSISTED for every cluster, in order; the numbers."""
    ev = put.events()
    errors = put.events("ERROR")
    check(f"{name}: HTTP 200", put.status == 200, f"status {put.status} {put.body!r}"[:300])
    check(f"{name}: no ERROR ack", not errors, repr(errors)[:300])
    check(f"{name}: every ack line is JSON", not put.bad_lines, repr(put.bad_lines[:3]))
    for kind in ("BUFFERING", "RECEIVED") + (("PERSISTED",) if persisted else ()):
        eq(f"{name}: one {kind} per cluster, FragmentTimecode = cluster timecode",
           [a.get("FragmentTimecode") for a in put.events(kind)], tcs)
    if not persisted:
        eq(f"{name}: no PERSISTED without retention", put.events("PERSISTED"), [])
    pos = {}
    for i, a in enumerate(ev):
        pos.setdefault((a.get("EventType"), a.get("FragmentTimecode")), i)
    try:
        order = all(pos[("BUFFERING", t)] < pos[("RECEIVED", t)] for t in tcs) and \
            all(pos[("RECEIVED", a)] < pos[("BUFFERING", b)] for a, b in zip(tcs, tcs[1:]))
        if persisted:
            order = order and all(pos[("RECEIVED", t)] < pos[("PERSISTED", t)] for t in tcs)
    except KeyError as e:
        order = f"missing {e}"
    check(f"{name}: BUFFERING < RECEIVED < PERSISTED, cluster after cluster", order is True,
          f"{order}: {[(a.get('EventType'), a.get('FragmentTimecode')) for a in ev]}"[:600])
    numbers = put.persisted()
    if persisted:
        check(f"{name}: FragmentNumbers are 37-digit decimals",
              all(NUMBER_RE.match(n) for n in numbers), repr(numbers[:3]))
        check(f"{name}: FragmentNumbers increase", all(int(a) < int(b) for a, b in
                                                       zip(numbers, numbers[1:])), repr(numbers))
    check(f"{name}: BUFFERING and RECEIVED carry a FragmentNumber string",
          all(isinstance(a.get("FragmentNumber"), str) for a in ev
              if a.get("EventType") in ("BUFFERING", "RECEIVED")))
    return numbers


def raw(path, body):
    c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=60)
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    payload = r.read()
    c.close()
    try:
        return r.status, json.loads(payload)
    except ValueError:
        return r.status, {"raw": payload}


def list_all(name, selector=None, page=1000):
    out, token = [], None
    while True:
        kw = {"StreamName": name, "MaxResults": page}
        if selector:
            kw["FragmentSelector"] = selector
        if token:
            kw["NextToken"] = token
        r = ARCH.list_fragments(**kw)
        out += r["Fragments"]
        token = r.get("NextToken")
        if not token:
            return out


# ---------------------------------------------------------------------------------------------
# GetMedia readers

class MediaReader:
    """Reads a GetMedia/GetMediaForFragmentList answer in a thread, as it arrives, into
    chunks; stops after `want` chunks (None: at the end of the answer)."""

    def __init__(self, payload, want=None, timeout=30):
        self.payload = payload
        self.want = want
        self.timeout = timeout
        self.buf = bytearray()
        self.chunks = []
        self.times = []
        self.error = None
        self.eof = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        # http.client's read1 hands over whatever part of the chunked answer has arrived
        # (urllib3's read(n) would wait for n bytes, holding back the newest chunk's tail).
        fp = self.payload._raw_stream._fp
        deadline = time.time() + self.timeout
        pos = 0
        try:
            while (self.want is None or len(self.chunks) < self.want) and time.time() < deadline:
                data = fp.read1(1 << 16)
                if not data:
                    self.eof = True
                    break
                self.buf += data
                while pos < len(self.buf):
                    try:
                        c, pos = parse_chunk(self.buf, pos)
                    except Incomplete:
                        break
                    self.chunks.append(c)
                    self.times.append(time.time())
            if self.eof and pos != len(self.buf):
                self.error = f"{len(self.buf) - pos} bytes after the last whole chunk"
        except socket.timeout:
            self.error = "timeout"
        except Exception as e:  # noqa: BLE001
            self.error = f"{type(e).__name__}: {e}"
        finally:
            try:
                self.payload.close()
            except Exception:  # noqa: BLE001
                pass

    def wait(self, timeout=None):
        self.t.join(timeout if timeout is not None else self.timeout + 10)
        return self.chunks


def get_media(name, selector, want, timeout=20, read_timeout=5):
    r = media_client(read_timeout).get_media(StreamName=name, StartSelector=selector)
    return r, MediaReader(r["Payload"], want, timeout)


def fragment_list(name, numbers):
    r = ARCH.get_media_for_fragment_list(StreamName=name, Fragments=numbers)
    m = MediaReader(r["Payload"], None, 60)
    m.wait()
    return r, m


def check_chunks(name, chunks, expect, listed=None):
    """Chunks against the expected fragments ({tc, frames, number}); listed: the
    ListFragments entries by number, for the timestamp tags."""
    eq(f"{name}: chunk count", len(chunks), len(expect))
    frames_ok = tags_ok = layout_ok = True
    detail = ""
    for c, e in zip(chunks, expect):
        got = c["cluster"]["frames"] if c["cluster"] else None
        if got != e["frames"]:
            frames_ok = False
            diff = [(g[:3], len(g[3]), w[:3], len(w[3]))
                    for g, w in zip(got or [], e["frames"]) if g != w][:1]
            detail = detail or (f"fragment tc {e['tc']}: {len(got or [])} frames, want "
                                f"{len(e['frames'])}; first difference {diff}")
        if c["cluster"] is None or c["cluster"]["tc"] != e["tc"]:
            frames_ok = False
        t = c["tags"]
        number = e.get("number")
        want = {"AWS_KINESISVIDEO_FRAGMENT_NUMBER": number,
                "AWS_KINESISVIDEO_CONTINUATION_TOKEN": number}
        if listed is not None and number in listed:
            want["AWS_KINESISVIDEO_SERVER_TIMESTAMP"] = seconds(dt_ms(listed[number]["ServerTimestamp"]))
            want["AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"] = seconds(dt_ms(listed[number]["ProducerTimestamp"]))
        if number is not None and any(t.get(k) != v for k, v in want.items()):
            tags_ok = False
            detail = detail or f"tags {t!r}, want {want!r}"
        if not re.match(r"^\d+$", t.get("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "")):
            tags_ok = False
            detail = detail or f"MILLIS_BEHIND_NOW {t!r}"
        if "tags_before" in e and c["producer_tags"] != e["tags_before"]:
            tags_ok = False
            detail = detail or f"producer tags {c['producer_tags']!r}, want {e['tags_before']!r}"
        g = c["groups"]
        if len(g) < 2 or [n for n, _ in g[0]] != AWS_HEAD_TAGS or [n for n, _ in g[-1]] != AWS_TAIL_TAGS:
            layout_ok = False
            detail = detail or f"tag groups {g!r}"
    check(f"{name}: frames identical to the input (track, timecode, key, bytes)", frames_ok,
          detail)
    check(f"{name}: AWS_KINESISVIDEO_* tags (number, timestamps, continuation token)", tags_ok,
          detail)
    check(f"{name}: chunk layout: header, Tags, Cluster, [producer Tags], Tags", layout_ok, detail)


def numbered(expect, numbers):
    return [dict(e, number=n) for e, n in zip(expect, numbers)]


def by_number(fragments):
    return {f["FragmentNumber"]: f for f in fragments}


# ---------------------------------------------------------------------------------------------
# Sections

CLIPS = {}
WORK = None
STATE = {}


def t_realtime():
    """A producer at real time, pausing 4.5 s after its second fragment: acks as they
    happen, IDLE during the pause, timestamps in ListFragments."""
    clip = CLIPS["v"]
    base = now_ms() // 1000 * 1000
    seq = [(0, base), (1, base + 1000), (2, base + 2000), (0, base + 3000)]
    parts, expect = clip.session(seq)
    create("rt")
    t_begin = time.time()
    put = put_session("rt", parts, speed=1.0, pauses={1: 4.5})
    tcs = [tc for _, tc in seq]
    numbers = check_acks("real time", put, tcs)
    idles = [t for t, a in put.acks if a.get("EventType") == "IDLE"]
    pause_from = put.sent_at.get(2, 0) - 4.5
    check("real time: IDLE during the 4.5 s pause, 3 to 4.5 s into it",
          len(idles) >= 1 and all(pause_from + 2.9 <= t <= pause_from + 4.6 for t in idles),
          f"IDLE at {[round(t - pause_from, 2) for t in idles]} s into the pause")
    p_times = {a["FragmentTimecode"]: t for t, a in put.acks if a.get("EventType") == "PERSISTED"}
    b_times = {a["FragmentTimecode"]: t for t, a in put.acks if a.get("EventType") == "BUFFERING"}
    check("real time: PERSISTED while the upload goes on (full duplex)",
          all(p_times.get(tc, 1e20) < put.finished_at for tc in tcs[:-1]),
          f"{[(round(p_times.get(tc, 0) - t_begin, 2)) for tc in tcs]} finish "
          f"{round(put.finished_at - t_begin, 2)}")
    check("real time: BUFFERING within 0.5 s of the cluster's first bytes",
          all(0 <= b_times.get(tc, 1e20) - put.sent_at[i] < 0.5 for i, tc in enumerate(tcs)),
          repr([round(b_times.get(tc, 0) - put.sent_at[i], 3) for i, tc in enumerate(tcs)]))
    frags = list_all("rt")
    eq("real time: ListFragments lists the PERSISTED numbers",
       [f["FragmentNumber"] for f in frags], numbers)
    eq("real time: ProducerTimestamp = cluster timecode (ABSOLUTE)",
       [dt_ms(f["ProducerTimestamp"]) for f in frags], tcs)
    st = [dt_ms(f["ServerTimestamp"]) for f in frags]
    check("real time: ServerTimestamp = when the fragment's first bytes arrived",
          len(st) == 4 and all(put.sent_at[i] * 1000 - 50 <= st[i] <= b_times[tcs[i]] * 1000 + 50
                               for i in range(4)),
          f"{st} vs sent {[round(put.sent_at[i] * 1000) for i in range(4)]}")
    check("real time: FragmentLengthInMilliseconds ~ 1000 (30 frames at 30 fps)",
          all(990 <= f["FragmentLengthInMilliseconds"] <= 1010 for f in frags),
          repr([f["FragmentLengthInMilliseconds"] for f in frags]))
    check("real time: FragmentSizeInBytes covers the cluster",
          all(f["FragmentSizeInBytes"] > sum(len(d) for _, _, _, d in e["frames"])
              for f, e in zip(frags, expect)), repr([f["FragmentSizeInBytes"] for f in frags]))
    STATE["rt"] = {"expect": numbered(expect, numbers), "frags": frags}


def t_flat_relative():
    """Flat out, RELATIVE timecodes from x-amzn-producer-start-timestamp, audio and video,
    addressed by ARN; and a stream without retention (no PERSISTED)."""
    clip = CLIPS["av"]
    arn = create("rel")
    seq = [(0, 0), (1, 1000), (2, 2000), (0, 3000), (1, 4000), (2, 5000)]
    # The clip's own timecodes; a second round shifted by 3 s.
    seq = [(ci, clip.clusters[ci]["tc"] + (3000 if i >= 3 else 0)) for i, (ci, _) in
           enumerate(seq)]
    parts, expect = clip.session(seq)
    start = 1700000000123
    put = put_session(None, parts, tc_type="RELATIVE", start=seconds(start), arn=arn, seed=7)
    tcs = [tc for _, tc in seq]
    numbers = check_acks("flat out, RELATIVE, by ARN", put, tcs)
    frags = list_all("rel")
    eq("RELATIVE: ProducerTimestamp = start + timecode",
       [dt_ms(f["ProducerTimestamp"]) for f in frags], [start + tc for tc in tcs])
    eq("RELATIVE: the numbers", [f["FragmentNumber"] for f in frags], numbers)
    for e in expect[:1]:
        e["tags_before"] = [("ENCODER", "x264")]
    STATE["rel"] = {"expect": numbered(expect, numbers), "frags": frags, "start": start}

    # The same without retention: RECEIVED and no PERSISTED.
    create("noret", retention=0)
    parts, _ = CLIPS["v"].session([(0, 0), (1, 1000)])
    put = put_session("noret", parts)
    check_acks("retention 0", put, [0, 1000], persisted=False)


def t_list_fragments():
    clip = CLIPS["v"]
    base = 1800000000000
    seq = [(i % 3, base + i * 1000) for i in range(9)]
    parts, expect = clip.session(seq)
    create("lf")
    before = now_ms()
    put = put_session("lf", parts, seed=3)
    after = now_ms()
    numbers = check_acks("flat out, 9 fragments", put, [tc for _, tc in seq])
    STATE["lf"] = {"expect": numbered(expect, numbers), "base": base}
    all_ = ARCH.list_fragments(StreamName="lf")
    frags = all_["Fragments"]
    eq("ListFragments: all 9, in order", [f["FragmentNumber"] for f in frags], numbers)
    check("ListFragments: no NextToken when everything fits", "NextToken" not in all_)
    STATE["lf"]["frags"] = frags
    pages, token, seen = [], None, []
    while True:
        kw = {"StreamName": "lf", "MaxResults": 4}
        if token:
            kw["NextToken"] = token
        r = ARCH.list_fragments(**kw)
        pages.append(len(r["Fragments"]))
        seen += [f["FragmentNumber"] for f in r["Fragments"]]
        token = r.get("NextToken")
        if not token or len(pages) > 10:
            break
    eq("ListFragments: MaxResults 4 pages 4 + 4 + 1", pages, [4, 4, 1])
    eq("ListFragments: NextToken paging sees each fragment once", seen, numbers)
    sel = {"FragmentSelectorType": "PRODUCER_TIMESTAMP",
           "TimestampRange": {"StartTimestamp": (base + 2000) / 1000,
                              "EndTimestamp": (base + 5000) / 1000}}
    r = ARCH.list_fragments(StreamName="lf", FragmentSelector=sel)
    eq("ListFragments: PRODUCER_TIMESTAMP range (both ends inclusive)",
       [dt_ms(f["ProducerTimestamp"]) for f in r["Fragments"]],
       [base + 2000, base + 3000, base + 4000, base + 5000])
    got = list_all("lf", sel, page=1)
    eq("ListFragments: the range paged by MaxResults 1", [f["FragmentNumber"] for f in got],
       numbers[2:6])
    # botocore sends whole seconds; raw requests carry milliseconds.
    sel = {"FragmentSelectorType": "SERVER_TIMESTAMP",
           "TimestampRange": {"StartTimestamp": before // 1000, "EndTimestamp": after // 1000 + 1}}
    eq("ListFragments: SERVER_TIMESTAMP range around the upload",
       [f["FragmentNumber"] for f in list_all("lf", sel)], numbers)
    st = sorted(dt_ms(f["ServerTimestamp"]) for f in frags)
    for lo, hi, want in ((st[0], st[-1], numbers), (st[-1] + 1, st[-1] + 1000, []),
                         (st[0] - 1000, st[0] - 1, [])):
        status, out = raw("/listFragments", {
            "StreamName": "lf", "FragmentSelector": {
                "FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": lo / 1000, "EndTimestamp": hi / 1000}}})
        eq(f"ListFragments (ms timestamps): SERVER_TIMESTAMP [{lo - st[0]}, {hi - st[0]}] ms",
           (status, [f["FragmentNumber"] for f in out.get("Fragments", [])]), (200, want))
    sel["TimestampRange"] = {"StartTimestamp": (after + 60000) / 1000,
                             "EndTimestamp": (after + 120000) / 1000}
    eq("ListFragments: SERVER_TIMESTAMP range in the future is empty",
       ARCH.list_fragments(StreamName="lf", FragmentSelector=sel)["Fragments"], [])
    try:
        ARCH.list_fragments(StreamName="no-such-stream")
        bad("ListFragments: unknown stream", "no error")
    except ClientError as e:
        eq("ListFragments: unknown stream -> ResourceNotFoundException",
           (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]),
           ("ResourceNotFoundException", 404))


def t_get_media():
    lf = STATE["lf"]
    expect, frags = lf["expect"], by_number(lf["frags"])
    numbers = [e["number"] for e in expect]

    r, m = get_media("lf", {"StartSelectorType": "EARLIEST"}, 9)
    check_chunks("GetMedia EARLIEST", m.wait(), expect, frags)
    check("GetMedia: ContentType", r.get("ContentType") in ("video/webm", "video/x-matroska"),
          r.get("ContentType"))
    STATE["lf_chunks"] = m.chunks

    _, m = get_media("lf", {"StartSelectorType": "FRAGMENT_NUMBER",
                            "AfterFragmentNumber": numbers[3]}, 5)
    check_chunks("GetMedia FRAGMENT_NUMBER (from the one after)", m.wait(), expect[4:], frags)

    token = STATE["lf_chunks"][5]["tags"].get("AWS_KINESISVIDEO_CONTINUATION_TOKEN") \
        if len(STATE["lf_chunks"]) > 5 else numbers[5]
    _, m = get_media("lf", {"StartSelectorType": "CONTINUATION_TOKEN",
                            "ContinuationToken": token}, 3)
    check_chunks("GetMedia CONTINUATION_TOKEN (a chunk's token: from the next)", m.wait(),
                 expect[6:], frags)

    _, m = get_media("lf", {"StartSelectorType": "PRODUCER_TIMESTAMP",
                            "StartTimestamp": (lf["base"] + 4500) / 1000}, 5)
    check_chunks("GetMedia PRODUCER_TIMESTAMP (from the chunk holding it)", m.wait(),
                 expect[4:], frags)
    _, m = get_media("lf", {"StartSelectorType": "PRODUCER_TIMESTAMP",
                            "StartTimestamp": (lf["base"] - 60000) / 1000}, 9)
    check_chunks("GetMedia PRODUCER_TIMESTAMP before everything: from the first", m.wait(),
                 expect, frags)

    rt = STATE["rt"]
    rt_frags = rt["frags"]
    # botocore sends timestamps in whole seconds: the first whole second inside fragment 3.
    st = dt_ms(rt_frags[2]["ServerTimestamp"])
    _, m = get_media("rt", {"StartSelectorType": "SERVER_TIMESTAMP",
                            "StartTimestamp": -(-st // 1000)}, 2)
    check_chunks("GetMedia SERVER_TIMESTAMP (real-time stream, inside fragment 3)", m.wait(),
                 rt["expect"][2:], by_number(rt_frags))

    # Live: NOW and EARLIEST readers, then a producer sends two more fragments.
    base = lf["base"] + 9000
    parts, more = CLIPS["v"].session([(0, base), (1, base + 1000)])
    now_r, now_m = get_media("lf", {"StartSelectorType": "NOW"}, 2, timeout=30, read_timeout=20)
    _, early_m = get_media("lf", {"StartSelectorType": "EARLIEST"}, 11, timeout=30,
                           read_timeout=20)
    time.sleep(0.3)
    check("GetMedia NOW: nothing before new data", len(now_m.chunks) == 0,
          f"{len(now_m.chunks)} chunks")
    put = put_session("lf", parts, speed=2.0)
    new_numbers = check_acks("live producer", put, [base, base + 1000])
    more = numbered(more, new_numbers)
    frags = by_number(list_all("lf"))
    check_chunks("GetMedia NOW: the fragments put after the call", now_m.wait(), more, frags)
    p_times = [t for t, a in put.acks if a.get("EventType") == "PERSISTED"]
    lag = [round((c - p) * 1000) for c, p in zip(now_m.times, p_times)]
    check("GetMedia NOW: each new chunk within 400 ms of its PERSISTED ack",
          len(lag) == 2 and all(x < 400 for x in lag), f"{lag} ms")
    check_chunks("GetMedia EARLIEST tails live: 9 stored + 2 new", early_m.wait(),
                 expect + more, frags)
    lf["expect"] = expect + more

    # GetMediaForFragmentList: in the order asked, and one that does not exist.
    pick = [numbers[7], numbers[2], numbers[5]]
    r, m = fragment_list("lf", pick)
    check_chunks("GetMediaForFragmentList: the listed fragments in the asked order", m.chunks,
                 [expect[7], expect[2], expect[5]], frags)
    check("GetMediaForFragmentList: the answer ends", m.eof and m.error is None, m.error)
    missing = numbers[0][:-6] + "999999"
    r, m = fragment_list("lf", [numbers[1], missing])
    chunks = m.chunks
    check("GetMediaForFragmentList: a missing fragment -> an error chunk 4000",
          len(chunks) == 2 and chunks[1]["cluster"] is None and
          chunks[1]["tags"].get("AWS_KINESISVIDEO_ERROR_ID") == "4000" and
          chunks[1]["tags"].get("AWS_KINESISVIDEO_FRAGMENT_NUMBER") == missing,
          repr([c["tags"] for c in chunks]))
    try:
        ARCH.get_media_for_fragment_list(StreamName="lf", Fragments=[STATE["rt"]["expect"][0]["number"]])
        bad("GetMediaForFragmentList: another stream's fragment", "no error")
    except ClientError as e:
        eq("GetMediaForFragmentList: another stream's fragment -> InvalidArgumentException",
           e.response["Error"]["Code"], "InvalidArgumentException")
    try:
        media_client().get_media(StreamName="no-such", StartSelector={"StartSelectorType": "NOW"})
        bad("GetMedia: unknown stream", "no error")
    except ClientError as e:
        eq("GetMedia: unknown stream -> ResourceNotFoundException",
           (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]),
           ("ResourceNotFoundException", 404))


def t_audio_video():
    rel = STATE["rel"]
    frags = by_number(list_all("rel"))
    _, m = get_media("rel", {"StartSelectorType": "EARLIEST"}, len(rel["expect"]))
    chunks = m.wait()
    check_chunks("GetMedia audio + video (RELATIVE)", chunks, rel["expect"], frags)
    check("GetMedia: PRODUCER_TIMESTAMP tag = start + timecode (RELATIVE)",
          [c["tags"].get("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP") for c in chunks] ==
          [seconds(rel["start"] + e["tc"]) for e in rel["expect"]])
    # ffprobe reads what GetMedia sent: the chunks one after the other, and each chunk alone,
    # with the packets of the original clip (three fragments of it here).
    out = os.path.join(WORK, "av-getmedia.mkv")
    with open(out, "wb") as f:
        for c in chunks[:3]:
            f.write(c["raw"])
    src, _ = ffprobe_packets(CLIPS["av"].path)
    got, err = ffprobe_packets(out)
    eq("ffprobe: the concatenated chunks hold the clip's packets (stream, pts, size, key)",
       got, src)
    # (ffmpeg notes each further Segment of unknown size; KVS's own output is the same.)
    each, errs = [], ""
    for i, c in enumerate(chunks[:3]):
        path = os.path.join(WORK, f"av-chunk{i}.mkv")
        with open(path, "wb") as f:
            f.write(c["raw"])
        pk, err = ffprobe_packets(path)
        each += pk
        errs += err
    eq("ffprobe: each chunk alone is a file with its packets", each, src)
    check("ffprobe: no complaints about any chunk alone", errs.strip() == "", errs[:300])


def t_http2():
    clip = CLIPS["v"]
    create("h2")
    seq = [(0, 1000), (1, 2000), (2, 3000)]
    parts, expect = clip.session(seq)
    cmd = ["curl", "-sS", "-N", "--http2-prior-knowledge", "-X", "POST", "-T", "-",
           "-H", "Expect:", "-H", "x-amzn-stream-name: h2",
           "-H", "x-amzn-fragment-timecode-type: ABSOLUTE",
           "-H", "x-amzn-fragment-acknowledgment-required: 1",
           "-w", "\nCURL %{http_version} %{http_code}\n", f"{SRV.url()}/putMedia"]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    lines = []

    def reader():
        for line in p.stdout:
            lines.append((time.time(), line.decode().strip()))
    t = threading.Thread(target=reader, daemon=True)
    t.start()

    class Pipe:
        sent_at = {}

        def send(self, data):
            p.stdin.write(data)
            p.stdin.flush()
    push(Pipe(), parts, speed=3.0)
    closed = time.time()
    p.stdin.close()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
    t.join(5)
    put = curl_acks(lines, times=True)
    eq("HTTP/2 PutMedia: curl spoke HTTP/2", put.curl, ["2", "200"])
    numbers = check_acks("HTTP/2 PutMedia", put, [tc for _, tc in seq])
    p_first = next((t_ for t_, x in lines if '"PERSISTED"' in x), 1e20)
    check("HTTP/2 PutMedia: the first PERSISTED before the body ended (full duplex)",
          p_first < closed, f"{p_first - closed:.2f} s after")
    frags = list_all("h2")
    eq("HTTP/2 PutMedia: listed", [f["FragmentNumber"] for f in frags], numbers)
    r, m = fragment_list("h2", numbers)
    check_chunks("HTTP/2 PutMedia: read back", m.chunks, numbered(expect, numbers),
                 by_number(frags))


def error_session(name, body, want_id, want_tc=None, before=(), srv=None, finish=False):
    """Sends body without ending it; the answer must end after an ERROR ack."""
    put = PutMedia(name=name, port=(srv or SRV).port)
    put.send(body)
    if finish:
        put.finish()
    ended = put.wait_end(10)
    ev = [(a.get("EventType"), a.get("FragmentTimecode")) for a in put.events()]
    errs = put.events("ERROR")
    label = f"{want_id}"
    check(f"ERROR {label}: HTTP 200 then the ack", put.status == 200, f"status {put.status}")
    check(f"ERROR {label}: exactly one ERROR ack with ErrorId {want_id}",
          len(errs) == 1 and errs[0].get("ErrorId") == want_id and
          isinstance(errs[0].get("ErrorCode"), str), repr(errs))
    if want_tc is not None and errs:
        eq(f"ERROR {label}: FragmentTimecode", errs[0].get("FragmentTimecode"), want_tc)
    non_p = [e for e in ev if e[0] != "PERSISTED"]
    eq(f"ERROR {label}: the acks before it", non_p[:-1], [e for e in before if e[0] != "PERSISTED"])
    check(f"ERROR {label}: the answer ends (without the body's end)", ended and
          (not non_p or non_p[-1][0] == "ERROR"), f"ended {ended}, acks {ev}")
    put.close()
    return put


def t_errors():
    create("errs", retention=1)
    clip = CLIPS["v"]
    parts, expect = clip.session([(0, 5000), (1, 6000), (2, 7000)])
    good = put_session("errs", parts)
    numbers = check_acks("errors: a good session first", good, [5000, 6000, 7000])
    hdr = crafted_header()

    error_session("errs", b"this is not matroska at all\r\n" * 20, 4006, -1)
    two = hdr + crafted_cluster(1000, gop()) + crafted_cluster(2000, gop()) + \
        hdr  # a second EBML header + Segment
    put = error_session("errs", two, 4006, None,
                        [("BUFFERING", 1000), ("RECEIVED", 1000), ("BUFFERING", 2000),
                         ("RECEIVED", 2000)])
    eq("ERROR 4006 (two Segments): the clusters before it are PERSISTED",
       [a["FragmentTimecode"] for a in put.events("PERSISTED")], [1000, 2000])
    kept = put.persisted()
    error_session("errs", hdr + crafted_cluster(1000, gop()[:5] + [(2, 200, False, b"x" * 50)]),
                  4010, 1000, [("BUFFERING", 1000)])
    av = crafted_header(("video", "audio"))
    error_session("errs", av + crafted_cluster(1000, gop()) + crafted_cluster(2000, gop()), 4011,
                  1000, [("BUFFERING", 1000)])
    error_session("errs", crafted_header(("video", "audio", "audio", "audio")) +
                  crafted_cluster(1000, gop()), 4012, -1)
    put = error_session("errs", hdr + crafted_cluster(5000, gop()) + crafted_cluster(4000, gop()),
                        4004, 4000, [("BUFFERING", 5000), ("RECEIVED", 5000),
                                     ("BUFFERING", 4000)])
    kept += put.persisted()
    long_gop = gop(12, 1000)  # frames 0 .. 11 s
    error_session("errs", hdr + crafted_cluster(1000, long_gop), 4002, 1000,
                  [("BUFFERING", 1000)])
    tags = crafted_tags([(f"k{i}", f"v{i}") for i in range(11)])
    error_session("errs", hdr + tags + crafted_cluster(1000, gop()), 4009)
    error_session("errs", hdr + crafted_cluster(1000, gop())[:-40], 4006, 1000,
                  [("BUFFERING", 1000)], finish=True)

    # Refused before any ack.
    put = PutMedia(name="no-such-stream")
    put.send(hdr)
    put.finish()
    put.wait_end(10)
    body = {}
    try:
        body = json.loads(put.body or b"{}")
    except ValueError:
        pass
    check("PutMedia unknown stream: 404 ResourceNotFoundException",
          put.status == 404 and put.headers.get("x-amzn-errortype", "").startswith(
              "ResourceNotFoundException") and isinstance(body.get("Message"), str),
          f"{put.status} {put.headers} {put.body!r}"[:400])
    put.close()
    put = PutMedia(name="errs", tc_type="SOMETIMES")
    put.finish()
    put.wait_end(10)
    check("PutMedia bad timecode type: 400 InvalidArgumentException",
          put.status == 400 and put.headers.get("x-amzn-errortype", "").startswith(
              "InvalidArgumentException"), f"{put.status} {put.headers}")
    put.close()

    # Earlier fragments are intact.
    frags = list_all("errs")
    eq("after the errors: the fragments of good sessions are listed",
       [f["FragmentNumber"] for f in frags], numbers + kept)
    r, m = fragment_list("errs", numbers)
    check_chunks("after the errors: the good session reads back", m.chunks,
                 numbered(expect, numbers), by_number(frags))


def t_not_active():
    srv = Server(os.path.join(WORK, "slow"))
    srv.start(stream_transition_ms=600000)
    try:
        create("creating", srv=srv)
        put = error_session("creating", crafted_header() + crafted_cluster(0, gop()), 4008, -1,
                            srv=srv)
        del put
    finally:
        eq("second server (4008): SIGTERM exit 0", srv.stop(), 0)


def read_all_fragments(name, numbers):
    chunks = []
    for i in range(0, len(numbers), 1000):
        _, m = fragment_list(name, numbers[i:i + 1000])
        chunks += m.chunks
    return chunks


def t_crash():
    global SRV
    clip = CLIPS["v"]
    create("crash", retention=1)
    base = 1900000000000
    put = PutMedia(name="crash")
    sent = []
    stop = threading.Event()

    def sender():
        put.send(clip.header)
        rnd = random.Random(5)
        i = 0
        while not stop.is_set() and not put.send_failed:
            tc = base + i * 1000
            data = b"".join(d for _, d in clip.cluster_parts(i % 3, tc))
            while data and not put.send_failed:
                n = rnd.randint(1, 1 << 16)
                put.send(data[:n])
                data = data[n:]
            if not put.send_failed:
                sent.append((i % 3, tc))
            i += 1
    t = threading.Thread(target=sender, daemon=True)
    t.start()
    got = put.wait(lambda p: len(p.persisted()) >= 15, 60)
    check("crash: 15 fragments PERSISTED during a flat-out ingest", got)
    SRV.proc.kill()
    SRV.proc.wait()
    SRV.log.close()
    SRV.proc = None
    stop.set()
    t.join(10)
    put.close()
    persisted = put.persisted()
    ptc = [a["FragmentTimecode"] for a in put.events("PERSISTED")]
    SRV.start()
    connect_clients()
    frags = list_all("crash")
    listed = [f["FragmentNumber"] for f in frags]
    check("crash: every PERSISTED fragment listed after the restart",
          set(persisted) <= set(listed), f"{len(persisted)} persisted, {len(listed)} listed")
    k = len(frags)
    check("crash: what is listed is the first fragments sent, whole (none partial)",
          [dt_ms(f["ProducerTimestamp"]) for f in frags] == [base + i * 1000 for i in range(k)]
          and k <= len(sent) and ptc == [base + i * 1000 for i in range(len(ptc))],
          f"{k} listed, {len(sent)} sent whole")
    expect = [{"tc": base + i * 1000, "frames": clip.frames(i % 3, base + i * 1000),
               "number": n} for i, n in enumerate(listed)]
    chunks = read_all_fragments("crash", listed)
    check_chunks(f"crash: all {k} listed fragments read back", chunks, expect, by_number(frags))
    parts, ex = clip.session([(0, base + k * 1000 + 5000), (1, base + k * 1000 + 6000)])
    put = put_session("crash", parts)
    n2 = check_acks("crash: ingest after the restart", put,
                    [base + k * 1000 + 5000, base + k * 1000 + 6000])
    check("crash: new fragment numbers above the old",
          n2 and listed and int(n2[0]) > int(listed[-1]))
    frags = list_all("crash")
    eq("crash: listed after the new ingest", [f["FragmentNumber"] for f in frags], listed + n2)
    STATE["crash"] = {"expect": expect + numbered(ex, n2), "frags": by_number(frags)}


def t_concurrency():
    clip = CLIPS["v"]
    create("conc")
    a_seq = [(i % 3, 1810000000000 + i * 1000) for i in range(6)]
    b_seq = [(i % 3, 1820000000000 + i * 1000) for i in range(6)]
    results = {}

    def run(key, seq, speed, seed):
        parts, expect = clip.session(seq)
        results[key] = (put_session("conc", parts, speed=speed, seed=seed), expect)
    for label, speed in (("paced", 3.0), ("flat out", None)):
        if speed is None:
            a_seq = [(ci, tc + 100000) for ci, tc in a_seq]
            b_seq = [(ci, tc + 100000) for ci, tc in b_seq]
        live = None
        if speed is None:
            _, live = get_media("conc", {"StartSelectorType": "NOW"}, 12, timeout=30,
                                read_timeout=20)
        ts = [threading.Thread(target=run, args=("a", a_seq, speed, 11)),
              threading.Thread(target=run, args=("b", b_seq, speed, 12))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        na = check_acks(f"two producers {label}: A", results["a"][0], [tc for _, tc in a_seq])
        nb = check_acks(f"two producers {label}: B", results["b"][0], [tc for _, tc in b_seq])
        check(f"two producers {label}: distinct numbers", not set(na) & set(nb))
        frags = [f for f in list_all("conc") if f["FragmentNumber"] in set(na) | set(nb)]
        owners = ["a" if f["FragmentNumber"] in na else "b" for f in frags]
        eq(f"two producers {label}: all listed", sorted(f["FragmentNumber"] for f in frags),
           sorted(na + nb))
        if speed is not None:
            switches = sum(1 for x, y in zip(owners, owners[1:]) if x != y)
            check(f"two producers {label}: their fragments interleave", switches >= 4,
                  "".join(owners))
        chunks = read_all_fragments("conc", na + nb)
        both = numbered(results["a"][1], na) + numbered(results["b"][1], nb)
        check_chunks(f"two producers {label}: read back", chunks, both, by_number(frags))
        if live is not None:
            check_chunks(f"two producers {label}: a live reader sees every fragment once, "
                         "in number order", live.wait(),
                         sorted(both, key=lambda e: int(e["number"])), by_number(frags))

    # A producer drops the connection inside a fragment, reconnects and re-sends from an
    # earlier keyframe: the overlap is accepted as new fragments.
    create("recon")
    base = 1830000000000
    seq = [(i % 3, base + i * 1000) for i in range(6)]
    parts, expect = clip.session(seq)
    cut = next(i for i, p in enumerate(parts) if p == ("cluster", 5)) + 3
    put = PutMedia(name="recon")
    push(put, parts[:cut])
    put.wait(lambda p: len(p.persisted()) >= 5, 20)
    put.close()
    first = put.persisted()
    eq("reconnect: the first connection's whole fragments PERSISTED",
       [a["FragmentTimecode"] for a in put.events("PERSISTED")], [tc for _, tc in seq[:5]])
    check("reconnect: the cut fragment was BUFFERING, never RECEIVED",
          [a["FragmentTimecode"] for a in put.events("BUFFERING")][-1:] == [seq[5][1]] and
          seq[5][1] not in [a["FragmentTimecode"] for a in put.events("RECEIVED")])
    parts2, expect2 = clip.session(seq[3:])
    put2 = put_session("recon", parts2)
    second = check_acks("reconnect: re-sent fragments accepted", put2, [tc for _, tc in seq[3:]])
    frags = list_all("recon")
    eq("reconnect: both connections' fragments listed, overlap included",
       [dt_ms(f["ProducerTimestamp"]) for f in frags], [tc for _, tc in seq[:5] + seq[3:]])
    check_chunks("reconnect: read back", read_all_fragments("recon", first + second),
                 numbered(expect[:5], first) + numbered(expect2, second), by_number(frags))


def t_idle_long():
    """A producer quiet for 7 s: IDLE about every 3 s, then the upload goes on."""
    clip = CLIPS["v"]
    create("quiet")
    parts, _ = clip.session([(0, 1000), (1, 2000), (2, 3000)])
    put = PutMedia(name="quiet")
    push(put, parts, speed=4.0, pauses={0: 7.0})
    put.finish()
    put.wait_end(15)
    idles = [a for _, a in put.acks if a.get("EventType") == "IDLE"]
    check("7 s pause: two IDLE acks", len(idles) == 2, f"{len(idles)} IDLE")
    check("7 s pause: the upload goes on, every fragment PERSISTED",
          [a["FragmentTimecode"] for a in put.events("PERSISTED")] == [1000, 2000, 3000] and
          put.ended, f"PERSISTED {put.persisted()}, ended {put.ended}")
    put.close()


def t_metadata():
    """Producer metadata: Tags before a cluster go with it (AWS_* names dropped), and the
    END_OF_FRAGMENT tag acks a fragment before the next cluster starts. Sessions with other
    tracks on the same stream: each chunk carries its own session's header."""
    create("meta")
    hdr = crafted_header()
    put = PutMedia(name="meta")
    tags1 = [("camera", "front door"), ("event", "motion")]
    eof = crafted_tags([("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")])
    blocks = gop()
    put.send(hdr + crafted_tags(tags1 + [("AWS_KINESISVIDEO_FRAGMENT_NUMBER", "forged")]) +
             crafted_cluster(1000, blocks, known=False) + eof)
    got = put.wait(lambda p: len(p.persisted()) == 1, 5)
    check("END_OF_FRAGMENT: RECEIVED and PERSISTED before the next cluster", got,
          repr(put.events()))
    put.send(crafted_tags([("n", str(i)) for i in range(10)]) +
             crafted_cluster(2000, blocks, known=False) + eof)
    put.send(crafted_cluster(3000, blocks, known=False))
    put.finish()
    put.wait_end(10)
    numbers = check_acks("metadata session", put, [1000, 2000, 3000])
    _, m = fragment_list("meta", numbers)
    frames = lambda tc: [(t, tc + r, k, d) for t, r, k, d in blocks]  # noqa: E731
    expect = [{"tc": 1000, "frames": frames(1000), "tags_before": tags1},
              {"tc": 2000, "frames": frames(2000),
               "tags_before": [("n", str(i)) for i in range(10)]},
              {"tc": 3000, "frames": frames(3000), "tags_before": []}]
    frags = by_number(list_all("meta"))
    check_chunks("metadata: producer Tags in the chunk after the cluster, AWS_* dropped",
                 m.chunks, numbered(expect, numbers), frags)

    # Three sessions with different tracks on one stream, read in one GetMedia.
    create("mix")
    v, av = CLIPS["v"], CLIPS["av"]
    want = []
    for clip, base in ((v, 0), (av, 10000), (v, 20000)):
        parts, ex = clip.session([(0, base), (1, base + 1000)])
        put = put_session("mix", parts)
        want += numbered(ex, check_acks(f"mixed tracks: session at {base}", put,
                                        [base, base + 1000]))
    _, m = get_media("mix", {"StartSelectorType": "EARLIEST"}, 6)
    chunks = m.wait()
    check_chunks("mixed tracks: one GetMedia across sessions", chunks, want,
                 by_number(list_all("mix")))
    ntracks = [header_tracks(c["header"]) for c in chunks]
    eq("mixed tracks: each chunk's header has its session's tracks", ntracks, [1, 1, 2, 2, 1, 1])


def t_odd_uploads():
    """A body in 16-byte pieces; PutMedia's header errors."""
    clip = CLIPS["v"]
    create("odd")
    parts, expect = clip.session([(0, 1000), (1, 2000)])
    put = PutMedia(name="odd")
    push(put, parts, piece=16, seed=4)
    put.finish()
    put.wait_end(30)
    numbers = check_acks("a body in pieces of 1..16 bytes", put, [1000, 2000])
    _, m = fragment_list("odd", numbers)
    check_chunks("pieces of 1..16 bytes: read back", m.chunks, numbered(expect, numbers),
                 by_number(list_all("odd")))
    arn = KVS.describe_stream(StreamName="odd")["StreamInfo"]["StreamARN"]
    for label, kw, status, etype in (
            ("both name and ARN", {"name": "odd", "arn": arn}, 400, "InvalidArgumentException"),
            ("neither name nor ARN", {}, 400, "InvalidArgumentException"),
            ("a stale ARN", {"arn": arn[:-3] + "000"}, 404, "ResourceNotFoundException"),
            ("a bad start timestamp", {"name": "odd", "start": "yesterday"}, 400,
             "InvalidArgumentException")):
        put = PutMedia(**kw)
        put.finish()
        put.wait_end(10)
        check(f"PutMedia with {label}: {status} {etype}", put.status == status and
              put.headers.get("x-amzn-errortype", "").startswith(etype),
              f"{put.status} {put.headers.get('x-amzn-errortype')} {put.body!r}"[:300])
        put.close()
    for label, body in (
            ("MaxResults 0", {"StreamName": "odd", "MaxResults": 0}),
            ("MaxResults 1001", {"StreamName": "odd", "MaxResults": 1001}),
            ("a bad NextToken", {"StreamName": "odd", "NextToken": "bm9wZQ=="}),
            ("a range without its end", {"StreamName": "odd", "FragmentSelector": {
                "FragmentSelectorType": "SERVER_TIMESTAMP",
                "TimestampRange": {"StartTimestamp": 1}}})):
        status, out = raw("/listFragments", body)
        check(f"ListFragments with {label}: 400", status == 400, f"{status} {out}"[:300])
    for label, sel in (("a malformed AfterFragmentNumber",
                        {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "12"}),
                       ("no AfterFragmentNumber", {"StartSelectorType": "FRAGMENT_NUMBER"}),
                       ("no StartTimestamp", {"StartSelectorType": "SERVER_TIMESTAMP"}),
                       ("an unknown type", {"StartSelectorType": "LATEST"})):
        status, out = raw("/getMedia", {"StreamName": "odd", "StartSelector": sel})
        check(f"GetMedia with {label}: 400", status == 400, f"{status} {out}"[:300])


def t_long_upload():
    """A chunked HTTP/1.1 upload past 100 MiB (a producer's connection after ten minutes or
    so), and the same over HTTP/2."""
    clip = CLIPS["v"]
    create("long")
    n = 560  # about 110 MiB
    seq = [(i % 3, 3000000000000 + i * 1000) for i in range(n)]
    parts, _ = clip.session(seq)
    body = b"".join(p[1] for p in parts if p[0] != "cluster")
    put = PutMedia(name="long")
    for i in range(0, len(body), 1 << 20):
        put.send(body[i:i + (1 << 20)])
    put.finish()
    put.wait_end(120)
    errs = put.events("ERROR")
    check(f"HTTP/1.1 chunked upload of {len(body) >> 20} MiB: every fragment PERSISTED",
          len(put.persisted()) == n and not errs and put.ended,
          f"{len(put.persisted())} PERSISTED, ERROR {errs}, ended {put.ended}")
    put.close()
    cmd = ["curl", "-sS", "-N", "--http2-prior-knowledge", "-X", "POST", "-T", "-",
           "-H", "Expect:", "-H", "x-amzn-stream-name: long",
           "-w", "\nCURL %{http_version} %{http_code}\n", f"{SRV.url()}/putMedia"]
    r = subprocess.run(cmd, input=body, capture_output=True, timeout=120)
    log = curl_acks(r.stdout)
    check(f"HTTP/2 upload of {len(body) >> 20} MiB: every fragment PERSISTED",
          log.curl == ["2", "200"] and len(log.persisted()) == n and not log.events("ERROR"),
          f"{log.curl} {len(log.persisted())} PERSISTED {log.events('ERROR')}")


def putmedia_count(srv):
    """PutMedia transactions the server has finished (its request counter)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    m = re.search(r'^tributary_requests_total\{operation="PutMedia"\} (\d+)', text, re.M)
    return int(m.group(1)) if m else 0


def closed_cleanly(put, timeout=10):
    """After the answer's end: the server's FIN (recv gives b"") rather than a reset."""
    put.sock.settimeout(timeout)
    try:
        while True:
            data = put.sock.recv(65536)
            if not data:
                return "FIN"
    except socket.timeout:
        return "still open"
    except OSError as e:
        return f"{type(e).__name__}"


def t_idle_close():
    """The idle rule, on a server whose limits are shortened (IDLE after 1 s, the end after
    3 s): IDLE acks, then the answer ends, then the connection closes cleanly, and the
    transaction is over while the producer still holds its connection."""
    clip = CLIPS["v"]
    srv = Server(os.path.join(WORK, "idle"))
    srv.start(putmedia_idle_ack_ms=1000, putmedia_idle_close_ms=3000)
    try:
        create("quiet2", srv=srv)
        before = putmedia_count(srv)
        parts, _ = clip.session([(0, 1000), (1, 2000)])
        put = PutMedia(name="quiet2", port=srv.port)
        push(put, parts)
        last_data = time.time()
        got = put.wait(lambda p: len(p.persisted()) == 1, 10)
        check("idle close: the first fragment PERSISTED before the pause", got,
              repr(put.events()))
        ended = put.wait_end(15)
        took = time.time() - last_data
        idles = [t for t, a in put.acks if a.get("EventType") == "IDLE"]
        check("idle close: the answer ends about 3 s after the last data",
              ended and 2.5 <= took <= 6.5, f"ended {ended} after {took:.1f} s")
        check("idle close: IDLE acks about every second before the end",
              1 <= len(idles) <= 3 and all(t > last_data + 0.5 for t in idles),
              f"{len(idles)} IDLE at {[round(t - last_data, 1) for t in idles]}")
        eq("idle close: the transaction is over while the producer holds on",
           putmedia_count(srv) - before, 1)
        eq("idle close: then the server closes the connection (FIN, no reset)",
           closed_cleanly(put), "FIN")
        put.close()
        # A producer that is quiet from the start (headers only) is closed the same way.
        put = PutMedia(name="quiet2", port=srv.port)
        ended = put.wait_end(15)
        check("idle close with no body at all: IDLE acks, then the end",
              ended and put.status == 200 and
              [a.get("EventType") for _, a in put.acks][:1] == ["IDLE"],
              f"ended {ended} status {put.status} acks {put.acks}")
        eq("idle close with no body at all: FIN", closed_cleanly(put), "FIN")
        put.close()
        eq("idle server: SIGTERM exits 0", srv.stop(signal.SIGTERM), 0)
    finally:
        if srv.alive():
            srv.proc.kill()
            srv.proc.wait()


def t_early_end():
    """An answer that ends while the body still comes (an ERROR ack): the acks arrive whole,
    the transaction ends at once, and the connection closes with a FIN, not a reset, although
    the producer goes on sending for a while."""
    clip = CLIPS["v"]
    create("early")
    before = putmedia_count(SRV)
    parts, _ = clip.session([(0, 1000), (1, 2000)])
    put = PutMedia(name="early")
    push(put, parts)
    check("early end: a fragment PERSISTED first", put.wait(lambda p: len(p.persisted()) == 1, 10),
          repr(put.events()))
    put.send(crafted_header())  # a second EBML header and Segment: ERROR 4006
    stop = threading.Event()

    def keep_sending():
        junk = b"\xec\x80" * 16384
        while not stop.is_set() and put.send(junk):
            time.sleep(0.01)
    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    ended = put.wait_end(10)
    errs = put.events("ERROR")
    check("early end: ERROR ack, then the answer ends while the body flows",
          ended and len(errs) == 1, f"ended {ended} ERROR {errs}")
    time.sleep(0.5)
    eq("early end: the transaction is over before the producer stops",
       putmedia_count(SRV) - before, 1)
    stop.set()
    sender.join(5)
    eq("early end: the server closes with a FIN (the acks were not lost to a reset)",
       closed_cleanly(put), "FIN")
    put.close()


def raw_exchange(data, port=None, wait=5):
    """Sends bytes on a fresh connection; the answer up to the server's close."""
    s = socket.create_connection(("127.0.0.1", port or SRV.port), timeout=wait)
    out = b""
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except OSError as e:
        out += f"<{type(e).__name__}>".encode()
    s.close()
    return out


def t_h1_heads():
    """Request heads our HTTP/1.1 reader refuses, and 100-continue."""
    create("heads")
    base = "POST /putMedia HTTP/1.1\r\nHost: x\r\nx-amzn-stream-name: heads\r\n"
    for label, head, status in (
            ("a header without a colon", base + "Bad Header\r\n\r\n", 400),
            ("a space before the colon", base + "Bad : x\r\n\r\n", 400),
            ("no Host", "POST /putMedia HTTP/1.1\r\nA: b\r\n\r\n", 400),
            ("HTTP/2.0 in the request line", "POST /putMedia HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            ("a 20 KB header", base + "X-Pad: " + "a" * 20000 + "\r\n\r\n", 431),
            ("101 headers", base + "".join(f"X-{i}: {i}\r\n" for i in range(99)) + "\r\n", 431),
            ("Transfer-Encoding: gzip", base + "Transfer-Encoding: gzip\r\n\r\n", 501),
            ("chunked and a Content-Length", base + "Transfer-Encoding: chunked\r\n"
             "Content-Length: 5\r\n\r\n", 400),
            ("a bad Content-Length", base + "Content-Length: 5x\r\n\r\n", 400)):
        out = raw_exchange(head.encode())
        line = out.split(b"\r\n", 1)[0].decode(errors="replace")
        check(f"PutMedia head with {label}: {status}, then the close",
              line.startswith(f"HTTP/1.1 {status} ") and b"Connection: close" in out and
              out.endswith(b"}"), repr(out[:200]))
    # 100-continue: the interim answer, then the acks' answer, then the body.
    s = socket.create_connection(("127.0.0.1", SRV.port), timeout=5)
    s.sendall((base + "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").encode())
    first = b""
    while b"\r\n\r\n" not in first:
        first += s.recv(1)
    eq("Expect: 100-continue: 100 Continue first", first, b"HTTP/1.1 100 Continue\r\n\r\n")
    s.sendall(b"0\r\n\r\n")
    rest = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    except OSError:
        pass
    s.close()
    check("Expect: 100-continue: then 200 and an answer that ends", rest.startswith(
        b"HTTP/1.1 200 ") and rest.endswith(b"0\r\n\r\n"), repr(rest[-200:]))
    # Only the first request line decides: a GET first stays with lws, as does a later PutMedia.
    out = raw_exchange(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check("GET /health on the plain port: still served (lws)", out.startswith(b"HTTP/1.1 200"),
          repr(out[:100]))


def t_curl_http1():
    """Other ways producers send: a whole file with Content-Length (curl --data-binary) and
    curl's own chunked upload from a pipe."""
    clip = CLIPS["v"]
    create("curl1")
    parts, expect = clip.session([(0, 1000), (1, 2000), (2, 3000)])
    body = b"".join(p[1] for p in parts if p[0] != "cluster")
    path = os.path.join(WORK, "curl1.mkv")
    with open(path, "wb") as f:
        f.write(body)
    numbers = []
    for label, args in (("Content-Length", ["--data-binary", f"@{path}"]),
                        ("curl chunked from a pipe", ["-T", "-", "-X", "POST"])):
        cmd = ["curl", "-sS", "-N", "--http1.1", "-H", "Expect:", "-H", "x-amzn-stream-name: curl1",
               "-H", "x-amzn-fragment-timecode-type: RELATIVE",
               "-H", "x-amzn-producer-start-timestamp: 1700000000", *args,
               "-w", "\nCURL %{http_version} %{http_code}\n", f"{SRV.url()}/putMedia"]
        r = subprocess.run(cmd, input=body if "-T" in args else None, capture_output=True,
                           timeout=60)
        put = curl_acks(r.stdout)
        eq(f"PutMedia with {label}: curl spoke HTTP/1.1", (put.curl or [""])[0], "1.1")
        numbers += check_acks(f"PutMedia with {label}", put, [1000, 2000, 3000])
    frags = list_all("curl1")
    eq("curl uploads: listed, ProducerTimestamp = start + timecode",
       [dt_ms(f["ProducerTimestamp"]) for f in frags], [1700000001000, 1700000002000,
                                                         1700000003000] * 2)
    _, m = fragment_list("curl1", numbers)
    check_chunks("curl uploads: read back", m.chunks, numbered(expect + expect, numbers),
                 by_number(frags))


def t_http2_flat():
    """A 30-fragment body flat out over HTTP/2 (flow control both ways), and
    GetMediaForFragmentList over HTTP/2."""
    clip = CLIPS["v"]
    create("h2flat")
    seq = [(i % 3, 2000000000000 + i * 1000) for i in range(30)]
    parts, expect = clip.session(seq)
    path = os.path.join(WORK, "h2flat.mkv")
    with open(path, "wb") as f:
        f.write(b"".join(p[1] for p in parts if p[0] != "cluster"))
    cmd = ["curl", "-sS", "-N", "--http2-prior-knowledge", "-H", "Expect:",
           "-H", "x-amzn-stream-name: h2flat", "-H", "x-amzn-fragment-timecode-type: ABSOLUTE",
           "--data-binary", f"@{path}", "-w", "\nCURL %{http_version} %{http_code}\n",
           f"{SRV.url()}/putMedia"]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    put = curl_acks(r.stdout)
    eq("HTTP/2 flat out: curl spoke HTTP/2", (put.curl or [""])[0], "2")
    numbers = check_acks("HTTP/2 flat out, 30 fragments (6 MB)", put, [tc for _, tc in seq])
    out = os.path.join(WORK, "h2flat-out.mkv")
    cmd = ["curl", "-sS", "--http2-prior-knowledge", "-H", "Content-Type: application/json",
           "--data-binary", json.dumps({"StreamName": "h2flat", "Fragments": numbers}),
           "-o", out, "-w", "%{http_version} %{http_code}",
           f"{SRV.url()}/getMediaForFragmentList"]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    eq("HTTP/2 GetMediaForFragmentList: status", r.stdout.decode(), "2 200")
    try:
        with open(out, "rb") as f:
            chunks = split_chunks(f.read())
    except (OSError, ValueError, Incomplete) as e:
        chunks = []
        bad("HTTP/2 GetMediaForFragmentList: chunks", repr(e))
    check_chunks("HTTP/2 GetMediaForFragmentList", chunks, numbered(expect, numbers),
                 by_number(list_all("h2flat")))


def t_readers():
    """A slow GetMedia reader gets every chunk of 30 MB intact; readers that hang up early
    leave the server well."""
    crash = STATE.get("crash")
    if not crash:
        return bad("readers: no crash stream")
    expect, frags = crash["expect"], crash["frags"]
    r = media_client(30).get_media(StreamName="crash",
                                   StartSelector={"StartSelectorType": "EARLIEST"})
    fp = r["Payload"]._raw_stream._fp
    buf, pos, chunks = bytearray(), 0, []
    t = time.time()
    while len(chunks) < len(expect) and time.time() - t < 60:
        data = fp.read1(1 << 14)
        if not data:
            break
        buf += data
        while True:
            try:
                c, pos = parse_chunk(buf, pos)
            except Incomplete:
                break
            chunks.append(c)
            if len(chunks) in (3, 40):
                time.sleep(1.5)  # the server's queue fills; it must wait, not drop
    r["Payload"].close()
    check_chunks("slow GetMedia reader", chunks, expect, frags)
    for i in range(6):
        r = media_client(5).get_media(StreamName="crash",
                                      StartSelector={"StartSelectorType": "EARLIEST"})
        r["Payload"]._raw_stream._fp.read1(1000 * i + 1)
        r["Payload"].close()
    _, m = get_media("crash", {"StartSelectorType": "FRAGMENT_NUMBER",
                               "AfterFragmentNumber": expect[-2]["number"]}, 1)
    check_chunks("after readers hung up: GetMedia still serves", m.wait(), expect[-1:], frags)


def t_big_fragment():
    """A cluster past 50 MB is 4001; the session's earlier fragment stays."""
    create("big", retention=1)
    hdr = crafted_header()
    put = PutMedia(name="big")
    put.send(hdr + crafted_cluster(0, gop()))
    blk = simple_block(1, 0, True, b"\0" * (1 << 20))
    head = ID_CLUSTER.to_bytes(4, "big") + UNKNOWN_SIZE + el_uint(ID_TIMECODE, 1000)
    put.send(head)
    for i in range(52):
        if not put.send(blk) or put.events("ERROR"):
            break
    ended = put.wait_end(20)
    errs = put.events("ERROR")
    check("ERROR 4001: a 52 MB cluster", len(errs) == 1 and errs[0].get("ErrorId") == 4001 and
          errs[0].get("FragmentTimecode") == 1000, repr(errs))
    check("ERROR 4001: the answer ends", ended)
    eq("ERROR 4001: the fragment before it PERSISTED",
       [a["FragmentTimecode"] for a in put.events("PERSISTED")], [0])
    put.close()
    eq("ERROR 4001: only the good fragment is listed", len(list_all("big")), 1)


def t_hangups():
    """Producers that hang up with fragments still on their way to the disk, or inside a
    fragment; a stream deleted under a producer and a live reader."""
    clip = CLIPS["v"]
    create("hang")
    seq = [(i % 3, 2100000000000 + i * 1000) for i in range(12)]
    parts, _ = clip.session(seq)
    for n in range(3):
        put = PutMedia(name="hang")
        push(put, parts, seed=20 + n)
        put.close()  # no body end, no waiting for acks
    time.sleep(0.5)
    frags = list_all("hang")
    check("hang-ups: whole fragments stored, none partial",
          all(dt_ms(f["ProducerTimestamp"]) in [tc for _, tc in seq] for f in frags),
          repr(len(frags)))
    chunks = read_all_fragments("hang", [f["FragmentNumber"] for f in frags])
    check("hang-ups: every stored fragment reads back whole",
          len(chunks) == len(frags) and all(c["cluster"] is not None for c in chunks))

    arn = create("doomed")
    base = 2200000000000
    put = PutMedia(name="doomed")
    p1, _ = clip.session([(0, base), (1, base + 1000)])
    push(put, p1)
    got = put.wait(lambda p: len(p.persisted()) >= 1, 10)
    _, live = get_media("doomed", {"StartSelectorType": "NOW"}, 5, timeout=15, read_timeout=10)
    KVS.delete_stream(StreamARN=arn)
    p2, _ = clip.session([(2, base + 2000), (0, base + 3000), (1, base + 4000)], header=False)
    push(put, p2)
    put.finish()
    ended = put.wait_end(10)
    after = [a.get("FragmentTimecode") for a in put.events("PERSISTED")]
    errs = put.events("ERROR")
    check("stream deleted under a producer: no PERSISTED for fragments sent after the delete",
          got and base + 3000 not in after and base + 4000 not in after,
          f"PERSISTED {after}, ERROR {errs}")
    check("stream deleted under a producer: ERROR 4008 (STREAM_NOT_ACTIVE), the answer ends",
          ended and len(errs) == 1 and errs[0].get("ErrorId") == 4008,
          f"ERROR {errs}, ended {ended}")
    put.close()
    chunks = live.wait()
    check("stream deleted under a live GetMedia: its answer ends", live.eof,
          f"{len(chunks)} chunks, error {live.error}")


def t_shutdown():
    """SIGTERM with a producer inside a fragment and a live reader: exit 0, both answers end."""
    clip = CLIPS["v"]
    create("last")
    put = PutMedia(name="last")
    parts, _ = clip.session([(0, 1000), (1, 2000)])
    push(put, parts[:-5])
    put.wait(lambda p: len(p.persisted()) >= 1, 10)
    _, live = get_media("last", {"StartSelectorType": "EARLIEST"}, 5, timeout=30,
                        read_timeout=25)
    time.sleep(0.3)
    t = time.time()
    rcs = []
    stopper = threading.Thread(target=lambda: rcs.append(SRV.stop(signal.SIGTERM)))
    stopper.start()
    ended = put.wait_end(10)
    put.close()  # as a producer does when its answer ends
    stopper.join(60)
    eq("SIGTERM during a PutMedia and a live GetMedia: exit 0", rcs, [0])
    check("SIGTERM: the producer's answer ends", ended)
    check("SIGTERM: the server is gone within 3 s", time.time() - t < 3,
          f"{time.time() - t:.1f} s")
    live.wait(5)
    check("SIGTERM: the live reader's answer ends cleanly", live.eof and live.error is None,
          f"eof {live.eof} error {live.error}")
    eq("SIGTERM: the live reader got the stored fragment", len(live.chunks), 1)
    SRV.start()
    connect_clients()


SECTIONS = [t_realtime, t_flat_relative, t_list_fragments, t_get_media, t_audio_video, t_http2,
            t_http2_flat, t_curl_http1, t_metadata, t_odd_uploads, t_idle_long, t_errors, t_big_fragment, t_not_active,
            t_concurrency, t_crash, t_readers, t_hangups, t_long_upload, t_idle_close, t_early_end,
            t_h1_heads, t_shutdown]


def main():
    global SRV, WORK
    WORK = tempfile.mkdtemp(prefix="tr-kvs-media-")
    SRV = Server(os.path.join(WORK, "main"))
    try:
        t = time.time()
        try:
            CLIPS.update(make_clips(WORK))
            v, av = CLIPS["v"], CLIPS["av"]
            eq("clips: three GOPs each", (len(v.clusters), len(av.clusters)), (3, 3))
            eq("clips: 90 video frames, and 90 + 130 with audio",
               (sum(len(c["frames"]) for c in v.clusters),
                sum(len(c["frames"]) for c in av.clusters)), (90, 220))
        except Exception as e:  # noqa: BLE001
            bad("GStreamer clips", f"{type(e).__name__}: {e}")
            print(f"test_kvs_media: {PASSED} passed, {FAILED} failed")
            return 1
        print(f"# clips: {time.time() - t:.1f} s", flush=True)
        SRV.start()
        create("rt-endpoint")
        STREAMS[0] = "rt-endpoint"
        connect_clients()
        for section in SECTIONS:
            t = time.time()
            try:
                if not SRV.alive():
                    bad(f"{section.__name__}: server not running")
                    SRV.start()
                    connect_clients()
                section()
            except Exception as e:  # noqa: BLE001
                bad(f"{section.__name__} raised {type(e).__name__}: {e}")
                traceback.print_exc()
            print(f"# {section.__name__}: {time.time() - t:.1f} s", flush=True)
        if SRV.alive():
            eq("final SIGTERM: exit 0", SRV.stop(signal.SIGTERM), 0)
        else:
            bad("server alive at the end", f"exit {SRV.proc.returncode}")
        for root, _, files in os.walk(WORK):
            for name in sorted(files):
                if not (name.startswith("server") and name.endswith(".log")):
                    continue
                with open(os.path.join(root, name), errors="replace") as f:
                    text = f.read()
                for marker in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                               "level=error"):
                    if marker in text:
                        bad(f"{os.path.basename(root)}/{name}: {marker}")
                        print(text[-6000:])
    finally:
        if SRV.proc is not None and SRV.proc.poll() is None:
            SRV.proc.kill()
            SRV.proc.wait()
        if FAILED and os.environ.get("TR_KEEP"):
            print(f"# kept {WORK}")
        else:
            shutil.rmtree(WORK, ignore_errors=True)
    print(f"test_kvs_media: {PASSED} passed, {FAILED} failed ({time.time() - T0:.1f} s)")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
