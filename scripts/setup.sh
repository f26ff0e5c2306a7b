#!/usr/bin/env bash
# Installs what herald needs from Debian's packages. Idempotent: installs only what is missing and
# runs `apt-get update` at most once. Works as root on a fresh machine (uses sudo otherwise).
#
#   scripts/setup.sh            build dependencies (compiler, libraries)
#   scripts/setup.sh test       + what the tests use (real mail servers, Python's email parser)
#   scripts/setup.sh example    + what the example mailing's local SMTP server uses
#   scripts/setup.sh bench      + what the benchmarks use
#   scripts/setup.sh fuzz       + what the fuzz targets use (scripts/fuzz.sh)
set -euo pipefail

build_packages=(
  g++ cmake ninja-build ccache pkg-config
  libasio-dev libssl-dev libsqlite3-dev libtomlplusplus-dev libcli11-dev
  libfmt-dev libspdlog-dev libidn2-dev nlohmann-json3-dev libunbound-dev libxml2-dev
)
# Real mail servers for the integration tests (tests/servers/ starts its own instances with their
# own configuration in temporary folders; the system-wide services stay unconfigured and stopped),
# and swaks with what it needs for TLS and IPv6 (only recommended by the package).
test_packages=(
  libgtest-dev libgmock-dev python3 openssl
  postfix dovecot-core dovecot-pop3d python3-aiosmtpd dnsmasq
  swaks libnet-ssleay-perl libio-socket-inet6-perl
)
# The example mailing's local submission server (scripts/local_smtp_server.py) and certificates.
example_packages=(python3 python3-aiosmtpd openssl)
# The benchmarks, and the peers of the peer table (bench/peers.sh): Postfix (smtp-sink, smtp-source and
# Postfix itself as a relay), Node.js and npm for nodemailer — Debian's only where there is no node
# yet: a machine may have Node.js from elsewhere (NodeSource's nodejs package conflicts with Debian's
# npm). nodemailer needs Node.js 20 or newer (Debian 13's; Debian 12 has 18).
bench_packages=(libbenchmark-dev python3 postfix)
# The fuzz targets (fuzz/): clang with libFuzzer and its sanitizer runtimes (libclang-rt-dev is only
# recommended by clang), llvm-symbolizer (in llvm) for readable stack traces in crash reports.
fuzz_packages=(clang libclang-rt-dev llvm)

wanted=("${build_packages[@]}")
for group in "$@"; do
  case "$group" in
    test) wanted+=("${test_packages[@]}") ;;
    example) wanted+=("${example_packages[@]}") ;;
    bench)
      wanted+=("${bench_packages[@]}")
      command -v node >/dev/null && command -v npm >/dev/null || wanted+=(nodejs npm)
      ;;
    fuzz) wanted+=("${fuzz_packages[@]}") ;;
    *) echo "setup.sh: unknown group '$group' (expected: test, example, bench, fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for package in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q

# Postfix without a system configuration (no /etc/postfix/main.cf), and no service started by a
# package's install script while it runs (policy-rc.d answering 101 "action forbidden"; one that
# was already there is left as it is).
echo "postfix postfix/main_mailer_type select No configuration" | "${as_root[@]}" debconf-set-selections
policy_rc_d=/usr/sbin/policy-rc.d
if [ ! -e "$policy_rc_d" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy_rc_d" >/dev/null
  "${as_root[@]}" chmod 755 "$policy_rc_d"
  trap '"${as_root[@]}" rm -f "$policy_rc_d"' EXIT
fi
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

# The tests start their own mail servers on free ports: stop any system instance an install started
# anyway (by the pid in its pid file), and keep systemd from starting them at boot.
for server in postfix:master:/var/spool/postfix/pid/master.pid dovecot:dovecot:/run/dovecot/master.pid \
              dnsmasq:dnsmasq:/run/dnsmasq/dnsmasq.pid; do
  IFS=: read -r name program pid_file <<< "$server"
  if [ -d /run/systemd/system ] && systemctl is-enabled --quiet "$name" 2>/dev/null; then
    "${as_root[@]}" systemctl disable --now --quiet "$name" || true
  fi
  pid=$(tr -d ' \n' 2>/dev/null < "$pid_file" || true)
  # A stale pid file may name some other process: only the server's own program is stopped.
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$program" ]; then
    echo "setup.sh: stopping the system $name (pid $pid) started by its install"
    "${as_root[@]}" kill "$pid" || true
  fi
done
