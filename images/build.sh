#!/usr/bin/env bash
# Builds both images with the tags the chart's values name (image.*.repository:tag),
# or with the tag given: images/build.sh [tag]. Needs Docker (or a compatible CLI as DOCKER).
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-0.1.0}"
docker="${DOCKER:-docker}"
for target in node-agent operator; do
  "$docker" build -f images/Dockerfile --target "$target" -t "mosaic/$target:$tag" .
done
