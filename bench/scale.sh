#!/bin/sh
# Scale benchmark wrapper: bench/scale.sh [-n TARGETS] [--build-dir DIR] [--window S] ...
# Builds nothing: run `cmake --build <dir> --target winrm_exporter winrm-sim` first.
# See bench/README.md; all options: bench/scale.sh --help
exec python3 "$(dirname "$0")/scale.py" "$@"
