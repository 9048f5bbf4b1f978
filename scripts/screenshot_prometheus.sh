#!/usr/bin/env bash
# A headless-Chromium screenshot of Prometheus graphs of the running demo (docs/img/prometheus-demo.png).
#
#   scripts/screenshot_prometheus.sh -p http://127.0.0.1:9090          # a Prometheus that scrapes the demo
#   scripts/screenshot_prometheus.sh -d /tmp/demo.log [-w 90]          # start one for a running `cdc demo`
#
# With -d the script reads the demo's "metrics: ingest URL  poll URL  sync URL" line from its log, starts a
# Prometheus of its own (scrape and rule evaluation every second, deploy/prometheus/alerts.yml loaded) on a
# free loopback port, waits -w seconds (default 60) for the rate windows to fill, takes the screenshot and
# stops it. Options: -o FILE (default docs/img/prometheus-demo.png), -r RANGE (graph range, default 2m).
#
# Needs `chromium` (Debian package; not needed by the test suite) and, for -d, `prometheus`.
set -euo pipefail
cd "$(dirname "$0")/.."

prometheus_url="" demo_log="" out="docs/img/prometheus-demo.png" wait_s=60 range="2m"
while getopts "p:d:o:w:r:h" opt; do
  case "$opt" in
    p) prometheus_url="${OPTARG%/}" ;;
    d) demo_log="$OPTARG" ;;
    o) out="$OPTARG" ;;
    w) wait_s="$OPTARG" ;;
    r) range="$OPTARG" ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
if [[ -z "$prometheus_url" && -z "$demo_log" ]]; then
  echo "give -p PROMETHEUS_URL or -d DEMO_LOG (see the header of $0)" >&2
  exit 2
fi
command -v chromium >/dev/null || { echo "chromium not found: apt-get install -y chromium" >&2; exit 1; }

workdir="$(mktemp -d)"
prometheus_pid=""
cleanup() {
  if [[ -n "$prometheus_pid" ]]; then
    kill -TERM "$prometheus_pid" 2>/dev/null || true
    wait "$prometheus_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

if [[ -z "$prometheus_url" ]]; then
  command -v prometheus >/dev/null || { echo "prometheus not found: scripts/bootstrap.sh installs it" >&2; exit 1; }
  line="$(grep -m1 -E '^metrics: ingest ' "$demo_log" || true)"
  [[ -n "$line" ]] || { echo "no 'metrics:' line in $demo_log: is \`cdc demo\` running and logging there?" >&2; exit 1; }
  # "metrics: ingest http://h:p/metrics  poll http://h:p/metrics  sync http://h:p/metrics"
  {
    printf 'global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s}\n'
    printf 'rule_files: ["%s"]\n' "$PWD/deploy/prometheus/alerts.yml"
    printf 'scrape_configs:\n'
    read -r -a words <<<"${line#metrics: }"
    for ((i = 0; i + 1 < ${#words[@]}; i += 2)); do
      hostport="${words[i + 1]#http://}"
      printf '  - {job_name: cdc-%s, static_configs: [{targets: ["%s"]}]}\n' "${words[i]}" "${hostport%%/*}"
    done
  } >"$workdir/prometheus.yml"
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  prometheus --config.file="$workdir/prometheus.yml" --storage.tsdb.path="$workdir/tsdb" \
    --web.listen-address="127.0.0.1:$port" >"$workdir/prometheus.log" 2>&1 &
  prometheus_pid=$!
  prometheus_url="http://127.0.0.1:$port"
  for _ in $(seq 50); do
    curl -fsS "$prometheus_url/-/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -fsS "$prometheus_url/-/ready" >/dev/null || { cat "$workdir/prometheus.log" >&2; exit 1; }
  echo "prometheus at $prometheus_url scraping the demo; waiting ${wait_s}s for data"
  sleep "$wait_s"
fi

# The graph page with two panels: writes per second by target and operation, and p99 end-to-end latency.
graph_url="$(
  python3 - "$prometheus_url" "$range" <<'EOF'
import sys
from urllib.parse import urlencode

base, span = sys.argv[1], sys.argv[2]
queries = [
    "sum by (target, operation) (rate(cdc_sync_writes_total[30s]))",
    "histogram_quantile(0.99, sum by (le, step) (rate(cdc_sync_latency_seconds_bucket[30s])))",
]
params = {}
for n, query in enumerate(queries):
    params |= {f"g{n}.expr": query, f"g{n}.tab": "0", f"g{n}.stacked": "0", f"g{n}.range_input": span}
print(f"{base}/graph?{urlencode(params)}")
EOF
)"

mkdir -p "$(dirname "$out")"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$workdir/chromium" --hide-scrollbars --virtual-time-budget=15000 \
  --window-size=1400,1650 --screenshot="$out" "$graph_url" 2>"$workdir/chromium.log" \
  || { cat "$workdir/chromium.log" >&2; exit 1; }
echo "wrote $out ($graph_url)"
