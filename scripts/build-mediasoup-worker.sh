#!/usr/bin/env bash
# Builds mediasoup's C++ worker offline against Debian 12's libraries (see
# ../shared/notes/mediasoup-worker.md): the npm package's own postinstall downloads a prebuilt
# binary or every C++ dependency from GitHub, neither reachable here. Each meson subproject
# the worker asks for is replaced by a shim that hands over the system library.
#
#   scripts/build-mediasoup-worker.sh   → prints the worker's path
#
# It builds the worker source of the installed package (node_modules/mediasoup, with our
# patches/mediasoup+<version>.patch applied by scripts/install.sh: RTX payload types and
# header-extension ids per consumer). The result is cached in
# ${RTCPLANE_CACHE:-$HOME/.cache/rtcplane}/mediasoup-worker-<version>-<patch hash>, so later
# runs (and later CI runs on the same machine) skip the ~6-minute build, and linked where
# mediasoup looks for its worker (node_modules/mediasoup/worker/out/Release/mediasoup-worker).
set -euo pipefail
SELF="$(readlink -f "$0")"
cd "$(dirname "$SELF")/.."

PACKAGE=node_modules/mediasoup
if [ ! -f "$PACKAGE/package.json" ]; then
  echo "mediasoup is not installed: run scripts/install.sh first" >&2
  exit 1
fi
VERSION="$(node -p "require('./$PACKAGE/package.json').version")"
PATCH="patches/mediasoup+$VERSION.patch"
# The build recipe (this script) is part of the key: a worker built another way is another worker.
SRTP_PATCH="$PWD/patches/libsrtp2-2.5.0.diff"
HASH="$( (cat "$PATCH" 2>/dev/null || true; cat "$SRTP_PATCH" "$SELF") | sha256sum | cut -c1-12)"
CACHE="${RTCPLANE_CACHE:-$HOME/.cache/rtcplane}"
OUT="$CACHE/mediasoup-worker-$VERSION-$HASH"
LINK="$PACKAGE/worker/out/Release/mediasoup-worker"
install_link() {
  mkdir -p "$(dirname "$LINK")"
  ln -sfn "$OUT" "$LINK"
  echo "$OUT"
}
if [ -x "$OUT" ]; then
  install_link
  exit 0
fi

need=()
for pkg in libssl-dev libuv1-dev libusrsctp-dev libabsl-dev nlohmann-json3-dev meson ninja-build pkg-config g++ make dpkg-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]}" >&2
    exit 1
  fi
  echo "installing Debian packages: ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/package"
cp -r "$PACKAGE/worker" "$WORK/package/worker"
rm -rf "$WORK/package/worker/out" "$WORK/package/worker/build"
SRC="$WORK/package/worker"
# Debian 12 ships meson 1.0.1; the worker builds with it.
sed -i "s/meson_version: '>= 1.1.0'/meson_version: '>= 1.0.0'/" "$SRC/meson.build"

# shim <wrap directory> <meson.build body> [meson_options.txt body]
shim() {
  local dir="$SRC/subprojects/$1"
  mkdir -p "$dir"
  printf "project('%s', 'c', 'cpp')\n%s\n" "$1" "$2" >"$dir/meson.build"
  printf '%s\n' "${3:-}" >"$dir/meson_options.txt"
}
EMPTY="files('empty.c')"
empty_lib() { echo "$1 = static_library('$1', $EMPTY)"; }
for d in openssl-3.0.8 libuv-v1.44.2 libsrtp-2.5.0 usrsctp-4e06feb01cadcd127d119486b98a4bd3d64aa1e7 \
  abseil-cpp-20220623.0 nlohmann_json-3.10.5 Catch2-2.13.7; do
  mkdir -p "$SRC/subprojects/$d" && echo "" >"$SRC/subprojects/$d/empty.c"
done

shim openssl-3.0.8 "openssl_dep = dependency('openssl')
$(empty_lib libcrypto_lib)
$(empty_lib libssl_lib)"
shim libuv-v1.44.2 "libuv_dep = dependency('libuv')
$(empty_lib libuv)" "option('build_tests', type: 'boolean', value: false)
option('build_benchmarks', type: 'boolean', value: false)"
# libsrtp2 from Debian's source package, built on OpenSSL as mediasoup's own build does:
# Debian's binary libsrtp2 is built on NSS, whose PKCS#11 layer (a context per packet) took
# ~17 % of a worker's CPU with 30 viewers (perf). The source comes from the Debian archive
# through a sources list of our own (the system's apt configuration is left alone).
# patches/libsrtp2-2.5.0.diff takes OpenSSL 3's per-packet context set-ups out of AES-ICM and
# HMAC-SHA1 (the EVP calls that re-initialise a context through the provider for each packet);
# libsrtp's own tests (make runtest: known-answer self-tests, output buffering, srtp_driver)
# pass with it, and its srtp_driver -t runs 1.1–2x faster from 2 KB down to 32-byte packets.
SRTP="$WORK/srtp"
mkdir -p "$SRTP/lists/partial" "$SRTP/cache"
CODENAME="$(. /etc/os-release && echo "$VERSION_CODENAME")"
printf 'deb-src %s %s main\n' "${RTCPLANE_DEBIAN_MIRROR:-http://deb.debian.org/debian}" "$CODENAME" >"$SRTP/sources.list"
APT_SRC=(-o "Dir::Etc::SourceList=$SRTP/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$SRTP/lists" -o "Dir::Cache=$SRTP/cache" -o APT::Sandbox::User=root)
apt-get "${APT_SRC[@]}" update -qq >&2
(cd "$SRTP" && apt-get "${APT_SRC[@]}" source -qq libsrtp2 >&2)
(cd "$SRTP"/libsrtp2-*/ && patch -p1 --forward --batch <"$SRTP_PATCH" >&2)
(cd "$SRTP"/libsrtp2-*/ && ./configure --prefix="$SRTP/prefix" --enable-openssl CFLAGS="-O2 -fPIC" >&2 &&
  make -j"$(nproc)" libsrtp2.a >&2 && make install >&2)
shim libsrtp-2.5.0 "libsrtp2_dep = declare_dependency(link_args: ['$SRTP/prefix/lib/libsrtp2.a', '-lcrypto'], include_directories: include_directories('$SRTP/prefix/include/srtp2'))
$(empty_lib libsrtp2)" "option('crypto-library', type: 'string', value: 'openssl')
option('crypto-library-kdf', type: 'string', value: 'disabled')
option('tests', type: 'string', value: 'disabled')"
shim usrsctp-4e06feb01cadcd127d119486b98a4bd3d64aa1e7 "usrsctp_dep = dependency('usrsctp')
$(empty_lib usrsctp)" "option('sctp_build_programs', type: 'boolean', value: false)"
shim abseil-cpp-20220623.0 "absl_container_dep = dependency('absl_flat_hash_map')
absl_strings_dep = dependency('absl_strings')
absl_types_dep = dependency('absl_optional')
$(empty_lib absl_container_lib)"
shim nlohmann_json-3.10.5 "nlohmann_json_dep = dependency('nlohmann_json')"
shim Catch2-2.13.7 "catch2_dep = declare_dependency()"

(cd "$SRC" && meson setup build --buildtype=release --wrap-mode=nodownload >&2 && ninja -C build mediasoup-worker >&2)
mkdir -p "$CACHE"
cp "$SRC/build/mediasoup-worker" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
install_link
