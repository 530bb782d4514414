# Shell helpers of the whole-server benchmarks (bench/data_streams.sh, bench/ingest.sh), sourced
# from the repository's root. BENCH_NAME prefixes messages.

say() { printf '%s\n' "$*" >&2; }

# The server under test: stop_server sends SIGTERM, waits up to 10 s, then SIGKILL.
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_up() { # PORT
    for _ in $(seq 1 100); do
        # Any HTTP answer will do (kinesalite has no /health).
        if curl -s -o /dev/null "http://127.0.0.1:$1/health"; then return 0; fi
        sleep 0.1
    done
    say "${BENCH_NAME:-bench}: the server on port $1 did not come up"
    exit 1
}

val() { # LINE KEY -> the value of KEY=value in LINE
    printf '%s\n' "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'
}
