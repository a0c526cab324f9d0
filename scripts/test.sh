#!/bin/sh
# The test command: installs what the tests need, then runs every test, the root-only
# end-to-end tests (tests/e2e) included. Run it as root. An ordinary user's `cargo test`
# skips, each with one line on stderr, the tests that need root or a tool that
# scripts/install-deps.sh installs; here BH_TEST_STRICT=1 turns every such skip into a
# failure (tests/support/skip.rs), so nothing skips unseen in CI.
set -eu
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root (the e2e tests mount and chroot)" >&2; exit 2; }
scripts/install-deps.sh
echo "scripts/test.sh: building and running every test (cargo test --all-targets); a first build takes minutes" >&2
export BH_TEST_STRICT=1
exec cargo test --all-targets -- --test-threads=2
