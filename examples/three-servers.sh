#!/usr/bin/env bash
# A group of three Shoal servers on this machine (Raft: any one of them may die), one worker, the
# example HTTP target and the example jobs of examples/jobs/. Ctrl-C stops every process.
#
#   cargo build --release --bins --examples && examples/three-servers.sh
#
# Then, in another terminal (any server answers; the CLI tries each in turn):
#   export SHOAL_SERVER=http://127.0.0.1:7071,http://127.0.0.1:7072,http://127.0.0.1:7073
#   target/release/shoal servers list      # who leads, terms, lag
#   target/release/shoal tui
# and kill the leader (kill -9 PID, the script prints them): another takes over within seconds.
# Addresses can be overridden: API1..API3, GOSSIP1..GOSSIP3, TARGET_ADDR, and DATA (the parent
# of the servers' data dirs, default a fresh temp dir). SHOAL and TARGET point at the binaries.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SHOAL=${SHOAL:-$here/../target/release/shoal}
TARGET=${TARGET:-$here/../target/release/examples/target}
APIS=("${API1:-127.0.0.1:7071}" "${API2:-127.0.0.1:7072}" "${API3:-127.0.0.1:7073}")
GOSSIPS=("${GOSSIP1:-127.0.0.1:7946}" "${GOSSIP2:-127.0.0.1:7947}" "${GOSSIP3:-127.0.0.1:7948}")
TARGET_ADDR=${TARGET_ADDR:-127.0.0.1:8080}
DATA=${DATA:-$(mktemp -d -t shoal-three-servers-XXXXXX)}
SERVER="http://${APIS[0]},http://${APIS[1]},http://${APIS[2]}"

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
  echo "group stopped (data kept in $DATA)"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

"$TARGET" "$TARGET_ADDR" & pids+=($!)
for k in 0 1 2; do
  # Each server joins the first one's gossip; the group forms once all three see each other.
  "$SHOAL" server --id "s$((k + 1))" --data-dir "$DATA/s$((k + 1))" \
    --api "${APIS[$k]}" --gossip "${GOSSIPS[$k]}" --join "${GOSSIPS[0]}" \
    --bootstrap-expect 3 & pids+=($!)
  echo "server s$((k + 1)): pid $!, API http://${APIS[$k]}"
done
"$SHOAL" worker --join "${GOSSIPS[0]}" --id w1 & pids+=($!)

# Formed once one of them leads.
for _ in $(seq 150); do
  "$SHOAL" servers list --server "$SERVER" --output json 2>/dev/null | grep -q '"leader": true' && break
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

"$SHOAL" servers list --server "$SERVER"
echo "group up: SHOAL_SERVER=$SERVER, target http://$TARGET_ADDR; Ctrl-C stops it"
wait
