#!/usr/bin/env bash
# The action's audit step: turns the INPUT_* variables the runner sets into drvaudit flags,
# runs the scan into the SARIF file, and records the exit code as the step output `exit-code`
# (the job fails only in the Gate step, after the upload). DRVAUDIT overrides the binary.
set -uo pipefail
bin="${DRVAUDIT:-drvaudit}"
args=(scan --format sarif --no-progress -o "${INPUT_SARIF:-drvaudit.sarif}")
args+=(--automation-id "${INPUT_CATEGORY:-drvaudit}/")
[ -n "${INPUT_CONFIG:-}" ] && args+=(--config "$INPUT_CONFIG")
[ -n "${INPUT_FAIL_ON:-}" ] && args+=(--fail-on "$INPUT_FAIL_ON")
[ -n "${INPUT_BASELINE:-}" ] && args+=(--baseline "$INPUT_BASELINE")
[ "${INPUT_ALLOW_INCOMPLETE:-false}" = "true" ] && args+=(--allow-incomplete)
[ -n "${INPUT_MAX_RESULTS:-}" ] && args+=(--max-results "$INPUT_MAX_RESULTS")
[ -n "${INPUT_SHARD:-}" ] && args+=(--shard "$INPUT_SHARD")
# Paths are space-separated (workflow inputs are strings); none is an error drvaudit reports.
read -r -a paths <<< "${INPUT_PATHS:-}"
"$bin" "${args[@]}" "${paths[@]}"
code=$?
echo "exit-code=$code" >> "${GITHUB_OUTPUT:-/dev/null}"
echo "drvaudit exited with $code"
# 2 is drvaudit failing or an incomplete audit: stop here (there may be no log to upload).
if [ "$code" = 2 ] && [ ! -s "${INPUT_SARIF:-drvaudit.sarif}" ]; then
  exit 2
fi
exit 0
