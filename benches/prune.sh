#!/usr/bin/env bash
# Retention at scale: the daemon's own prune pass on the 1 M-entry store that benches/rss.sh
# grew, down to about KEEP entries, while it keeps fetching (every source due each minute, all
# 304s from the corpus's nginx) and serving. Reports the pass (time, batches, the longest the
# writer was held), the feed latency of reads that reach the store (each request a new cache
# key) before and during the pass, the daemon's fetch durations before and during, and the
# store's size and bytes per entry (SQLite's dbstat, by table) before and after.
#
#   benches/prune.sh RSS_WORK [KEEP]
#
#   RSS_WORK  the rss/ folder of a benches/rss.sh run (its db/ and tributary.toml); copied,
#             never changed. KEEP: entries left (default 100000): keep_days is chosen so.
#
# Environment: TRIBUTARY_BIN (target/release/tributary), SCRATCH (a new mktemp -d), LISTEN
# (127.0.0.1:8099); the corpus's nginx must be up on the port the config names (as for
# benches/rss.sh). Needs sqlite3 (with dbstat, as Debian's is), python3, curl.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "${1:?RSS_WORK}" && pwd)
keep=${2:-100000}
bin=${TRIBUTARY_BIN:-$here/target/release/tributary}
listen=${LISTEN:-127.0.0.1:8099}
scratch=${SCRATCH:-$(mktemp -d /tmp/tributary-prune.XXXXXX)}
mkdir -p "$scratch"
scratch=$(cd "$scratch" && pwd)

rm -rf "$scratch/db"
mkdir -p "$scratch/db"
sqlite3 "$src/db/tributary.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
cp "$src/db/tributary.db" "$src/db/tributary.db.search" "$scratch/db/"
db=$scratch/db/tributary.db

# Bytes per entry by table (the store and its search index), and the source text per entry.
breakdown() {
  local n
  n=$(sqlite3 "$db" 'SELECT COUNT(*) FROM entries;')
  echo "entries: $n; store $(stat -c %s "$db") bytes, search index $(stat -c %s "$db.search") bytes"
  sqlite3 "$db" "SELECT printf('  %-34s %8.0f B/entry (%5.1f%% unused)', name, SUM(pgsize) * 1.0 / $n,
                        100.0 * SUM(unused) / SUM(pgsize))
                 FROM dbstat GROUP BY name HAVING SUM(pgsize) * 1.0 / $n >= 20 ORDER BY SUM(pgsize) DESC;"
  sqlite3 "$db.search" "SELECT printf('  search index %-21s %8.0f B/entry', name, SUM(pgsize) * 1.0 / $n)
                        FROM dbstat GROUP BY name HAVING SUM(pgsize) * 1.0 / $n >= 20 ORDER BY SUM(pgsize) DESC;"
  echo "  total $(( ($(stat -c %s "$db") + $(stat -c %s "$db.search")) / n )) B/entry"
}
echo "--- before"
breakdown

# keep_days such that about KEEP entries are newer.
cutoff=$(sqlite3 "$db" "SELECT published FROM entries ORDER BY published DESC LIMIT 1 OFFSET $((keep - 1));")
keep_days=$(( ($(date +%s) - cutoff) / 86400 + 1 ))
echo "keep_days = $keep_days (about $keep entries newer)"

sed -e "s|^listen = .*|listen = \"$listen\"|" -e 's|^path = .*|path = "db/tributary.db"|' \
  "$src/tributary.toml" >"$scratch/tributary.toml"
python3 - "$scratch/tributary.toml" "$keep_days" <<'EOF'
import re, sys
p, days = sys.argv[1], sys.argv[2]
s = re.sub(r'(?m)^keep_days = .*\n', '', open(p).read())
s = re.sub(r'\[defaults\]\n', f'[defaults]\nkeep_days = {days}\n', s, count=1)
open(p, "w").write(s)
EOF

"$bin" --config "$scratch/tributary.toml" serve >"$scratch/serve.log" 2>&1 &
pid=$!
poller=""
trap 'kill $poller 2>/dev/null || true; kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -sf "http://$listen/healthz" >/dev/null && break; sleep 0.2; done

# Reads that reach the store: each request a key the cache has not seen (a source's feed with
# a limit not asked before), one after another, each timed.
python3 - "$listen" "$scratch/latency.tsv" <<'EOF' &
import http.client, itertools, sys, time
host, port = sys.argv[1].split(":")
out = open(sys.argv[2], "w", buffering=1)
c = http.client.HTTPConnection(host, int(port), timeout=60)
for n in itertools.count():
    path = f"/sources/f{n % 1000:04}.atom?limit={10 + (n // 1000) % 90}"
    t = time.time()
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    out.write(f"{t:.6f}\t{time.time() - t:.6f}\t{r.status}\n")
EOF
poller=$!

# The first pass comes two minutes after the start.
for _ in $(seq 3600); do
  grep -q 'pruned what retention lets go' "$scratch/serve.log" && break
  kill -0 $pid 2>/dev/null || { echo "prune.sh: the daemon exited; see $scratch/serve.log" >&2; exit 1; }
  sleep 1
done
# The search index takes the deletions on its own thread (minutes for most of a million), then
# is compacted once it has had nothing to index for 30 s.
queued() { sqlite3 "$db" 'SELECT COALESCE(MAX(seq), 0) FROM search_queue;'; }
indexed() { sqlite3 "$db.search" 'SELECT COALESCE((SELECT seq FROM progress), 0);'; }
for _ in $(seq 3600); do
  [ "$(indexed)" -ge "$(queued)" ] && break
  sleep 1
done
compactions=$(grep -c 'search index compacted' "$scratch/serve.log" || true)
for _ in $(seq 300); do
  [ "$(grep -c 'search index compacted' "$scratch/serve.log" || true)" -gt "$compactions" ] && break
  sleep 1
done
sleep 5
kill $poller 2>/dev/null || true
kill -TERM $pid
wait $pid || true
trap - EXIT

grep -E 'pruned what retention lets go|search index compacted' "$scratch/serve.log"
python3 - "$scratch/serve.log" "$scratch/latency.tsv" <<'EOF'
import re, statistics, sys, datetime
log, lat = sys.argv[1], sys.argv[2]
def ts(line):
    return datetime.datetime.strptime(line[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()
lines = open(log).read().splitlines()
done = next(l for l in lines if "pruned what retention lets go" in l)
end = ts(done)
start = end - float(re.search(r"secs=([0-9.]+)", done).group(1))
def summary(name, xs):
    if not xs:
        return f"{name}: none"
    xs = sorted(xs)
    p = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))]
    return f"{name}: n={len(xs)} p50 {p(.5) * 1000:.1f} ms, p99 {p(.99) * 1000:.1f} ms, max {xs[-1] * 1000:.1f} ms"
rows = [l.split("\t") for l in open(lat).read().splitlines() if l.count("\t") == 2]
rows = [(float(t), float(d)) for t, d, s in rows if s == "200"]
first = rows[0][0] + 20 if rows else start
print(summary("feed reads before the pass", [d for t, d in rows if first <= t < start]))
print(summary("feed reads during the pass", [d for t, d in rows if start <= t <= end]))
fetches = [(ts(l), int(re.search(r"duration_ms=(\d+)", l).group(1))) for l in lines
           if " fetched" in l and "duration_ms=" in l]
print(summary("fetches before the pass", [d / 1000 for t, d in fetches if t < start]))
print(summary("fetches during the pass", [d / 1000 for t, d in fetches if start <= t <= end]))
EOF
sqlite3 "$db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
echo "--- after"
breakdown
