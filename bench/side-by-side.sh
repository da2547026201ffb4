#!/bin/sh
# Side-by-side CPU per WQL query: pywinrm vs libcurl+tinyxml2 floor vs winrm_exporter.
# Builds nothing: run `cmake --build <dir> --target winrm_exporter winrm-sim floor_loop` first.
# Every process it starts is stopped by PID on exit. See bench/README.md; all options: --help
exec python3 "$(dirname "$0")/side_by_side.py" "$@"
