#!/usr/bin/env bash
# `bench/run ingest`: Kinesis Video Streams PutMedia ingest (issue 4). bench/run builds
# tributary, ingest_load_bench and log_bench and calls this as
#   bench/ingest.sh SCRATCH_DIR      (TR_BENCH_BUILD_DIR names the build)
#
# A 20 s 720p H.264 clip at 2 Mbit/s is made once with GStreamer and kept in the build
# directory. tributary serve runs on its defaults (fsync = always: PERSISTED after fdatasync)
# with its data in SCRATCH_DIR; one video stream per producer (retention 1 h) is created
# first. Then:
#   - real time: N producers (1, 10, 100, 1000), each looping the clip into its own stream at
#     the speed of its timecodes (frame by frame, 2 s fragments, random phases); the PERSISTED
#     ack latency from a cluster's last byte sent to its ack, the server's CPU and the growth
#     of its RSS per connection;
#   - flat out: one producer sending clusters back to back (at most 64 unacknowledged), in two
#     rounds, each followed by the raw sequential write + fdatasync limit of the same
#     filesystem (log_bench --raw) for the batch the server achieved (bytes per fdatasync).
# Environment: TR_BENCH_SECONDS (measured seconds per real-time case, default 15),
# TR_BENCH_STREAMS (the Ns, default "1 10 100 1000"), TR_BENCH_FLAT_SECONDS (per round, 5).
set -euo pipefail
cd "$(dirname "$0")/.."

SCRATCH=${1:?usage: bench/ingest.sh SCRATCH_DIR}
BUILD=${TR_BENCH_BUILD_DIR:-build-bench}
LOAD=$BUILD/ingest_load_bench
SECS=${TR_BENCH_SECONDS:-15}
COUNTS=${TR_BENCH_STREAMS:-"1 10 100 1000"}
FLAT_SECS=${TR_BENCH_FLAT_SECONDS:-5}
WARMUP=4          # two fragments: every producer has started and stored one
RAW_SECS=3
TARGET_MS=100
CLIP_FRAMES=600   # 20 s at 30 fps
CLIP=$BUILD/ingest_clip_720p_2mbps_20s.mkv

BENCH_NAME=ingest
. bench/lib.sh

for tool in gst-launch-1.0 curl python3; do
    command -v "$tool" >/dev/null || { say "ingest: $tool not found (./run deps installs it)"; exit 1; }
done

# The clip. videotestsrc's ball compresses to about 0.25 Mbit/s, so x264 runs as a CBR encoder
# with filler data (as many IP cameras do) to make the 2 Mbit/s of a real 720p camera.
if [ ! -s "$CLIP" ]; then
    say "ingest: making the clip $CLIP"
    gst-launch-1.0 -q videotestsrc is-live=false num-buffers=$CLIP_FRAMES pattern=ball \
        ! video/x-raw,width=1280,height=720,framerate=30/1 \
        ! x264enc bitrate=2000 pass=cbr option-string=nal-hrd=cbr:filler=1 \
          vbv-buf-capacity=1000 key-int-max=60 bframes=0 speed-preset=ultrafast \
          tune=zerolatency \
        ! h264parse ! matroskamux streamable=true ! filesink location="$CLIP.tmp"
    mv "$CLIP.tmp" "$CLIP"
fi
CLIP_INFO=$("$LOAD" clip --clip "$CLIP")

max_n=0
for n in $COUNTS; do [ "$n" -gt "$max_n" ] && max_n=$n; done
# Descriptors: the server and the generator each need one per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((max_n + 256)) ]; then
    say "ingest: $max_n connections need more open files than $(ulimit -n)"; exit 1
fi

trap stop_server EXIT

PORT=$(free_port)
"$BUILD/tributary" serve --listen "127.0.0.1:$PORT" --data-dir "$SCRATCH/tributary" \
    --log-level warn >"$SCRATCH/tributary.log" 2>&1 &
SERVER_PID=$!
wait_up "$PORT"

# fdatasync count and seconds, and the bytes stored in every shard, from /metrics.
METRICS() {
    curl -s "http://127.0.0.1:$PORT/metrics" | awk '
        /^tributary_fsync_duration_seconds_sum/ { s = $2 }
        /^tributary_fsync_duration_seconds_count/ { c = $2 }
        /^tributary_shard_storage_bytes/ { b += $2 }
        END { printf "%d %.6f %.0f\n", c, s, b }'
}

# b0 is the flat-out producer's stream, b1..bN the real-time ones.
"$LOAD" create --port "$PORT" --streams $((max_n + 1)) --prefix b --first 0 --conns 16 >&2

say "ingest: $CLIP_INFO"
say "ingest: real time ${SECS} s per case after ${WARMUP} s; flat out 2 x ${FLAT_SECS} s"
ROWS=()
best=0
for n in $COUNTS; do
    read -r c0 s0 _ < <(METRICS)
    line=$("$LOAD" run --port "$PORT" --clip "$CLIP" --streams "$n" --prefix b --first 1 \
           --seconds "$SECS" --warmup "$WARMUP" --server-pid "$SERVER_PID" --seed "$n")
    read -r c1 s1 _ < <(METRICS)
    say "  $line"
    span=$(awk -v s="$SECS" -v w="$WARMUP" 'BEGIN { print s + w }')
    fs=$(awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v t="$span" 'BEGIN {
        n = c1 - c0; printf "%.0f %.2f", n / t, (n > 0 ? (s1 - s0) * 1000 / n : 0) }')
    p99=$(val "$line" p99_ms)
    bad=$(( $(val "$line" unacked) + $(val "$line" errors) + $(val "$line" failed_conns) ))
    ok=$(awk -v p="$p99" -v t="$TARGET_MS" -v b="$bad" 'BEGIN { print ((b == 0 && p <= t) ? "ok" : "FAIL") }')
    [ "$ok" = ok ] && [ "$n" -gt "$best" ] && best=$n
    LAST_P99=$p99; LAST_N=$n; LAST_OK=$ok; LAST_BAD=$bad
    ROWS+=("$(printf '%7s %8s %9s %8s %8s %8s %8s | %7s %7s %9s | %8s %8s | %s' "$n" \
        "$(val "$line" MBps)" "$(val "$line" acked)/$(val "$line" clusters)" \
        "$(val "$line" p50_ms)" "$p99" "$(val "$line" max_ms)" "$(val "$line" recv_p99_ms)" \
        "$(val "$line" server_cpu_pct)" "$(val "$line" gen_cpu_pct)" \
        "$(val "$line" rss_kb_per_conn)" ${fs} "$ok")")
done

# Flat out, two rounds, each followed by the raw limit for the batch it achieved.
FLAT=(); RAW=(); BATCH=()
mkdir -p "$SCRATCH/raw"
for round in 1 2; do
    read -r c0 _ b0 < <(METRICS)
    line=$("$LOAD" run --port "$PORT" --clip "$CLIP" --flat-out --prefix b --first 0 \
           --seconds "$FLAT_SECS" --warmup 1 --window 64 --server-pid "$SERVER_PID")
    read -r c1 _ b1 < <(METRICS)
    say "  $line"
    batch=$(awk -v c="$((c1 - c0))" -v b0="$b0" -v b1="$b1" 'BEGIN { printf "%.0f", (c > 0 ? (b1 - b0) / c : 1048576) }')
    raw=$("$BUILD/log_bench" "$SCRATCH/raw" --raw "$batch" --seconds "$RAW_SECS")
    say "  $raw"
    FLAT+=("$(val "$line" MBps)"); RAW+=("$(val "$raw" raw_MBps)"); BATCH+=("$batch")
    FLAT_LINE=$line
done
stop_server

flat=$(awk -v a="${FLAT[0]}" -v b="${FLAT[1]}" 'BEGIN { printf "%.1f", (a + b) / 2 }')
raw=$(awk -v a="${RAW[0]}" -v b="${RAW[1]}" 'BEGIN { printf "%.1f", (a + b) / 2 }')
ratio=$(awk -v a="$flat" -v b="$raw" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')

echo
echo "$CLIP_INFO"
echo "REAL TIME  (each producer loops the clip into its own stream at its timecodes' pace)"
echo "ack ms: from a cluster's last byte sent to its PERSISTED ack (recv: to its RECEIVED ack)"
printf '%7s %8s %9s %8s %8s %8s %8s | %7s %7s %9s | %8s %8s | %s\n' streams "MB/s" \
    acked "p50 ms" "p99 ms" "max ms" "recv p99" "srv CPU" "gen CPU" "RSS/conn" \
    "fsyncs/s" "fsync ms" "p99<=${TARGET_MS} ms, all acked"
printf '%7s %8s %9s %8s %8s %8s %8s | %7s %7s %9s | %8s %8s |\n' "" "" "" "" "" "" "" "%" "%" \
    "KiB" "" "mean"
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "FLAT OUT  (one producer, clusters back to back, <= 64 unacknowledged; raw = write +"
echo "fdatasync of the same bytes per fdatasync, right after each round, same filesystem)"
echo "  round 1: ${FLAT[0]} MB/s, raw ${RAW[0]} MB/s at $((BATCH[0] / 1024)) KiB per fdatasync"
echo "  round 2: ${FLAT[1]} MB/s, raw ${RAW[1]} MB/s at $((BATCH[1] / 1024)) KiB per fdatasync"
echo "  last round: p50 $(val "$FLAT_LINE" p50_ms) ms, p99 $(val "$FLAT_LINE" p99_ms) ms, server CPU $(val "$FLAT_LINE" server_cpu_pct)%, generator CPU $(val "$FLAT_LINE" gen_cpu_pct)%"
echo
if [ "$LAST_OK" = ok ]; then
    echo "target: $LAST_N real-time streams with p99 <= ${TARGET_MS} ms: met (p99 $LAST_P99 ms)"
else
    echo "target: $LAST_N real-time streams with p99 <= ${TARGET_MS} ms: NOT met (p99 $LAST_P99 ms, $LAST_BAD unacked/errors); the largest N that passed: $best"
fi
echo "target: flat out >= 0.60 of raw: $ratio ($(awk -v r="$ratio" 'BEGIN { print (r >= 0.6 ? "met" : "NOT met") }'))"
echo "RESULT ingest streams_realtime=$best p99_ack_ms=$LAST_P99 flatout_MBps=$flat raw_MBps=$raw ratio=$ratio"
