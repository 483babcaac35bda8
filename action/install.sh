#!/usr/bin/env bash
# Installs drvaudit from the action's own checkout (the tag the workflow pinned), unless a
# drvaudit of that version is already on PATH.
set -euo pipefail
root="${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}"
want=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
if command -v drvaudit >/dev/null 2>&1 && drvaudit --version | grep -qF "$want"; then
  echo "drvaudit $want already installed"
  exit 0
fi
cargo install --locked --path "$root"
