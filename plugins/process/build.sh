#!/bin/sh
# Builds plugin.wasm from process.c with zig's C compiler (pip install ziglang).
#
#   ./build.sh            writes plugin.wasm beside this script
#   ./build.sh OUT.wasm   writes OUT.wasm instead (relative to the current directory)
#
# PYTHON selects the interpreter that has ziglang installed (default: python3).
# The build is reproducible: the same sources and zig version give the same bytes.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/plugin.wasm"}
case $out in
    /*) ;;
    *) out="$(pwd)/$out" ;;
esac

# Compile from the script's directory with relative paths, so nothing about
# the checkout's location can reach the output.
cd "$here"
exec "${PYTHON:-python3}" -m ziglang cc --target=wasm32-wasi -O2 -mexec-model=reactor -s \
    -Wall -Wextra -Wl,-z,stack-size=65536 \
    -I ../../goatkit_asgi/sdk/c -o "$out" process.c
