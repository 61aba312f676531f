#!/usr/bin/env bash
# Mutation testing of the pure analysis modules with mutmut (run by hand; minutes on 2 cores).
#   tests/mutation/run.sh [SCRATCH_DIR]      -> prints mutmut's results and the share killed
# Other modules and the tests that should kill their mutants (space-separated), e.g.:
#   MUTATE="sweeps/effects.py" MUTATE_TESTS="tests/sweeps/test_effects.py" tests/mutation/run.sh
# MUTATE_DESELECT: test ids left out per mutant (a browser test that covers the same code slowly).
# Survivors: cd SCRATCH_DIR && python -m mutmut results; python -m mutmut show NAME
# mutmut writes a mutants/ tree and a cache next to the code, so it runs in a scratch copy of
# the working tree, never in the repository itself.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
scratch="${1:-${TMPDIR:-/tmp}/lrrt-mutation}"
py="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
rm -rf "$scratch" && mkdir -p "$scratch"
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents {} "$scratch/")
mutate="${MUTATE:-lrrt_core/ladders.py lrrt_core/curve.py sweeps/reduce.py}"
tests="${MUTATE_TESTS:-tests/core/test_ladders.py tests/core/test_curve.py tests/sweeps/test_reduce.py tests/sweeps/test_store.py}"
toml_list() { printf '"%s", ' $1 | sed 's/, $//'; }
cat >> "$scratch/pyproject.toml" <<TOML

[tool.mutmut]
source_paths = ["lrrt_core/", "sweeps/"]
only_mutate = [$(toml_list "$mutate")]
pytest_add_cli_args_test_selection = [$(toml_list "$tests")]
# The one slow reducer test draws every figure (~20 s on a loaded machine, per mutant);
# test_write_outputs_and_rebuild_write_every_table_and_report covers the same code fast.
# mutmut forks a process per mutant: a TensorFlow test hangs there (TF does not survive a fork),
# so only the tests without TensorFlow or Ray run.
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-n", "0", "-m", "not tf and not ray and not slow",
                       "--deselect", "tests/sweeps/test_reduce.py::test_write_outputs_and_rebuild_of_a_running_sweep",
                       $(printf '"--deselect", "%s", ' ${MUTATE_DESELECT:-} | sed 's/, $//; s/^"--deselect", ""$//')]
use_git_change_detection = false
TOML
cd "$scratch"
"$py" -m mutmut run --max-children "${MUTMUT_CHILDREN:-2}" || true
"$py" -m mutmut results --all true > results.txt || "$py" -m mutmut results > results.txt || true
"$py" - <<'PY'
import collections, re
counts = collections.Counter()
for line in open("results.txt"):
    m = re.match(r"\s*(\S+): (\w[\w ]*)$", line)
    if m:
        counts[m.group(2).strip()] += 1
total = sum(counts.values())
killed = counts.get("killed", 0) + counts.get("timeout", 0)
print(dict(counts))
print(f"mutation score: {killed}/{total} = {100 * killed / max(total, 1):.1f} % killed")
PY
