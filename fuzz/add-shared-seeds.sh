#!/usr/bin/env bash
# Adds seeds from ../shared/corpus (real drivers, packages' catalogs and signatures, dumps) to
# the working corpora fuzz/corpus/<target>/ — local only, never committed (the corpus files
# are third-party). Run it once before a campaign; fuzz/run.sh uses what it finds there.
set -euo pipefail
cd "$(dirname "$0")"
python3 tools/seeds.py --shared
