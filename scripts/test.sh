#!/bin/sh
# The test command: installs what the tests need, then runs every test, the root-only
# end-to-end tests (tests/e2e) included. Run it as root: the e2e tests fail, never skip,
# without root.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root (the e2e tests mount and chroot)" >&2; exit 2; }
scripts/install-deps.sh
echo "scripts/test.sh: building and running every test (cargo test --all-targets); a first build takes minutes" >&2
exec cargo test --all-targets -- --test-threads=2
