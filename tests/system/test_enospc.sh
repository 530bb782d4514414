#!/usr/bin/env bash
# ENOSPC test of the shard-log core: tool_enospc runs the store with libenospc_preload.so
# injecting a full disk and failing fsyncs (see tests/support/tool_enospc.c for what it
# checks), then a fresh process without the preload reopens the store and must find exactly
# the records the first one had acknowledged, intact and in order.
set -euo pipefail

BUILD="${TR_BUILD_DIR:?set TR_BUILD_DIR}"
TOOL="$BUILD/tool_enospc"
PRELOAD="$BUILD/libenospc_preload.so"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }

# A sanitized build must accept a library preloaded in front of its runtime.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
export ASAN_OPTIONS

run_rc=0
LD_PRELOAD="$PRELOAD" "$TOOL" run "$WORK/data" >"$WORK/run.out" 2>"$WORK/run.err" || run_rc=$?
sed -e '/^expect /d' -e '/^tool_enospc: /d' "$WORK/run.out"
summary="$(grep '^tool_enospc: ' "$WORK/run.out" || true)"
if [[ $run_rc -eq 0 && "$summary" == *", 0 failed" ]]; then
    pass "disk full and fsync failures under the preload (${summary#tool_enospc: })"
else
    fail "disk full and fsync failures under the preload: status $run_rc, ${summary:-no summary}"
    sed 's/^/    stderr: /' "$WORK/run.err"
fi

# The fdatasync failures must have been logged as such, naming the shard.
if [[ "$(grep -c 'fdatasync failed; shard is now read-only' "$WORK/run.err" || true)" == 2 ]]; then
    pass "each fdatasync failure is logged once with its shard"
else
    fail "fdatasync failures in the log: $(grep -c 'fdatasync failed' "$WORK/run.err" || true), want 2"
fi

# A restart in a fresh process, with a healthy disk.
verify_rc=0
"$TOOL" verify "$WORK/data" >"$WORK/verify.out" 2>"$WORK/verify.err" || verify_rc=$?
expected="$(sed -n 's/^expect \([0-9]*\) \([0-9]*\)$/shard \1 last \2/p' "$WORK/run.out")"
found="$(grep '^shard ' "$WORK/verify.out" || true)"
if [[ $verify_rc -eq 0 && -n "$expected" && "$found" == "$expected" ]]; then
    pass "after a restart every shard holds exactly the acknowledged records ($(echo $found))"
else
    fail "after a restart: status $verify_rc, found [$(echo $found)], expected [$(echo $expected)]"
    sed 's/^/    /' "$WORK/verify.out" "$WORK/verify.err"
fi

echo "test_enospc: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
