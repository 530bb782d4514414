#!/usr/bin/env bash
# System test with the AWS SDK for JavaScript v3 (@aws-sdk/client-kinesis over HTTP/2 with
# prior knowledge): starts the real binary on a free loopback port and runs
# tests/js/kinesis.test.mjs against it. Installs tests/js/node_modules from the lock file
# the first time (npm ci).
set -euo pipefail

BIN="${TR_BUILD_DIR:?set TR_BUILD_DIR}/tributary"
SRC="${TR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
JS="$SRC/tests/js"
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID"; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "test_kinesis_js: $tool not found (./run deps installs it)"; exit 1; }
done

if [[ ! -d "$JS/node_modules/@aws-sdk/client-kinesis" ]]; then
    if ! (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error >"$WORK/npm.log" 2>&1); then
        cat "$WORK/npm.log"
        echo "test_kinesis_js: npm ci failed in $JS"
        exit 1
    fi
fi

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"

"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null "$URL/health" && break
    sleep 0.1
done

rc=0
# NODE_NO_WARNINGS: the SDK warns about the Node.js version on every run.
TR_ENDPOINT="$URL" NODE_NO_WARNINGS=1 node "$JS/kinesis.test.mjs" || rc=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "FAIL - the server died during the test; its log:"
    cat "$WORK/server.log"
    exit 1
fi
# A clean stop (exit 0) also lets a sanitizer build report leaks and errors.
kill -TERM "$SERVER_PID"
for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
src=0
if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "FAIL - the server did not stop within 10 s of SIGTERM"
    rc=1
else
    wait "$SERVER_PID" || src=$?
    SERVER_PID=""
    if [[ "$src" -ne 0 ]]; then
        echo "FAIL - the server exited $src after SIGTERM"
        rc=1
    fi
fi
if [[ "$rc" -ne 0 ]]; then
    echo "--- server log (last 40 lines)"
    tail -n 40 "$WORK/server.log"
fi
exit "$rc"
