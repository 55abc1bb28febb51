#!/bin/sh
# Prints the Debian version of the tree: from `git describe` (a tag vX.Y.Z, N commits after it,
# commit gHASH: X.Y.Z+N.gHASH); without any tag 0.0~gitN.gHASH (N = commits, so versions of
# one branch sort in order); "+dirty" when the work tree has uncommitted changes.
set -eu
cd "$(dirname "$0")/../.."
desc=$(git describe --tags --match 'v[0-9]*' --long --dirty=+dirty 2>/dev/null || true)
if [ -n "$desc" ]; then
	dirty=
	case $desc in *+dirty) dirty=+dirty; desc=${desc%+dirty} ;; esac
	hash=${desc##*-}
	rest=${desc%-*}
	n=${rest##*-}
	tag=${rest%-*}
	tag=${tag#v}
	if [ "$n" = 0 ]; then v=$tag; else v=$tag+$n.$hash; fi
	echo "$v$dirty" | tr '_' '.'
	exit 0
fi
n=$(git rev-list --count HEAD)
hash=g$(git rev-parse --short=7 HEAD)
dirty=
if ! git diff --quiet HEAD -- 2>/dev/null; then dirty=+dirty; fi
echo "0.0~git$n.$hash$dirty"
