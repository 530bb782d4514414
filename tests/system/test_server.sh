#!/usr/bin/env bash
# System test of the network layer and CLI: starts the real binary on a free loopback port.
set -euo pipefail

BIN="${TR_BUILD_DIR:?set TR_BUILD_DIR}/tributary"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID"; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }
check() { local name="$1"; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"

"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null "$URL/health" && break
    sleep 0.1
done

# /health over HTTP/1.1 and over HTTP/2 with prior knowledge on the same port.
check "health http/1.1 200" test "$(curl -s -o "$WORK/h1" -w '%{http_code} %{http_version}' "$URL/health")" = "200 1.1"
check "health body" grep -q '{"status":"ok"}' "$WORK/h1"
check "health h2 prior knowledge 200" test "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code} %{http_version}' "$URL/health")" = "200 2"
check "x-amzn-RequestId is a UUID" bash -c "curl -s -D - -o /dev/null '$URL/health' | grep -Eiq '^x-amzn-RequestId: [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}'"
check "x-amz-id-2 present" bash -c "curl -s -D - -o /dev/null '$URL/health' | grep -iq '^x-amz-id-2: '"
check "x-amzn-RequestId over h2" bash -c "curl -s --http2-prior-knowledge -D - -o /dev/null '$URL/health' | grep -iq '^x-amzn-requestid: '"

# Unknown X-Amz-Target: UnknownOperationException JSON, 400 as AWS answers.
code="$(curl -s -o "$WORK/unk" -w '%{http_code}' -X POST -H 'X-Amz-Target: Kinesis_20131202.NoSuchOp' \
    -H 'Content-Type: application/x-amz-json-1.1' -d '{}' "$URL/")"
check "unknown target status 400/404" test "$code" = 400 -o "$code" = 404
check "unknown target __type" grep -q '"__type":"UnknownOperationException"' "$WORK/unk"
# The same over HTTP/2: X-Amz-Target is a custom header, which libwebsockets' own h2 drops.
curl -s --http2-prior-knowledge -o "$WORK/unk2" -X POST -H 'X-Amz-Target: Kinesis_20131202.NoSuchOp' \
    -H 'Content-Type: application/x-amz-json-1.1' -d '{}' "$URL/"
check "X-Amz-Target routed over h2" grep -q '"__type":"UnknownOperationException"' "$WORK/unk2"
check "unknown path 404 JSON" test "$(curl -s -o /dev/null -w '%{http_code}' "$URL/no/such/path")" = 404

# /metrics after requests.
curl -s -o "$WORK/metrics" -D "$WORK/metrics.h" "$URL/metrics"
check "metrics has tributary_requests_total" grep -q '^tributary_requests_total{operation="/health"}' "$WORK/metrics"
check "metrics has the latency histogram" grep -q '^tributary_request_duration_seconds_bucket' "$WORK/metrics"
check "metrics counts errors" grep -q '^tributary_errors_total{type="UnknownOperationException"}' "$WORK/metrics"
check "metrics content type" grep -qi '^content-type: text/plain; version=0.0.4' "$WORK/metrics.h"

# Bodies beyond max_request_bytes: 413.
head -c $((65 * 1024 * 1024)) /dev/zero >"$WORK/big"
check "oversized body 413" test "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @"$WORK/big" "$URL/x")" = 413

# CLI errors.
set +e
"$BIN" serve --no-such-flag >"$WORK/flag.out" 2>&1; rc=$?
set -e
check "unknown flag exits 2" test "$rc" = 2
check "unknown flag message" grep -q "unknown option '--no-such-flag'" "$WORK/flag.out"

set +e
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data2" >"$WORK/inuse.out" 2>&1; rc=$?
set -e
check "second server exits non-zero" test "$rc" -ne 0
check "second server says address in use" grep -q "cannot listen on 127.0.0.1:$PORT: address already in use" "$WORK/inuse.out"

printf 'listen = 127.0.0.1:1\n# comment\nno_such_key = 1\n' >"$WORK/bad.conf"
set +e
"$BIN" serve --config "$WORK/bad.conf" >"$WORK/conf.out" 2>&1; rc=$?
set -e
check "bad config exits non-zero" test "$rc" -ne 0
check "bad config names file:line" grep -q "$WORK/bad.conf:3: unknown key 'no_such_key'" "$WORK/conf.out"

check "--version" bash -c "'$BIN' --version | grep -q '^tributary '"

# SIGTERM: exit 0 promptly.
kill -TERM "$SERVER_PID"
rc=0
for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    fail "SIGTERM stops within 5 s"
else
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    check "SIGTERM exits 0" test "$rc" = 0
fi
check "clean stop logged" grep -q 'stopped cleanly' "$WORK/server.log"

echo "test_server: $PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
