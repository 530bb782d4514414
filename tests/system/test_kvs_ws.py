#!/usr/bin/python3
"""System test of PutMedia over a websocket against the real server on a free loopback port,
with Debian's python3-websocket (websocket-client) as the producer and boto3's 'kinesisvideo'
and 'kinesis-video-archived-media' clients (python3-boto3) to create streams and list what
was stored. The media is a GStreamer clip (3 one-second x264 GOPs, matroskamux
streamable=true).

Covers: the clip in binary messages of many sizes, some of them fragmented into continuation
frames, one message of the whole clip, and one byte at a time for the header; the acks as text
messages (BUFFERING, RECEIVED and PERSISTED per fragment, in order, FragmentTimecode as sent,
increasing FragmentNumbers that ListFragments shows, RELATIVE producer timestamps), arriving
while the upload goes on; the empty binary message that ends the body and the server's close
(1000) after the last PERSISTED; StreamARN, ABSOLUTE, and the x-amzn-* headers instead of query
parameters; garbage -> ERROR 4006 then close; text messages -> close 1003; refusals at upgrade
time (unknown stream 404 ResourceNotFoundException, bad parameters 400, unknown path 404, a
subprotocol 400) and a plain GET on /putMedia (426); an abrupt disconnect mid-fragment and a
client close frame mid-fragment (no partial fragment stored, the complete ones are), a client
close frame after the last cluster (stored); ping/pong and IDLE acks; concurrent producers; an
upload past 100 MiB (about 600 one-second fragments); wss:// on a TLS listener; a stop
(SIGTERM) with a session open: close 1000 and exit 0. When Debian's chromium is installed, a
page in headless Chromium does the browser's part: fetch the clip, send it over a WebSocket
with query parameters, read the acks, see a refused upgrade as a failed connection, and stream
a canvas live through MediaRecorder (H.264 in Matroska). The server's log must hold no
sanitizer report and no error line.
"""
import http.client
import http.server
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings

os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "secret")
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import boto3  # noqa: E402
import websocket  # noqa: E402
from botocore.config import Config  # noqa: E402

warnings.filterwarnings("ignore", message="Unverified HTTPS request")  # wss with our own cert

BIN = os.path.join(os.environ["TR_BUILD_DIR"], "tributary")
T0 = time.time()
START_S = 1700000000.0

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


# ---------------------------------------------------------------------------------------------
# The server

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, workdir, scheme="http"):
        self.workdir = workdir
        self.scheme = scheme
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
                if self.scheme == "https":
                    c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=2,
                                                    context=ssl._create_unverified_context())
                else:
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

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        return rc

    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"


SRV = None
KVS = None
ARCH = None
CLIP = b""
CLUSTERS = []     # offsets of the clip's clusters (unknown-sized, as matroskamux streams them)


def client(service):
    return boto3.client(
        service, endpoint_url=SRV.url(), region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      connect_timeout=10, read_timeout=30))


def create(name, retention=1):
    KVS.create_stream(StreamName=name, DataRetentionInHours=retention)
    return KVS.describe_stream(StreamName=name)["StreamInfo"]["StreamARN"]


def fragments(name):
    out, token = [], None
    while True:
        kw = {"StreamName": name, "MaxResults": 1000}
        if token:
            kw["NextToken"] = token
        r = ARCH.list_fragments(**kw)
        out += r["Fragments"]
        token = r.get("NextToken")
        if not token:
            return sorted(out, key=lambda f: int(f["FragmentNumber"]))


# ---------------------------------------------------------------------------------------------
# The clip

def read_vint(b, p, keep_marker=False):
    first = b[p]
    n = 1
    while n <= 8 and not first & (0x80 >> (n - 1)):
        n += 1
    v = first if keep_marker else first & ((0x80 >> (n - 1)) - 1)
    for i in range(1, n):
        v = (v << 8) | b[p + i]
    return v, n


TOP = (0x1F43B675, 0x1C53BB6B, 0x1254C367, 0x1549A966, 0x1654AE6B, 0x18538067)


def cluster_offsets(b):
    """Top-level walk of a streamed Matroska file: the offsets of its clusters."""
    out, p = [], 0
    while p < len(b):
        eid, n = read_vint(b, p, keep_marker=True)
        size, m = read_vint(b, p + n)
        unknown = size == (1 << (7 * m)) - 1
        if eid == 0x18538067:           # Segment: descend
            p += n + m
            continue
        if eid == 0x1F43B675:
            out.append(p)
        if not unknown:
            p += n + m + size
            continue
        q = p + n + m                  # an unknown-sized cluster ends at the next top level
        while q < len(b):
            cid, cn = read_vint(b, q, keep_marker=True)
            if cid in TOP:
                break
            cs, cm = read_vint(b, q + cn)
            q += cn + cm + cs
        p = q
    return out


def make_clip(work):
    path = os.path.join(work, "clip.mkv")
    cmd = ["gst-launch-1.0", "-q", "videotestsrc", "num-buffers=90", "!",
           "video/x-raw,width=320,height=240,framerate=30/1", "!",
           "x264enc", "key-int-max=30", "bframes=0", "!", "h264parse", "!",
           "matroskamux", "streamable=true", "!", "filesink", f"location={path}"]
    subprocess.run(cmd, check=True, timeout=120)
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# A websocket producer

def ws_url(**params):
    q = "&".join(f"{k}={v}" for k, v in params.items())
    return f"ws://127.0.0.1:{SRV.port}/putMedia" + (f"?{q}" if q else "")


class Producer:
    """A websocket PutMedia: sends from the caller's thread, reads every frame the server
    sends on a thread of its own (text acks, pongs, the close)."""

    def __init__(self, url=None, header=None, **params):
        self.ws = websocket.create_connection(url or ws_url(**params), timeout=30,
                                              header=header or [])
        self.frames = []        # (seconds since open, opcode, payload)
        self.close_code = None
        self.ended = threading.Event()
        self.t0 = time.time()
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        try:
            while True:
                op, data = self.ws.recv_data(control_frame=True)
                with self.cv:
                    self.frames.append((time.time() - self.t0, op, data))
                    if op == websocket.ABNF.OPCODE_CLOSE:
                        self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 \
                            else 1005
                    self.cv.notify_all()
                if op == websocket.ABNF.OPCODE_CLOSE:
                    break
        except Exception:  # the connection ended (or was cut by the test)
            pass
        finally:
            self.ended.set()
            with self.cv:
                self.cv.notify_all()

    def send(self, data):
        self.ws.send_binary(data)

    def send_fragmented(self, data, pieces):
        """One binary message as several frames (a first frame, continuations, FIN last)."""
        cuts = sorted(random.sample(range(1, len(data)), pieces - 1)) if pieces > 1 else []
        parts = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        for i, part in enumerate(parts):
            op = websocket.ABNF.OPCODE_BINARY if i == 0 else websocket.ABNF.OPCODE_CONT
            self.ws.send_frame(websocket.ABNF.create_frame(part, op, fin=int(i == len(parts) - 1)))

    def end_body(self):
        self.ws.send_binary(b"")

    def acks(self, kind=None):
        with self.cv:
            out = [json.loads(d) for _, op, d in self.frames if op == websocket.ABNF.OPCODE_TEXT]
        return [a for a in out if kind is None or a["EventType"] == kind]

    def ops(self):
        with self.cv:
            return [op for _, op, _ in self.frames]

    def wait(self, pred, timeout=20):
        deadline = time.time() + timeout
        with self.cv:
            while not pred():
                left = deadline - time.time()
                if left <= 0 or (self.ended.is_set() and not pred()):
                    return pred()
                self.cv.wait(min(left, 0.2))
            return True

    def wait_end(self, timeout=20):
        return self.ended.wait(timeout)

    def cut(self):
        """Drops the TCP connection without a close frame."""
        sock = self.ws.sock
        sock.shutdown(socket.SHUT_RDWR)   # the reader thread sees the end and lets go
        self.wait_end(5)
        sock.close()


def refused(url, header=None):
    """Opens a websocket that the server must refuse: (status, headers, body)."""
    try:
        ws = websocket.create_connection(url, timeout=10, header=header or [])
    except websocket.WebSocketBadStatusException as e:
        body = getattr(e, "resp_body", None)
        return e.status_code, {k.lower(): v for k, v in (e.resp_headers or {}).items()}, body
    ws.close()
    return 101, {}, None


def raw_upgrade(path, extra=""):
    """A hand-written upgrade request; returns the status line and the rest of the answer."""
    s = socket.create_connection(("127.0.0.1", SRV.port), timeout=10)
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data and b"101" in data.split(b"\r\n", 1)[0]:
            break
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(errors="replace"), body


def check_session(name, p, stream, tcs, relative=True, persisted=True):
    """The acks of one whole session, in order, and the fragments ListFragments shows."""
    acks = p.acks()
    kinds = [(a["EventType"], a.get("FragmentTimecode")) for a in acks if a["EventType"] != "IDLE"]
    want = []
    for tc in tcs:
        want += [("BUFFERING", tc), ("RECEIVED", tc)]
    got_br = [k for k in kinds if k[0] in ("BUFFERING", "RECEIVED")]
    eq(f"{name}: BUFFERING, RECEIVED per fragment in order", got_br, want)
    pers = [a for a in acks if a["EventType"] == "PERSISTED"]
    if not persisted:
        eq(f"{name}: no PERSISTED", pers, [])
        return []
    eq(f"{name}: PERSISTED per fragment in order", [a["FragmentTimecode"] for a in pers], tcs)
    numbers = [a["FragmentNumber"] for a in pers]
    check(f"{name}: fragment numbers increase",
          all(n.isdigit() for n in numbers) and
          [int(n) for n in numbers] == sorted(int(n) for n in numbers) and
          len(set(numbers)) == len(numbers), f"{numbers}")
    for tc in tcs:   # each fragment's RECEIVED comes before its PERSISTED
        order = [i for i, a in enumerate(acks) if a.get("FragmentTimecode") == tc and
                 a["EventType"] in ("BUFFERING", "RECEIVED", "PERSISTED")]
        kinds_tc = [acks[i]["EventType"] for i in order]
        if kinds_tc != ["BUFFERING", "RECEIVED", "PERSISTED"]:
            bad(f"{name}: acks of fragment {tc}", f"{kinds_tc}")
            break
    else:
        ok(f"{name}: BUFFERING < RECEIVED < PERSISTED for every fragment")
    check(f"{name}: no ERROR", not p.acks("ERROR"), f"{p.acks('ERROR')}")
    frs = fragments(stream)
    eq(f"{name}: ListFragments shows the fragments", [f["FragmentNumber"] for f in frs], numbers)
    if relative:
        got = [round(f["ProducerTimestamp"].timestamp() * 1000) for f in frs]
        eq(f"{name}: RELATIVE producer timestamps", got,
           [int(START_S * 1000) + tc for tc in tcs])
    return numbers


# ---------------------------------------------------------------------------------------------
# Sections

TCS = [0, 1000, 2000]


def t_clip_in_pieces():
    """The clip in messages of many sizes (some fragmented), then the empty message."""
    create("ws-pieces")
    p = Producer(StreamName="ws-pieces", FragmentTimecodeType="RELATIVE",
                 ProducerStartTimestamp=f"{START_S:.3f}")
    rnd = random.Random(4)
    pos = 0
    header_end = CLUSTERS[0]
    while pos < header_end:            # the header a byte or a few at a time
        n = rnd.choice([1, 1, 2, 7])
        p.send(CLIP[pos:min(pos + n, header_end)])
        pos = min(pos + n, header_end)
    first_ack_during_upload = None
    while pos < len(CLIP):
        n = rnd.choice([1, 13, 512, 4096, 16383, 16384, 65536, 70000, 150000])
        piece = CLIP[pos:pos + n]
        if len(piece) > 10 and rnd.random() < 0.3:
            p.send_fragmented(piece, rnd.randint(2, 6))
        else:
            p.send(piece)
        pos += len(piece)
        if first_ack_during_upload is None and p.acks("RECEIVED"):
            first_ack_during_upload = pos
        time.sleep(0.002)
    if first_ack_during_upload is None:   # the clip went faster than the acks: look again
        p.wait(lambda: len(p.acks("RECEIVED")) > 0, 5)
        first_ack_during_upload = len(CLIP) if p.acks("RECEIVED") else None
    check("pieces: acks arrive before the end of the body (full duplex)",
          first_ack_during_upload is not None)
    p.wait(lambda: len(p.acks("RECEIVED")) >= 2, 10)
    time.sleep(0.2)
    eq("pieces: before the end of the body, the last cluster is not yet RECEIVED",
       [a["FragmentTimecode"] for a in p.acks("RECEIVED")], [0, 1000])
    p.end_body()
    check("pieces: the server closes after the acks", p.wait_end(20))
    eq("pieces: close status 1000", p.close_code, 1000)
    check("pieces: the close comes after the last PERSISTED",
          p.ops()[-1] == websocket.ABNF.OPCODE_CLOSE and len(p.acks("PERSISTED")) == 3)
    check("pieces: every ack is one text message of JSON without a newline",
          all(op != websocket.ABNF.OPCODE_TEXT or (not d.endswith(b"\n") and json.loads(d))
              for _, op, d in p.frames))
    check_session("pieces", p, "ws-pieces", TCS)


def t_whole_clip_one_message():
    """One 570 KB message (lws hands it over in pieces), ABSOLUTE timecodes, StreamARN."""
    arn = create("ws-whole")
    p = Producer(StreamARN=arn)
    p.send(CLIP)
    p.end_body()
    check("whole: the server closes", p.wait_end(20))
    eq("whole: close status 1000", p.close_code, 1000)
    check_session("whole", p, "ws-whole", TCS, relative=False)


def t_headers_instead_of_params():
    """The x-amzn-* headers of the HTTP PutMedia work too (for clients that can set them)."""
    create("ws-headers")
    p = Producer(url=ws_url(), header=[
        "x-amzn-stream-name: ws-headers", "x-amzn-fragment-timecode-type: RELATIVE",
        f"x-amzn-producer-start-timestamp: {START_S:.3f}"])
    for i in range(0, len(CLIP), 32768):
        p.send(CLIP[i:i + 32768])
    p.end_body()
    check("headers: the server closes", p.wait_end(20))
    check_session("headers", p, "ws-headers", TCS)


def t_no_persisted_without_retention():
    create("ws-noret", retention=0)
    p = Producer(StreamName="ws-noret")
    p.send(CLIP)
    p.end_body()
    check("no retention: the server closes", p.wait_end(20))
    eq("no retention: close 1000", p.close_code, 1000)
    check_session("no retention", p, "ws-noret", TCS, relative=False, persisted=False)


def t_garbage():
    create("ws-garbage")
    p = Producer(StreamName="ws-garbage")
    p.send(b"this is not matroska at all" * 40)
    check("garbage: the server closes", p.wait_end(10))
    errs = p.acks("ERROR")
    check("garbage: one ERROR 4006 INVALID_MKV_DATA", len(errs) == 1 and
          errs[0].get("ErrorId") == 4006 and errs[0].get("ErrorCode") == "INVALID_MKV_DATA",
          f"{p.acks()}")
    eq("garbage: close status 1000", p.close_code, 1000)
    eq("garbage: ERROR then close", p.ops(),
       [websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_CLOSE])
    eq("garbage: nothing stored", fragments("ws-garbage"), [])

    # An error after good fragments: the good ones stay, PERSISTED, before the close.
    create("ws-late-garbage")
    p = Producer(StreamName="ws-late-garbage")
    p.send(CLIP[:CLUSTERS[2]])
    p.send(b"\x1a\x45\xdf\xa3\x80" + b"\xff" * 64)  # a second EBML header inside the segment
    check("late garbage: the server closes", p.wait_end(10))
    errs = p.acks("ERROR")
    check("late garbage: ERROR 4006", len(errs) == 1 and errs[0].get("ErrorId") == 4006,
          f"{p.acks()}")
    eq("late garbage: the complete fragments are PERSISTED",
       [a["FragmentTimecode"] for a in p.acks("PERSISTED")], [0, 1000])
    eq("late garbage: and listed", len(fragments("ws-late-garbage")), 2)


def t_text_refused():
    create("ws-text")
    p = Producer(StreamName="ws-text")
    p.ws.send("hello")
    check("text message: the server closes", p.wait_end(10))
    eq("text message: close status 1003", p.close_code, 1003)


def t_refusals():
    st, h, body = refused(ws_url(StreamName="no-such-stream"))
    eq("unknown stream: HTTP 404 at the upgrade", st, 404)
    eq("unknown stream: x-amzn-ErrorType", h.get("x-amzn-errortype"),
       "ResourceNotFoundException")
    head, body = raw_upgrade("/putMedia?StreamName=no-such-stream")
    check("unknown stream: {\"Message\": ...} body",
          " 404 " in head.split("\r\n")[0] and "Message" in json.loads(body or b"{}"),
          f"{head!r} {body!r}")
    st, h, _ = refused(ws_url())
    eq("no StreamName: 400", st, 400)
    eq("no StreamName: InvalidArgumentException", h.get("x-amzn-errortype"),
       "InvalidArgumentException")
    create("ws-refusals")
    st, h, _ = refused(ws_url(StreamName="ws-refusals", FragmentTimecodeType="SOMETIMES"))
    eq("bad FragmentTimecodeType: 400", st, 400)
    st, h, _ = refused(ws_url(StreamName="ws-refusals", ProducerStartTimestamp="yesterday"))
    eq("bad ProducerStartTimestamp: 400", st, 400)
    st, h, _ = refused(f"ws://127.0.0.1:{SRV.port}/no/such/socket")
    eq("unknown websocket path: 404", st, 404)
    head, _ = raw_upgrade("/putMedia?StreamName=ws-refusals", "Sec-WebSocket-Protocol: mkv\r\n")
    check("a subprotocol: 400", " 400 " in head.split("\r\n")[0], head[:100])
    head, _ = raw_upgrade("/putMedia?StreamName=ws-refusals")
    check("the same upgrade without it: 101", " 101 " in head.split("\r\n")[0], head[:100])
    c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=10)
    c.request("GET", "/putMedia?StreamName=ws-refusals")
    r = c.getresponse()
    r.read()
    eq("plain GET /putMedia: 426 Upgrade Required", r.status, 426)
    eq("plain GET /putMedia: Upgrade: websocket", r.getheader("upgrade"), "websocket")
    c.close()
    c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=10)
    c.request("GET", "/health")
    eq("the server still answers", c.getresponse().status, 200)
    c.close()


def settle(name, stream, want, seconds=1.5):
    """Waits until ListFragments shows `want` fragments, then checks it stays so."""
    deadline = time.time() + 10
    while time.time() < deadline and len(fragments(stream)) < want:
        time.sleep(0.1)
    time.sleep(seconds)
    eq(name, len(fragments(stream)), want)


def t_disconnects():
    # Cut mid-fragment: fragments 0 and 1000 are whole (the next cluster began), 2000 is not.
    create("ws-cut")
    p = Producer(StreamName="ws-cut")
    mid = CLUSTERS[2] + (len(CLIP) - CLUSTERS[2]) // 2
    p.send(CLIP[:mid])
    p.wait(lambda: len(p.acks("PERSISTED")) == 2, 10)
    eq("abrupt disconnect: the complete fragments PERSISTED first",
       [a["FragmentTimecode"] for a in p.acks("PERSISTED")], [0, 1000])
    p.cut()
    settle("abrupt disconnect mid-fragment: only the 2 whole fragments are stored", "ws-cut", 2)

    # The same cut before anything was acknowledged: nothing stored.
    create("ws-cut-early")
    p = Producer(StreamName="ws-cut-early")
    p.send(CLIP[:CLUSTERS[0] + 5000])
    time.sleep(0.3)
    p.cut()
    settle("abrupt disconnect in the first fragment: nothing stored", "ws-cut-early", 0, 1.0)

    # A close frame mid-fragment is the end of the body: the cluster cut short is dropped.
    create("ws-close-mid")
    p = Producer(StreamName="ws-close-mid")
    p.send(CLIP[:mid])
    p.wait(lambda: len(p.acks("RECEIVED")) == 2, 10)
    p.ws.close(status=1000, timeout=5)
    p.wait_end(5)
    settle("close frame mid-fragment: only the 2 whole fragments are stored",
           "ws-close-mid", 2)

    # A close frame after the last cluster: the end of the body, the last cluster is stored.
    create("ws-close-end")
    p = Producer(StreamName="ws-close-end")
    p.send(CLIP)
    p.wait(lambda: len(p.acks("RECEIVED")) == 2, 10)
    p.ws.close(status=1000, timeout=5)
    p.wait_end(5)
    settle("close frame after the last cluster: all 3 fragments are stored", "ws-close-end", 3)


def t_ping_idle():
    create("ws-ping")
    p = Producer(StreamName="ws-ping")
    p.ws.ping(b"are you there")
    p.wait(lambda: websocket.ABNF.OPCODE_PONG in p.ops(), 5)
    pongs = [d for _, op, d in p.frames if op == websocket.ABNF.OPCODE_PONG]
    eq("ping: a pong with the same payload", pongs, [b"are you there"])
    p.send(CLIP[:CLUSTERS[1]])
    p.ws.ping(b"again")
    p.wait(lambda: len([1 for _, op, _ in p.frames if op == websocket.ABNF.OPCODE_PONG]) == 2, 5)
    eq("ping during a session: answered", len(
        [1 for _, op, _ in p.frames if op == websocket.ABNF.OPCODE_PONG]), 2)
    check("IDLE ack after 3 s without data", p.wait(lambda: len(p.acks("IDLE")) >= 1, 6),
          f"{p.acks()}")
    p.send(CLIP[CLUSTERS[1]:])
    p.end_body()
    check("ping: the session still ends normally", p.wait_end(20) and p.close_code == 1000)
    eq("ping: 3 fragments", len(p.acks("PERSISTED")), 3)


def t_concurrent():
    names = [f"ws-conc-{i}" for i in range(4)]
    for n in names:
        create(n)
    results = {}

    def run(n, seed):
        try:
            p = Producer(StreamName=n, FragmentTimecodeType="RELATIVE",
                         ProducerStartTimestamp=f"{START_S:.3f}")
            rnd = random.Random(seed)
            pos = 0
            while pos < len(CLIP):
                k = rnd.randint(1, 50000)
                p.send(CLIP[pos:pos + k])
                pos += k
            p.end_body()
            p.wait_end(30)
            results[n] = p
        except Exception as e:  # counted below
            results[n] = e

    threads = [threading.Thread(target=run, args=(n, i)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for n in names:
        p = results.get(n)
        if not isinstance(p, Producer):
            bad(f"concurrent {n}", f"{p!r}")
            continue
        eq(f"concurrent {n}: close 1000", p.close_code, 1000)
        check_session(f"concurrent {n}", p, n, TCS)


def t_stop_with_session_open():
    """SIGTERM with a session open: the session ends (close 1000) and the server exits 0."""
    create("ws-stop")
    p = Producer(StreamName="ws-stop")
    p.send(CLIP)
    p.wait(lambda: len(p.acks("PERSISTED")) == 2, 10)
    t = time.time()
    rc = SRV.stop(signal.SIGTERM)
    eq("stop: exit 0", rc, 0)
    check("stop: within 5 s", time.time() - t < 5, f"{time.time() - t:.1f} s")
    p.wait_end(5)
    eq("stop: the websocket was closed with 1000", p.close_code, 1000)
    # The body did not end: the last cluster (unknown-sized) may be incomplete and is not
    # stored; what was whole is acknowledged before the close.
    eq("stop: the whole fragments were acknowledged before the close",
       [a["FragmentTimecode"] for a in p.acks("PERSISTED")], [0, 1000])


def retimed_cluster(i):
    """The clip's cluster i % 3 as the i-th second of a long stream: its Timecode rewritten
    (as an 8-byte element; the blocks are untouched)."""
    ends = CLUSTERS[1:] + [len(CLIP)]
    c = CLIP[CLUSTERS[i % 3]:ends[i % 3]]
    p = 4
    _, m = read_vint(c, p)               # the cluster's (unknown) size
    p += m
    assert c[p] == 0xE7, "the Timecode is the cluster's first child"
    size, n = read_vint(c, p + 1)
    rest = c[p + 1 + n + size:]
    return (c[:4] + b"\x01\xff\xff\xff\xff\xff\xff\xff" + b"\xe7\x88" +
            (i * 1000).to_bytes(8, "big") + rest)


def t_past_100_mib():
    """A websocket upload is not bound by what ends a long HTTP/1.1 body (100 MiB in lws)."""
    create("ws-long")
    p = Producer(StreamName="ws-long")
    p.send(CLIP[:CLUSTERS[0]])
    sent, i = CLUSTERS[0], 0
    while sent < 110 * 1024 * 1024:
        c = retimed_cluster(i)
        p.send(c)
        sent += len(c)
        i += 1
    p.end_body()
    check("110 MiB: the server closes", p.wait_end(120))
    eq("110 MiB: close 1000", p.close_code, 1000)
    check("110 MiB: no ERROR", not p.acks("ERROR"), f"{p.acks('ERROR')[:2]}")
    eq("110 MiB: every fragment PERSISTED", len(p.acks("PERSISTED")), i)
    eq("110 MiB: and listed", len(fragments("ws-long")), i)


def t_tls():
    """wss:// on a server with a certificate: the same session over TLS."""
    global SRV, KVS, ARCH
    work = os.path.join(SRV.workdir, "tls")
    os.makedirs(work)
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True, timeout=60)
    plain = (SRV, KVS, ARCH)
    tls_srv = Server(work, scheme="https")
    try:
        tls_srv.start(tls_cert=cert, tls_key=key)
        SRV = tls_srv
        KVS = boto3.client("kinesisvideo", endpoint_url=tls_srv.url(), verify=False,
                           region_name="us-east-1")
        ARCH = boto3.client("kinesis-video-archived-media", endpoint_url=tls_srv.url(),
                            verify=False, region_name="us-east-1")
        create("ws-tls")
        ws = websocket.create_connection(
            f"wss://127.0.0.1:{tls_srv.port}/putMedia?StreamName=ws-tls", timeout=30,
            sslopt={"cert_reqs": ssl.CERT_NONE})
        for i in range(0, len(CLIP), 40000):
            ws.send_binary(CLIP[i:i + 40000])
        ws.send_binary(b"")
        acks, code = [], None
        while True:
            op, data = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big")
                break
            if op == websocket.ABNF.OPCODE_TEXT:
                acks.append(json.loads(data))
        eq("wss: PERSISTED per fragment", [a["FragmentTimecode"] for a in acks
                                           if a["EventType"] == "PERSISTED"], TCS)
        eq("wss: close 1000", code, 1000)
        eq("wss: ListFragments shows 3", len(fragments("ws-tls")), 3)
        try:
            websocket.create_connection(f"wss://127.0.0.1:{tls_srv.port}/putMedia?StreamName=x",
                                        timeout=10, sslopt={"cert_reqs": ssl.CERT_NONE})
            bad("wss: unknown stream refused")
        except websocket.WebSocketBadStatusException as e:
            eq("wss: unknown stream refused with 404", e.status_code, 404)
        eq("wss: SIGTERM exits 0", tls_srv.stop(), 0)
    finally:
        SRV, KVS, ARCH = plain
        if tls_srv.proc is not None and tls_srv.proc.poll() is None:
            tls_srv.proc.kill()
            tls_srv.proc.wait()
        with open(os.path.join(work, "server1.log"), errors="replace") as f:
            text = f.read()
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                       "level=error"):
            if marker in text:
                bad(f"tls server log: {marker}")
                print(text[-6000:])


PAGE = """<!doctype html>
<meta charset="utf-8"><title>PutMedia over a websocket</title>
<canvas id="c" width="320" height="240"></canvas>
<script>
// A live producer: a canvas animation recorded by MediaRecorder as H.264 in Matroska, each
// 200 ms chunk sent as it comes, for 3 s.
async function live() {
  const type = "video/x-matroska;codecs=avc1";
  if (!MediaRecorder.isTypeSupported(type)) return {skipped: type};
  const out = {acks: [], close: null};
  const c = document.getElementById("c"), g = c.getContext("2d");
  let f = 0;
  const timer = setInterval(() => {
    g.fillStyle = `hsl(${f++ * 7 % 360},80%,50%)`;
    g.fillRect(0, 0, 320, 240);
  }, 33);
  const ws = new WebSocket(LIVE_URL);
  ws.binaryType = "arraybuffer";
  ws.onmessage = e => out.acks.push(JSON.parse(e.data));
  const closed = new Promise(res => { ws.onclose = e => res(e.code); });
  await new Promise(res => { ws.onopen = res; });
  const rec = new MediaRecorder(c.captureStream(30),
                                {mimeType: type, videoKeyFrameIntervalDuration: 1000});
  let chain = Promise.resolve();   // send in order, as each chunk's bytes are ready
  rec.ondataavailable = e => {
    if (e.data.size) chain = chain.then(() => e.data.arrayBuffer()).then(b => ws.send(b));
  };
  const stopped = new Promise(res => { rec.onstop = res; });
  rec.start(200);
  await new Promise(res => setTimeout(res, 3000));
  rec.stop();
  await stopped;
  await chain;
  clearInterval(timer);
  ws.send(new ArrayBuffer(0));
  out.close = await closed;
  return out;
}

(async () => {
  const out = {acks: [], close: null, refused: null, live: null, error: null};
  try {
    const clip = await (await fetch("/clip.mkv")).arrayBuffer();
    const ws = new WebSocket(WS_URL);
    ws.binaryType = "arraybuffer";
    ws.onmessage = e => out.acks.push(typeof e.data === "string" ? JSON.parse(e.data)
                                                                 : {binary: e.data.byteLength});
    const closed = new Promise(res => {
      ws.onclose = e => res({code: e.code, reason: e.reason, clean: e.wasClean});
    });
    await new Promise((res, rej) => { ws.onopen = res; ws.onerror = () => rej("no open"); });
    for (let i = 0; i < clip.byteLength; i += 20000) ws.send(clip.slice(i, i + 20000));
    ws.send(new ArrayBuffer(0));   // the end of the body
    out.close = await closed;
    out.refused = await new Promise(res => {
      const bad = new WebSocket(BAD_URL);
      bad.onopen = () => res("opened");
      bad.onclose = e => res(e.code);
    });
    out.live = await live();
  } catch (e) { out.error = String(e); }
  await fetch("/result", {method: "POST", body: JSON.stringify(out)});
})();
</script>
"""


def t_browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        print("# t_browser: skipped (no chromium)", flush=True)
        return
    create("ws-browser")
    page = PAGE.replace("WS_URL", json.dumps(
        ws_url(StreamName="ws-browser", FragmentTimecodeType="RELATIVE",
               ProducerStartTimestamp=f"{START_S:.3f}")))
    page = page.replace("BAD_URL", json.dumps(ws_url(StreamName="no-such-stream")))
    create("ws-browser-live")
    page = page.replace("LIVE_URL", json.dumps(ws_url(StreamName="ws-browser-live")))
    result = {}
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/":
                body, ctype = page.encode(), "text/html"
            elif self.path == "/clip.mkv":
                body, ctype = CLIP, "video/x-matroska"
            else:
                body, ctype = b"", None
            self.send_response(200 if ctype else 404)
            self.send_header("content-type", ctype or "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("content-length", 0))
            result["out"] = json.loads(self.rfile.read(n))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix="tr-chromium-")
    log = open(os.path.join(SRV.workdir, "chromium.log"), "w")
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-background-networking", "--disable-gpu",
         "--disable-dev-shm-usage", "--no-first-run", f"--user-data-dir={profile}",
         f"http://127.0.0.1:{httpd.server_address[1]}/"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not check("browser: the page reports back", done.wait(90)):
            return
        out = result["out"]
        if not check("browser: no error", out.get("error") is None, f"{out.get('error')}"):
            return
        acks = out["acks"]
        eq("browser: BUFFERING and RECEIVED per fragment",
           [(a.get("EventType"), a.get("FragmentTimecode")) for a in acks
            if a.get("EventType") in ("BUFFERING", "RECEIVED")],
           [(k, tc) for tc in TCS for k in ("BUFFERING", "RECEIVED")])
        pers = [a for a in acks if a.get("EventType") == "PERSISTED"]
        eq("browser: PERSISTED per fragment", [a["FragmentTimecode"] for a in pers], TCS)
        eq("browser: closed cleanly with 1000", (out["close"] or {}).get("code"), 1000)
        eq("browser: ListFragments shows them", [f["FragmentNumber"] for f in
                                                 fragments("ws-browser")],
           [a["FragmentNumber"] for a in pers])
        eq("browser: a refused upgrade is a failed connection (1006)", out["refused"], 1006)
        live = out.get("live") or {}
        if "skipped" in live:
            print(f"# browser: live MediaRecorder skipped ({live['skipped']} unsupported)")
            return
        acks = live.get("acks", [])
        pers = [a for a in acks if a.get("EventType") == "PERSISTED"]
        check("browser live: MediaRecorder's Matroska, fragments PERSISTED", len(pers) >= 2,
              f"{acks}"[:600])
        check("browser live: no ERROR", not [a for a in acks if a.get("EventType") == "ERROR"],
              f"{acks}"[:600])
        eq("browser live: closed with 1000", live.get("close"), 1000)
        eq("browser live: ListFragments shows them",
           [f["FragmentNumber"] for f in fragments("ws-browser-live")],
           [a["FragmentNumber"] for a in pers])
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
        httpd.shutdown()
        httpd.server_close()
        shutil.rmtree(profile, ignore_errors=True)


SECTIONS = [t_clip_in_pieces, t_whole_clip_one_message, t_headers_instead_of_params,
            t_no_persisted_without_retention, t_garbage, t_text_refused, t_refusals,
            t_disconnects, t_ping_idle, t_concurrent, t_past_100_mib, t_tls, t_browser]


def main():
    global SRV, KVS, ARCH, CLIP, CLUSTERS
    work = tempfile.mkdtemp(prefix="tr-kvs-ws-")
    SRV = Server(work)
    try:
        CLIP = make_clip(work)
        CLUSTERS = cluster_offsets(CLIP)
        if not check("the clip has 3 clusters", len(CLUSTERS) == 3, f"{CLUSTERS}"):
            return 1
        SRV.start()
        KVS = client("kinesisvideo")
        ARCH = client("kinesis-video-archived-media")
        for section in SECTIONS:
            t = time.time()
            try:
                if not SRV.alive():
                    bad(f"{section.__name__}: server not running")
                    SRV.start()
                section()
            except Exception as e:  # a section that blows up counts once and the rest go on
                bad(f"{section.__name__} raised {type(e).__name__}: {e}")
                traceback.print_exc()
            print(f"# {section.__name__}: {time.time() - t:.1f} s", flush=True)
        if SRV.alive():
            try:
                t_stop_with_session_open()
            except Exception as e:
                bad(f"t_stop_with_session_open raised {type(e).__name__}: {e}")
                traceback.print_exc()
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
    print(f"test_kvs_ws: {PASSED} passed, {FAILED} failed ({time.time() - T0:.1f} s)")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
