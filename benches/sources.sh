#!/usr/bin/env bash
# Many sources on one machine: N small feeds (5 items each, ~4.4 KB) on HOSTS loopback
# addresses served by nginx, fetched by `tributary fetch` (the cold cycle) and by a daemon's
# first start, with readers asking for sources' own feeds meanwhile.
#
#   benches/sources.sh [SOURCES] [HOSTS]        (default 100000 sources on 64 hosts)
#
# Environment: TRIBUTARY_BIN (default target/release/tributary), PORT (8098, nginx), LISTEN
# (127.0.0.1:8099, the daemon), SCRATCH (default a new mktemp -d, kept), SCHEDULE (the
# sources' schedule, default "every 5m": the first start must reach every source within it),
# IDLE_SECONDS (30).
#
# Phases, each printed as it ends:
#   1. cold cycle: `tributary fetch` on an empty store: wall, fetches/s, peak RSS, entries.
#   2. first start: `tributary serve` on another empty store; how long until every source has
#      its fetch line (one per fetch), fetches/s, and meanwhile, every half second, a request
#      for a random source's own feed (`/sources/ID.atom`, most of them the first of their
#      kind, so uncached): p50 and p99 of their times.
#   3. steady state: the same daemon for IDLE_SECONDS more, every source due each SCHEDULE
#      (nginx answers 304 now): its CPU share and RSS.
#   4. idle: the daemon restarted on the same store with every source `every 6h`. Each is due
#      at once (its stored next run has passed), so one round of 304s first; once every source
#      has its fetch line, IDLE_SECONDS with nothing due: CPU share and RSS.
# Needs nginx (apt-get install nginx-light), curl, python3, /usr/bin/time; nothing from
# ../shared.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
sources=${1:-100000}
hosts=${2:-64}
port=${PORT:-8098}
listen=${LISTEN:-127.0.0.1:8099}
bin=${TRIBUTARY_BIN:-$here/target/release/tributary}
schedule=${SCHEDULE:-every 5m}
idle_seconds=${IDLE_SECONDS:-30}
scratch=${SCRATCH:-$(mktemp -d /tmp/tributary-sources.XXXXXX)}
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
# nginx's workers (another user when run as root) read the feeds from here.
chmod 755 "$scratch"
for tool in nginx curl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || { echo "sources.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "sources.sh: no binary at $bin (cargo build --release)" >&2; exit 1; }

# The feeds, nginx's config, and the two configs (one store each).
python3 "$here/benches/support/small_feeds.py" "$scratch" "$sources" "$hosts" "$port" 2
python3 - "$scratch" "$sources" "$hosts" "$port" "$listen" "$schedule" <<'EOF'
import os, sys
scratch, n, hosts, port, listen, schedule = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
def host(i):
    return f"127.0.1.{i % hosts + 1}"
for name, store, every in (("cold", "cold", schedule), ("daemon", "daemon", schedule), ("idle", "daemon", "every 6h")):
    with open(os.path.join(scratch, f"{name}.toml"), "w") as c:
        c.write(f'[server]\nlisten = "{listen}"\n\n[storage]\npath = "{scratch}/{store}.db"\n\n'
                f'[defaults]\nschedule = "{every}"\n\n')
        for i in range(n):
            c.write(f'[[sources]]\nid = "s{i}"\nname = "Source {i}"\n'
                    f'url = "http://{host(i)}:{port}/{i}.xml"\ncategory = "c{i % 20}"\n')
EOF
rm -f "$scratch"/cold.db* "$scratch"/daemon.db* "$scratch"/daemon.log
nginx -c "$scratch/nginx.conf"
daemon=""
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null || true
  [ -f "$scratch/nginx.pid" ] && kill "$(cat "$scratch/nginx.pid")" 2>/dev/null || true
}
trap cleanup EXIT

# 1. The cold cycle.
/usr/bin/time -f '%e %M' -o "$scratch/cold.time" "$bin" --config "$scratch/cold.toml" fetch \
  >"$scratch/cold.out" 2>"$scratch/cold.err" || true
read -r wall peak_kb <"$scratch/cold.time"
ok=$(grep -c ': ok ' "$scratch/cold.out" || true)
entries=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from entries').fetchone()[0])" "$scratch/cold.db")
echo "cold cycle: $sources sources, $ok ok, $entries entries in $wall s: $(python3 -c "print(round($sources/$wall))") fetches/s, peak RSS $((peak_kb / 1024)) MB"

# 2. The first start, with readers.
# Starts `serve` on config $1, logging to $2, and waits until it answers.
start_daemon() {
  RUST_LOG=info "$bin" --config "$1" serve >"$2" 2>&1 &
  daemon=$!
  until curl -sf "http://$listen/healthz" >/dev/null 2>&1; do
    kill -0 "$daemon" 2>/dev/null || { echo "the daemon exited:" >&2; tail "$2" >&2; exit 1; }
    sleep 0.2
  done
}
started=$(date +%s.%N)
start_daemon "$scratch/daemon.toml" "$scratch/daemon.log"
python3 - "$listen" "$sources" "$scratch/daemon.log" "$started" <<'EOF'
import sys, time, urllib.request, random
listen, n, log, started = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
random.seed(7)
times, fetched, offset = [], 0, 0
# One fetch line per fetch; read as the log grows.
while fetched < n:
    with open(log, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    complete = chunk.rfind(b"\n") + 1
    fetched += chunk[:complete].count(b"status=")
    offset += complete
    # A source fetched by now, so its feed has entries; each source once (uncached).
    i = random.randrange(n)
    t = time.monotonic()
    urllib.request.urlopen(f"http://{listen}/sources/s{i}.atom").read()
    times.append(time.monotonic() - t)
    time.sleep(0.5)
took = time.time() - started
times.sort()
print(f"first start: every source fetched {took:.1f} s after start ({n/took:.0f} fetches/s); "
      f"{len(times)} per-source feeds read meanwhile: p50 {times[len(times)//2]*1e3:.1f} ms, "
      f"p99 {times[max(0, int(len(times)*0.99)-1)]*1e3:.1f} ms")
EOF

# 3. Steady state.
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$daemon/stat"; }
# The daemon's CPU share over IDLE_SECONDS and its RSS at the end, as "N % of a core … RSS M MB".
share() {
  local before after rss
  before=$(cpu)
  sleep "$idle_seconds"
  after=$(cpu)
  rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$daemon/status")
  echo "$(python3 -c "print(round(100 * ($after - $before) / $ticks / $idle_seconds, 2))") % of a core over $idle_seconds s, RSS $rss MB"
}
echo "steady state ($schedule): $(share)"

# 4. Idle: restarted with a long schedule; one round of 304s, then nothing due.
kill "$daemon"
wait "$daemon" 2>/dev/null || true
started=$(date +%s.%N)
start_daemon "$scratch/idle.toml" "$scratch/idle.log"
until [ "$(grep -c 'status=' "$scratch/idle.log" || true)" -ge "$sources" ]; do
  kill -0 "$daemon" 2>/dev/null || { echo "the daemon exited:" >&2; tail "$scratch/idle.log" >&2; exit 1; }
  sleep 1
done
echo "idle: restarted, every source's 304 in $(python3 -c "import time; print(round(time.time() - $started, 1))") s; then $(share)"
