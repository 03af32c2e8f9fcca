#!/usr/bin/env bash
# The layers are the build's (CMakeLists.txt): config/ compiles seeing only
# config/, admin/ seeing admin/ and config/. This checks the views refuse what
# they must (a header of a higher layer, included the way our sources include
# headers), and that no source steps around them.
#   layers_test.sh SOURCE_DIR BUILD_DIR CXX
set -euo pipefail
src=$1 build=$2 cxx=$3
fail=0
compiles() {  # compiles LAYER_VIEWS... -- HEADER
  local flags=()
  while [ "$1" != -- ]; do flags+=(-I "$build/layers/$1"); shift; done
  shift
  echo "#include \"$1\"" | "$cxx" -std=c++20 -fsyntax-only "${flags[@]}" -x c++ - >/dev/null 2>&1
}
expect() {  # expect yes|no LAYER_VIEWS... -- HEADER
  local want=$1; shift
  local got=no
  if compiles "$@"; then got=yes; fi
  if [ "$got" != "$want" ]; then
    echo "layer view $* : compiles=$got, expected $want"
    fail=1
  fi
}
expect yes config -- config/spec.h
expect no  config -- admin/backend.h
expect no  config -- proxy/snapshot.h
expect yes admin config -- admin/backend.h
expect no  admin config -- proxy/server.h

# No source reaches another folder by a relative path, and config/ uses no Boost.
if grep -rnE '#include[[:space:]]*"\.\./' "$src/config" "$src/admin" "$src/proxy"; then
  echo "a relative include steps around the layer views"; fail=1
fi
if grep -rnE '#include[[:space:]]*<boost/' "$src/config"; then
  echo "config/ includes Boost: it holds no sockets or threads"; fail=1
fi
[ "$fail" = 0 ] && echo "layers hold: config < admin < proxy"
exit "$fail"
