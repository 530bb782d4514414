#!/usr/bin/env bash
# System test of TLS on the listening port: a certificate from `tributary cert`, then curl
# (HTTP/1.1 and HTTP/2 by ALPN, X-Amz-Target over both), the AWS CLI, boto3, a websocket
# PutMedia over wss://, the AWS SDK for JavaScript v3 over https (HTTP/2), refusals
# (plaintext, TLS 1.1, weak suites), and a certificate reload on SIGHUP that keeps
# established connections.
set -euo pipefail

BIN="${TR_BUILD_DIR:?set TR_BUILD_DIR}/tributary"
SRC="${TR_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
PY=/usr/bin/python3
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
fails() { ! "$@" >/dev/null 2>&1; }

export HOME="$WORK/home" AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_PAGER="" AWS_MAX_ATTEMPTS=1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
mkdir -p "$HOME"

# ---- tributary cert ----
"$BIN" cert --out "$WORK/c1" --host tributary.test >"$WORK/cert.out"
check "cert: prints the serve flags" grep -q -- "--tls-cert $WORK/c1/cert.pem --tls-key $WORK/c1/key.pem" "$WORK/cert.out"
check "cert: key is 0600" test "$(stat -c %a "$WORK/c1/key.pem")" = 600
openssl x509 -in "$WORK/c1/cert.pem" -noout -text >"$WORK/c1.txt"
check "cert: EC P-256" grep -q "NIST CURVE: P-256" "$WORK/c1.txt"
check "cert: SANs" grep -q "DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, DNS:tributary.test" "$WORK/c1.txt"
check "cert: key matches" test "$(openssl pkey -in "$WORK/c1/key.pem" -pubout)" = "$(openssl x509 -in "$WORK/c1/cert.pem" -noout -pubkey)"
check "cert: refuses to overwrite" fails "$BIN" cert --out "$WORK/c1"
check "cert: --force overwrites" bash -c "'$BIN' cert --out '$WORK/c1' --host tributary.test --force >/dev/null"
check "cert: bad name refused" fails "$BIN" cert --out "$WORK/cx" --host 'a,DNS:evil'
check "cert: --out required (exit 2)" bash -c "'$BIN' cert >/dev/null 2>&1; test \$? = 2"

# The server reads the pair from these paths; the reload test replaces them.
mkdir -p "$WORK/live"
cp "$WORK/c1/cert.pem" "$WORK/c1/key.pem" "$WORK/live/"
CA="$WORK/c1/cert.pem"

# A missing or mismatched key is a startup error, not a plain-HTTP server.
set +e
"$BIN" serve --listen 127.0.0.1:1 --data-dir "$WORK/bad" --tls-cert "$WORK/live/cert.pem" \
    --tls-key "$WORK/nonexistent.pem" >"$WORK/badkey.out" 2>&1; rc=$?
set -e
check "missing key: exits non-zero" test "$rc" -ne 0
check "missing key: says which file" grep -q "nonexistent.pem" "$WORK/badkey.out"

PORT="$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="https://localhost:$PORT"
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --tls-cert "$WORK/live/cert.pem" \
    --tls-key "$WORK/live/key.pem" --log-level debug >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -s --cacert "$CA" -o /dev/null "$URL/health" && break
    sleep 0.1
done

# ---- curl: ALPN h2 and http/1.1, X-Amz-Target over both ----
check "health over HTTP/1.1" test "$(curl -s --http1.1 --cacert "$CA" -o "$WORK/h1" -w '%{http_code} %{http_version}' "$URL/health")" = "200 1.1"
check "health body" grep -q '{"status":"ok"}' "$WORK/h1"
check "health over HTTP/2 (ALPN)" test "$(curl -s --http2 --cacert "$CA" -o /dev/null -w '%{http_code} %{http_version}' "$URL/health")" = "200 2"
check "127.0.0.1 verifies too (IP SAN)" test "$(curl -s --cacert "$CA" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/health")" = 200
kcall() { # version target body
    curl -s "$1" --cacert "$CA" -X POST -H "X-Amz-Target: Kinesis_20131202.$2" \
        -H 'Content-Type: application/x-amz-json-1.1' -d "$3" -w '\n%{http_code} %{http_version}' "$URL/"
}
kcall --http2 CreateStream '{"StreamName":"tls-s","ShardCount":1}' >"$WORK/create"
check "CreateStream over HTTP/2 (X-Amz-Target kept)" test "$(tail -1 "$WORK/create")" = "200 2"
kcall --http1.1 ListStreams '{}' >"$WORK/ls1"
check "ListStreams over HTTP/1.1" bash -c "grep -q '\"tls-s\"' '$WORK/ls1' && test \"\$(tail -1 '$WORK/ls1')\" = '200 1.1'"
kcall --http2 ListStreams '{}' >"$WORK/ls2"
check "ListStreams over HTTP/2" bash -c "grep -q '\"tls-s\"' '$WORK/ls2' && test \"\$(tail -1 '$WORK/ls2')\" = '200 2'"
kcall --http2 NoSuchOp '{}' >"$WORK/unk2"
check "unknown X-Amz-Target over HTTP/2" grep -q '"__type":"UnknownOperationException"' "$WORK/unk2"
check "requests know they came over TLS (h2)" grep -q 'proto=h2+tls method=POST path="/" op=ListStreams' "$WORK/server.log"
check "requests know they came over TLS (http/1.1)" grep -q 'proto=http/1.1+tls method=POST path="/" op=ListStreams' "$WORK/server.log"

# Large bodies both ways through the bridge (flow control): a 700 KB record in, records out.
$PY -c "import base64,json,os; print(json.dumps({'StreamName':'tls-s','PartitionKey':'k','Data':base64.b64encode(os.urandom(700000)).decode()}))" >"$WORK/rec.json"
sleep 0.6 # CREATING -> ACTIVE
ok=1
for v in --http1.1 --http2 --http1.1 --http2; do
    out="$(curl -s "$v" --cacert "$CA" -m 20 -X POST -H 'X-Amz-Target: Kinesis_20131202.PutRecord' \
        -H 'Content-Type: application/x-amz-json-1.1' --data-binary @"$WORK/rec.json" -o /dev/null -w '%{http_code}' "$URL/")" || ok=0
    [[ "$out" = 200 ]] || ok=0
done
check "700 KB PutRecord x4 (HTTP/1.1 and HTTP/2)" test "$ok" = 1

# ---- the AWS CLI and boto3 ----
check "aws kinesis list-streams --ca-bundle" bash -c "aws --endpoint-url '$URL' --ca-bundle '$CA' kinesis list-streams --output text | grep tls-s >/dev/null"
check "aws kinesisvideo list-streams --ca-bundle" bash -c "aws --endpoint-url '$URL' --ca-bundle '$CA' kinesisvideo list-streams --output json | grep StreamInfoList >/dev/null"
check "aws without the CA fails verification" fails aws --endpoint-url "$URL" kinesis list-streams
check "boto3 verify=<ca>: records round trip" $PY - "$URL" "$CA" <<'EOF'
import sys, time, boto3
url, ca = sys.argv[1], sys.argv[2]
k = boto3.client("kinesis", endpoint_url=url, verify=ca)
seq = k.put_record(StreamName="tls-s", Data=b"over tls", PartitionKey="p")["SequenceNumber"]
it = k.get_shard_iterator(StreamName="tls-s", ShardId="shardId-000000000000",
                          ShardIteratorType="AT_SEQUENCE_NUMBER",
                          StartingSequenceNumber=seq)["ShardIterator"]
recs = k.get_records(ShardIterator=it)["Records"]
sys.exit(0 if recs and recs[0]["Data"] == b"over tls" else 1)
EOF

# ---- a websocket PutMedia over wss:// ----
if $PY -c 'import websocket' 2>/dev/null; then
    check "wss: upgrade verified with the CA, acks and close" $PY - "$URL" "$CA" "$PORT" <<'EOF'
import sys, time, boto3, websocket
url, ca, port = sys.argv[1], sys.argv[2], sys.argv[3]
kvs = boto3.client("kinesisvideo", endpoint_url=url, verify=ca)
kvs.create_stream(StreamName="wss-s", DataRetentionInHours=1)
for _ in range(50):
    if kvs.describe_stream(StreamName="wss-s")["StreamInfo"]["Status"] == "ACTIVE":
        break
    time.sleep(0.1)
ws = websocket.create_connection(f"wss://localhost:{port}/putMedia?StreamName=wss-s",
                                 timeout=10, sslopt={"ca_certs": ca})
ws.send_binary(b"")  # the end of an empty body
closed = False
while not closed:
    op, data = ws.recv_data(control_frame=True)
    closed = op == websocket.ABNF.OPCODE_CLOSE
try:
    websocket.create_connection(f"wss://localhost:{port}/putMedia?StreamName=nosuch",
                                timeout=10, sslopt={"ca_certs": ca})
    sys.exit(1)
except websocket.WebSocketBadStatusException as e:
    sys.exit(0 if e.status_code == 404 else 1)
EOF
else
    echo "skip - wss: python3-websocket not installed"
fi

# ---- the AWS SDK for JavaScript v3 over https (HTTP/2 by ALPN) ----
if command -v node >/dev/null && [[ -d "$SRC/tests/js/node_modules/@aws-sdk/client-kinesis" ]]; then
    if TR_ENDPOINT="$URL" NODE_EXTRA_CA_CERTS="$CA" NODE_NO_WARNINGS=1 \
        node "$SRC/tests/js/kinesis.test.mjs" >"$WORK/js.out" 2>&1; then
        pass "JS SDK v3 over https: $(tail -1 "$WORK/js.out")"
    else
        fail "JS SDK v3 over https"
        cat "$WORK/js.out"
    fi
else
    echo "skip - JS SDK: node or tests/js/node_modules missing (test_kinesis_js installs them)"
fi

# ---- refusals ----
check "plaintext HTTP to the TLS port refused" fails curl -s -m 5 "http://127.0.0.1:$PORT/health"
check "plaintext h2 prior knowledge refused" fails curl -s -m 5 --http2-prior-knowledge "http://127.0.0.1:$PORT/health"
check "TLS 1.1 refused (curl --tls-max 1.1)" fails curl -s -m 5 --cacert "$CA" --tls-max 1.1 "$URL/health"
check "TLS 1.1 refused (openssl s_client -tls1_1)" fails bash -c "openssl s_client -connect 127.0.0.1:$PORT -tls1_1 </dev/null 2>&1 | grep -q 'Cipher is [A-Z]'"
check "TLS 1.2 works" test "$(curl -s --cacert "$CA" --tlsv1.2 --tls-max 1.2 -o /dev/null -w '%{http_code}' "$URL/health")" = 200
check "TLS 1.3 works" bash -c "openssl s_client -connect 127.0.0.1:$PORT -tls1_3 -CAfile '$CA' </dev/null 2>&1 | grep -q 'TLSv1.3'"
check "CBC-SHA1 suite refused" fails bash -c "openssl s_client -connect 127.0.0.1:$PORT -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA </dev/null 2>&1 | grep -q 'Cipher is ECDHE'"
check "3DES refused" fails bash -c "openssl s_client -connect 127.0.0.1:$PORT -tls1_2 -cipher DES-CBC3-SHA </dev/null 2>&1 | grep -q 'Cipher is DES'"
check "ALPN offers h2" bash -c "openssl s_client -connect 127.0.0.1:$PORT -alpn h2,http/1.1 </dev/null 2>&1 | grep -q 'ALPN protocol: h2'"
check "ALPN http/1.1 alone" bash -c "openssl s_client -connect 127.0.0.1:$PORT -alpn http/1.1 </dev/null 2>&1 | grep -q 'ALPN protocol: http/1.1'"
check "health still fine after the refusals" test "$(curl -s --cacert "$CA" -o /dev/null -w '%{http_code}' "$URL/health")" = 200

# ---- reload on SIGHUP ----
fingerprint() { # the certificate a new connection is served
    openssl s_client -connect "127.0.0.1:$PORT" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256
}
OLD_FP="$(fingerprint)"
check "served cert is c1" test "$OLD_FP" = "$(openssl x509 -in "$CA" -noout -fingerprint -sha256)"
"$BIN" cert --out "$WORK/c2" --host reloaded.test >/dev/null
# An established HTTP/1.1 keep-alive connection and an HTTP/2 session, across the reload.
$PY - "$PORT" "$CA" "$SERVER_PID" "$WORK/c2" "$WORK/live" >"$WORK/reload.out" 2>&1 <<'EOF' && pass "established connections survive the reload" || { fail "established connections survive the reload"; cat "$WORK/reload.out"; }
import http.client, os, shutil, signal, ssl, sys, time
port, ca, pid, new, live = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("localhost", int(port), context=ctx, timeout=10)
c.request("GET", "/health"); r = c.getresponse(); r.read(); assert r.status == 200
sock = c.sock
for name in ("cert.pem", "key.pem"):  # replace the files as a renewal would
    shutil.copy(os.path.join(new, name), os.path.join(live, name + ".new"))
    os.rename(os.path.join(live, name + ".new"), os.path.join(live, name))
os.kill(pid, signal.SIGHUP)
time.sleep(0.5)
for _ in range(3):
    c.request("GET", "/health"); r = c.getresponse(); r.read(); assert r.status == 200
assert c.sock is sock, "reconnected"
EOF
check "new connections get the new cert" test "$(fingerprint)" = "$(openssl x509 -in "$WORK/c2/cert.pem" -noout -fingerprint -sha256)"
check "new cert verifies with its CA" test "$(curl -s --cacert "$WORK/c2/cert.pem" -o /dev/null -w '%{http_code}' "$URL/health")" = 200
check "old CA no longer verifies new connections" fails curl -s --cacert "$CA" "$URL/health"
check "the reload is logged" grep -q 'TLS certificate reloaded' "$WORK/server.log"
# A broken pair on reload: logged, the current one stays.
echo "not a certificate" >"$WORK/live/cert.pem"
kill -HUP "$SERVER_PID"
sleep 0.5
check "broken reload: still serving the last good cert" test "$(curl -s --cacert "$WORK/c2/cert.pem" -o /dev/null -w '%{http_code}' "$URL/health")" = 200
check "broken reload: logged as an error" grep -q 'TLS reload failed' "$WORK/server.log"
check "server alive after reloads" kill -0 "$SERVER_PID"

# ---- a clean stop ----
kill -TERM "$SERVER_PID"
for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
src=0
wait "$SERVER_PID" || src=$?
SERVER_PID=""
check "SIGTERM exits 0" test "$src" = 0
if [[ "$FAILED" -gt 0 ]]; then
    echo "--- server log (tail) ---"
    tail -30 "$WORK/server.log"
fi

echo "test_tls: $PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
