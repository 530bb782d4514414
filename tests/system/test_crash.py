#!/usr/bin/env python3
"""Crash test of the shard-log core.

tool_crash_writer appends self-verifying records (1 byte to 64 KiB) to two shards from four
threads with fsync=always and 1 MiB segments, so that rolls are frequent, and reports every
acknowledged batch on stdout. This script kills it with SIGKILL a random 50-500 ms after it is
ready (later if a shard has no acknowledgement yet), over and over, on the same data
directory. Each restarted writer first
recovers the store and reports every record it finds (checking each one's bytes against its
identity); then it appends again. After every kill the script checks that

  - every acknowledged record is present, at the sequence number it was acknowledged with,
    with the exact payload (the tool checks the bytes, the script the identity);
  - every record seen after an earlier crash is still there, unchanged (a process crash loses
    nothing that reached the page cache);
  - sequence numbers are contiguous from 1, and new acknowledgements continue after the
    recovered tail in increasing order;
  - the restarted writer's appends are acknowledged (the log accepts new appends).

Every CYCLE_EARLY-th cycle kills the writer 0-40 ms after it starts instead, which lands in
opening, recovery or the first appends. The last run stops cleanly and a separate `verify`
checks the whole log once more.

TR_CRASH_SEED repeats a run; TR_CRASH_CYCLES changes the number of cycles (default 25,
20 of them timed after the writer is ready)."""
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CYCLE_EARLY = 5
READY_TIMEOUT_S = 120
NSHARDS = 2  # tool_crash_writer writes shards 101 and 102


class Failed(Exception):
    pass


class Child:
    """One run of the tool: its stdout lines and how it ended."""

    def __init__(self, lines, partial, killed, returncode):
        self.lines = lines
        self.partial = partial  # an unfinished last line
        self.killed = killed
        self.returncode = returncode


def run_tool(argv, stderr, kill_after=None, ready_window=None, rng=None):
    """Runs the tool, reading its stdout as it comes. kill_after: SIGKILL that many seconds
    after the start. ready_window: (lo, hi): SIGKILL a random time in it after "ready", but
    not before an append to every shard was acknowledged (a slow machine gets more time)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr)
    fd = proc.stdout.fileno()
    start = time.monotonic()
    deadline = start + kill_after if kill_after is not None else None
    pending = b""
    lines = []
    acked_shards = set()
    killed = False
    last_output = start
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline and (
                ready_window is None or len(acked_shards) >= NSHARDS):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        wait = max(deadline - now, 0.01) if deadline is not None else READY_TIMEOUT_S
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            if time.monotonic() - last_output >= READY_TIMEOUT_S:
                proc.kill()
                proc.wait()
                raise Failed(f"{argv[1]}: no output for {READY_TIMEOUT_S} s")
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        last_output = time.monotonic()
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            line = raw.decode()
            lines.append(line)
            if line.startswith("ack "):
                acked_shards.add(line.split()[1])
            elif line == "ready" and ready_window is not None:
                deadline = time.monotonic() + rng.uniform(*ready_window)
    # Whatever the child wrote before it died is still in the pipe.
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        pending += chunk
    *complete, pending = pending.split(b"\n")
    lines.extend(raw.decode() for raw in complete)
    proc.stdout.close()
    returncode = proc.wait()
    return Child(lines, pending, killed and returncode == -signal.SIGKILL, returncode)


class Log:
    """What is known about the log: every acknowledged record and every record seen."""

    def __init__(self):
        self.acked = {}  # (shard, seq) -> (run, writer, counter)
        self.seen = {}   # (shard, seq) -> identity, from the latest full verification
        self.last = {}   # shard -> last seq found by the latest full verification

    def check_verification(self, lines, what):
        """Checks a full verification report; returns the records it found."""
        bad = [l for l in lines if l.startswith("bad ")]
        if bad:
            raise Failed(f"{what}: the tool found problems: " + "; ".join(bad[:5]))
        found = {}
        shards = {}
        for line in lines:
            f = line.split()
            if f[0] == "recs":
                shard, seq0, n, run, writer, counter0 = map(int, f[1:])
                for i in range(n):
                    found[(shard, seq0 + i)] = (run, writer, counter0 + i)
            elif f[0] == "shard":
                shards[int(f[1])] = 0 if f[2] == "absent" else int(f[5])
        for shard, last in shards.items():
            have = sorted(seq for (s, seq) in found if s == shard)
            if have != list(range(1, last + 1)):
                raise Failed(f"{what}: shard {shard} sequence numbers are not 1..{last}")
        missing = [k for k in self.acked if found.get(k) != self.acked[k]]
        if missing:
            k = min(missing)
            raise Failed(f"{what}: {len(missing)} acknowledged records missing or changed, "
                         f"first shard {k[0]} seq {k[1]}: acked {self.acked[k]}, "
                         f"found {found.get(k)}")
        changed = [k for k in self.seen if found.get(k) != self.seen[k]]
        if changed:
            k = min(changed)
            raise Failed(f"{what}: {len(changed)} records seen after an earlier crash changed "
                         f"or vanished, first shard {k[0]} seq {k[1]}")
        for shard, last in self.last.items():
            if shards.get(shard, 0) < last:
                raise Failed(f"{what}: shard {shard} went back from {last} to {shards.get(shard)}")
        self.seen = found
        self.last = shards
        return found

    def take_acks(self, lines, run, what):
        """Records the acknowledgements of one run; returns how many batches per shard."""
        next_seq = {shard: last + 1 for shard, last in self.last.items()}
        next_counter = {}
        batches = {}
        for line in lines:
            f = line.split()
            if f[0] == "fail":
                raise Failed(f"{what}: an append failed: {line}")
            if f[0] != "ack":
                continue
            shard, seq0, n, arun, writer, counter0 = map(int, f[1:])
            if arun != run:
                raise Failed(f"{what}: ack of run {arun} in run {run}")
            if seq0 < next_seq.get(shard, 1):
                raise Failed(f"{what}: shard {shard} acknowledged seq {seq0} again or before "
                             f"the recovered tail (next is {next_seq.get(shard, 1)})")
            if next_counter.get(writer, 0) != counter0:
                raise Failed(f"{what}: writer {writer} acks skip from counter "
                             f"{next_counter.get(writer, 0)} to {counter0}")
            next_counter[writer] = counter0 + n
            next_seq[shard] = seq0 + n
            for i in range(n):
                self.acked[(shard, seq0 + i)] = (run, writer, counter0 + i)
            batches[shard] = batches.get(shard, 0) + 1
        return batches


def main():
    build = os.environ.get("TR_BUILD_DIR")
    if not build:
        print("test_crash: set TR_BUILD_DIR")
        return 2
    tool = os.path.join(build, "tool_crash_writer")
    seed = int(os.environ.get("TR_CRASH_SEED", random.randrange(1 << 32)))
    cycles = int(os.environ.get("TR_CRASH_CYCLES", "25"))
    rng = random.Random(seed)
    print(f"test_crash: seed {seed}, {cycles} cycles")
    work = tempfile.mkdtemp(prefix="trcrash.")
    data = os.path.join(work, "data")
    errlog_path = os.path.join(work, "stderr.log")
    log = Log()
    passed = failed = 0
    t0 = time.monotonic()

    def check(name, fn):
        nonlocal passed, failed
        try:
            detail = fn()
            passed += 1
            print(f"ok   - {name}{': ' + detail if detail else ''}", flush=True)
            return True
        except Failed as e:
            failed += 1
            print(f"FAIL - {name}: {e}", flush=True)
            return False

    with open(errlog_path, "w+") as errlog:
        for cycle in range(1, cycles + 1):
            early = cycle % CYCLE_EARLY == 0

            def cycle_checks(early=early, cycle=cycle):
                argv = [tool, "write", data, str(cycle)]
                if early:
                    child = run_tool(argv, errlog, kill_after=rng.uniform(0, 0.04))
                else:
                    child = run_tool(argv, errlog, ready_window=(0.05, 0.5), rng=rng)
                if not child.killed:
                    said = [l for l in child.lines if not l.startswith(("recs", "ack"))]
                    raise Failed(f"the writer ended by itself (status {child.returncode}): "
                                 + "; ".join(said)[:500])
                if "ready" not in child.lines:
                    # Verification output is buffered: a kill may cut its last line.
                    if not early:
                        raise Failed("killed before it was ready")
                    if any(l.startswith(("ack", "bad", "fail")) for l in child.lines):
                        raise Failed("output after an unfinished verification")
                    return "killed while opening or verifying"
                if child.partial:
                    raise Failed(f"half an ack line: {child.partial!r}")
                cut = child.lines.index("ready")
                found = log.check_verification(child.lines[:cut], f"restart {cycle}")
                batches = log.take_acks(child.lines[cut + 1:], cycle, f"run {cycle}")
                if not early and len(batches) < NSHARDS:
                    raise Failed(f"the restarted writer got no acks on some shard: {batches}")
                return (f"{len(found)} records intact after restart, "
                        f"{sum(batches.values())} batches acked, then SIGKILL")

            check(f"cycle {cycle}{' (early kill)' if early else ''}", cycle_checks)

        def clean_run():
            child = run_tool([tool, "write", data, str(cycles + 1), "300"], errlog)
            if child.returncode != 0 or child.lines[-1:] != ["done"]:
                raise Failed(f"status {child.returncode}, last line {child.lines[-1:]}")
            cut = child.lines.index("ready")
            log.check_verification(child.lines[:cut], "clean restart")
            batches = log.take_acks(child.lines[cut + 1:-1], cycles + 1, "clean run")
            return f"{sum(batches.values())} batches acked, store closed"

        def final_verify():
            child = run_tool([tool, "verify", data], errlog)
            if child.returncode != 0 or child.lines[-1:] != ["verified problems 0"]:
                raise Failed(f"status {child.returncode}: {child.lines[-3:]}")
            found = log.check_verification(child.lines[:-1], "final verify")
            return f"{len(found)} records, {len(log.acked)} of them acknowledged"

        check("clean run after the last crash", clean_run)
        check("final verification", final_verify)

        errlog.seek(0)
        err = errlog.read()
    torn = err.count("truncated torn tail")
    stubs = err.count("removing segment stub")
    segs = sum(len([n for n in names if n.endswith(".seg")])
               for _, _, names in os.walk(data))
    print(f"test_crash: recovery truncated {torn} torn tails and removed {stubs} segment "
          f"stubs; {segs} segments; {time.monotonic() - t0:.1f} s")
    if failed:
        print(f"test_crash: data kept in {work} (stderr of the tool in stderr.log)")
    else:
        shutil.rmtree(work)
    print(f"test_crash: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
