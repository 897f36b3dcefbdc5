#!/usr/bin/env sh
# Build dist/agentdeck-<version>.mcpb, the Claude Desktop extension bundle (server.type "uv":
# the host installs Python and the dependencies from pyproject.toml; nothing compiled is bundled).
#
#   sh manifests/mcpb/build.sh
#
# Packs with the official CLI (npx @anthropic-ai/mcpb pack) when npx is on PATH, else zips the
# staged folder with Python (an .mcpb is a zip with manifest.json at its root).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['version'])" "$here/manifest.json")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

cp "$here/manifest.json" "$root/pyproject.toml" "$root/README.md" "$root/LICENSE" "$stage/"
mkdir -p "$stage/server"
cp "$here/server/main.py" "$stage/server/main.py"
cp -R "$root/server/agentdeck" "$stage/server/agentdeck"
find "$stage" -name __pycache__ -type d -prune -exec rm -rf {} +

mkdir -p "$root/dist"
out="$root/dist/agentdeck-$version.mcpb"
if command -v npx >/dev/null 2>&1; then
  npx -y @anthropic-ai/mcpb pack "$stage" "$out"
else
  python3 -c "import shutil, sys; shutil.make_archive(sys.argv[1], 'zip', sys.argv[2])" "$out" "$stage"
  mv "$out.zip" "$out"
fi
echo "built $out"
