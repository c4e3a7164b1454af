#!/usr/bin/env bash
# Re-fetch the Microsoft Fluent Emoji Flat icon data (MIT) into data/fluent-emoji-flat/.
#
#   bash tools/data/fetch_fluent_emoji.sh
#
# Downloads the pinned npm tarball of @iconify-json/fluent-emoji-flat straight from the npm
# registry (no npm install, no scripts run), checks its SHA-256 and the npm SHA-1 shasum, checks
# the SHA-256 of the icons.json inside it, and writes:
#   icons.json.gz   the package's icons.json, gzip -9 -n (8.9 MB raw, 1.1 MB compressed)
#   info.json       the package's icon-set metadata (author, licence), as shipped
#   package.json    the package manifest, as shipped
#   VERSION         the pinned package version
# LICENSE and README.md are committed by hand: the package ships no licence file.
#
# Needs: curl, tar, gzip, sha256sum, sha1sum. Nothing is fetched at build or run time.
set -euo pipefail
cd "$(dirname "$0")/../.."

name=@iconify-json/fluent-emoji-flat
version=1.2.6
url=https://registry.npmjs.org/@iconify-json/fluent-emoji-flat/-/fluent-emoji-flat-${version}.tgz
tarball_sha256=7d064769dee690815f823bc5bcc511d957198caf9f5edd8dd9c1aa48a6aeb175
tarball_sha1=5586071d17e0d3460c185a67effc389f0bd95907 # npm's dist.shasum
icons_sha256=f5f4cf457c0db2ad5a2e42e033e02e0c87d10e43d0164cfffb3bb84914970a63
dest=data/fluent-emoji-flat

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "fetching $name@$version"
curl --fail --silent --show-error --location --retry 3 -o "$tmp/pkg.tgz" "$url"
echo "$tarball_sha256  $tmp/pkg.tgz" | sha256sum --check --quiet
echo "$tarball_sha1  $tmp/pkg.tgz" | sha1sum --check --quiet

tar -xzf "$tmp/pkg.tgz" -C "$tmp" package/icons.json package/info.json package/package.json
echo "$icons_sha256  $tmp/package/icons.json" | sha256sum --check --quiet
grep -q '"version": "'"$version"'"' "$tmp/package/package.json"
grep -q '"spdx": "MIT"' "$tmp/package/info.json"

mkdir -p "$dest"
gzip -9 -n -c "$tmp/package/icons.json" > "$dest/icons.json.gz"
cp "$tmp/package/info.json" "$tmp/package/package.json" "$dest/"
echo "$version" > "$dest/VERSION"
echo "wrote $dest (icons.json sha256 $icons_sha256)"
