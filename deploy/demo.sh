#!/usr/bin/env bash
# The demo: start the API server on a fresh data directory and drive it with the AWS CLI,
# exactly as a user would (`aws imagebuilder ... --endpoint-url`).
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}
DATA=${DATA:-$(mktemp -d /tmp/imagebuilder-demo.XXXXXX)}
BIN=.venv/bin
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_DEFAULT_REGION=us-east-1
aws() { "$BIN/python" -m awscli "$@" --endpoint-url "http://127.0.0.1:$PORT"; }

"$BIN/imagebuilder" server --port "$PORT" --data-dir "$DATA" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

cat > "$DATA/hello.yaml" <<'YAML'
name: hello
description: Says hello during the build and checks it in the test phase.
schemaVersion: 1.0
parameters:
  - Greeting:
      type: string
      default: hello from the golden-image factory
phases:
  - name: build
    steps:
      - name: Greet
        action: CreateFile
        inputs:
          - path: /etc/motd
            content: "{{ Greeting }}"
  - name: test
    steps:
      - name: CheckGreeting
        action: ExecuteBash
        inputs:
          commands: ["grep -q golden-image /etc/motd"]
YAML

echo "== create-component"
aws imagebuilder create-component --name hello --semantic-version 1.0.0 --platform Linux \
    --data "file://$DATA/hello.yaml"
echo "== create-infrastructure-configuration"
aws imagebuilder create-infrastructure-configuration --name docker-builders --instance-profile-name local-docker \
    --instance-types small || true
echo "== list-components (Self, then Amazon-managed)"
aws imagebuilder list-components --output table
aws imagebuilder list-components --owner Amazon --query 'componentVersionList[].[name,version]' --output table
echo "== list-infrastructure-configurations"
aws imagebuilder list-infrastructure-configurations --output table || true
echo "demo data in $DATA"
