#!/usr/bin/env bash
# Profiles rtcplane serving one room read under load: `bench/tools/profile-read.sh [rest|connect|grpc] [seconds]`.
# Starts the server (compiled JS when built) with --cpu-prof, loads it, stops it, summarizes the profile.
set -euo pipefail
cd "$(dirname "$0")/../.."
kind="${1:-rest}"; seconds="${2:-10}"
dir=$(mktemp -d); prof="$dir/prof"; mkdir -p "$prof"
entry=(--import tsx src/server.ts); [ -f dist/server.js ] && entry=(dist/server.js)
DATA_DIR="$dir/data" PORT=0 HOST=127.0.0.1 ADMIN_TOKEN=profile-admin-token-0123456789 LOG_LEVEL=info \
  MEDIASOUP_WORKER_BIN=/nonexistent MAX_CONNECTIONS_PER_IP=100000 \
  node --cpu-prof --cpu-prof-dir="$prof" "${entry[@]}" > "$dir/out.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q '"listening"' "$dir/out.log" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o '"url":"[^"]*"' "$dir/out.log" | head -1 | cut -d'"' -f4)
auth="authorization: Bearer profile-admin-token-0123456789"
tenant=$(curl -s -X POST -H "$auth" -H 'content-type: application/json' -d '{"name":"p"}' "$url/admin/v1/tenants")
tid=$(echo "$tenant" | node -pe 'JSON.parse(require("fs").readFileSync(0)).tenantId')
tok=$(echo "$tenant" | node -pe 'JSON.parse(require("fs").readFileSync(0)).authToken')
app=$(curl -s -X POST -H "x-auth-token: $tok" -H 'content-type: application/json' -d '{}' "$url/tenants/$tid/apps" | node -pe 'JSON.parse(require("fs").readFileSync(0)).id')
secret=$(curl -s -H "x-auth-token: $tok" "$url/tenants/$tid/apps/$app/secretkey" | node -pe 'JSON.parse(require("fs").readFileSync(0)).secretkey')
room=$(curl -s -X POST -H "x-vcs-token: $secret" -H 'content-type: application/json' -d '{}' "$url/api/realtime/room" | node -pe 'JSON.parse(require("fs").readFileSync(0)).room.id')
ac=node_modules/autocannon/autocannon.js
case "$kind" in
  rest) node $ac -c 32 -d "$seconds" -H "x-vcs-token=$secret" "$url/api/realtime/room/$room" ;;
  connect) echo "{\"id\":\"$room\"}" > "$dir/body"; node $ac -c 32 -d "$seconds" -m POST -H "x-vcs-token=$secret" -H content-type=application/json -i "$dir/body" "$url/rtcplane.rooms.v1.RoomService/GetRoom" ;;
  grpc) node -e "const b=Buffer.concat([Buffer.from([0x0a,process.argv[1].length]),Buffer.from(process.argv[1])]);const h=Buffer.alloc(5);h.writeUInt32BE(b.length,1);require('fs').writeFileSync('$dir/body',Buffer.concat([h,b]))" "$room"
        h2load -c 4 -m 16 -D "$seconds" -H "x-vcs-token: $secret" -H 'content-type: application/grpc' -H 'te: trailers' -d "$dir/body" "$url/rtcplane.rooms.v1.RoomService/GetRoom" | grep -E "finished|requests:" ;;
esac > "$dir/load.txt"
grep -E "req/s|Req/Sec|finished" "$dir/load.txt" | head -3 || true
kill -TERM $pid; wait $pid || true
npx tsx bench/tools/cpuprofile-summary.ts "$(ls "$prof"/*.cpuprofile | head -1)" "${TOP:-25}"
