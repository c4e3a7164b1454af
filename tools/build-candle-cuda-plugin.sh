#!/usr/bin/env bash
# Build the candle backend plugin with CUDA ("candle-cuda") on a machine with or
# without a GPU, using the CUDA 13.0 toolkit from PyPI wheels. See docs/cuda.md.
#
#   tools/build-candle-cuda-plugin.sh            # build (idempotent; a re-run only relinks if needed)
#   tools/build-candle-cuda-plugin.sh --gpu-kit  # also pack target/gpu-kit.tar.xz (~27 MB): the
#                                                # stripped plugin and cogview ($COGVIEW_BIN, else the
#                                                # newer of target/{release,debug}/cogview), small
#                                                # enough to carry to a GPU machine that has the CUDA 13
#                                                # libraries itself (docs/cuda.md, "On a GPU machine")
#
# Result:
#   target/plugins/libcogview_plugin_candle_cuda.so      the plugin (path printed on the last line)
#   target/plugins/candle-cuda/                          the same plugin plus the CUDA libraries it
#                                                        needs (symlinks into the venv; tar with -h)
#
# Environment (all optional):
#   CUDA_COMPUTE_CAP   GPU architecture of the kernels (default 90 = H100/H200; cudaforge makes it sm_90a)
#   CUDA_TOOLKIT_SPEC  pip version spec of the toolkit (default 13.0.*, see docs/cuda.md for why)
#   BUILD_JOBS         cargo -j (default 1: this machine's CPUs are shared)
#   PYTHON             interpreter used to create the venv (default python3)
#   COGVIEW_BIN        the cogview executable packed by --gpu-kit
#
# Everything it makes lives under target/ (git-ignored):
#   target/cuda-venv      nvcc, headers and CUDA libraries from the cuda-toolkit wheels
#   target/cuda-link      link-time directory: stub libcuda.so + unversioned .so symlinks
#   target/cuda-build     cargo's --target-dir, so the main target/ build is not invalidated
set -euo pipefail

GPU_KIT=0
for arg in "$@"; do
    case "$arg" in
        --gpu-kit) GPU_KIT=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TOOLKIT_SPEC="${CUDA_TOOLKIT_SPEC:-13.0.*}"
COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
JOBS="${BUILD_JOBS:-1}"
PY="${PYTHON:-python3}"

VENV="$ROOT/target/cuda-venv"
LINK_DIR="$ROOT/target/cuda-link"
BUILD_DIR="$ROOT/target/cuda-build"
OUT_DIR="$ROOT/target/plugins"
BUNDLE="$OUT_DIR/candle-cuda"
PLUGIN="$OUT_DIR/libcogview_plugin_candle_cuda.so"

say() { printf '[build-candle-cuda] %s\n' "$*" >&2; }

# --- 1. the toolkit: nvcc, nvvm (cicc), headers, cudart/cublas/curand/nvrtc --------------------
# cuda-toolkit is a meta-package; each extra pulls one nvidia-* wheel. All of them install into
# site-packages/nvidia/cu13, which is laid out like a CUDA_HOME (bin, include, lib, nvvm).
WHEELS=("cuda-toolkit[nvcc,nvvm,crt,cccl,cudart,cublas,curand,nvrtc]==${TOOLKIT_SPEC}")
find_cuda_root() {
    local d
    for d in "$VENV"/lib/python3*/site-packages/nvidia/cu13; do
        [ -x "$d/bin/nvcc" ] && [ -x "$d/nvvm/bin/cicc" ] && [ -f "$d/include/cuda.h" ] \
            && [ -e "$d/lib/libcublas.so.13" ] && [ -e "$d/lib/libnvrtc.so.13" ] \
            && [ -e "$d/lib/libcurand.so.10" ] && [ -e "$d/lib/libcudart.so.13" ] \
            && { echo "$d"; return 0; }
    done
    return 1
}
wanted_version="$(echo "$TOOLKIT_SPEC" | cut -d. -f1,2)"   # "13.0.*" -> "13.0" (13.x only: the cu13 layout)
CUDA_ROOT="$(find_cuda_root || true)"
if [ -n "$CUDA_ROOT" ] && ! "$CUDA_ROOT/bin/nvcc" --version | grep -q "release ${wanted_version},"; then
    say "venv has another CUDA release than ${wanted_version}; reinstalling"
    CUDA_ROOT=""
fi
if [ -z "$CUDA_ROOT" ]; then
    [ -x "$VENV/bin/pip" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
    say "installing ${WHEELS[*]} into $VENV"
    nice -n 19 "$VENV/bin/pip" install --quiet --disable-pip-version-check "${WHEELS[@]}"
    CUDA_ROOT="$(find_cuda_root)" || { say "the wheels did not give nvcc/cicc/cuda.h/libs under $VENV"; exit 1; }
fi
NVCC_VERSION="$("$CUDA_ROOT/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\),.*/\1.\2/p')"
case "$NVCC_VERSION" in
    *.*) ;;
    *) say "cannot read the release from nvcc --version"; exit 1 ;;
esac
say "toolkit: $CUDA_ROOT (nvcc $NVCC_VERSION)"

# --- 2. the link directory: stub libcuda.so and unversioned names for -l ------------------------
# cudarc (dynamic-linking, as candle enables it) links -lcuda -lnvrtc -lcurand -lcublas -lcublasLt,
# and candle-kernels links -lcudart. The wheels ship only the versioned files (libcublas.so.13),
# and no libcuda at all: that library comes with the NVIDIA driver. The stub below exists only so
# that the linker can resolve the cu* symbols and record NEEDED libcuda.so.1; it is never shipped.
mkdir -p "$LINK_DIR"
for lib in cublas cublasLt cudart nvrtc curand; do
    target="$(ls "$CUDA_ROOT/lib/lib$lib.so."[0-9]* 2>/dev/null | grep -E "/lib$lib\.so\.[0-9]+$" | head -n1)"
    [ -n "$target" ] || { say "no lib$lib.so.N in $CUDA_ROOT/lib"; exit 1; }
    ln -sfn "$target" "$LINK_DIR/lib$lib.so"
done
GEN="$ROOT/tools/cuda-stub/gen_libcuda_stub.py"
STUB_C="$LINK_DIR/libcuda_stub.c"
STUB_SO="$LINK_DIR/libcuda.so"
if [ ! -f "$STUB_SO" ] || [ "$GEN" -nt "$STUB_SO" ] || [ "$CUDA_ROOT/include/cuda.h" -nt "$STUB_SO" ]; then
    say "generating the link-time libcuda stub from $CUDA_ROOT/include/cuda.h"
    "$VENV/bin/python" "$GEN" "$CUDA_ROOT/include/cuda.h" > "$STUB_C.tmp"
    mv "$STUB_C.tmp" "$STUB_C"
    cc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$STUB_SO.tmp" "$STUB_C"
    mv "$STUB_SO.tmp" "$STUB_SO"
fi

# --- 3. cargo ---------------------------------------------------------------------------------
export PATH="$CUDA_ROOT/bin:$PATH"          # cudarc runs `nvcc --version`; cudaforge finds nvcc here
export CUDA_HOME="$CUDA_ROOT"               # cudarc adds $CUDA_HOME/lib to the link search path
export NVCC="$CUDA_ROOT/bin/nvcc"
export CUDARC_CUDA_VERSION="${NVCC_VERSION%%.*}0${NVCC_VERSION#*.}0"   # 13.0 -> 13000
export CUDA_COMPUTE_CAP="$COMPUTE_CAP"      # no nvidia-smi here; cudaforge would fail without it
export CUDAFORGE_THREADS="$JOBS" RAYON_NUM_THREADS="$JOBS"   # nvcc jobs inside candle-kernels' build.rs
# -L: the stub and the unversioned names. RUNPATH $ORIGIN: the CUDA libraries copied next to the
# plugin (target/plugins/candle-cuda/) are found without LD_LIBRARY_PATH; a system CUDA or
# LD_LIBRARY_PATH still wins for anything not there.
export RUSTFLAGS="-L native=$LINK_DIR -C link-arg=-Wl,-rpath,\$ORIGIN"

say "cargo build --release -p cogview-plugin-candle --features cuda --target-dir $BUILD_DIR -j $JOBS (sm_${COMPUTE_CAP}, CUDA $NVCC_VERSION)"
start=$(date +%s)
nice -n 19 cargo build --release -j "$JOBS" -p cogview-plugin-candle --features cuda --target-dir "$BUILD_DIR"
say "cargo took $(( $(date +%s) - start )) s"

BUILT="$BUILD_DIR/release/libcogview_plugin_candle.so"
[ -f "$BUILT" ] || { say "cargo gave no $BUILT"; exit 1; }

# --- 4. sanity checks on the result -----------------------------------------------------------
if ! readelf -d "$BUILT" | grep -q 'NEEDED.*\[libcuda\.so\.1\]'; then
    say "warning: $BUILT does not record NEEDED libcuda.so.1 (did candle switch to dynamic loading?)"
fi
# Every driver symbol the plugin takes from libcuda.so.1 must be one that CUDA ${NVCC_VERSION}'s
# cuda.h declares, i.e. one that a driver of that release exports (the stub has exactly those).
missing="$(comm -23 <(nm -D --undefined-only "$BUILT" | awk '{print $2}' | sed 's/@.*//' | grep -E '^cu[A-Z]' | sort -u) \
                    <(nm -D --defined-only "$STUB_SO" | awk '{print $3}' | sort -u) || true)"
if [ -n "$missing" ]; then
    say "the plugin needs driver symbols that cuda.h $NVCC_VERSION does not declare:"; echo "$missing" >&2; exit 1
fi

# --- 5. install: the plugin under the name the host looks for, and a bundle folder --------------
mkdir -p "$OUT_DIR" "$BUNDLE"
install -m 0755 "$BUILT" "$PLUGIN.tmp" && mv "$PLUGIN.tmp" "$PLUGIN"
install -m 0755 "$BUILT" "$BUNDLE/libcogview_plugin_candle_cuda.so.tmp" \
    && mv "$BUNDLE/libcogview_plugin_candle_cuda.so.tmp" "$BUNDLE/libcogview_plugin_candle_cuda.so"
# The CUDA libraries the plugin (and they, in turn) need, from the same wheels it was linked with:
# its NEEDED entries, plus libcublasLt (needed by libcublas). If libnvrtc is NEEDED (candle 0.11.1
# uses none of its functions, so --as-needed drops it today), the libnvrtc-builtins it loads
# itself goes along. libcuda.so.1 is NOT here: it is the driver's and must come from the GPU machine.
manifest="$BUNDLE/MANIFEST.txt"
{
    echo "candle-cuda plugin bundle: CUDA $NVCC_VERSION toolkit libraries from PyPI wheels, kernels for sm_${COMPUTE_CAP}."
    echo "Needs on the GPU machine: an NVIDIA driver for CUDA >= $NVCC_VERSION (libcuda.so.1), nothing else."
    echo "Use: COGVIEW_PLUGIN_PATH=\$PWD/candle-cuda cogview backends   (see docs/cuda.md)"
    echo "Files (tar with -h to follow the symlinks):"
} > "$manifest.tmp"
needed="$(readelf -d "$BUILT" | sed -n 's/.*NEEDED.*\[\(lib\(cublas\|cublasLt\|cudart\|nvrtc\|curand\)\.so[.0-9]*\)\]/\1/p')"
extra=""
case "$needed" in *libcublas.so*) extra="$extra $(basename "$(readlink -f "$LINK_DIR/libcublasLt.so")")" ;; esac
case "$needed" in *libnvrtc.so*) extra="$extra libnvrtc-builtins.so.$NVCC_VERSION" ;; esac
rm -f "$BUNDLE"/lib*.so.[0-9]* 2>/dev/null || true     # drop links a previous build needed
for lib in $(printf '%s\n' $needed $extra | sort -u); do
    [ -e "$CUDA_ROOT/lib/$lib" ] || { say "no $lib in $CUDA_ROOT/lib"; exit 1; }
    ln -sfn "$CUDA_ROOT/lib/$lib" "$BUNDLE/$lib"
done
(cd "$BUNDLE" && for f in $(ls | grep -v '^MANIFEST'); do
    printf '  %-40s %s\n' "$f" "$(du -shL "$f" | cut -f1)"
done) >> "$manifest.tmp"
mv "$manifest.tmp" "$manifest"

say "bundle: $BUNDLE ($(du -shL "$BUNDLE" | cut -f1))"

# --- 6. optional: a small kit for a GPU machine that brings its own CUDA 13 libraries ----------
if [ "$GPU_KIT" = 1 ]; then
    KIT="$ROOT/target/gpu-kit"
    # The host: $COGVIEW_BIN, else the newer of target/release/cogview and target/debug/cogview
    # that has the `backends` command (an older build predates plugins).
    HOST_BIN=""
    for b in ${COGVIEW_BIN:-} $(ls -t "$ROOT/target/release/cogview" "$ROOT/target/debug/cogview" 2>/dev/null); do
        if "$b" backends --help >/dev/null 2>&1; then HOST_BIN="$b"; break; fi
    done
    [ -n "$HOST_BIN" ] || { say "no cogview with plugin support: build it first (nice -n 19 cargo build --release -j 1 --bin cogview)"; exit 1; }
    rm -rf "$KIT" && mkdir -p "$KIT"
    strip --strip-debug -o "$KIT/libcogview_plugin_candle_cuda.so" "$BUILT"
    strip --strip-debug -o "$KIT/cogview" "$HOST_BIN"
    cp "$manifest" "$KIT/MANIFEST.txt"
    # xz -9e: 27 MB instead of gzip's 38 MB, so that the kit, the repository and the benchmark's
    # wheels fit the lent GPU machine's 64 MiB per call.
    rm -f "$ROOT/target/gpu-kit.tar.gz"
    tar -cf - -C "$ROOT/target" gpu-kit | xz -9e -T2 > "$ROOT/target/gpu-kit.tar.xz.part"
    mv "$ROOT/target/gpu-kit.tar.xz.part" "$ROOT/target/gpu-kit.tar.xz"
    say "gpu kit: $ROOT/target/gpu-kit.tar.xz ($(du -sh "$ROOT/target/gpu-kit.tar.xz" | cut -f1)); host $HOST_BIN of $(date -r "$HOST_BIN" '+%F %T')"
fi
echo "$PLUGIN"
