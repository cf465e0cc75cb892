#!/usr/bin/env bash
# Fetch throughput of instances sharing one PostgreSQL store, beside one daemon on SQLite:
# SOURCES small feeds (5 items each, ~4.4 KB) on HOSTS loopback addresses served by nginx,
# fetched by 1, 2 and 3 daemons (`tributary serve`) on one PostgreSQL database, and by one
# daemon on an SQLite file, all on this machine.
#
#   benches/instances.sh [SOURCES] [HOSTS] [RUNS]       (default 3000 sources on 64 hosts, 3 runs)
#
# Each run of each setup starts from an empty store with every source due at once (synced by
# `tributary sources`, then its next run set in the past, so no first-start stagger), and
# times two rounds, each until every source has its fetch line (one per fetch, in the logs of
# all instances together):
#   cold: every feed new (5 entries each stored, deduped, indexed);
#   304:  the instances restarted with every source due again; nginx answers 304 to each.
# Printed per round: seconds from the first fetch line to the last (the instances' start not
# counted), sources/s, fetch lines (more than SOURCES would mean a source fetched twice), and
# the CPU seconds the daemons (their start included) and the PostgreSQL server spent, which
# say where the time went. A round with a failed fetch stops the bench. The setups of one run are interleaved (SQLite, 1, 2, 3) so the
# machine's drift falls on all alike; the last lines give each setup's medians.
#
# Environment: TRIBUTARY_BIN (default target/release/tributary), PORT (8097, nginx),
# SCRATCH (default a new mktemp -d, kept). PostgreSQL is a cluster of its own (.ci/postgres
# with PG_DURABLE=1: fsync and full pages on, synchronous_commit off, as SQLite's
# synchronous=NORMAL), stopped at the end. Needs nginx (apt-get install nginx-light), curl,
# python3, psql and PostgreSQL's server; nothing from ../shared.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
sources=${1:-3000}
hosts=${2:-64}
runs=${3:-3}
port=${PORT:-8097}
bin=${TRIBUTARY_BIN:-$here/target/release/tributary}
scratch=${SCRATCH:-$(mktemp -d /tmp/tributary-instances.XXXXXX)}
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)
# nginx's workers (another user when run as root) read the feeds from here.
chmod 755 "$scratch"
for tool in nginx curl python3 psql; do
  command -v "$tool" >/dev/null 2>&1 || { echo "instances.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "instances.sh: no binary at $bin (cargo build --release)" >&2; exit 1; }

read -r pg_dir pg_url < <(PG_DURABLE=1 bash "$here/.ci/postgres")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$scratch/nginx.pid" ] && kill "$(cat "$scratch/nginx.pid")" 2>/dev/null || true
  bash "$here/.ci/postgres" stop "$pg_dir"
}
trap cleanup EXIT

# The feeds, nginx's config, and the sources every instance's config lists.
python3 "$here/benches/support/small_feeds.py" "$scratch" "$sources" "$hosts" "$port"
python3 - "$scratch" "$sources" "$hosts" "$port" <<'EOF'
import os, sys
scratch, n, hosts, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(os.path.join(scratch, "sources.toml"), "w") as c:
    c.write('[defaults]\nschedule = "every 6h"\n\n')
    for i in range(n):
        c.write(f'[[sources]]\nid = "s{i}"\nname = "Source {i}"\n'
                f'url = "http://127.0.1.{i % hosts + 1}:{port}/{i}.xml"\ncategory = "c{i % 20}"\n')
EOF
nginx -c "$scratch/nginx.conf"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ticks=$(getconf CLK_TCK)
# The PostgreSQL server's CPU seconds so far: the postmaster's, its ended backends' (added to
# it as they are reaped) and its live processes'.
pg_cpu() {
  local main total p
  main=$(head -1 "$pg_dir/data/postmaster.pid")
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$main/stat")
  for p in $(pgrep -P "$main" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# Writes instance configs for a setup ($1: sqlite or a database name, $2: instances).
configs() {
  local setup=$1 k=$2 i storage
  for i in $(seq 1 "$k"); do
    if [ "$setup" = sqlite ]; then
      storage="path = \"$scratch/sqlite.db\""
    else
      storage="url = \"${pg_url%/*}/$setup\""
    fi
    { printf '[server]\nlisten = "127.0.0.1:%s"\n\n[storage]\n%s\n\n' "$(free_port)" "$storage"
      cat "$scratch/sources.toml"; } >"$scratch/$setup-$i.toml"
  done
}

# Every source due now: its next run in the past.
all_due() {
  if [ "$1" = sqlite ]; then
    python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('update sources set next_run = 1'); c.commit()" "$scratch/sqlite.db"
  else
    psql -q "${pg_url%/*}/$1" -c "update sources set next_run = 1" >/dev/null
  fi
}

# One round: starts $2 instances of setup $1, waits for $sources fetch lines, stops them.
# Prints "seconds lines daemon_cpu pg_cpu".
round() {
  local setup=$1 k=$2 i t0 lines before_pg after_pg daemons_cpu=0
  all_due "$setup"
  before_pg=$(pg_cpu)
  t0=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$k"); do
    RUST_LOG=info "$bin" --config "$scratch/$setup-$i.toml" serve >"$scratch/$setup-$i.log" 2>&1 &
    pids+=($!)
  done
  while :; do
    lines=$(cat "$scratch/$setup"-*.log | grep -c 'status=' || true)
    [ "$lines" -ge "$sources" ] && break
    for p in "${pids[@]}"; do
      kill -0 "$p" 2>/dev/null || { echo "an instance exited:" >&2; tail "$scratch/$setup"-*.log >&2; exit 1; }
    done
    sleep 0.05
  done
  after_pg=$(pg_cpu)
  for p in "${pids[@]}"; do
    daemons_cpu=$((daemons_cpu + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  for p in "${pids[@]}"; do kill "$p"; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  lines=$(cat "$scratch/$setup"-*.log | grep -c 'status=' || true)
  if grep -q 'status="error"' "$scratch/$setup"-*.log; then
    echo "fetches failed (the bench measures fetches that work):" >&2
    grep -m3 -h 'status="error"' "$scratch/$setup"-*.log >&2
    exit 1
  fi
  # From the first fetch line to the last, by the logs' clocks: the instances' start (each
  # loads the config and syncs its sources) is not counted.
  local took
  took=$(cat "$scratch/$setup"-*.log | grep 'status=' | python3 -c "
import sys, datetime
t = sorted(datetime.datetime.fromisoformat(l.split()[0].replace('Z', '+00:00')) for l in sys.stdin)
print(round((t[-1] - t[0]).total_seconds(), 3))")
  echo "$took $lines $(python3 -c "print(round($daemons_cpu / $ticks, 1), round(($after_pg - $before_pg) / $ticks, 1))")"
}

results="$scratch/results.tsv"
: >"$results"
for run in $(seq 1 "$runs"); do
  for setup in sqlite 1 2 3; do
    if [ "$setup" = sqlite ]; then
      name=sqlite k=1
      rm -f "$scratch"/sqlite.db*
    else
      name="pg_${run}_$setup" k=$setup
      psql -q "$pg_url" -c "CREATE DATABASE $name" >/dev/null
    fi
    configs "$name" "$k"
    "$bin" --config "$scratch/$name-1.toml" sources >/dev/null
    for phase in cold 304; do
      read -r took lines dcpu pcpu < <(round "$name" "$k")
      label=$([ "$setup" = sqlite ] && echo "sqlite" || echo "postgres x$setup")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$phase" "$took" "$lines" "$dcpu" "$pcpu" >>"$results"
      printf 'run %s, %-12s %-4s %7.2f s  %5.0f sources/s  %s fetch lines  daemons %s s CPU, postgres %s s CPU\n' \
        "$run" "$label" "$phase" "$took" "$(python3 -c "print($sources / $took)")" "$lines" "$dcpu" "$pcpu"
    done
  done
done

python3 - "$results" "$sources" <<'EOF'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, phase, took, lines, dcpu, pcpu = line.rstrip("\n").split("\t")
    rows[(label, phase)].append((float(took), float(dcpu), float(pcpu)))
n = int(sys.argv[2])
print(f"medians of {len(next(iter(rows.values())))} runs, {n} sources:")
for (label, phase), r in rows.items():
    took = statistics.median(t for t, _, _ in r)
    print(f"  {label:<12} {phase:<4} {took:7.2f} s  {n / took:6.0f} sources/s  "
          f"daemons {statistics.median(d for _, d, _ in r):5.1f} s CPU  "
          f"postgres {statistics.median(p for _, _, p in r):5.1f} s CPU")
EOF
