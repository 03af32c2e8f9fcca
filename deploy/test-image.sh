#!/usr/bin/env bash
# Runs the sluice image under the restrictions of the Kubernetes manifests
# (read-only root, non-root, all capabilities dropped, no-new-privileges, CPU
# and memory limits) with real traffic and both ways of draining it; prints
# the image size and memory figures. Takes about a minute.
#
#   deploy/test-image.sh [IMAGE]      default: localhost/sluice:<version>
set -euo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 tests/deploy/image_test.py "$@"
