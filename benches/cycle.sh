#!/usr/bin/env bash
# Fetch cycles end to end: `tributary fetch` of every feed of a corpus served by nginx on
# loopback, cold (empty database) and warm (the same feeds again: every answer a 304), against
# newsboat's cold reload of the same URLs, rounds interleaved.
#
#   benches/cycle.sh [CORPUS_DIR] [RUNS] [FEEDS]
#
#   CORPUS_DIR  a corpus with manifest.json and feeds/ (the peers' gen_corpus.py output, or
#               `cargo bench --bench ingest -- --write-corpus DIR 1000`). Default: that own
#               corpus, 1000 feeds, written to the scratch directory.
#   RUNS        rounds (default 3). FEEDS: the first N feeds of the manifest (default all).
#
# Environment: TRIBUTARY_BIN (default target/release/tributary), PORT (8097), SCRATCH
# (default a new mktemp -d, kept), NEWSBOAT=0 to leave newsboat out, CONCURRENCY (16: the
# same number of fetches in flight as newsboat's `reload-threads 16`).
#
# The corpus puts every feed on one host; real feeds live on many, so the bench config lifts
# the per-host limit to the global one (`[fetch] per_host`). newsboat reads no JSON Feed: it
# gets every URL, as a user would give it, and stores the XML feeds' items only.
# Prints one line per phase and round, then a markdown table of medians and the ratios
# newsboat cold / tributary cold and tributary warm / tributary cold.
# Needs nginx (apt-get install nginx-light), /usr/bin/time, sqlite3, python3; newsboat for
# the comparison.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${1:-}
runs=${2:-3}
feeds=${3:-0}
port=${PORT:-8097}
bin=${TRIBUTARY_BIN:-$here/target/release/tributary}
concurrency=${CONCURRENCY:-16}
scratch=${SCRATCH:-$(mktemp -d /tmp/tributary-cycle.XXXXXX)}
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)

for tool in nginx python3 sqlite3 /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || { echo "cycle.sh: $tool is not installed" >&2; exit 1; }
done
use_newsboat=${NEWSBOAT:-1}
if [ "$use_newsboat" != 0 ] && ! command -v newsboat >/dev/null 2>&1; then
  echo "cycle.sh: newsboat not installed: comparing without it" >&2
  use_newsboat=0
fi
[ -x "$bin" ] || (cd "$here" && cargo build --release --quiet)

if [ -z "$corpus" ]; then
  corpus=$scratch/corpus
  [ -f "$corpus/manifest.json" ] ||
    (cd "$here" && cargo bench --quiet --bench ingest -- --write-corpus "$corpus" 1000)
fi
corpus=$(cd "$corpus" && pwd)

nginx_pid=""
cleanup() {
  local status=$?
  if [ -n "$nginx_pid" ]; then
    kill "$nginx_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# nginx: ETag and Last-Modified on (so conditional GETs get 304s), gzip off, status codes
# logged so each phase's 200s and 304s can be counted.
mkdir -p "$scratch/nginx/tmp"
cat >"$scratch/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $scratch/nginx/nginx.pid;
error_log $scratch/nginx/error.log warn;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 100000;
  open_file_cache max=4096 inactive=60s;
  etag on; if_modified_since exact; gzip off;
  log_format st '\$status';
  access_log $scratch/nginx/access.log st;
  client_body_temp_path $scratch/nginx/tmp; proxy_temp_path $scratch/nginx/tmp;
  fastcgi_temp_path $scratch/nginx/tmp; uwsgi_temp_path $scratch/nginx/tmp;
  scgi_temp_path $scratch/nginx/tmp;
  server { listen 127.0.0.1:$port; root $corpus; }
}
EOF
nginx -c "$scratch/nginx/nginx.conf" -p "$scratch/nginx" -g 'user root;'
for _ in $(seq 50); do [ -s "$scratch/nginx/nginx.pid" ] && break; sleep 0.1; done
nginx_pid=$(cat "$scratch/nginx/nginx.pid")

# The sources, and newsboat's URL list.
python3 - "$corpus" "$scratch" "$port" "$feeds" "$concurrency" <<'EOF'
import json, sys
corpus, scratch, port, n, conc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
feeds = json.load(open(f"{corpus}/manifest.json"))["feeds"]
feeds = feeds[:n] if n else feeds
urls = [f"http://127.0.0.1:{port}/{f['file']}" for f in feeds]
cats = ["tech", "world", "business", "science"]
with open(f"{scratch}/urls", "w") as out:
    out.write("\n".join(urls) + "\n")
with open(f"{scratch}/tributary.toml", "w") as out:
    out.write(f'[server]\nlisten = "127.0.0.1:0"\n[storage]\npath = "db/tributary.db"\n'
              f'[fetch]\nconcurrency = {conc}\nper_host = {conc}\n\n')
    for i, u in enumerate(urls):
        out.write(f'[[sources]]\nid = "f{i:04}"\nname = "Feed {i:04}"\nurl = "{u}"\n'
                  f'category = "{cats[i % 4]}"\n\n')
print(f"{len(urls)} feeds from {corpus}", file=sys.stderr)
EOF
cat >"$scratch/newsboat.conf" <<EOF
reload-threads $concurrency
download-timeout 60
max-items 0
show-read-feeds yes
cleanup-on-quit no
EOF

# One timed command: prints "wall_s cpu_s maxrss_kb".
timed() {
  local out=$1
  shift
  /usr/bin/time -f '%e %U %S %M' -o "$out.time" "$@" >"$out.log" 2>&1 || true
  awk '{printf "%.2f %.2f %d\n", $1, $2 + $3, $4}' "$out.time"
}
codes() { sort "$scratch/nginx/access.log" | uniq -c | awk '{printf "%s×%s ", $2, $1}'; : >"$scratch/nginx/access.log"; }

results=$scratch/results.tsv
: >"$results"
for run in $(seq 1 "$runs"); do
  if [ "$use_newsboat" != 0 ]; then
    d=$scratch/newsboat.$run
    rm -rf "$d"; mkdir -p "$d"
    read -r w c m < <(HOME=$d timed "$d/cold" newsboat -q -u "$scratch/urls" -c "$d/cache.db" \
      -C "$scratch/newsboat.conf" -x reload)
    items=$(sqlite3 "$d/cache.db" 'SELECT count(*) FROM rss_item;')
    echo "round $run newsboat cold: ${w} s wall, ${c} s cpu, $((m / 1024)) MB, $items items; $(codes)"
    printf 'newsboat_cold\t%s\t%s\t%s\n' "$w" "$c" "$m" >>"$results"
  fi
  rm -rf "$scratch/db"
  read -r w c m < <(timed "$scratch/cold.$run" "$bin" --config "$scratch/tributary.toml" fetch)
  entries=$(sqlite3 "$scratch/db/tributary.db" 'SELECT count(*) FROM entries;')
  echo "round $run tributary cold: ${w} s wall, ${c} s cpu, $((m / 1024)) MB, $entries entries; $(codes)"
  printf 'tributary_cold\t%s\t%s\t%s\n' "$w" "$c" "$m" >>"$results"
  read -r w c m < <(timed "$scratch/warm.$run" "$bin" --config "$scratch/tributary.toml" fetch)
  echo "round $run tributary warm: ${w} s wall, ${c} s cpu, $((m / 1024)) MB; $(codes)"
  printf 'tributary_warm\t%s\t%s\t%s\n' "$w" "$c" "$m" >>"$results"
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
by = {}
for name, w, c, m in rows:
    by.setdefault(name, []).append((float(w), float(c), int(m)))
print("\n| phase | wall s (median) | min – max | cpu s (median) | max RSS MB (median) |")
print("|---|---|---|---|---|")
for name, v in by.items():
    w = [x[0] for x in v]
    print(f"| {name} | {statistics.median(w):.2f} | {min(w):.2f} – {max(w):.2f} "
          f"| {statistics.median(x[1] for x in v):.2f} | {statistics.median(x[2] for x in v) / 1024:.0f} |")
med = {k: statistics.median(x[0] for x in v) for k, v in by.items()}
if "newsboat_cold" in med:
    print(f"\nnewsboat cold / tributary cold: {med['newsboat_cold'] / med['tributary_cold']:.1f}×")
print(f"tributary warm / cold: {100 * med['tributary_warm'] / med['tributary_cold']:.1f} %")
EOF
