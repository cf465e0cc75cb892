#!/usr/bin/env bash
# Serving cached feeds: tributary against nginx serving the very same bytes from disk.
#
#   benches/serve.sh BASE_URL        [SCRATCH_DIR] [RUNS]
#   benches/serve.sh --start CONFIG  [SCRATCH_DIR] [RUNS]
#
#   BASE_URL     a running tributary, e.g. http://127.0.0.1:8095 (its store already fetched).
#   --start CONFIG
#                start `tributary --config CONFIG serve` here (the binary is $TRIBUTARY_BIN,
#                default target/release/tributary or $CARGO_TARGET_DIR/release/tributary), wait
#                for /healthz, and stop it at the end. The URL is [server] listen's address.
#   SCRATCH_DIR  nginx's root, config and logs, wrk's outputs and the results (default: a new
#                directory from mktemp -d). Kept afterwards.
#   RUNS         rounds of wrk per case, interleaved (default 3).
#
# Environment: FEED_PATHS (default "/feeds/all.atom /feeds/tech.atom"; percent-encode
# non-ASCII names), NGINX_PORT (default 8096), WRK_THREADS (2), WRK_CONNECTIONS (64),
# WRK_DURATION (10s).
#
# For each path: curl fetches tributary's body (no Accept-Encoding, so the identity body) and
# its ETag; the exact bytes are written under SCRATCH_DIR/root at the same path and served by
# Debian nginx on 127.0.0.1 (2 workers, sendfile, etag on, gzip off, access_log off). Then,
# RUNS times, in this order: nginx 200, tributary 200, tributary 304 (If-None-Match with
# tributary's ETag), nginx 304 (If-None-Match with nginx's ETag), each
# `wrk -t2 -c64 -d10s --latency`. Prints a markdown table of the median req/s and median p99
# per case, and the ratios tributary 200 / nginx 200 and tributary 304 / nginx 200 (the
# acceptance bar of "Fast at scale", item 4: >= 0.5 and >= 1). Needs curl, wrk, nginx
# (apt-get install curl wrk nginx-light); nothing from ../shared.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
for tool in curl wrk nginx awk sort; do
  command -v "$tool" >/dev/null 2>&1 || { echo "serve.sh: $tool is not installed" >&2; exit 1; }
done

start_config=""
if [ "$1" = "--start" ]; then
  [ $# -ge 2 ] || usage
  start_config=$2
  shift 2
else
  base=${1%/}
  shift
fi
scratch=${1:-}
runs=${2:-3}
case "$runs" in '' | *[!0-9]* | 0) echo "serve.sh: RUNS must be a positive number" >&2; exit 2 ;; esac
read -r -a paths <<<"${FEED_PATHS:-/feeds/all.atom /feeds/tech.atom}"
[ ${#paths[@]} -gt 0 ] || { echo "serve.sh: FEED_PATHS is empty" >&2; exit 2; }
nginx_port=${NGINX_PORT:-8096}
threads=${WRK_THREADS:-2}
connections=${WRK_CONNECTIONS:-64}
duration=${WRK_DURATION:-10s}

if [ -z "$scratch" ]; then
  scratch=$(mktemp -d /tmp/tributary-serve-bench.XXXXXX)
fi
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)

nginx_pid=""
tributary_pid=""
cleanup() {
  local status=$?
  if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
    kill "$nginx_pid" 2>/dev/null || true
    # The master stops its workers; wait for it so the port is free when we return.
    for _ in $(seq 50); do kill -0 "$nginx_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ -n "$tributary_pid" ] && kill -0 "$tributary_pid" 2>/dev/null; then
    kill -TERM "$tributary_pid" 2>/dev/null || true
    wait "$tributary_pid" 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tributary -------------------------------------------------------------------------
if [ -n "$start_config" ]; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  bin=${TRIBUTARY_BIN:-${CARGO_TARGET_DIR:-$here/target}/release/tributary}
  [ -x "$bin" ] || { echo "serve.sh: no binary at $bin (cargo build --release)" >&2; exit 1; }
  listen=$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$start_config" | head -n1)
  [ -n "$listen" ] || { echo "serve.sh: no [server] listen in $start_config" >&2; exit 1; }
  base="http://$listen"
  "$bin" --config "$start_config" serve >"$scratch/tributary.log" 2>&1 &
  tributary_pid=$!
  for _ in $(seq 100); do
    curl -sf -o /dev/null "$base/healthz" && break
    kill -0 "$tributary_pid" 2>/dev/null || { echo "serve.sh: tributary exited; see $scratch/tributary.log" >&2; exit 1; }
    sleep 0.2
  done
  curl -sf -o /dev/null "$base/healthz" || { echo "serve.sh: $base/healthz never answered" >&2; exit 1; }
fi
curl -sf -o /dev/null "$base/healthz" || { echo "serve.sh: $base/healthz does not answer 200" >&2; exit 1; }

feed_queries() {
  curl -sf "$base/metrics" | awk '$1 == "tributary_feed_queries" { print $2 }'
}

# --- the bodies ------------------------------------------------------------------------
root="$scratch/root"
rm -rf "$root"
mkdir -p "$root" "$scratch/wrk"
header() { # header NAME FILE: the value of NAME in a curl -D dump
  awk -v name="$1" -F': ' '
    { sub(/\r$/, "") }
    tolower($1) == tolower(name) { sub(/^[^:]*:[ ]*/, ""); value = $0 }
    END { print value }' "$2"
}
file_of() { # file_of PATH: the file nginx serves for URL path PATH (percent-decoded)
  printf '%b' "$(printf '%s' "$1" | sed 's/%\([0-9A-Fa-f][0-9A-Fa-f]\)/\\x\1/g')"
}
declare -A trib_etag nginx_etag bytes
n=0
for path in "${paths[@]}"; do
  n=$((n + 1))
  dest="$root$(file_of "$path")"
  mkdir -p "$(dirname "$dest")"
  curl -sf -H 'Accept-Encoding:' -D "$scratch/head.$n" -o "$dest" "$base$path" \
    || { echo "serve.sh: GET $base$path failed" >&2; exit 1; }
  if [ -n "$(header content-encoding "$scratch/head.$n")" ]; then
    echo "serve.sh: $path came back encoded without Accept-Encoding" >&2; exit 1
  fi
  trib_etag[$path]=$(header etag "$scratch/head.$n")
  [ -n "${trib_etag[$path]}" ] || { echo "serve.sh: $path has no ETag" >&2; exit 1; }
  bytes[$path]=$(wc -c <"$dest")
done

# --- nginx -----------------------------------------------------------------------------
nginx_dir="$scratch/nginx"
mkdir -p "$nginx_dir/tmp"
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$nginx_port/"; then
  echo "serve.sh: something already listens on 127.0.0.1:$nginx_port (set NGINX_PORT)" >&2; exit 1
fi
mime_types=""
if [ -f /etc/nginx/mime.types ]; then mime_types="include /etc/nginx/mime.types;"; fi
cat >"$nginx_dir/nginx.conf" <<EOF
worker_processes 2;
pid $nginx_dir/nginx.pid;
error_log $nginx_dir/error.log warn;
events { worker_connections 4096; }
http {
  $mime_types
  default_type application/octet-stream;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  open_file_cache max=64 inactive=60s;
  etag on;
  if_modified_since exact;
  gzip off;
  access_log off;
  client_body_temp_path $nginx_dir/tmp; proxy_temp_path $nginx_dir/tmp;
  fastcgi_temp_path $nginx_dir/tmp; uwsgi_temp_path $nginx_dir/tmp; scgi_temp_path $nginx_dir/tmp;
  server {
    listen 127.0.0.1:$nginx_port;
    root $root;
  }
}
EOF
user_opt=()
[ "$(id -u)" -eq 0 ] && user_opt=(-g 'user root;')
nginx -t -q -c "$nginx_dir/nginx.conf" -p "$nginx_dir" "${user_opt[@]}"
nginx -c "$nginx_dir/nginx.conf" -p "$nginx_dir" "${user_opt[@]}"
for _ in $(seq 50); do [ -s "$nginx_dir/nginx.pid" ] && break; sleep 0.1; done
nginx_pid=$(cat "$nginx_dir/nginx.pid")
ngx="http://127.0.0.1:$nginx_port"

# The same bytes, and both 304s really are 304s.
n=0
for path in "${paths[@]}"; do
  n=$((n + 1))
  curl -sf -D "$scratch/nginx-head.$n" -o "$scratch/nginx-body.$n" "$ngx$path" \
    || { echo "serve.sh: nginx does not serve $path" >&2; exit 1; }
  cmp -s "$scratch/nginx-body.$n" "$root$(file_of "$path")" \
    || { echo "serve.sh: nginx serves other bytes for $path" >&2; exit 1; }
  nginx_etag[$path]=$(header etag "$scratch/nginx-head.$n")
  for pair in "$base|${trib_etag[$path]}" "$ngx|${nginx_etag[$path]}"; do
    url=${pair%%|*}; tag=${pair#*|}
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $tag" "$url$path")
    [ "$code" = 304 ] || { echo "serve.sh: $url$path with If-None-Match $tag gave $code, not 304" >&2; exit 1; }
  done
done

# One wrk script per (server, path) that sends If-None-Match: the ETag as a Lua long string.
inm_script() { # inm_script FILE ETAG
  printf 'wrk.headers["If-None-Match"] = [==[%s]==]\n' "$2" >"$1"
}

# run_wrk CASE PATH ROUND URL [SCRIPT]: appends "case path round req/s p99_ms" to results.tsv.
results="$scratch/results.tsv"
: >"$results"
run_wrk() {
  local name=$1 path=$2 round=$3 url=$4 script=${5:-} out
  out="$scratch/wrk/$name.$(printf '%s' "$path" | tr -c 'A-Za-z0-9.' '_').$round.txt"
  if [ -n "$script" ]; then
    wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$script" "$url" >"$out" 2>&1
  else
    wrk -t"$threads" -c"$connections" -d"$duration" --latency "$url" >"$out" 2>&1
  fi
  if grep -q -e 'Non-2xx or 3xx' -e 'Socket errors' "$out"; then
    echo "serve.sh: warning: $name $path round $round: $(grep -e 'Non-2xx or 3xx' -e 'Socket errors' "$out" | tr -s ' ')" >&2
  fi
  awk -v name="$name" -v path="$path" -v round="$round" '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
      return v + 0
    }
    $1 == "99%" { p99 = ms($2) }
    $1 == "Requests/sec:" { rps = $2 }
    END {
      if (rps == "" || p99 == "") { print "no figures from wrk" > "/dev/stderr"; exit 1 }
      printf "%s\t%s\t%s\t%.1f\t%.3f\n", name, path, round, rps, p99
    }' "$out" >>"$results"
}

queries_before=$(feed_queries)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
n=0
for path in "${paths[@]}"; do
  n=$((n + 1))
  inm_script "$scratch/wrk/inm-tributary.$n.lua" "${trib_etag[$path]}"
  inm_script "$scratch/wrk/inm-nginx.$n.lua" "${nginx_etag[$path]}"
done
total=$((runs * ${#paths[@]} * 4))
done_count=0
for round in $(seq "$runs"); do
  n=0
  for path in "${paths[@]}"; do
    n=$((n + 1))
    for case in nginx-200 tributary-200 tributary-304 nginx-304; do
      done_count=$((done_count + 1))
      printf '[%d/%d] round %d %s %s\n' "$done_count" "$total" "$round" "$case" "$path" >&2
      case $case in
        nginx-200) run_wrk "$case" "$path" "$round" "$ngx$path" ;;
        tributary-200) run_wrk "$case" "$path" "$round" "$base$path" ;;
        tributary-304) run_wrk "$case" "$path" "$round" "$base$path" "$scratch/wrk/inm-tributary.$n.lua" ;;
        nginx-304) run_wrk "$case" "$path" "$round" "$ngx$path" "$scratch/wrk/inm-nginx.$n.lua" ;;
      esac
    done
  done
done
queries_after=$(feed_queries)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the table -------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
figure() { # figure CASE PATH COLUMN(4=req/s, 5=p99)
  awk -F'\t' -v c="$1" -v p="$2" -v col="$3" '$1 == c && $2 == p { print $col }' "$results" | median
}
all_runs() {
  awk -F'\t' -v c="$1" -v p="$2" '$1 == c && $2 == p { printf "%s%.0f", sep, $4; sep = ", " }' "$results"
}

echo
echo "tributary $base vs nginx $ngx: wrk -t$threads -c$connections -d$duration --latency, $runs rounds, medians"
echo
echo "| path | body bytes | case | req/s | p99 ms | req/s per round |"
echo "|---|---:|---|---:|---:|---|"
for path in "${paths[@]}"; do
  for case in nginx-200 tributary-200 tributary-304 nginx-304; do
    printf '| %s | %s | %s | %.0f | %.2f | %s |\n' "$path" "${bytes[$path]}" "$case" \
      "$(figure "$case" "$path" 4)" "$(figure "$case" "$path" 5)" "$(all_runs "$case" "$path")"
  done
done
echo
per_round() { # per_round CASE_A CASE_B PATH: A / B in each round (the cases ran back to back)
  awk -F'\t' -v a="$1" -v b="$2" -v p="$3" '
    $2 == p && $1 == a { x[$3] = $4 }
    $2 == p && $1 == b { y[$3] = $4 }
    END { for (r = 1; r in x; r++) { printf "%s%.2f", sep, x[r] / y[r]; sep = ", " } }' "$results"
}
echo "Ratios of the medians (per round in parentheses):"
echo
echo "| path | tributary 200 / nginx 200 (>= 0.5) | tributary 304 / nginx 200 (>= 1) | tributary 304 / nginx 304 |"
echo "|---|---|---|---|"
for path in "${paths[@]}"; do
  n200=$(figure nginx-200 "$path" 4); t200=$(figure tributary-200 "$path" 4)
  t304=$(figure tributary-304 "$path" 4); n304=$(figure nginx-304 "$path" 4)
  awk -v p="$path" -v a="$t200" -v b="$n200" -v c="$t304" -v d="$n304" \
    -v ra="$(per_round tributary-200 nginx-200 "$path")" \
    -v rb="$(per_round tributary-304 nginx-200 "$path")" \
    -v rc="$(per_round tributary-304 nginx-304 "$path")" \
    'BEGIN { printf "| %s | %.2f (%s) | %.2f (%s) | %.2f (%s) |\n", p, a / b, ra, c / b, rb, c / d, rc }'
done
echo
echo "feed queries run by tributary during the runs: $((queries_after - queries_before)) (a cached answer runs none; the cache re-reads each feed at most once a minute)"
echo "load average before / after: $load_before / $load_after (wrk and both servers share $(nproc) CPUs; anything else running skews the figures)"
echo "raw figures: $results; wrk outputs: $scratch/wrk/"
