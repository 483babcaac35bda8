#!/usr/bin/env bash
# Runs every fuzz target in turn (never two at once: the build machine's cores are shared),
# SECONDS each, and prints one line per target; exits 1 if any found something.
#
#   fuzz/run-all.sh SECONDS [extra libFuzzer arguments...]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds=${1:?usage: fuzz/run-all.sh SECONDS [libFuzzer args...]}
shift
status=0
summary=()
cd "$here"
for target in $(RUSTC_BOOTSTRAP=1 cargo fuzz list); do
  if line=$("$here/run.sh" "$target" "$seconds" "$@"); then
    summary+=("$line")
  else
    summary+=("$line  <-- FOUND SOMETHING (fuzz/artifacts/$target)")
    status=1
  fi
done
printf '%s\n' "${summary[@]}"
exit $status
