#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang in build-fuzz and runs each
# for FUZZ_SECONDS seconds (default 10), starting from seeds the targets write themselves and
# from what earlier runs found (build-fuzz/fuzz-corpus/<target>, kept between runs).
# Installs nothing: `./run test` installs clang and its runtimes first.
# Exits non-zero when the build fails or any target crashes; a crashing input is saved in
# build-fuzz/fuzz-artifacts/ and can be replayed with `build-fuzz/<target> <file>`.
set -uo pipefail
cd "$(dirname "$0")/../.."

SECONDS_EACH=${FUZZ_SECONDS:-10}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=$(nproc 2>/dev/null || echo 2)

say() { printf '%s\n' "$*" >&2; }

targets=()
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    targets+=("$name")
done

finish() { # passed failed
    printf 'fuzz: %d passed, %d failed\n' "$1" "$2"
    [ "$2" -eq 0 ]
    exit
}

if ! command -v clang >/dev/null; then
    say "fuzz: clang is not installed (./run deps installs it)"
    finish 0 "${#targets[@]}"
fi

say "fuzz: building ${targets[*]} in $BUILD"
mkdir -p "$BUILD"
if ! CC=clang cmake -S . -B "$BUILD" -G Ninja -Wno-dev -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTR_FUZZ=ON >"$BUILD/fuzz-configure.log" 2>&1; then
    tail -20 "$BUILD/fuzz-configure.log" >&2
    say "fuzz: configuring $BUILD failed"
    finish 0 "${#targets[@]}"
fi
if ! ninja -C "$BUILD" -j "$JOBS" "${targets[@]}" >"$BUILD/fuzz-build.log" 2>&1; then
    grep -E 'error|FAILED' "$BUILD/fuzz-build.log" | head -20 >&2
    say "fuzz: build failed (log: $BUILD/fuzz-build.log)"
    finish 0 "${#targets[@]}"
fi

# Scratch files of the targets that need them (fuzz_segment), in memory when possible.
scratch=$(mktemp -d /dev/shm/trfuzz-run.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export TR_FUZZ_TMPDIR=$scratch
export UBSAN_OPTIONS=print_stacktrace=1

mkdir -p "$BUILD/fuzz-artifacts"
passed=0
failed=0
for t in "${targets[@]}"; do
    corpus=$BUILD/fuzz-corpus/$t
    log=$BUILD/fuzz-artifacts/$t.log
    mkdir -p "$corpus"
    # A target writes its seeds and exits in LLVMFuzzerInitialize; -runs=0 ends one that
    # has no seeds to write at once instead of fuzzing without a time limit.
    if ! TR_FUZZ_WRITE_SEEDS=$corpus timeout 120 "$BUILD/$t" -runs=0 >"$log" 2>&1; then
        tail -20 "$log" >&2
        say "fuzz: $t could not write its seeds"
        failed=$((failed + 1))
        continue
    fi
    start=$(date +%s)
    if "$BUILD/$t" -max_total_time="$SECONDS_EACH" -timeout=25 -rss_limit_mb=2048 \
            -artifact_prefix="$BUILD/fuzz-artifacts/$t-" -print_final_stats=1 \
            "$corpus" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        say "fuzz: $t ok ($(($(date +%s) - start)) s, ${runs:-?} runs, corpus $(ls "$corpus" | wc -l))"
        passed=$((passed + 1))
    else
        grep -E 'ERROR|SUMMARY|fuzz check failed|runtime error|Test unit written' "$log" | head -12 >&2
        say "fuzz: $t FAILED (log: $log)"
        failed=$((failed + 1))
    fi
done
finish "$passed" "$failed"
