#!/usr/bin/env python3
"""PutMedia backpressure: on a slow disk a session that has KVS_INGEST_MAX_PENDING (4)
fragments waiting for the store stops reading its body, so the server's memory stays bounded
instead of queueing the whole upload.

The server runs with tests/support/enospc_preload.c and ENOSPC_PRELOAD_SYNC_DELAY_MS: every
fsync sleeps. A producer sends 40 fragments of 1 MiB flat out over HTTP/1.1 (h1.c) and over
HTTP/2 (nghttp2 flow control). The acks come in the order the server made them, so at each
point RECEIVED minus PERSISTED is how many fragments were queued for the store: it must stay
small (4, plus what one read can complete), every fragment must be PERSISTED in the end, and
the server's RSS must stay far below the 80 MiB that was sent (each time)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ["TR_BUILD_DIR"]
BIN = os.path.join(BUILD, "tributary")
PRELOAD = os.path.join(BUILD, "libenospc_preload.so")
SYNC_DELAY_MS = 150
FRAGMENTS = 80
FRAME = 128 * 1024
FRAMES = 8           # 1 MiB fragments
MAX_OUTSTANDING = 6  # 4 queued, plus what the last read and the window carried
MAX_RSS_GROWTH_KB = 48 * 1024

failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (f": {detail}" if detail else ""), flush=True)
    if not cond:
        failures.append(name)


def vint(v):
    n = 1
    while v >= (1 << (7 * n)) - 1:
        n += 1
    return ((1 << (7 * n)) | v).to_bytes(n, "big")


def el(eid, payload):
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big") + vint(len(payload)) + payload


def el_uint(eid, v):
    return el(eid, v.to_bytes(max(1, (v.bit_length() + 7) // 8), "big"))


def el_str(eid, s):
    return el(eid, s.encode())


def mkv(fragments):
    ebml = el(0x1A45DFA3, el_uint(0x4286, 1) + el_uint(0x42F7, 1) + el_uint(0x42F2, 4) +
              el_uint(0x42F3, 8) + el_str(0x4282, "matroska") + el_uint(0x4287, 4) +
              el_uint(0x4285, 2))
    info = el_uint(0x2AD7B1, 1000000) + el_str(0x4D80, "t") + el_str(0x5741, "t")
    track = el(0xAE, el_uint(0xD7, 1) + el_uint(0x73C5, 1001) + el_uint(0x83, 1) +
               el_str(0x86, "V_MPEG4/ISO/AVC") + el(0xE0, el_uint(0xB0, 320) + el_uint(0xBA, 240)))
    out = [ebml + (0x18538067).to_bytes(4, "big") + b"\x01\xff\xff\xff\xff\xff\xff\xff" +
           el(0x1549A966, info) + el(0x1654AE6B, track)]
    for i in range(fragments):
        blocks = b"".join(el(0xA3, vint(1) + (j * 33).to_bytes(2, "big") +
                             bytes([0x80 if j == 0 else 0]) + bytes([j]) * FRAME)
                          for j in range(FRAMES))
        out.append(el(0x1F43B675, el_uint(0xE7, 1000 + i * 1000) + blocks))
    return b"".join(out)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def aws(port, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION="us-east-1")
    return subprocess.run(["aws", "--endpoint-url", f"http://127.0.0.1:{port}", "kinesisvideo",
                           *args], env=env, capture_output=True, text=True, timeout=60)


def upload(port, stream, body_path, http2, pid):
    """curl uploads the body flat out; returns (acks in order, peak RSS in KiB)."""
    args = ["curl", "-sS", "-N", "--max-time", "120", "-X", "POST", "-T", body_path,
            "-H", "Transfer-Encoding: chunked", "-H", f"x-amzn-stream-name: {stream}",
            "-H", "x-amzn-fragment-timecode-type: RELATIVE",
            "-H", f"x-amzn-producer-start-timestamp: {time.time():.3f}",
            "-H", "Expect:", f"http://127.0.0.1:{port}/putMedia"]
    if http2:
        args.insert(1, "--http2-prior-knowledge")
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], rss_kb(pid))
            except OSError:
                return
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    r = subprocess.run(args, capture_output=True, timeout=180)
    done.set()
    t.join()
    acks = []
    for line in r.stdout.decode(errors="replace").splitlines():
        try:
            acks.append(json.loads(line))
        except ValueError:
            pass
    if r.returncode != 0:
        print(f"curl exited {r.returncode}: {r.stderr.decode(errors='replace')}", flush=True)
    return acks, peak[0]


def main():
    work = tempfile.mkdtemp(prefix="tr-backpressure-")
    port = free_port()
    env = dict(os.environ, LD_PRELOAD=PRELOAD, ENOSPC_PRELOAD_SYNC_DELAY_MS=str(SYNC_DELAY_MS))
    # An ASan build wants its runtime first (the preload only wraps libc's calls), and keeps
    # freed memory in quarantine, which would count as RSS here.
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                           ":verify_asan_link_order=0:quarantine_size_mb=0").lstrip(":")
    log = open(os.path.join(work, "server.log"), "w")
    proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                             os.path.join(work, "data")], stdout=log, stderr=subprocess.STDOUT,
                            env=env)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        body = os.path.join(work, "body.mkv")
        with open(body, "wb") as f:
            f.write(mkv(FRAGMENTS))
        for http2 in (False, True):
            name = "bp-h2" if http2 else "bp-h1"
            proto = "HTTP/2" if http2 else "HTTP/1.1"
            r = aws(port, "create-stream", "--stream-name", name, "--data-retention-in-hours",
                    "24", "--media-type", "video/h264")
            check(f"{proto}: create-stream", r.returncode == 0, r.stderr.strip())
            base = rss_kb(proc.pid)
            t0 = time.time()
            acks, peak = upload(port, name, body, http2, proc.pid)
            took = time.time() - t0
            outstanding = worst = 0
            for a in acks:
                if a.get("EventType") == "RECEIVED":
                    outstanding += 1
                elif a.get("EventType") == "PERSISTED":
                    outstanding -= 1
                worst = max(worst, outstanding)
            kinds = [a.get("EventType") for a in acks]
            check(f"{proto}: every fragment PERSISTED", kinds.count("PERSISTED") == FRAGMENTS,
                  f"{kinds.count('RECEIVED')} RECEIVED, {kinds.count('PERSISTED')} PERSISTED, "
                  f"errors {[a for a in acks if a.get('EventType') == 'ERROR']}")
            check(f"{proto}: at most {MAX_OUTSTANDING} fragments queued for the store",
                  worst <= MAX_OUTSTANDING, f"{worst} at worst ({took:.1f} s)")
            check(f"{proto}: RSS bounded", peak - base <= MAX_RSS_GROWTH_KB,
                  f"{base // 1024} MiB before, {peak // 1024} MiB at peak, "
                  f"{FRAGMENTS * FRAMES * FRAME >> 20} MiB sent")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
        check("server stopped cleanly", rc == 0, f"exit {rc}")
        if failures:
            print(open(os.path.join(work, "server.log")).read()[-4000:], flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failed: {failures}")
        sys.exit(1)
    print("all passed")


if __name__ == "__main__":
    main()
