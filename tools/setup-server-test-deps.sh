#!/usr/bin/env bash
# What the `cogview serve` tests need besides Rust (crates/cogview-server/tests): the official
# OpenAI Python client (pinned, in a venv under target/) and Debian's headless Chromium with its
# WebDriver; and what the scale-out tests start (crates/cogview-cli/tests/cli/scale_out.rs):
# Debian's nats-server (2.9, with JetStream). Idempotent; .ci/run calls it before the tests. The
# tests fail (not skip) without them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
OPENAI_VERSION=3.63.0
venv="$root/target/openai-venv"
if ! "$venv/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    echo "installing openai==$OPENAI_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION"
fi
packages=()
command -v chromium >/dev/null || packages+=(chromium)
command -v chromedriver >/dev/null || packages+=(chromium-driver)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || packages+=(nats-server)
if [ ${#packages[@]} -gt 0 ]; then
    echo "installing ${packages[*]} (apt-get)" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi
