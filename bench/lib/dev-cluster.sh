# Shared by bench/profile-put.sh and bench/ab-put.sh: a local three-member
# `raftwood dev` cluster on the ports in CLIENT_PORTS (default
# 2479,22479,32479) and PEER_PORTS (default 12480,22480,32480), and the put
# workload of compare-etcd.sh. Source it; it defines:
#   client_ports, peer_ports  arrays of the ports
#   endpoints                 the client endpoints, comma-separated
#   put                       the put workload's `raftwood bench` arguments
#   start_dev BIN DIR LOG [ARGS...]   starts BIN dev in the background with
#                             its data in DIR and its output in LOG; sets dev_pid
#   wait_put_ready BIN        waits (up to 20 s) until BIN bench can put
#                             through the leader

IFS=, read -r -a client_ports <<<"${CLIENT_PORTS:-2479,22479,32479}"
IFS=, read -r -a peer_ports <<<"${PEER_PORTS:-12480,22480,32480}"
endpoints=$(printf '127.0.0.1:%s,' "${client_ports[@]}")
endpoints=${endpoints%,}
put=(put --key-size=8 --val-size=256 --key-space-size="${KEY_SPACE_SIZE:-100000}")

start_dev() {
  local bin=$1 dir=$2 log=$3
  shift 3
  "$bin" dev --data-dir "$dir" \
    --client-ports "$(IFS=,; echo "${client_ports[*]}")" \
    --peer-ports "$(IFS=,; echo "${peer_ports[*]}")" "$@" >"$log" 2>&1 &
  dev_pid=$!
}

wait_put_ready() {
  local bin=$1
  for _ in $(seq 1 100); do
    if "$bin" bench --endpoints="$endpoints" --target-leader --no-progress "${put[@]}" --total=1 2>/dev/null |
      grep -q 'errors        none'; then return 0; fi
    sleep 0.2
  done
}
