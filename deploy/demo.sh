#!/usr/bin/env bash
# The demo: the embedded single-node stack (`imagebuilder up`: Temporal dev server, API server,
# worker with the Docker and libvirt executors) on a fresh data directory, driven with the AWS CLI
# exactly as a user would: a real container image pushed to the loopback registry, then a Debian
# golden VM image built in a QEMU guest, tested in another, and exported as a VMDK.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}
DATA=${DATA:-$(mktemp -d /tmp/imagebuilder-demo.XXXXXX)}
BIN=.venv/bin
# Requests are signed (SigV4) with the access key `imagebuilder up` creates on a first run; it
# writes the AWS credentials file below, so the AWS CLI signs exactly as it does against AWS.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
export AWS_SHARED_CREDENTIALS_FILE="$DATA/auth/credentials" AWS_DEFAULT_REGION=us-east-1
aws() { "$BIN/python" -m awscli "$@" --endpoint-url "http://127.0.0.1:$PORT"; }
say() { printf '\n== %s\n' "$*"; }

"$BIN/imagebuilder" up --port "$PORT" --data-dir "$DATA" --executors docker,libvirt &
STACK=$!
trap 'kill -TERM $STACK 2>/dev/null; wait $STACK 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

cat > "$DATA/hello.yaml" <<'YAML'
name: hello
description: Writes a greeting during the build, checks it in validate and in the test stage.
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
  - name: validate
    steps:
      - name: CheckGreeting
        action: ExecuteBash
        inputs:
          commands: ["grep -q golden-image /etc/motd"]
  - name: test
    steps:
      - name: GreetingInImage
        action: ExecuteBash
        inputs:
          commands: ["cat /etc/motd"]
YAML
printf 'FROM {{{ imagebuilder:parentImage }}}\n{{{ imagebuilder:environments }}}\n{{{ imagebuilder:components }}}\nCMD ["cat", "/etc/motd"]\n' \
    > "$DATA/Dockerfile.template"

say "create-component"
COMPONENT=$(aws imagebuilder create-component --name hello --semantic-version 1.0.0 --platform Linux \
    --data "file://$DATA/hello.yaml" --query componentBuildVersionArn --output text)
echo "$COMPONENT"
say "create-container-recipe (parent: the offline Debian 12 base image)"
RECIPE=$(aws imagebuilder create-container-recipe --name hello-web --semantic-version 1.0.0 --container-type DOCKER \
    --parent-image imagebuilder/debian:12 --target-repository service=ECR,repositoryName=demo/hello-web \
    --dockerfile-template-data "file://$DATA/Dockerfile.template" \
    --components "componentArn=$COMPONENT" --query containerRecipeArn --output text)
echo "$RECIPE"
say "create-infrastructure-configuration and create-distribution-configuration"
INFRA=$(aws imagebuilder create-infrastructure-configuration --name docker-builders \
    --instance-profile-name local-docker --query infrastructureConfigurationArn --output text)
DIST=$(aws imagebuilder create-distribution-configuration --name to-local-registry --distributions \
    'region=us-east-1,containerDistributionConfiguration={containerTags=[latest],targetRepository={service=ECR,repositoryName=demo/hello-web}}' \
    --query distributionConfigurationArn --output text)
echo "$INFRA"; echo "$DIST"
say "create-image"
IMAGE=$(aws imagebuilder create-image --container-recipe-arn "$RECIPE" --infrastructure-configuration-arn "$INFRA" \
    --distribution-configuration-arn "$DIST" --query imageBuildVersionArn --output text)
echo "$IMAGE"

follow() {  # print each change of the image's state and its workflows' states until it ends
    local image=$1 last="" line
    while true; do
        status=$(aws imagebuilder get-image --image-build-version-arn "$image" --query image.state.status --output text)
        steps=$(aws imagebuilder list-workflow-executions --image-build-version-arn "$image" \
            --query 'workflowExecutions[].[type,status]' --output text | tr '\t\n' ': ' || true)
        line="$status  $steps"
        [[ "$line" != "$last" ]] && echo "$(date +%T)  $line" && last=$line
        [[ $status == AVAILABLE || $status == FAILED || $status == CANCELLED ]] && break
        sleep 2
    done
}
say "progress (get-image, list-workflow-executions)"
follow "$IMAGE"
aws imagebuilder get-image --image-build-version-arn "$IMAGE" --query 'image.[state,outputResources]'
[[ $status == AVAILABLE ]] || exit 1
URI=$(aws imagebuilder get-image --image-build-version-arn "$IMAGE" \
    --query 'image.outputResources.containers[0].imageUris[0]' --output text)
say "done: pull and run it with"
echo "  docker run --rm $URI"
docker run --rm "$URI"

say "a golden VM image: image recipe on the offline Debian 12 parent, exported as VMDK"
VM_RECIPE=$(aws imagebuilder create-image-recipe --name golden-debian --semantic-version 1.0.0 \
    --parent-image "arn:aws:imagebuilder:us-east-1:aws:image/debian-12/x.x.x" \
    --components "componentArn=$COMPONENT" --query imageRecipeArn --output text)
VM_INFRA=$(aws imagebuilder create-infrastructure-configuration --name vm-builders --instance-types t3.small \
    --instance-profile-name local-libvirt --query infrastructureConfigurationArn --output text)
VM_DIST=$(aws imagebuilder create-distribution-configuration --name export-vmdk --distributions \
    '[{"region": "us-east-1", "amiDistributionConfiguration": {"name": "golden-debian-{{ imagebuilder:buildDate }}"},
       "s3ExportConfiguration": {"roleName": "vmimport", "diskImageFormat": "VMDK", "s3Bucket": "golden", "s3Prefix": "debian/"}}]' \
    --query distributionConfigurationArn --output text)
VM_IMAGE=$(aws imagebuilder create-image --image-recipe-arn "$VM_RECIPE" --infrastructure-configuration-arn "$VM_INFRA" \
    --distribution-configuration-arn "$VM_DIST" --query imageBuildVersionArn --output text)
echo "$VM_IMAGE  (under TCG a build takes a minute or two: two guest boots of 10-20 s, the VMDK export)"
follow "$VM_IMAGE"
aws imagebuilder get-image --image-build-version-arn "$VM_IMAGE" --query 'image.[state,outputResources]'
[[ $status == AVAILABLE ]] || exit 1
AMI=$(aws imagebuilder get-image --image-build-version-arn "$VM_IMAGE" \
    --query 'image.outputResources.amis[0].image' --output text)
say "the VMDK export (s3://golden/debian/$AMI.vmdk, a folder of the export directory)"
qemu-img info "$DATA/exports/golden/debian/$AMI.vmdk"
aws imagebuilder list-image-packages --image-build-version-arn "$VM_IMAGE" --max-results 5 \
    --query 'imagePackageList[].[packageName,packageVersion]' --output text
echo
echo "Temporal UI: http://127.0.0.1:8233  (workflow ids image/hello-web/1.0.0/1, image/golden-debian/1.0.0/1); data in $DATA"
