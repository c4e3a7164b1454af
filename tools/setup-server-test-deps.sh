#!/usr/bin/env bash
# What the `cogview serve` tests need besides Rust (crates/cogview-server/tests): the official
# OpenAI Python client (pinned, in a venv under target/) and Debian's headless Chromium with its
# WebDriver. Idempotent; .ci/run calls it before the tests. The tests fail (not skip) without them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
OPENAI_VERSION=3.63.0
venv="$root/target/openai-venv"
if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    echo "installing openai==$OPENAI_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION"
fi
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "installing chromium and chromium-driver (apt-get)" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
