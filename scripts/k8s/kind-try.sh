#!/usr/bin/env bash
# Opt-in: deploys the quickstart pipeline on a throw-away kind cluster (CPU only: reference
# engines, virtual devices), asks it for its models and drains it. Needs docker, kind and kubectl. Never run in
# CI and not by `npm test`. Usage: scripts/k8s/kind-try.sh [pipeline.yaml]
set -euo pipefail
cd "$(dirname "$0")/../.."
file="${1:-examples/quickstart/pipeline.yaml}"
cluster=omnistage-try
out="$(mktemp -d)"
trap 'kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; rm -rf "$out"' EXIT

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-try: $tool is not installed" >&2; exit 2; }
done
docker build -t omnistage:try -f scripts/k8s/Dockerfile .
kind create cluster --name "$cluster" --wait 120s
kind load docker-image omnistage:try --name "$cluster"

node packages/cli/bin/omnistage.js k8s "$file" --platform cpu --engine reference --image omnistage:try --out "$out"
kubectl apply -k "$out"
kubectl rollout status statefulset/omnistage-etcd --timeout=180s
kubectl rollout status deployment/omnistage-head --timeout=300s   # ready = every stage has its replicas

kubectl port-forward service/omnistage-head 18000:8000 >/dev/null &
forward=$!
trap 'kill "$forward" 2>/dev/null || true; kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; rm -rf "$out"' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:18000/health >/dev/null && break; sleep 0.2; done
curl -fsS http://127.0.0.1:18000/v1/models
echo
# The drain: deleting the head runs its preStop (SIGTERM to the CLI) within the grace period.
kubectl delete deployment/omnistage-head --wait=true --timeout=120s
kubectl logs statefulset/omnistage-agent-stages-0 --tail=5 || true
echo "kind-try: ok"
