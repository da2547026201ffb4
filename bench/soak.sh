#!/bin/sh
# Soak benchmark wrapper: bench/soak.sh [-n TARGETS] [--duration S] [--build-dir DIR] ...
# Builds nothing: run `cmake --build <dir> --target winrm_exporter winrm-sim` first.
# See bench/README.md; all options: bench/soak.sh --help
exec python3 "$(dirname "$0")/soak.py" "$@"
