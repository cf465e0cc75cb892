#!/usr/bin/env bash
# Daemon memory with many sources and a large store: grows the database that a cold
# benches/cycle.sh run left (1000 sources) to about ENTRIES entries by copying its entries
# back in time (new ids, guids, keys and search rows, as if they were months of history),
# then runs `tributary serve` on it with every source due each minute (all answers 304 from
# the corpus's nginx, which must still be up: PORT), requests the merged and category feeds
# and a search, and samples the process's resident memory.
#
#   benches/rss.sh CYCLE_SCRATCH [ENTRIES] [SECONDS]
#
#   CYCLE_SCRATCH  the SCRATCH of a benches/cycle.sh run (its tributary.toml and db/).
#   ENTRIES        target store size (default 1000000). SECONDS: how long to sample (150).
#
# Environment: TRIBUTARY_BIN (target/release/tributary), PORT (the corpus server's port in the
# cycle's config; cycle.sh stops its nginx at exit, so start one on the same port and root,
# e.g. `nginx_serve.sh` of the peers' bench folder or benches/cycle.sh's config), LISTEN
# (127.0.0.1:8098), RSS_PATHS (the paths requested each second; see below).
# Prints the store size and the RSS samples' median and peak (VmHWM) in MB.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
src=$(cd "${1:?CYCLE_SCRATCH}" && pwd)
target=${2:-1000000}
seconds=${3:-150}
bin=${TRIBUTARY_BIN:-$here/target/release/tributary}
listen=${LISTEN:-127.0.0.1:8098}
work=$src/rss
have=0
if [ -f "$work/db/tributary.db" ]; then
  have=$(sqlite3 "$work/db/tributary.db" 'SELECT count(*) FROM entries;' 2>/dev/null || echo 0)
fi
# A store grown by an earlier run (to at least ENTRIES) is used again: growing takes minutes.
if [ "$have" -lt "$target" ]; then
  rm -rf "$work"
  mkdir -p "$work/db"
  # Bring the cycle's store up to this build's schema first (it may have run an older build).
  "$bin" --config "$src/tributary.toml" sources >/dev/null
  sqlite3 "$src/db/tributary.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
  cp "$src/db/tributary.db" "$work/db/tributary.db"

  base=$(sqlite3 "$work/db/tributary.db" 'SELECT count(*) FROM entries;')
  copies=$(( (target + base - 1) / base - 1 ))
  echo "store: $base entries, adding $copies copies of each" >&2
  # The copies go in without a journal (a failure here just means running the script again).
  sqlite3 -bail "$work/db/tributary.db" <<EOF
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
BEGIN;
CREATE TEMP TABLE n (k INTEGER PRIMARY KEY);
WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < $copies)
INSERT INTO n SELECT k FROM c;
INSERT INTO entries (id, title, link, summary, content, authors, categories, published,
    updated, first_seen, date_source, article_pending, cluster_id, canonical)
  SELECT id + k * 10000000, title, link || '#' || k, summary, content, authors, categories,
    published - k * 2592000, updated - k * 2592000, first_seen - k * 2592000, date_source, 0,
    id + k * 10000000, 1
  FROM entries, n WHERE id < 10000000;
INSERT INTO fingerprints (entry_id, title, body, simhash)
  SELECT entry_id + k * 10000000, title, body, simhash
  FROM fingerprints, n WHERE entry_id < 10000000;
INSERT INTO entry_sources (entry_id, source_id, guid, link, version, first_seen, last_seen)
  SELECT entry_id + k * 10000000, source_id, guid || '#' || k, link, version,
    first_seen - k * 2592000, last_seen - k * 2592000
  FROM entry_sources, n WHERE entry_id < 10000000;
INSERT INTO entry_keys (key, entry_id)
  SELECT key || '#' || k, entry_id + k * 10000000 FROM entry_keys, n WHERE entry_id < 10000000;
-- The search index (its own file) is built again from every entry at the next start.
DELETE FROM search_queue;
DELETE FROM search_index;
COMMIT;
PRAGMA journal_mode = WAL;
EOF
fi
total=$(sqlite3 "$work/db/tributary.db" 'SELECT count(*) FROM entries;')
echo "store: $total entries, $(du -m "$work/db/tributary.db" | cut -f1) MB on disk"

sed -e "s|^listen = .*|listen = \"$listen\"|" "$src/tributary.toml" >"$work/tributary.toml"
printf '\n' >>"$work/tributary.toml"
# Every source due each minute (all 304s), so the sample covers full scheduling cycles.
python3 - "$work/tributary.toml" <<'EOF'
import sys
p = sys.argv[1]
# Every entry kept: the store stays at its size (retention is benches/prune.sh's).
s = open(p).read().replace(
    "[fetch]\n", '[defaults]\nschedule = "every 1m"\nkeep_days = "forever"\n\n[fetch]\n', 1)
open(p, "w").write(s)
EOF

"$bin" --config "$work/tributary.toml" serve >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://$listen/healthz" >/dev/null && break; sleep 0.2; done
# Sampling starts once the search index has every queued entry (a grown store's first start
# builds it: minutes at 1 M entries, reported).
start=$SECONDS
queued() { sqlite3 "$work/db/tributary.db" 'SELECT COALESCE(MAX(seq), 0) FROM search_queue;'; }
indexed() { sqlite3 "$work/db/tributary.db.search" 'SELECT COALESCE((SELECT seq FROM progress), 0);'; }
while [ "$(indexed)" -lt "$(queued)" ]; do
  kill -0 $pid 2>/dev/null || { echo "rss.sh: the daemon exited; see $work/serve.log" >&2; exit 1; }
  sleep 2
done
echo "search index caught up $((SECONDS - start)) s after the start" >&2

# The feeds a reader polls, and a search (a common word: the worst case, every row matches).
paths=${RSS_PATHS:-/feeds/all.atom /feeds/tech.rss /feeds/world.json /feeds/all.atom?q=the}
samples=$work/rss.txt
: >"$samples"
end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
  for path in $paths; do
    curl -s -o /dev/null "http://$listen$path" || true
  done
  awk '/VmRSS/ {print $2}' "/proc/$pid/status" >>"$samples"
  sleep 1
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
fetched=$(grep -c 'fetched' "$work/serve.log" || true)
sort -n "$samples" | awk -v hwm="$hwm" -v n="$fetched" '
  {v[NR] = $1}
  END {printf "RSS over %d samples: median %.1f MB, max %.1f MB; peak (VmHWM) %.1f MB; %d fetch log lines\n",
       NR, v[int((NR + 1) / 2)] / 1024, v[NR] / 1024, hwm / 1024, n}'
