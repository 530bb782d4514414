#!/usr/bin/env bash
# System test of libtributary through its CLI example, tributary-consumer, against the real
# server: a GStreamer-made H.264 clip (90 frames, a keyframe every 30) is pushed with curl's
# PutMedia, then read back with GetMedia from every kind of start, with
# GetMediaForFragmentList, and live (a consumer waiting at NOW while a second clip arrives);
# frames are counted per fragment and each fragment's first keyframe becomes a JPEG that
# `file` and ffprobe must read as 320x240.
#
# Needs gst-launch-1.0 with videotestsrc, x264enc, h264parse and matroskamux (Debian
# gstreamer1.0-tools, -plugins-base, -plugins-good, -plugins-ugly), ffprobe (ffmpeg) and
# file; skipped without them.
set -uo pipefail

BUILD="${TR_BUILD_DIR:?set TR_BUILD_DIR}"
BIN="$BUILD/tributary"
CONSUMER="$BUILD/tributary-consumer"
WORK="$(mktemp -d)"
SERVER_PID=""
LIVE_PID=""
cleanup() {
    for pid in "$LIVE_PID" "$SERVER_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    done
    [[ -n "${KEEP:-}" ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }
check() { local name="$1"; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
finish() {
    echo "test_consumer: $PASSED passed, $FAILED failed"
    [[ "$FAILED" -eq 0 ]]
    exit
}

for tool in gst-launch-1.0 gst-inspect-1.0 ffprobe file curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "skip - $tool is not installed (./run deps installs it)"
        finish
    fi
done
for element in videotestsrc x264enc h264parse matroskamux; do
    if ! gst-inspect-1.0 "$element" >/dev/null 2>&1; then
        echo "skip - GStreamer element $element is missing"
        finish
    fi
done

# A 3 s clip: 90 frames of 320x240 at 30 fps, a keyframe every 30 frames: 3 fragments.
make_clip() {
    gst-launch-1.0 -q videotestsrc num-buffers=90 pattern="$2" \
        ! video/x-raw,width=320,height=240,framerate=30/1 \
        ! x264enc key-int-max=30 bframes=0 ! h264parse ! matroskamux streamable=true \
        ! filesink location="$1" >"$WORK/gst.log" 2>&1
}
make_clip "$WORK/clip.mkv" smpte
check "GStreamer made the clip" test -s "$WORK/clip.mkv"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
printf 'stream_transition_ms = 0\n' >"$WORK/tributary.conf"
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --config "$WORK/tributary.conf" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    curl -s -o /dev/null "$URL/health" && break
    sleep 0.1
done

create() {
    curl -s -o "$WORK/create.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -d "{\"StreamName\":\"$1\",\"DataRetentionInHours\":1,\"MediaType\":\"video/h264\"}" \
        "$URL/createStream"
}
put_media() { # stream file
    curl -s -N -X POST -H "x-amzn-stream-name: $1" -H 'x-amzn-fragment-timecode-type: RELATIVE' \
        -H 'Transfer-Encoding: chunked' --data-binary @"$2" "$URL/putMedia"
}
consume() { # output-file args...
    local out="$1"; shift
    "$CONSUMER" --endpoint "$URL" --idle-timeout 5000 "$@" >"$out" 2>"$out.err"
}

check "CreateStream 200" test "$(create cam)" = 200
put_media cam "$WORK/clip.mkv" >"$WORK/acks1"
check "PutMedia persisted 3 fragments" test "$(grep -c '"EventType":"PERSISTED"' "$WORK/acks1")" = 3

# --count-frames from EARLIEST: 90 frames in 3 fragments of 30, each with one keyframe.
consume "$WORK/count" --stream cam --start EARLIEST --count-frames --max-fragments 3
rc=$?
check "count-frames exits 0" test "$rc" = 0
check "count-frames total" grep -qx 'total fragments=3 frames=90' "$WORK/count"
check "3 fragment lines of 30 frames, 1 keyframe" \
    test "$(grep -c '^fragment [0-9]* .* frames=30 keyframes=1 track1=30 codec1=V_MPEG4/ISO/AVC:320x240' "$WORK/count")" = 3
mapfile -t NUMBERS < <(awk '/^fragment /{print $2}' "$WORK/count")
check "fragment numbers increase" test "${#NUMBERS[@]}" = 3 -a "${NUMBERS[0]}" \< "${NUMBERS[1]}" -a "${NUMBERS[1]}" \< "${NUMBERS[2]}"
check "fragment numbers match the acks" \
    grep -q "\"FragmentNumber\":\"${NUMBERS[0]:-none}\"" "$WORK/acks1"
check "producer timestamps 1 s apart" bash -c "
    awk '/^fragment /{sub(/producer=/, \"\", \$4); print \$4}' '$WORK/count' |
    awk 'NR > 1 { d = \$1 - prev; if (d < 0.99 || d > 1.01) bad = 1 } { prev = \$1 } END { exit bad }'"
# Without --max-fragments: the answer goes on (live) until the idle timeout.
consume "$WORK/idle" --stream cam --start EARLIEST --count-frames
check "idle timeout ends a caught-up GetMedia cleanly" test $? = 0
check "idle timeout run saw the 3 fragments" grep -qx 'total fragments=3 frames=90' "$WORK/idle"

# --thumbnails: a 320x240 JPEG per fragment.
consume "$WORK/thumbs" --stream cam --start EARLIEST --thumbnails "$WORK/thumbs.d" --max-fragments 3
check "thumbnails exits 0" test $? = 0
check "thumbnails reported" grep -qx 'thumbnails written=3 failed=0' "$WORK/thumbs"
count=0
for n in "${NUMBERS[@]}"; do
    jpg="$WORK/thumbs.d/$n.jpg"
    if file "$jpg" | grep -q 'JPEG image data.*320x240' &&
        [[ "$(ffprobe -v error -select_streams v:0 -show_entries stream=codec_name,width,height \
            -of csv=p=0 "$jpg")" == "mjpeg,320,240" ]]; then
        count=$((count + 1))
    fi
done
check "3 JPEGs that file and ffprobe read as 320x240" test "$count" = 3
check "nothing else in the thumbnail directory" test "$(ls "$WORK/thumbs.d" | wc -l)" = 3
# The picture is the test pattern, not a grey or green decoder failure: its top-left bar is
# light (smpte starts with a 75% white bar).
check "thumbnail shows the test pattern" bash -c "
    ffmpeg -v error -i '$WORK/thumbs.d/${NUMBERS[0]:-none}.jpg' -vf crop=16:16:8:8,scale=1:1 \
        -f rawvideo -pix_fmt gray - | od -An -tu1 | awk '{ exit !(\$1 > 150) }'"

# Other start selectors.
consume "$WORK/after" --stream cam --start "FRAGMENT_NUMBER:${NUMBERS[0]:-0}" --count-frames --max-fragments 2
check "FRAGMENT_NUMBER starts after it" bash -c "awk '/^fragment /{print \$2}' '$WORK/after' | paste -sd, - | grep -qx '${NUMBERS[1]:-},${NUMBERS[2]:-}'"
consume "$WORK/token" --stream cam --start "CONTINUATION_TOKEN:${NUMBERS[1]:-0}" --count-frames --max-fragments 1
check "CONTINUATION_TOKEN starts after it" grep -q "^fragment ${NUMBERS[2]:-none} " "$WORK/token"
# Producer timestamps are 1 s apart; server ones (a clip uploaded faster than real time) are
# not, so the fragment holding the first one's is the first.
ts="$(awk -v n="${NUMBERS[1]:-}" '$1 == "fragment" && ($2 "") == (n "") {sub(/producer=/, "", $4); print $4}' "$WORK/count")"
consume "$WORK/byproducer" --stream cam --start "PRODUCER_TIMESTAMP:${ts:-0}" --count-frames --max-fragments 1
check "PRODUCER_TIMESTAMP starts at the fragment holding it" grep -q "^fragment ${NUMBERS[1]:-none} " "$WORK/byproducer"
ts="$(awk -v n="${NUMBERS[0]:-}" '$1 == "fragment" && ($2 "") == (n "") {sub(/server=/, "", $3); print $3}' "$WORK/count")"
consume "$WORK/byserver" --stream cam --start "SERVER_TIMESTAMP:${ts:-0}" --count-frames --max-fragments 1
check "SERVER_TIMESTAMP starts at the fragment holding it" grep -q "^fragment ${NUMBERS[0]:-none} " "$WORK/byserver"
consume "$WORK/now" --stream cam --start NOW --count-frames
check "NOW on an idle stream: nothing, exit 0" bash -c "test $? = 0 && grep -qx 'total fragments=0 frames=0' '$WORK/now'"

# GetMediaForFragmentList: the listed fragments in order, then the answer ends.
consume "$WORK/list" --stream cam --fragments "${NUMBERS[2]:-0},${NUMBERS[0]:-0}" --count-frames
check "fragment list exits 0" test $? = 0
check "fragment list order" bash -c "awk '/^fragment /{print \$2}' '$WORK/list' | paste -sd, - | grep -qx '${NUMBERS[2]:-},${NUMBERS[0]:-}'"
check "fragment list frames" grep -qx 'total fragments=2 frames=60' "$WORK/list"

# Live: a consumer waiting after the newest fragment gets the fragments of a clip pushed
# after it started (from the newest fragment rather than NOW, so that a slow start of the
# consumer cannot skip any).
make_clip "$WORK/clip2.mkv" ball
"$CONSUMER" --endpoint "$URL" --stream cam --start "FRAGMENT_NUMBER:${NUMBERS[2]:-0}" \
    --count-frames --max-fragments 3 --idle-timeout 20000 >"$WORK/live" 2>"$WORK/live.err" &
LIVE_PID=$!
sleep 0.5
put_media cam "$WORK/clip2.mkv" >"$WORK/acks2"
for _ in $(seq 1 100); do kill -0 "$LIVE_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$LIVE_PID" 2>/dev/null; then
    fail "live consumer ends after 3 new fragments"
else
    wait "$LIVE_PID"
    check "live consumer ends after 3 new fragments" test $? = 0
fi
LIVE_PID=""
check "live consumer saw the new clip" grep -qx 'total fragments=3 frames=90' "$WORK/live"
new_first="$(grep '"EventType":"PERSISTED"' "$WORK/acks2" | head -1 | grep -o '[0-9]\{10,\}')"
check "live consumer started at the new clip" grep -q "^fragment ${new_first:-none} " "$WORK/live"

# Errors.
consume "$WORK/nostream" --stream no-such-stream --start EARLIEST
check "unknown stream exits 1" test $? = 1
check "unknown stream names HTTP 404" grep -q 'HTTP 404' "$WORK/nostream.err"
"$CONSUMER" --endpoint "https://127.0.0.1:$PORT" --stream cam >/dev/null 2>"$WORK/https.err"
check "https endpoint is a usage error" test $? = 2
"$CONSUMER" --endpoint "$URL" --stream cam --start LATEST >/dev/null 2>&1
check "unknown --start is a usage error" test $? = 2
"$CONSUMER" --start NOW >/dev/null 2>&1
check "--stream is required" test $? = 2
"$CONSUMER" --endpoint "http://127.0.0.1:1" --stream cam --start NOW >/dev/null 2>"$WORK/refused.err"
check "refused connection exits 1" test $? = 1
check "refused connection says so" grep -q 'cannot connect' "$WORK/refused.err"

kill -TERM "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=""
finish
