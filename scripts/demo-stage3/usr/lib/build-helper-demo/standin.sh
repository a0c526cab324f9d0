# STAND-IN support for the build-helper demo/test stage3. NOT Gentoo, NOT Portage.
# Every stand-in command of this stage3 sources this file. A stand-in prints what it was
# asked, records the environment it got in /var/log/build-helper-demo/<target>:<step>.env,
# takes a little time (BH_DEMO_DELAY seconds, default 0.05), and creates the files that
# later steps of the recipe look for.
#
# BH_DEMO_FAIL=<tuple>.<name>:<step> makes the first stand-in run by that step of that
# target fail once; a marker in /var/lib/build-helper-demo makes the next attempt succeed.

standin_begin() {
    tool=$1
    shift
    echo "stand-in $tool: $*"
    here="${CROSSDEV_TARGET:-}.${BUILD_NAME:-}:${BUILD_HELPER_STEP:-}"
    # What the step's environment was, for the tests (one file per target and step).
    mkdir -p /var/log/build-helper-demo
    env > "/var/log/build-helper-demo/$here.env"
    if [ -n "${BH_DEMO_FAIL:-}" ] && [ "$BH_DEMO_FAIL" = "$here" ]; then
        marker="/var/lib/build-helper-demo/failed.$here"
        if [ ! -e "$marker" ]; then
            mkdir -p /var/lib/build-helper-demo
            : > "$marker"
            echo "stand-in $tool: failing once on purpose (BH_DEMO_FAIL=$BH_DEMO_FAIL)" >&2
            exit 1
        fi
    fi
    sleep "${BH_DEMO_DELAY:-0.05}"
}
