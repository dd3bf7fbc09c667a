#!/usr/bin/env bash
# Times one plugin step run as its own process (`backout-agent plugin run`,
# which compiles the component, builds the sandbox and runs the testbed's
# `echo`) against `sh -c true`, N times each, interleaved so both see the
# same load. Prints the median and the 99th percentile of each, in ms.
# Figures go to BENCHMARKS.md; nothing asserts them.
#
# Usage: scripts/bench-plugin-run.sh [N] (default 50). Needs the agent
# binary (cargo build -p backout-agent) and the plugins
# (scripts/build-plugins.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
agent="${AGENT:-$target_dir/debug/backout-agent}"
plugin="$target_dir/plugins/testbed.wasm"
n="${1:-50}"

for file in "$agent" "$plugin"; do
    [[ -e "$file" ]] || { echo "missing $file: build it first" >&2; exit 2; }
done

now_us() { echo $(( $(date +%s%N) / 1000 )); }

plugin_times=()
shell_times=()
for ((i = 0; i < n; i++)); do
    start=$(now_us)
    "$agent" plugin run "$plugin" echo --params '{"n":1}' >/dev/null
    plugin_times+=($(( $(now_us) - start )))
    start=$(now_us)
    sh -c true
    shell_times+=($(( $(now_us) - start )))
done

# p50 and p99 (nearest rank) of the microsecond figures on stdin, in ms.
percentiles() {
    sort -n | awk '{ v[NR] = $1 } END {
        p50 = v[int((NR + 1) / 2)]; r = int(NR * 0.99 + 0.999); if (r < 1) r = 1;
        printf "p50 %.1f ms, p99 %.1f ms (%d runs)\n", p50 / 1000, v[r] / 1000, NR }'
}

echo "backout-agent plugin run (testbed echo): $(printf '%s\n' "${plugin_times[@]}" | percentiles)"
echo "sh -c true:                              $(printf '%s\n' "${shell_times[@]}" | percentiles)"
