#!/usr/bin/env bash
# System test of the Kinesis Data Streams API through the AWS CLI (Debian awscli): every
# operation the server serves (consumers and SubscribeToShard aside), errors as the CLI reports
# them, raw-request errors with their HTTP status (curl), restart durability and iterator expiry.
set -uo pipefail # no -e: a failing step is counted and the rest go on

BIN="${TR_BUILD_DIR:?set TR_BUILD_DIR}/tributary"
AWS=/usr/bin/aws
PY=/usr/bin/python3
WORK="$(mktemp -d)"
SERVER_PID=""
START=$SECONDS
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
# eq NAME GOT WANT: equal once runs of tabs and newlines (text output, one line per page) are
# single spaces.
squash() { printf '%s' "$1" | tr -s '\t\n' '  ' | sed 's/ *$//'; }
eq() {
    local got want
    got="$(squash "$2")" want="$(squash "$3")"
    if [[ "$got" == "$want" ]]; then pass "$1"; else fail "$1" "got '$got', want '$want'"; fi
}

# A clean CLI environment: dummy credentials (no SigV4 check yet), no user config, no retries.
export HOME="$WORK/home" AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_PAGER="" AWS_MAX_ATTEMPTS=1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
mkdir -p "$HOME"

PORT="$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"

start_server() { # start_server [extra config lines...]
    { echo "stream_transition_ms = 0"; echo "max_request_bytes = 8M"; printf '%s\n' "$@"; } >"$WORK/tributary.conf"
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

k() { "$AWS" --endpoint-url "$URL" --output text kinesis "$@"; }
kj() { "$AWS" --endpoint-url "$URL" --output json kinesis "$@"; }
# err NAME CODE aws-args...: the CLI fails (exit 254) naming the AWS error code.
err() {
    local name="$1" code="$2" rc=0
    shift 2
    "$AWS" --endpoint-url "$URL" kinesis "$@" >"$WORK/err.out" 2>"$WORK/err.txt" || rc=$?
    if [[ "$rc" == 254 ]] && grep -q "($code)" "$WORK/err.txt"; then
        pass "$name"
    else
        fail "$name" "exit $rc: $(head -c 300 "$WORK/err.txt")"
    fi
}
b64() { printf '%s' "$1" | base64 -w0; }
# kj ... | pyq 'EXPR': EXPR over the JSON answer d; data(d) is the records' decoded Data.
pyq() {
    $PY -c 'import base64, json, sys
d = json.load(sys.stdin)
data = lambda d: " ".join(base64.b64decode(r["Data"]).decode() for r in d["Records"])
print(eval(sys.argv[1]))' "$1"
}
# raw TARGET CONTENT-TYPE BODY-FILE -> "status type" of a request sent with curl
raw() {
    curl -s -o "$WORK/raw.out" -w '%{http_code}' -X POST -H "X-Amz-Target: Kinesis_20131202.$1" \
        -H "Content-Type: $2" --data-binary @"$3" "$URL/"
}
raw_type() {
    $PY - "$WORK/raw.out" "$1" <<'EOF'
import json, sys
b = open(sys.argv[1], "rb").read()
if sys.argv[2] == "json":
    print(json.loads(b).get("__type"))
else:
    # CBOR map {"__type": text, ...}: find the text after the key.
    i = b.find(b"__type")
    n = b[i + 6] & 0x1f if i >= 0 else 0
    print(b[i + 7:i + 7 + n].decode() if i >= 0 and n < 24 else None)
EOF
}

start_server

# ---- streams ---------------------------------------------------------------------------------
check "create-stream" k create-stream --stream-name cli-a --shard-count 2
eq "create-stream: 2 open shards, ACTIVE" "$(k describe-stream-summary --stream-name cli-a --query 'StreamDescriptionSummary.[OpenShardCount,StreamStatus]')" "2 ACTIVE"
check "create-stream ON_DEMAND" k create-stream --stream-name cli-od --stream-mode-details StreamMode=ON_DEMAND
eq "create-stream ON_DEMAND: 4 shards, mode" \
    "$(k describe-stream-summary --stream-name cli-od --query 'StreamDescriptionSummary.[OpenShardCount,StreamModeDetails.StreamMode]')" "4 ON_DEMAND"
err "duplicate create-stream: ResourceInUseException" ResourceInUseException create-stream --stream-name cli-a --shard-count 1
err "bad stream name: ValidationException" ValidationException create-stream --stream-name 'no spaces' --shard-count 1
err "describe unknown stream: ResourceNotFoundException" ResourceNotFoundException describe-stream --stream-name nope
eq "describe-stream --page-size 1 pages through both shards" \
    "$(k describe-stream --stream-name cli-a --page-size 1 --query 'StreamDescription.Shards[].ShardId')" "shardId-000000000000 shardId-000000000001"
eq "list-streams --page-size 1 (ExclusiveStartStreamName pages)" "$(k list-streams --page-size 1 --query StreamNames)" "cli-a cli-od"
eq "list-streams --max-items 1: one name and a NextToken" "$(kj list-streams --max-items 1 | pyq 'd["StreamNames"], "NextToken" in d')" "(['cli-a'], True)"
eq "list-shards" "$(k list-shards --stream-name cli-a --query 'Shards[].[ShardId,HashKeyRange.StartingHashKey]')" \
    "shardId-000000000000 0 shardId-000000000001 170141183460469231731687303715884105728"

# ---- records ---------------------------------------------------------------------------------
SEQ1="$(k put-record --stream-name cli-a --partition-key pk --data "$(b64 first)" --explicit-hash-key 0 --query SequenceNumber)"
check "put-record: sequence number" test -n "$SEQ1"
printf '[{"Data":"%s","PartitionKey":"a","ExplicitHashKey":"1"},{"Data":"%s","PartitionKey":"b","ExplicitHashKey":"2"},{"Data":"%s","PartitionKey":"c","ExplicitHashKey":"340282366920938463463374607431768211455"}]' \
    "$(b64 second)" "$(b64 third)" "$(b64 other-shard)" >"$WORK/recs.json"
eq "put-records: results and shards" \
    "$(k put-records --stream-name cli-a --records "file://$WORK/recs.json" --query '[FailedRecordCount, Records[].ShardId]')" \
    "0 shardId-000000000000 shardId-000000000000 shardId-000000000001"
err "put-record ExplicitHashKey over 2^128-1: ValidationException" ValidationException put-record --stream-name cli-a --partition-key k --data "$(b64 x)" --explicit-hash-key 340282366920938463463374607431768211456
IT="$(k get-shard-iterator --stream-name cli-a --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --query ShardIterator)"
eq "get-records TRIM_HORIZON: records, caught up" "$(kj get-records --shard-iterator "$IT" | pyq 'data(d), d["MillisBehindLatest"], "NextShardIterator" in d')" "('first second third', 0, True)"
eq "get-records --limit 1" "$(kj get-records --shard-iterator "$IT" --limit 1 | pyq 'data(d)')" first
IT="$(k get-shard-iterator --stream-name cli-a --shard-id shardId-000000000000 --shard-iterator-type AT_SEQUENCE_NUMBER --starting-sequence-number "$SEQ1" --query ShardIterator)"
eq "AT_SEQUENCE_NUMBER" "$(kj get-records --shard-iterator "$IT" --limit 1 | pyq 'data(d)')" first
IT="$(k get-shard-iterator --stream-name cli-a --shard-id shardId-000000000000 --shard-iterator-type AFTER_SEQUENCE_NUMBER --starting-sequence-number "$SEQ1" --query ShardIterator)"
eq "AFTER_SEQUENCE_NUMBER" "$(kj get-records --shard-iterator "$IT" --limit 1 | pyq 'data(d)')" second
IT="$(k get-shard-iterator --stream-name cli-a --shard-id shardId-000000000000 --shard-iterator-type AT_TIMESTAMP --timestamp 2000-01-01T00:00:00Z --query ShardIterator)"
eq "AT_TIMESTAMP in the past" "$(kj get-records --shard-iterator "$IT" --limit 1 | pyq 'data(d)')" first
LATEST="$(k get-shard-iterator --stream-name cli-a --shard-id shardId-000000000000 --shard-iterator-type LATEST --query ShardIterator)"
eq "put-record" "$(k put-record --stream-name cli-a --partition-key pk --data "$(b64 fourth)" --explicit-hash-key 3 --query ShardId)" shardId-000000000000
eq "LATEST then put-record" "$(kj get-records --shard-iterator "$LATEST" | pyq 'data(d)')" fourth
err "AT_SEQUENCE_NUMBER without a number: InvalidArgumentException" InvalidArgumentException get-shard-iterator --stream-name cli-a --shard-id shardId-000000000000 --shard-iterator-type AT_SEQUENCE_NUMBER
err "invalid iterator: InvalidArgumentException" InvalidArgumentException get-records --shard-iterator AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
err "unknown shard: ResourceNotFoundException" ResourceNotFoundException get-shard-iterator --stream-name cli-a --shard-id shardId-000000000007 --shard-iterator-type LATEST
head -c $((1024 * 1024 + 1)) /dev/zero | base64 -w0 >"$WORK/big.b64"
err "record over 1 MiB: ValidationException" ValidationException put-record --stream-name cli-a --partition-key k --data "file://$WORK/big.b64"

# ---- retention, tags, encryption, monitoring, mode, limits ----------------------------------------
SUMMARY='StreamDescriptionSummary.[RetentionPeriodHours,EncryptionType,KeyId,EnhancedMonitoring[0].ShardLevelMetrics]'
check "increase-stream-retention-period" k increase-stream-retention-period --stream-name cli-a --retention-period-hours 48
check "start-stream-encryption" k start-stream-encryption --stream-name cli-a --encryption-type KMS --key-id alias/aws/kinesis
eq "enable-enhanced-monitoring" "$(k enable-enhanced-monitoring --stream-name cli-a --shard-level-metrics IncomingBytes --query DesiredShardLevelMetrics)" IncomingBytes
eq "retention 48, KMS, IncomingBytes" "$(k describe-stream-summary --stream-name cli-a --query "$SUMMARY")" "48 KMS alias/aws/kinesis IncomingBytes"
eq "put-record on an encrypted stream: EncryptionType KMS" "$(k put-record --stream-name cli-a --partition-key k --data "$(b64 enc)" --explicit-hash-key 4 --query EncryptionType)" KMS
check "decrease-stream-retention-period" k decrease-stream-retention-period --stream-name cli-a --retention-period-hours 24
check "stop-stream-encryption" k stop-stream-encryption --stream-name cli-a --encryption-type KMS --key-id alias/aws/kinesis
eq "disable-enhanced-monitoring" "$(k disable-enhanced-monitoring --stream-name cli-a --shard-level-metrics ALL --query 'length(DesiredShardLevelMetrics)')" 0
eq "retention 24, NONE, no metrics" "$(k describe-stream-summary --stream-name cli-a --query "$SUMMARY")" "24 NONE None"
err "retention below 24 h: InvalidArgumentException" InvalidArgumentException decrease-stream-retention-period --stream-name cli-a --retention-period-hours 12
check "add-tags-to-stream" k add-tags-to-stream --stream-name cli-a --tags team=data,env=test
check "remove-tags-from-stream" k remove-tags-from-stream --stream-name cli-a --tag-keys env
eq "list-tags-for-stream" "$(k list-tags-for-stream --stream-name cli-a --query 'Tags[].[Key,Value]')" "team data"
ARN="arn:aws:kinesis:us-east-1:000000000000:stream/cli-a"
check "update-stream-mode ON_DEMAND" k update-stream-mode --stream-arn "$ARN" --stream-mode-details StreamMode=ON_DEMAND
eq "describe-limits: open shards, on-demand streams" "$(k describe-limits --query '[OpenShardCount,OnDemandStreamCount]')" "6 2"
check "update-stream-mode PROVISIONED" k update-stream-mode --stream-arn "$ARN" --stream-mode-details StreamMode=PROVISIONED

# ---- resharding --------------------------------------------------------------------------------
check "split-shard" k split-shard --stream-name cli-a --shard-to-split shardId-000000000000 --new-starting-hash-key 85070591730234615865843651857942052864
eq "list-shards --shard-filter AT_LATEST" \
    "$(k list-shards --stream-name cli-a --shard-filter Type=AT_LATEST --query 'Shards[].ShardId')" \
    "shardId-000000000001 shardId-000000000002 shardId-000000000003"
eq "list-shards --shard-filter AFTER_SHARD_ID" \
    "$(k list-shards --stream-name cli-a --shard-filter Type=AFTER_SHARD_ID,ShardId=shardId-000000000002 --query 'Shards[].ShardId')" shardId-000000000003
IT="$(k get-shard-iterator --stream-name cli-a --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --query ShardIterator)"
eq "closed parent: records, no NextShardIterator, ChildShards" \
    "$(kj get-records --shard-iterator "$IT" | pyq 'data(d), d.get("NextShardIterator"), [c["ShardId"] for c in d["ChildShards"]]')" \
    "('first second third fourth enc', None, ['shardId-000000000002', 'shardId-000000000003'])"
err "split a closed shard: InvalidArgumentException" InvalidArgumentException split-shard --stream-name cli-a --shard-to-split shardId-000000000000 --new-starting-hash-key 5
check "merge-shards" k merge-shards --stream-name cli-a --shard-to-merge shardId-000000000002 --adjacent-shard-to-merge shardId-000000000003
err "merge with a closed shard: InvalidArgumentException" InvalidArgumentException merge-shards --stream-name cli-a --shard-to-merge shardId-000000000001 --adjacent-shard-to-merge shardId-000000000000
eq "update-shard-count" "$(k update-shard-count --stream-name cli-a --target-shard-count 4 --scaling-type UNIFORM_SCALING --query '[CurrentShardCount,TargetShardCount]')" "2 4"
eq "shards after split, merge, update-shard-count: 9, 4 open, merged child's parents" \
    "$(kj list-shards --stream-name cli-a | pyq 'len(d["Shards"]), sum("EndingSequenceNumber" not in s["SequenceNumberRange"] for s in d["Shards"]), [(s.get("ParentShardId"), s.get("AdjacentParentShardId")) for s in d["Shards"] if s["ShardId"] == "shardId-000000000004"]')" \
    "(9, 4, [('shardId-000000000002', 'shardId-000000000003')])"

# ---- raw requests: errors with their HTTP status -------------------------------------------------
printf '{not json' >"$WORK/bad.json"
eq "malformed JSON: 400 SerializationException" "$(raw PutRecord application/x-amz-json-1.1 "$WORK/bad.json") $(raw_type json)" "400 SerializationException"
printf '{}' >"$WORK/empty.json"
eq "unknown target: 400 UnknownOperationException" "$(raw NoSuchOperation application/x-amz-json-1.1 "$WORK/empty.json") $(raw_type json)" "400 UnknownOperationException"
eq "missing StreamName: 400 ValidationException" "$(raw DescribeStream application/x-amz-json-1.1 "$WORK/empty.json") $(raw_type json)" "400 ValidationException"
printf '\xa2\x6aStreamName' >"$WORK/bad.cbor"
eq "malformed CBOR: 400 SerializationException" "$(raw PutRecord application/x-amz-cbor-1.1 "$WORK/bad.cbor") $(raw_type cbor)" "400 SerializationException"
check "malformed CBOR: answered in CBOR" bash -c "curl -s -D - -o /dev/null -X POST -H 'X-Amz-Target: Kinesis_20131202.PutRecord' -H 'Content-Type: application/x-amz-cbor-1.1' --data-binary @'$WORK/bad.cbor' '$URL/' | grep -qi '^content-type: application/x-amz-cbor-1.1'"
head -c $((9 * 1024 * 1024)) /dev/zero >"$WORK/huge"
eq "oversized body (max_request_bytes = 8M): 413" "$(raw PutRecord application/x-amz-json-1.1 "$WORK/huge")" 413
check "server alive after bad input" kill -0 "$SERVER_PID"

# ---- restart durability --------------------------------------------------------------------------
check "create-stream cli-d" k create-stream --stream-name cli-d --shard-count 1
printf '[{"Data":"%s","PartitionKey":"a"},{"Data":"%s","PartitionKey":"b"}]' "$(b64 durable-2)" "$(b64 durable-3)" >"$WORK/d.json"
eq "put-record cli-d" "$(k put-record --stream-name cli-d --partition-key p1 --data "$(b64 durable-1)" --query ShardId)" shardId-000000000000
eq "put-records cli-d" "$(k put-records --stream-name cli-d --records "file://$WORK/d.json" --query FailedRecordCount)" 0
OLD_IT="$(k get-shard-iterator --stream-name cli-d --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --query ShardIterator)"
stop_server TERM
eq "SIGTERM: exit 0" "$STOP_RC" 0
start_server
eq "after SIGTERM: old iterator reads every record" "$(kj get-records --shard-iterator "$OLD_IT" | pyq 'data(d)')" "durable-1 durable-2 durable-3"
eq "after SIGTERM: tags and shards kept" "$(k list-tags-for-stream --stream-name cli-a --query 'Tags[].Key') $(k list-shards --stream-name cli-a --query 'length(Shards)')" "team 9"
eq "put-record after restart" "$(k put-record --stream-name cli-d --partition-key p4 --data "$(b64 durable-4)" --query ShardId)" shardId-000000000000
stop_server KILL
start_server
eq "after kill -9: old iterator reads every record" "$(kj get-records --shard-iterator "$OLD_IT" | pyq 'data(d)')" "durable-1 durable-2 durable-3 durable-4"
IT="$(k get-shard-iterator --stream-name cli-a --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --query ShardIterator)"
eq "after kill -9: closed parent intact" "$(kj get-records --shard-iterator "$IT" | pyq 'data(d), len(d["ChildShards"])')" "('first second third fourth enc', 2)"

# ---- iterator expiry (iterator_ttl_ms) -----------------------------------------------------------
stop_server TERM
start_server "iterator_ttl_ms = 1000"
IT="$(k get-shard-iterator --stream-name cli-d --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --query ShardIterator)"
sleep 1.2
err "iterator older than iterator_ttl_ms: ExpiredIteratorException" ExpiredIteratorException get-records --shard-iterator "$IT"
err "iterator from before the restarts, past iterator_ttl_ms: ExpiredIteratorException" ExpiredIteratorException get-records --shard-iterator "$OLD_IT"

# ---- delete ----------------------------------------------------------------------------------------
check "delete-stream" k delete-stream --stream-name cli-od
check "wait stream-not-exists" k wait stream-not-exists --stream-name cli-od
eq "deleted stream not listed" "$(k list-streams --query StreamNames)" "cli-a cli-d"

stop_server TERM
eq "final SIGTERM: exit 0" "$STOP_RC" 0
if grep -Eq 'AddressSanitizer|runtime error:|LeakSanitizer' "$WORK/server.log"; then
    fail "no sanitizer report in the server log"
    tail -50 "$WORK/server.log"
fi

echo "test_kinesis_cli: $PASSED passed, $FAILED failed ($((SECONDS - START)) s)"
[[ "$FAILED" -eq 0 ]]
