#!/bin/sh
# Start from an empty prometheus-client multiprocess folder: files left by the workers of a
# previous run of this container would otherwise be summed into the API's /metrics.
set -e
if [ -n "$PROMETHEUS_MULTIPROC_DIR" ]; then
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
exec "$@"
