#!/usr/bin/env bash
# System test of the Kinesis Video Streams control plane through the AWS CLI (Debian awscli):
# every operation, errors as the CLI reports them, raw-request errors with their HTTP status and
# x-amzn-ErrorType (curl), restart durability, and delete removing the stream's shard files.
set -uo pipefail # no -e: a failing step is counted and the rest go on

BIN="${TR_BUILD_DIR:?set TR_BUILD_DIR}/tributary"
AWS=/usr/bin/aws
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
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1${2:+: $2}"; }
check() { local name="$1"; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# eq NAME GOT WANT: equal once runs of tabs and newlines are single spaces.
squash() { printf '%s' "$1" | tr -s '\t\n' '  ' | sed 's/ *$//'; }
eq() {
    local got want
    got="$(squash "$2")" want="$(squash "$3")"
    if [[ "$got" == "$want" ]]; then pass "$1"; else fail "$1" "got '$got', want '$want'"; fi
}

# A clean CLI environment: dummy credentials, no user config, no retries.
export HOME="$WORK/home" AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_PAGER="" AWS_MAX_ATTEMPTS=1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
mkdir -p "$HOME"

PORT="$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"

start_server() {
    printf 'stream_transition_ms = 0\n' >"$WORK/tributary.conf"
    "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --config "$WORK/tributary.conf" \
        >>"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -s -o /dev/null "$URL/health" && return 0
        sleep 0.05
    done
    fail "server starts"
    return 1
}
STOP_RC=""
stop_server() { # stop_server SIGNAL; the exit status in STOP_RC
    STOP_RC=0
    kill "-$1" "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || STOP_RC=$?
    SERVER_PID=""
}

v() { "$AWS" --endpoint-url "$URL" --output text kinesisvideo "$@"; }
# err NAME CODE aws-args...: the CLI fails (exit 254) naming the AWS error code.
err() {
    local name="$1" code="$2" rc=0
    shift 2
    "$AWS" --endpoint-url "$URL" kinesisvideo "$@" >"$WORK/err.out" 2>"$WORK/err.txt" || rc=$?
    if [[ "$rc" == 254 ]] && grep -q "($code)" "$WORK/err.txt"; then
        pass "$name"
    else
        fail "$name" "exit $rc: $(head -c 300 "$WORK/err.txt")"
    fi
}
# raw PATH JSON -> "status x-amzn-ErrorType Message-present" of a request sent with curl
raw() {
    curl -s -D "$WORK/raw.h" -o "$WORK/raw.out" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' --data-binary "$2" "$URL$1" >"$WORK/raw.code"
    $PY - "$WORK/raw.code" "$WORK/raw.h" "$WORK/raw.out" <<'EOF'
import json, sys
code = open(sys.argv[1]).read().strip()
etype = "-"
for line in open(sys.argv[2], errors="replace"):
    if line.lower().startswith("x-amzn-errortype:"):
        etype = line.split(":", 1)[1].strip()
try:
    body = json.load(open(sys.argv[3]))
    msg = "Message" if isinstance(body.get("Message"), str) else "no-Message"
except ValueError:
    msg = "not-json"
print(code, etype, msg)
EOF
}
shard_dirs() { ls "$WORK/data/shards" 2>/dev/null | sort; }

start_server

# ---- create, describe, list -------------------------------------------------------------------
BEFORE="$(shard_dirs)"
ARN="$(v create-stream --stream-name cli-cam --device-name pi --media-type video/h264 \
    --data-retention-in-hours 24 --tags site=home,floor=1 --query StreamARN)"
check "create-stream: ARN" bash -c "[[ '$ARN' =~ ^arn:aws:kinesisvideo:us-east-1:000000000000:stream/cli-cam/[0-9]{13}$ ]]"
UID_DIR="$(comm -13 <(printf '%s\n' "$BEFORE") <(shard_dirs))"
check "create-stream: one new shard directory" test -n "$UID_DIR" -a -d "$WORK/data/shards/$UID_DIR"
eq "describe-stream" \
    "$(v describe-stream --stream-name cli-cam --query 'StreamInfo.[StreamName,DeviceName,MediaType,Version,Status,DataRetentionInHours]')" \
    "cli-cam pi video/h264 1 ACTIVE 24"
eq "describe-stream --stream-arn" "$(v describe-stream --stream-arn "$ARN" --query StreamInfo.StreamARN)" "$ARN"
err "create-stream again: ResourceInUseException" ResourceInUseException create-stream --stream-name cli-cam
err "describe a missing stream: ResourceNotFoundException" ResourceNotFoundException describe-stream --stream-name nope
err "bad stream name: InvalidArgumentException" InvalidArgumentException create-stream --stream-name 'no spaces'
for n in a-1 a-2 a-3 b-1; do v create-stream --stream-name "$n" >/dev/null || fail "create $n"; done
eq "list-streams (all pages)" "$(v list-streams --query 'StreamInfoList[].StreamName')" "a-1 a-2 a-3 b-1 cli-cam"
eq "list-streams --page-size 2 pages with NextToken" "$(v list-streams --page-size 2 --query 'StreamInfoList[].StreamName')" "a-1 a-2 a-3 b-1 cli-cam"
eq "list-streams --max-items 2: a NextToken" \
    "$("$AWS" --endpoint-url "$URL" --output json kinesisvideo list-streams --max-items 2 | $PY -c 'import json,sys; d=json.load(sys.stdin); print(len(d["StreamInfoList"]), "NextToken" in d)')" "2 True"
eq "list-streams --stream-name-condition BEGINS_WITH" \
    "$(v list-streams --stream-name-condition ComparisonOperator=BEGINS_WITH,ComparisonValue=a- --query 'StreamInfoList[].StreamName')" "a-1 a-2 a-3"

# ---- update, retention, endpoint -------------------------------------------------------------------
err "update-stream with a stale version: VersionMismatchException" VersionMismatchException update-stream --stream-name cli-cam --current-version 9 --device-name x
check "update-stream" v update-stream --stream-name cli-cam --current-version 1 --device-name pi5 --media-type video/h265
eq "after update-stream" "$(v describe-stream --stream-name cli-cam --query 'StreamInfo.[DeviceName,MediaType,Version]')" "pi5 video/h265 2"
check "update-data-retention INCREASE" v update-data-retention --stream-name cli-cam --current-version 2 --operation INCREASE_DATA_RETENTION --data-retention-change-in-hours 24
check "update-data-retention DECREASE" v update-data-retention --stream-arn "$ARN" --current-version 3 --operation DECREASE_DATA_RETENTION --data-retention-change-in-hours 12
eq "retention 36, version 4" "$(v describe-stream --stream-name cli-cam --query 'StreamInfo.[DataRetentionInHours,Version]')" "36 4"
err "decrease below 0: InvalidArgumentException" InvalidArgumentException update-data-retention --stream-name cli-cam --current-version 4 --operation DECREASE_DATA_RETENTION --data-retention-change-in-hours 37
err "update-data-retention with a stale version: VersionMismatchException" VersionMismatchException update-data-retention --stream-name cli-cam --current-version 1 --operation INCREASE_DATA_RETENTION --data-retention-change-in-hours 1
eq "get-data-endpoint PUT_MEDIA" "$(v get-data-endpoint --stream-name cli-cam --api-name PUT_MEDIA --query DataEndpoint)" "$URL"
eq "get-data-endpoint GET_HLS_STREAMING_SESSION_URL" "$(v get-data-endpoint --stream-arn "$ARN" --api-name GET_HLS_STREAMING_SESSION_URL --query DataEndpoint)" "$URL"
err "get-data-endpoint of a missing stream: ResourceNotFoundException" ResourceNotFoundException get-data-endpoint --stream-name nope --api-name GET_MEDIA

# ---- tags -----------------------------------------------------------------------------------------
check "tag-stream" v tag-stream --stream-name cli-cam --tags owner=ops,floor=2
check "untag-stream" v untag-stream --stream-name cli-cam --tag-key-list site
eq "list-tags-for-stream" "$(v list-tags-for-stream --stream-name cli-cam --query 'Tags.[floor,owner]')" "2 ops"
check "tag-resource" v tag-resource --resource-arn "$ARN" --tags Key=cam,Value=front
check "untag-resource" v untag-resource --resource-arn "$ARN" --tag-key-list owner
eq "list-tags-for-resource" "$(v list-tags-for-resource --resource-arn "$ARN" --query 'Tags.[cam,floor]')" "front 2"
TAGS="$($PY -c 'print(",".join(f"k{i}=v" for i in range(49)))')"
err "tag-stream past 50: TagsPerResourceExceededLimitException" TagsPerResourceExceededLimitException tag-stream --stream-name cli-cam --tags "$TAGS"
eq "refused tags changed nothing" "$(v list-tags-for-stream --stream-name cli-cam --query 'length(keys(Tags))')" 2

# ---- raw requests: KVS error answers -----------------------------------------------------------------
eq "missing stream: 404 with x-amzn-ErrorType and Message" "$(raw /describeStream '{"StreamName":"nope"}')" "404 ResourceNotFoundException Message"
eq "bad name: 400 InvalidArgumentException" "$(raw /createStream '{"StreamName":"a b"}')" "400 InvalidArgumentException Message"
eq "retention over 87600: 400 InvalidArgumentException" "$(raw /createStream '{"StreamName":"r","DataRetentionInHours":87601}')" "400 InvalidArgumentException Message"
eq "stale delete: 400 VersionMismatchException" "$(raw /deleteStream "{\"StreamARN\":\"$ARN\",\"CurrentVersion\":\"1\"}")" "400 VersionMismatchException Message"
eq "malformed JSON: 400 SerializationException" "$(raw /listStreams '{nope')" "400 SerializationException Message"
check "responses are application/json" grep -qi '^content-type: application/json' "$WORK/raw.h"

# ---- restart -----------------------------------------------------------------------------------
stop_server TERM
eq "SIGTERM: exit 0" "$STOP_RC" 0
start_server
eq "after restart: the stream, its members and version" \
    "$(v describe-stream --stream-name cli-cam --query 'StreamInfo.[StreamARN,DeviceName,MediaType,Version,DataRetentionInHours]')" \
    "$ARN pi5 video/h265 4 36"
eq "after restart: tags" "$(v list-tags-for-resource --resource-arn "$ARN" --query 'Tags.[cam,floor]')" "front 2"
eq "after restart: list" "$(v list-streams --query 'StreamInfoList[].StreamName')" "a-1 a-2 a-3 b-1 cli-cam"
stop_server KILL
start_server
eq "after kill -9: the stream" "$(v describe-stream --stream-arn "$ARN" --query StreamInfo.Version)" 4

# ---- delete ----------------------------------------------------------------------------------------
check "delete-stream --current-version" v delete-stream --stream-arn "$ARN" --current-version 4
err "deleted: ResourceNotFoundException" ResourceNotFoundException describe-stream --stream-name cli-cam
for _ in $(seq 1 100); do [[ -d "$WORK/data/shards/$UID_DIR" ]] || break; sleep 0.05; done
check "deleted: the shard's directory is gone" test ! -d "$WORK/data/shards/$UID_DIR"
stop_server TERM
start_server
err "deleted: still gone after a restart" ResourceNotFoundException describe-stream --stream-arn "$ARN"
eq "the others remain" "$(v list-streams --query 'StreamInfoList[].StreamName')" "a-1 a-2 a-3 b-1"

stop_server TERM
eq "final SIGTERM: exit 0" "$STOP_RC" 0
for marker in "ERROR: AddressSanitizer" "runtime error:" "LeakSanitizer" "level=error"; do
    if grep -q "$marker" "$WORK/server.log"; then fail "server log: $marker"; tail -50 "$WORK/server.log"; fi
done

echo "test_kvs_cli: $PASSED passed, $FAILED failed"
[[ "$FAILED" -eq 0 ]]
