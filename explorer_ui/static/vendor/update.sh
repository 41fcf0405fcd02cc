#!/bin/sh
# Rebuild noble.js and its licence files from the pinned versions in package-lock.json.
# Needs Node.js and npm (only here: a running node serves the built files as they are).
#   ./update.sh          rebuild from the lock file (npm ci)
#   ./update.sh --bump   first move the pins to the latest releases (npm install …@latest)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$here/entry.js" "$work/"
cd "$work"
if [ "${1:-}" = "--bump" ]; then
  npm install --save-exact --ignore-scripts @noble/hashes@latest @noble/curves@latest
  npm install --save-exact --save-dev esbuild@latest
  cp package.json package-lock.json "$here/"
fi
npm ci
npm audit --omit=dev || true
npx esbuild entry.js --bundle --format=iife --global-name=AitbcNoble --target=es2020 \
  --legal-comments=inline --charset=ascii --outfile="$here/noble.js"
cp node_modules/@noble/hashes/LICENSE "$here/LICENSE.noble-hashes"
cp node_modules/@noble/curves/LICENSE "$here/LICENSE.noble-curves"
printf '%s\n' "noble.js: @noble/hashes $(node -p 'require("./node_modules/@noble/hashes/package.json").version'), @noble/curves $(node -p 'require("./node_modules/@noble/curves/package.json").version'), bundled by esbuild $(npx esbuild --version)"
