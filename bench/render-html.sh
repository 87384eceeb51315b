#!/usr/bin/env bash
# bench/render-html.sh [--size W,H] [--dark] PAGE.html [OUT.png]: renders a `swiftlet compare --html` page
# in headless Chromium at W×H CSS pixels (default 1200,2400; 390,2400 is a phone), in the page's dark
# colours with --dark (the reader's prefers-color-scheme: dark)
# (Debian's chromium package, installed with apt-get when missing and run as root), to a PNG, then checks
# the PNG is not blank: it decodes the image (PNG spec: IHDR, zlib-compressed IDAT, per-row filters) and
# requires non-white pixels and several distinct colours (the charts' blue, orange, red and green).
# Prints "render-html: OUT.png WxH, N% non-white, K colours" and exits 0; 1 with the reason otherwise.
set -euo pipefail
size=1200,2400
scheme=(--blink-settings=preferredColorScheme=1)
while [ $# -gt 0 ]; do
    case $1 in
        --size) size=${2:?--size needs W,H}; shift 2 ;;
        --dark) scheme=(--force-dark-mode --blink-settings=preferredColorScheme=0); shift ;;
        *) break ;;
    esac
done
page=${1:?usage: bench/render-html.sh [--size W,H] [--dark] PAGE.html [OUT.png]}
out=${2:-${page%.html}.png}
[ -r "$page" ] || { echo "render-html: cannot read $page" >&2; exit 1; }

browser=""
for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then browser=$(command -v "$name"); break; fi
done
if [ -z "$browser" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "render-html: installing chromium (apt-get)" >&2
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || true
    fi
    browser=$(command -v chromium || true)
fi
[ -n "$browser" ] || { echo "render-html: no chromium (apt-get install chromium)" >&2; exit 1; }

rm -f "$out"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# --no-sandbox: Chromium refuses to run as root with its sandbox; the page is our own, local and script-free.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
    --user-data-dir="$profile" --window-size="$size" "${scheme[@]}" --screenshot="$out" \
    "file://$(realpath "$page")" >/dev/null 2>&1 || true
[ -s "$out" ] || { echo "render-html: chromium wrote no screenshot to $out" >&2; exit 1; }

python3 - "$out" <<'PY'
import struct, sys, zlib
path = sys.argv[1]
data = open(path, "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"render-html: {path} is not a PNG")
pos, idat, width = 8, b"", 0
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height, depth, colour = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
if depth != 8 or colour not in (2, 6):
    sys.exit(f"render-html: unexpected PNG format (bit depth {depth}, colour type {colour})")
bpp = 3 if colour == 2 else 4
raw = zlib.decompress(idat)
stride = width * bpp
previous = bytearray(stride)
non_white, colours = 0, set()
for y in range(height):
    kind = raw[y * (stride + 1)]
    row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = row[i - bpp] if i >= bpp else 0
        b = previous[i]
        c = previous[i - bpp] if i >= bpp else 0
        if kind == 1: row[i] = (row[i] + a) & 255
        elif kind == 2: row[i] = (row[i] + b) & 255
        elif kind == 3: row[i] = (row[i] + (a + b) // 2) & 255
        elif kind == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp * 2):   # every other pixel is enough
        pixel = bytes(row[x:x + 3])
        colours.add(pixel)
        if pixel != b"\xff\xff\xff":
            non_white += 1      # a dark page is nearly all "non-white": the colour count is what tells
    previous = row
sampled = height * ((width + 1) // 2)
share = 100.0 * non_white / sampled
print(f"render-html: {path} {width}x{height}, {share:.1f}% non-white, {len(colours)} colours")
if share < 1.0 or len(colours) < 8:
    sys.exit(f"render-html: {path} looks blank")
PY
