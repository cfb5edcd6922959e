#!/usr/bin/env bash
# Headless Chromium for the report tests (Debian package). Best effort: without
# it (or without root) the browser tests skip, unless PP_REQUIRE_BROWSER=1.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
else
    echo "chromium not installed (needs root and apt-get); browser tests will skip" >&2
fi
exit 0
