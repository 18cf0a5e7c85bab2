#!/usr/bin/env bash
# Benchmarks the processes table against ps (see ops/bench/README.md):
# builds the release agent, runs `cargo bench --bench engine`, then, when
# hyperfine is installed, compares the whole commands with it.
# Safe to re-run: it only builds and measures.
#
# Environment: SWEEP_BENCH_ITERS, SWEEP_BENCH_SLEEPERS (passed to the bench),
# HYPERFINE_RUNS (default 100).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

sql='SELECT pid, name, cmdline, uid, resident_size FROM processes'
ps_cmd='ps -eo pid,comm,args,uid,rss'
agent="$root/target/release/sweep-agent"

echo "==> cargo build --release -p sweep-agent"
cargo build --release -p sweep-agent
echo "==> cargo bench -p sweep-agent --bench engine"
cargo bench -p sweep-agent --bench engine

if ! command -v hyperfine >/dev/null; then
  echo "==> hyperfine not installed; skipping the whole-command comparison."
  echo "    Install it with: sudo apt-get install -y hyperfine   (or: cargo install hyperfine)"
  exit 0
fi

# The same realistic process count the cargo bench uses; reaped on any exit.
sleepers=()
cleanup() {
  if [ ${#sleepers[@]} -gt 0 ]; then
    kill "${sleepers[@]}" 2>/dev/null || true
    wait "${sleepers[@]}" 2>/dev/null || true
  fi
}
trap cleanup EXIT
for _ in $(seq "${SWEEP_BENCH_SLEEPERS:-200}"); do
  sleep 600 &
  sleepers+=("$!")
done
echo "==> hyperfine on $(nproc) cores, $(find /proc -maxdepth 1 -name '[0-9]*' | wc -l) processes"
# -N: no intermediate shell, so neither command pays a shell's start-up.
hyperfine -N --warmup 10 --runs "${HYPERFINE_RUNS:-100}" \
  --command-name sweep-agent "$agent query '$sql' --json" \
  --command-name ps "$ps_cmd"
