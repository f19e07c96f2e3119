#!/usr/bin/env bash
# Builds ringmesh's release binaries without goreleaser: static (CGO_ENABLED=0)
# ringmesh-agent, ringmesh-coordinator and meshctl for linux/amd64 and
# linux/arm64, with version, commit and build date stamped into pkg/version,
# one tar.gz per platform (as .goreleaser.yaml names them) and checksums.txt.
#
#   scripts/build-release.sh                 # version from `git describe`
#   VERSION=v0.1.0 scripts/build-release.sh  # explicit version
#
# Environment: VERSION (default: git describe --tags --always --dirty, else
# "dev"), COMMIT (default: git rev-parse HEAD), SOURCE_DATE_EPOCH (build date
# and archive mtimes; default: the commit's time, so two builds of one commit
# are byte-identical), ARCHES (default "amd64 arm64"), OUT (default dist).
# It fails if `file` does not call a binary statically linked.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || true)}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
ARCHES=${ARCHES:-amd64 arm64}
OUT=${OUT:-dist}

# These strings end up in linker flags and file names: check them first.
[[ $VERSION =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$ ]] || { echo "build-release: VERSION $VERSION: want [A-Za-z0-9._+-], at most 64" >&2; exit 2; }
[[ -z $COMMIT || $COMMIT =~ ^[0-9a-f]{7,40}$ ]] || { echo "build-release: COMMIT $COMMIT: want a hex commit" >&2; exit 2; }
[[ $SOURCE_DATE_EPOCH =~ ^[0-9]+$ ]] || { echo "build-release: SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH: want seconds" >&2; exit 2; }
for a in $ARCHES; do
  [[ $a == amd64 || $a == arm64 ]] || { echo "build-release: ARCHES: $a is not amd64 or arm64" >&2; exit 2; }
done
DATE=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

pkg=github.com/ringmesh/ringmesh/pkg/version
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Date=$DATE"
[[ -n $COMMIT ]] && ldflags+=" -X $pkg.Commit=$COMMIT"

# binary name → main package
declare -A mains=([ringmesh-agent]=./cmd/agent [ringmesh-coordinator]=./cmd/coordinator [meshctl]=./cmd/meshctl)

mkdir -p "$OUT"
rm -f "$OUT/checksums.txt"
for arch in $ARCHES; do
  name="ringmesh_${VERSION#v}_linux_${arch}"
  dir="$OUT/$name"
  rm -rf "$dir" && mkdir -p "$dir"
  for bin in ringmesh-agent ringmesh-coordinator meshctl; do
    CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$ldflags" -o "$dir/$bin" "${mains[$bin]}"
    desc=$(file -b "$dir/$bin")
    case $desc in
      *"statically linked"*) ;;
      *) echo "build-release: $dir/$bin is not statically linked: $desc" >&2; exit 1 ;;
    esac
    printf '%-60s %10s bytes  %s\n' "$dir/$bin" "$(stat -c %s "$dir/$bin")" "${desc%%,*}"
  done
  cp LICENSE README.md CHANGELOG.md "$dir/"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$OUT" -cf - "$name" | gzip -n -9 >"$OUT/$name.tar.gz"
done
(cd "$OUT" && sha256sum -- *.tar.gz >checksums.txt && cat checksums.txt)
