#!/usr/bin/env bash
# Debian packages the test suite drives as real clients: protoc (fixture descriptors and
# Python messages), Python grpcio, headless Chromium, openssl (TLS test certificates), curl;
# h2load (nghttp2-client), the HTTP/2 load generator of `npm run bench:api`; and the cluster's
# parts: PostgreSQL 15 (the shared store), nats-server (the Spreed bus), haproxy (the tested
# load balancer config); prometheus (promtool and a real scrape of /metrics) and coturn
# (the TURN server the relay tests go through).
# Installs only what is missing; needs root (CI and these machines run as root).
set -euo pipefail

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v h2load >/dev/null || missing+=(nghttp2-client)
[ -x /usr/bin/chromium ] || missing+=(chromium)
/usr/bin/python3 -c 'import grpc' 2>/dev/null || missing+=(python3-grpcio)
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v promtool >/dev/null || missing+=(prometheus)
command -v turnserver >/dev/null || missing+=(coturn)
/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null || missing+=(python3-protobuf)

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
