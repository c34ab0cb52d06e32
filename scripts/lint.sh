#!/usr/bin/env bash
# The style and type checks, without writing anything (`npm run lint`; `npm test` runs it
# before the host tier). Runs every check and fails if any failed:
#   1. Biome: formatter check and linter over the TypeScript and JavaScript (biome.jsonc);
#   2. clang-format --dry-run -Werror over native/ (.clang-format);
#   3. tsc over test/ and scripts/ (test/tsconfig.json; lib/ is checked by the build).
# `npm run format` rewrites the files so that checks 1 and 2 pass.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
echo "lint: biome (format + lint)"
# Colours only on a terminal: CI logs and test.sh's tee would carry the escape codes.
colors=()
[[ -t 1 ]] || colors=(--colors=off)
npx biome ci --error-on-warnings "${colors[@]}" . || failed+=(biome)
echo "lint: clang-format native/"
if command -v clang-format >/dev/null; then
  clang-format --dry-run -Werror native/*.h native/*.cc || failed+=(clang-format)
else
  echo "lint: clang-format is not installed (scripts/deps.sh installs it)" >&2
  failed+=(clang-format)
fi
echo "lint: tsc -p test/tsconfig.json"
npx tsc -p test/tsconfig.json || failed+=(tsc-test)
if ((${#failed[@]})); then
  echo "lint: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint: passed"
