#!/usr/bin/env bash
# A three-node Shoal cluster on this machine: a server, two workers (w2 tagged "billing"), the
# example HTTP target, and the example jobs of examples/jobs/. Ctrl-C stops every process.
#
#   cargo build --release --bins --examples && examples/three-node.sh
#
# Then, in another terminal: target/release/shoal tui   (or shoal members, shoal job list, …)
# Every address can be overridden: SHOAL_API, SHOAL_GOSSIP, TARGET_ADDR, and DATA (the server's
# data dir, default a fresh temp dir). SHOAL and TARGET point at the binaries.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SHOAL=${SHOAL:-$here/../target/release/shoal}
TARGET=${TARGET:-$here/../target/release/examples/target}
API=${SHOAL_API:-127.0.0.1:7070}
GOSSIP=${SHOAL_GOSSIP:-127.0.0.1:7946}
TARGET_ADDR=${TARGET_ADDR:-127.0.0.1:8080}
DATA=${DATA:-$(mktemp -d -t shoal-three-node-XXXXXX)}
SERVER="http://$API"

for bin in "$SHOAL" "$TARGET"; do
  if [[ ! -x $bin ]]; then
    echo "missing $bin: run cargo build --release --bins --examples first" >&2
    exit 1
  fi
done

pids=()
stop_all() {
  trap - EXIT INT TERM
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  echo "cluster stopped (data kept in $DATA)"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

"$TARGET" "$TARGET_ADDR" & pids+=($!)
"$SHOAL" server --data-dir "$DATA" --api "$API" --gossip "$GOSSIP" & pids+=($!)
"$SHOAL" worker --join "$GOSSIP" --id w1 & pids+=($!)
"$SHOAL" worker --join "$GOSSIP" --id w2 --tag billing & pids+=($!)

for _ in $(seq 100); do
  "$SHOAL" members --server "$SERVER" >/dev/null 2>&1 && break
  sleep 0.2
done

# The example channels and jobs call the target at 127.0.0.1:8080; point them at TARGET_ADDR.
jobs_dir=$(mktemp -d -t shoal-jobs-XXXXXX)
for channel in "$here"/channels/*.toml; do
  sed "s#http://127.0.0.1:8080#http://$TARGET_ADDR#" "$channel" >"$jobs_dir/$(basename "$channel")"
  "$SHOAL" channel add --file "$jobs_dir/$(basename "$channel")" --server "$SERVER"
done
for job in "$here"/jobs/*.toml; do
  sed "s#http://127.0.0.1:8080#http://$TARGET_ADDR#" "$job" >"$jobs_dir/$(basename "$job")"
  "$SHOAL" job apply --file "$jobs_dir/$(basename "$job")" --server "$SERVER"
done
rm -rf "$jobs_dir"

sleep 2
"$SHOAL" members --server "$SERVER"
echo "cluster up: API $SERVER, gossip $GOSSIP, target http://$TARGET_ADDR; Ctrl-C stops it"
wait
