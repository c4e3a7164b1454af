#!/usr/bin/env bash
# Builds the tch (libtorch) backend plugin, plugins/tch → libcogview_plugin_tch.so, and prints its
# path on the last line of stdout. Idempotent: the libtorch download and the build are skipped when
# already done.
#
#   tools/build-tch-plugin.sh                 # release build (default)
#   PROFILE=debug tools/build-tch-plugin.sh
#   LIBTORCH=/opt/libtorch tools/build-tch-plugin.sh   # use an existing libtorch 2.13.0
#   JOBS=2 NICE=10 tools/build-tch-plugin.sh  # limit the build's load (defaults: 2, 10)
#   tools/build-tch-plugin.sh --test          # also run the plugin crate's own unit tests
#
# libtorch comes from the PyPI wheel torch==2.13.0 (tch 0.26 needs exactly 2.13.0), installed
# without its dependencies into target/libtorch-venv (~540 MB), plus the two CUDA runtime wheels
# that libtorch_cpu.so itself needs (libcudart.so.13, libcupti.so.13). That is enough for the CPU.
# For CUDA, install the wheel with its dependencies (`pip install torch==2.13.0`, ~3 GB) and point
# LIBTORCH at its torch/ folder; the plugin loads libtorch_cuda.so at run time (docs/tch-plugin.md).
set -euo pipefail

run_unit_tests=0
for arg in "$@"; do
    case "$arg" in
        --test) run_unit_tests=1 ;;
        *) echo "error: unknown argument $arg (the only one is --test)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
profile="${PROFILE:-release}"
jobs="${JOBS:-2}"
nice_level="${NICE:-10}"

if [[ -z "${LIBTORCH:-}" ]]; then
    venv="$root/target/libtorch-venv"
    py="$venv/bin/python"
    if [[ ! -x "$py" ]]; then
        echo "creating $venv" >&2
        python3 -m venv "$venv"
    fi
    site="$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    if [[ ! -f "$site/torch/lib/libtorch_cpu.so" ]] || ! grep -qx 'Version: 2.13.0' "$site"/torch-2.13.0.dist-info/METADATA 2>/dev/null; then
        echo "installing torch==2.13.0 (libtorch) into $venv" >&2
        nice -n "$nice_level" "$venv/bin/pip" install --quiet --no-deps \
            torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 >&2
    fi
    export LIBTORCH="$site/torch"
fi
if [[ ! -f "$LIBTORCH/lib/libtorch_cpu.so" ]]; then
    echo "error: $LIBTORCH/lib/libtorch_cpu.so not found (LIBTORCH must be a libtorch 2.13.0 folder)" >&2
    exit 1
fi
# The wheel's torch/ folder is laid out like a libtorch zip (include/, lib/); torch-sys checks
# the version. Any change to these variables makes torch-sys recompile its C++ (minutes), so the
# script sets none of them beyond LIBTORCH.
unset LIBTORCH_USE_PYTORCH LIBTORCH_BYPASS_VERSION_CHECK

args=(build --manifest-path plugins/tch/Cargo.toml -j "$jobs")
[[ "$profile" == release ]] && args+=(--release)
echo "LIBTORCH=$LIBTORCH" >&2
nice -n "$nice_level" cargo "${args[@]}" >&2

if [[ "$run_unit_tests" == 1 ]]; then
    test_args=(test --manifest-path plugins/tch/Cargo.toml -j "$jobs" --lib)
    [[ "$profile" == release ]] && test_args+=(--release)
    nice -n "$nice_level" cargo "${test_args[@]}" >&2
fi

lib="$root/plugins/tch/target/$profile/libcogview_plugin_tch.so"
if [[ ! -f "$lib" ]]; then
    echo "error: $lib was not built" >&2
    exit 1
fi
echo "$lib"
