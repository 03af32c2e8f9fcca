#!/usr/bin/env bash
# The layers are the build's (CMakeLists.txt): config/ compiles seeing only
# config/, admin/ seeing admin/ and config/. This checks the views refuse what
# they must (a header of a higher layer, included the way our sources include
# headers), and that no source steps around them. Inside proxy/, each
# sub-folder includes only its own headers and those of the folders before it
# (net < message < snapshot < worker < tunnel < http < server), checked here
# include by include.
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
expect no  config -- proxy/snapshot/snapshot.h
expect yes admin config -- admin/backend.h
expect no  admin config -- proxy/server/server.h

# No source reaches another folder by a relative path, and config/ uses no Boost.
if grep -rnE '#include[[:space:]]*"\.\./' "$src/config" "$src/admin" "$src/proxy"; then
  echo "a relative include steps around the layer views"; fail=1
fi
if grep -rnE '#include[[:space:]]*<boost/' "$src/config"; then
  echo "config/ includes Boost: it holds no sockets or threads"; fail=1
fi
# proxy/'s sub-folders, in layer order; only main.cpp and pch.h sit above them.
order=(net message snapshot worker tunnel http server)
rank() {
  local i
  for i in "${!order[@]}"; do [ "${order[$i]}" = "$1" ] && { echo "$i"; return; }; done
  echo -1
}
for f in "$src"/proxy/*; do
  case "$(basename "$f")" in main.cpp | pch.h) continue ;; esac
  if [ -f "$f" ]; then echo "$f: a proxy/ source belongs in one of its layer folders (${order[*]})"; fail=1; fi
done
for f in "$src"/proxy/*/*; do
  folder=$(basename "$(dirname "$f")")
  r=$(rank "$folder")
  if [ "$r" = -1 ]; then echo "$f: proxy/$folder is not in the layer order (${order[*]})"; fail=1; continue; fi
  while read -r inc; do
    if [ "$(rank "$inc")" = -1 ] || [ "$(rank "$inc")" -gt "$r" ]; then
      echo "$f includes a header of proxy/$inc/, a layer above proxy/$folder/ (${order[*]})"; fail=1
    fi
  done < <(grep -oE '^#include[[:space:]]*"proxy/[a-z_]+/' "$f" | sed -E 's#.*"proxy/([a-z_]+)/#\1#')
done
[ "$fail" = 0 ] && echo "layers hold: config < admin < proxy (${order[*]})"
exit "$fail"
