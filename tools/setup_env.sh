#!/usr/bin/env bash
# Sets up the mmtwins environment: a virtual environment with the verified OpenMMLab stack
# (requirements/stack.txt), mmcv built from source with its ops, and mmtwins installed in
# development mode. Safe to run again: an up-to-date environment is checked in seconds.
#
# Environment variables:
#   MMTWINS_VENV        virtual environment folder (default: <repo>/.venv)
#   MMTWINS_CACHE_DIR   cache of built mmcv wheels, shared by all clones
#                       (default: ${XDG_CACHE_HOME:-~/.cache}/mmtwins)
#   MMTWINS_WHEELHOUSE  a folder holding a prebuilt mmcv wheel for this torch and Python;
#                       it is copied into the cache instead of building mmcv
#   PYTHON              interpreter for a new virtual environment (default: python3.11)
#   MAX_JOBS            parallel compile jobs of the mmcv build (default: number of cores)
set -Eeuo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMTWINS_VENV:-$REPO/.venv}
CACHE_DIR=${MMTWINS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mmtwins}
CONSTRAINTS=$REPO/requirements/stack.txt
MMCV_VERSION=2.1.0
STAMP=$VENV/.mmtwins-setup-stamp
SECONDS=0
STEP_NAME=start
STEP_NO=0
STEP_COUNT=6

step() {
    STEP_NO=$((STEP_NO + 1))
    STEP_NAME=$1
    printf '==> [%d/%d] %s (%dm%02ds elapsed)\n' "$STEP_NO" "$STEP_COUNT" "$1" $((SECONDS / 60)) $((SECONDS % 60))
}
die() {
    echo "setup_env.sh: ERROR: $*" >&2
    exit 1
}
trap 'echo "setup_env.sh: FAILED in step \"$STEP_NAME\" (see the messages above)" >&2' ERR

pip_install() {
    "$VENV/bin/python" -m pip install --progress-bar off --constraint "$CONSTRAINTS" "$@"
}

# The inputs of the environment; a change to any of them reruns the setup.
setup_fingerprint() {
    cat "$CONSTRAINTS" "$REPO"/requirements/*.txt "$REPO/setup.py" "${BASH_SOURCE[0]}" \
        | sha256sum | cut -d' ' -f1
}

environment_works() {
    "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import mmcv, mmcv._ext, mmengine, mmpretrain.models, mmseg.models, mmdet.models, timm, mmtwins
PY
}

mmcv_with_ops_installed() {
    "$VENV/bin/python" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '$MMCV_VERSION'" \
        >/dev/null 2>&1
}

# Folder of cached mmcv wheels for this torch, Python and op flavour (CPU or CUDA ops).
mmcv_wheel_dir() {
    local key
    key=$("$VENV/bin/python" -c "
import sys, torch
flavour = 'cuda' if torch.cuda.is_available() else 'cpu'
print(f'torch{torch.__version__.split(\"+\")[0]}-cp{sys.version_info[0]}{sys.version_info[1]}-{flavour}')")
    echo "$CACHE_DIR/mmcv-$MMCV_VERSION/$key"
}

# Builds the mmcv wheel with its ops into $1 (about 35 minutes on 2 cores).
build_mmcv_wheel() {
    local wheel_dir=$1 work log ticker
    work=$(mktemp -d)
    log=$CACHE_DIR/mmcv-build.log
    mkdir -p "$CACHE_DIR"
    echo "    building mmcv $MMCV_VERSION with ops from source; log: $log"
    "$VENV/bin/python" -m pip download --no-deps --no-build-isolation --no-binary :all: \
        "mmcv==$MMCV_VERSION" -d "$work/src" >"$log" 2>&1 \
        || die "could not download the mmcv $MMCV_VERSION source archive (log: $log)"
    tar -xzf "$work"/src/mmcv-"$MMCV_VERSION".tar.gz -C "$work"
    # mmcv 2.1.0 hard-codes -std=c++14/17, but the headers of torch >= 2.10 require C++20.
    sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$work/mmcv-$MMCV_VERSION/setup.py"
    ( while sleep 60; do echo "    ... still compiling mmcv ops ($((SECONDS / 60)) min elapsed)"; done ) &
    ticker=$!
    if ! MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$VENV/bin/python" -m pip wheel \
        --no-build-isolation --no-deps "$work/mmcv-$MMCV_VERSION" -w "$work/wheel" >>"$log" 2>&1; then
        kill "$ticker"
        tail -n 30 "$log" >&2
        die "building mmcv failed (full log: $log)"
    fi
    kill "$ticker"
    mkdir -p "$wheel_dir"
    # Copy then rename, so an interrupted setup never leaves a half-written wheel in the cache.
    for wheel in "$work"/wheel/mmcv-*.whl; do
        cp "$wheel" "$wheel_dir/.partial"
        mv "$wheel_dir/.partial" "$wheel_dir/$(basename "$wheel")"
    done
    rm -rf "$work"
}

install_mmcv() {
    local wheel_dir wheels
    mmcv_with_ops_installed && { echo "    mmcv $MMCV_VERSION with ops already installed"; return; }
    wheel_dir=$(mmcv_wheel_dir)
    mkdir -p "$wheel_dir"
    if ! compgen -G "$wheel_dir/mmcv-$MMCV_VERSION-*.whl" >/dev/null \
        && [ -n "${MMTWINS_WHEELHOUSE:-}" ]; then
        wheels=("$MMTWINS_WHEELHOUSE"/mmcv-"$MMCV_VERSION"-*.whl)
        [ -f "${wheels[0]}" ] || die "MMTWINS_WHEELHOUSE=$MMTWINS_WHEELHOUSE holds no mmcv-$MMCV_VERSION wheel"
        echo "    using the prebuilt wheel ${wheels[0]}"
        cp "${wheels[0]}" "$wheel_dir/"
    fi
    if compgen -G "$wheel_dir/mmcv-$MMCV_VERSION-*.whl" >/dev/null; then
        echo "    reusing the cached wheel in $wheel_dir (no build)"
    else
        build_mmcv_wheel "$wheel_dir"
    fi
    # --only-binary: never fall back to the registry's source archive (a build without ops).
    pip_install --quiet --only-binary mmcv --find-links "$wheel_dir" "mmcv==$MMCV_VERSION"
    mmcv_with_ops_installed || die "mmcv from $wheel_dir was installed but its ops do not load;
    delete $wheel_dir and run this script again to rebuild it"
}

echo "mmtwins setup: environment $VENV, wheel cache $CACHE_DIR"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(setup_fingerprint)" ] && environment_works; then
    echo "==> environment is up to date"
    exit 0
fi

step "virtual environment"
if [ ! -x "$VENV/bin/python" ]; then
    PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
    [ -n "$PYTHON" ] || die "no python3.11 found; set PYTHON=/path/to/python3.11"
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 9)' \
        || die "$PYTHON is older than Python 3.9; set PYTHON=/path/to/python3.11"
    "$PYTHON" -m venv "$VENV" || die "could not create a virtual environment in $VENV"
fi
"$VENV/bin/python" -c 'import sys; sys.version_info[:2] == (3, 11) or print(
    f"    warning: Python {sys.version.split()[0]}; the stack is verified on 3.11")'
rm -f "$STAMP"

step "build tools and torch (the first download is several GB)"
pip_install --quiet setuptools wheel ninja numpy
pip_install torch torchvision

step "mmcv $MMCV_VERSION with ops"
install_mmcv

step "OpenMMLab libraries and timm"
pip_install --quiet mmengine mmpretrain mmsegmentation mmdet ftfy regex timm

step "test requirements and mmtwins (editable)"
pip_install --quiet -r "$REPO/requirements/tests.txt"
pip_install --quiet --no-build-isolation --no-deps -e "$REPO"

step "checking the environment"
"$VENV/bin/python" -m mmtwins.utils.collect_env --check || die "the environment check failed"
setup_fingerprint >"$STAMP"
printf '==> done in %dm%02ds; activate with: source %s/bin/activate\n' \
    $((SECONDS / 60)) $((SECONDS % 60)) "$VENV"
