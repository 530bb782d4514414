#!/usr/bin/env bash
# `bench/run data-streams`: the Kinesis Data Streams API of Tributary against kinesalite, in
# the same run on the same machine. bench/run builds tributary and kinesis_load_bench and
# calls this as
#   bench/data_streams.sh SCRATCH_DIR      (TR_BENCH_BUILD_DIR names the build)
#
# For each server: a stream of 4 shards; PutRecords throughput (batches of 500 records of
# 100 B, then of 10 KiB, from CONNS concurrent keep-alive HTTP/1.1 clients, each with one call
# in flight); then put-to-GetRecords-visible latency at half of that server's 100 B peak
# (one reader per shard polling GetRecords from LATEST). Tributary runs on its durable default
# (fsync = always: a put is acknowledged after fdatasync), and once more with fsync = interval
# for comparison (the RESULT line is the durable default's); kinesalite in memory (no --path)
# and on disk (--path: LevelDB, which does not fsync its writes).
# Environment: TR_BENCH_SECONDS (measured seconds per case, default 5), TR_BENCH_CONNS (8).
set -euo pipefail
cd "$(dirname "$0")/.."

SCRATCH=${1:?usage: bench/data_streams.sh SCRATCH_DIR}
BUILD=${TR_BENCH_BUILD_DIR:-build-bench}
LOAD=$BUILD/kinesis_load_bench
SECS=${TR_BENCH_SECONDS:-5}
CONNS=${TR_BENCH_CONNS:-8}
SHARDS=4
WARMUP=1

BENCH_NAME=data-streams
. bench/lib.sh

for tool in node npm curl python3; do
    command -v "$tool" >/dev/null || { say "data-streams: $tool not found (./run deps installs it)"; exit 1; }
done
if [ ! -f bench/node_modules/kinesalite/cli.js ]; then
    (cd bench && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
        { say "data-streams: npm ci failed in bench/"; exit 1; }
fi

trap stop_server EXIT

# tributary's fdatasync histogram: "le:count" per bucket (cumulative, le in seconds), then
# "sum:<seconds>".
fsync_hist() { # PORT
    curl -s "http://127.0.0.1:$1/metrics" | awk '
        /^tributary_fsync_duration_seconds_bucket/ {
            le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le); printf "%s:%s ", le, $2 }
        /^tributary_fsync_duration_seconds_sum/ { s = $2 }
        END { print "sum:" s + 0 }'
}

# The fdatasyncs between two fsync_hist snapshots: count, mean, the bucket bounds that hold
# the median and the 99th percentile, and the share over 5 ms.
fsync_between() { # BEFORE AFTER
    awk -v a="$1" -v b="$2" 'BEGIN {
        na = split(a, x, " "); split(b, y, " ")
        for (i = 1; i <= na; i++) {
            split(x[i], p, ":"); split(y[i], q, ":")
            if (p[1] == "sum") { sum = q[2] - p[2]; continue }
            nb++; le[nb] = p[1]; c[nb] = q[2] - p[2]
        }
        n = c[nb]
        if (n <= 0) { print "none"; exit }
        for (i = 1; i <= nb; i++) {
            ms = le[i] == "+Inf" ? "inf" : le[i] * 1000
            if (p50 == "" && c[i] * 2 >= n) p50 = ms
            if (p99 == "" && c[i] * 100 >= n * 99) p99 = ms
            if (le[i] + 0 <= 0.005 && le[i] != "+Inf") le5 = c[i]
        }
        printf "%d fdatasyncs, mean %.2f ms, p50 <= %s ms, p99 <= %s ms, %.2f%% over 5 ms",
            n, sum * 1000 / n, p50, p99, (n - le5) * 100 / n }'
}

# measure NAME PORT [metrics] -> sets R_<...> for the table; with "metrics" (tributary) also
# LAT_FSYNC, the fdatasyncs during the latency case
measure() {
    local name=$1 port=$2 line before=""
    "$LOAD" create --port "$port" --stream bench --shards "$SHARDS" >&2
    line=$("$LOAD" put --port "$port" --stream bench --size 100 --batch 500 --conns "$CONNS" \
           --seconds "$SECS" --warmup "$WARMUP")
    say "  $name 100 B:   $line"
    P100_RPS=$(val "$line" rps); P100_MBPS=$(val "$line" mbps)
    P100_P50=$(val "$line" p50_ms); P100_P99=$(val "$line" p99_ms)
    P100_BAD=$(( $(val "$line" failed) + $(val "$line" errors) ))
    line=$("$LOAD" put --port "$port" --stream bench --size 10240 --batch 500 --conns "$CONNS" \
           --seconds "$SECS" --warmup "$WARMUP")
    say "  $name 10 KiB:  $line"
    P10K_RPS=$(val "$line" rps); P10K_MBPS=$(val "$line" mbps)
    P10K_BAD=$(( $(val "$line" failed) + $(val "$line" errors) ))
    LAT_RATE=$(( ${P100_RPS%.*} / 2 ))
    [ "$LAT_RATE" -ge 500 ] || LAT_RATE=500
    [ "${3:-}" = metrics ] && before=$(fsync_hist "$port")
    line=$("$LOAD" latency --port "$port" --stream bench --shards "$SHARDS" --size 100 \
           --batch 500 --conns "$CONNS" --rate "$LAT_RATE" --seconds "$SECS" --warmup "$WARMUP")
    say "  $name latency: $line"
    LAT_RPS=$(val "$line" rps); LAT_P50=$(val "$line" p50_ms); LAT_P99=$(val "$line" p99_ms)
    LAT_N=$(val "$line" samples)
    LAT_PUT_P50=$(val "$line" put_p50_ms); LAT_PUT_P99=$(val "$line" put_p99_ms)
    LAT_FSYNC=""
    [ -n "$before" ] && LAT_FSYNC=$(fsync_between "$before" "$(fsync_hist "$port")")
    return 0
}

ROWS=()
row() { # LABEL
    ROWS+=("$(printf '%-28s %11s %8s %8s %8s %11s %9s %11s %9s %9s %9s' "$1" "$P100_RPS" \
        "$P100_MBPS" "$P100_P50" "$P100_P99" "$P10K_RPS" "$P10K_MBPS" "$LAT_RPS" "$LAT_P50" \
        "$LAT_P99" "$LAT_N")")
    if [ "$P100_BAD" -ne 0 ] || [ "$P10K_BAD" -ne 0 ] || [ "${LAT_N:-0}" -eq 0 ]; then
        ROWS+=("    ^ failed records or calls: 100 B $P100_BAD, 10 KiB $P10K_BAD; latency samples ${LAT_N:-0}")
    fi
}

say "data-streams: $SHARDS shards, $CONNS clients, batches of 500, ${SECS} s per case after ${WARMUP} s warm-up"

# ---- Tributary, durable default (fsync = always)
PORT=$(free_port)
"$BUILD/tributary" serve --listen "127.0.0.1:$PORT" --data-dir "$SCRATCH/tributary" \
    --log-level warn >"$SCRATCH/tributary.log" 2>&1 &
SERVER_PID=$!
wait_up "$PORT"
measure tributary "$PORT" metrics
T_RPS=$P100_RPS; T_P99=$LAT_P99
T_HALF="put p50/p99 $LAT_PUT_P50/$LAT_PUT_P99 ms, visible p50/p99 $LAT_P50/$LAT_P99 ms at $LAT_RPS rec/s; fdatasync meanwhile: $LAT_FSYNC"
row "tributary (fsync=always)"
# The disk's share of the latency: fdatasync times over the whole tributary run.
FSYNC=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '
    /^tributary_fsync_duration_seconds_bucket\{le="0.005"\}/ { le5 = $2 }
    /^tributary_fsync_duration_seconds_bucket\{le="0.025"\}/ { le25 = $2 }
    /^tributary_fsync_duration_seconds_sum/ { sum = $2 }
    /^tributary_fsync_duration_seconds_count/ { n = $2 }
    END { if (n > 0) printf "%d fdatasyncs, mean %.2f ms, %.1f%% over 5 ms, %.1f%% over 25 ms",
          n, sum * 1000 / n, (n - le5) * 100 / n, (n - le25) * 100 / n }')
stop_server

# ---- Tributary with fsync = interval: acknowledged after the write, synced every 100 ms. The
# difference to the row above is what waiting for fdatasync costs.
PORT=$(free_port)
printf 'fsync = interval\n' >"$SCRATCH/interval.conf"
"$BUILD/tributary" serve --listen "127.0.0.1:$PORT" --data-dir "$SCRATCH/tributary-interval" \
    --config "$SCRATCH/interval.conf" --log-level warn >"$SCRATCH/tributary-interval.log" 2>&1 &
SERVER_PID=$!
wait_up "$PORT"
measure tributary-interval "$PORT" metrics
TI_HALF="put p50/p99 $LAT_PUT_P50/$LAT_PUT_P99 ms, visible p50/p99 $LAT_P50/$LAT_P99 ms at $LAT_RPS rec/s"
row "tributary (fsync=interval)"
stop_server

# ---- kinesalite, in memory and on disk
KL="node bench/node_modules/kinesalite/cli.js --createStreamMs 0 --shardLimit 100"
PORT=$(free_port)
$KL --port "$PORT" >"$SCRATCH/kinesalite-mem.log" 2>&1 &
SERVER_PID=$!
wait_up "$PORT"
measure kinesalite-memory "$PORT"
KM_RPS=$P100_RPS
row "kinesalite (memory)"
stop_server

PORT=$(free_port)
mkdir -p "$SCRATCH/kinesalite"
$KL --port "$PORT" --path "$SCRATCH/kinesalite" >"$SCRATCH/kinesalite-disk.log" 2>&1 &
SERVER_PID=$!
wait_up "$PORT"
measure kinesalite-disk "$PORT"
KD_RPS=$P100_RPS
row "kinesalite (disk, LevelDB)"
stop_server

echo
echo "PutRecords throughput (records/s, payload MB/s = 10^6 B/s; call latency p50/p99 in ms)"
echo "and put-to-GetRecords-visible latency (ms) at about half of each server's 100 B peak"
printf '%-28s %11s %8s %8s %8s %11s %9s %11s %9s %9s %9s\n' server "100B rec/s" "MB/s" "p50" \
    "p99" "10KiB rec/s" "MB/s" "lat rec/s" "vis p50" "vis p99" "samples"
for r in "${ROWS[@]}"; do echo "$r"; done
echo

best_mode=memory
K_RPS=$KM_RPS
if awk -v a="$KD_RPS" -v b="$KM_RPS" 'BEGIN { exit !(a > b) }'; then best_mode=disk; K_RPS=$KD_RPS; fi
ratio=$(awk -v a="$T_RPS" -v b="$K_RPS" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }')
echo "tributary fdatasync: ${FSYNC:-no data}"
echo "tributary at half load, fsync=always:   $T_HALF"
echo "tributary at half load, fsync=interval: $TI_HALF"
echo "kinesalite_rps is kinesalite's better mode: $best_mode"
echo "RESULT data-streams tributary_rps=$T_RPS kinesalite_rps=$K_RPS ratio=$ratio p99_visible_ms=$T_P99"
