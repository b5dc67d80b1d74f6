#!/usr/bin/env bash
# The script a person writes to see the fleet with the AWS CLI, the baseline of the benchmark:
# for each project and cluster, its instances by tag, then the health of each of its load
# balancers (a target group's health needs its ARN, so one more call to look it up).
#
# usage: aws_cli_script.sh PAIRS_TSV OUT_DIR
#   PAIRS_TSV: one line per project+cluster: project, cluster, region, classic ELB names and
#   target group names (comma-separated, "-" for none), tab-separated.
#   Environment: ENDPOINT_URL, AWS (the aws binary), TAG_PROJECT, TAG_ENVIRONMENT.
# Writes each command's JSON output to OUT_DIR and one line per aws invocation to
# OUT_DIR/invocations.log.
set -euo pipefail

pairs=$1
out=$2
aws=${AWS:-aws}
tag_project=${TAG_PROJECT:-Project}
tag_environment=${TAG_ENVIRONMENT:-Environment}
mkdir -p "$out"
: >"$out/invocations.log"

call() {
    echo "$*" >>"$out/invocations.log"
    "$aws" --endpoint-url "$ENDPOINT_URL" --output json "$@" </dev/null
}

while IFS=$'\t' read -r project cluster region classic groups <&3; do
    base="$out/$project@$cluster"
    [[ $classic == - ]] && classic=""
    [[ $groups == - ]] && groups=""
    call ec2 describe-instances --region "$region" \
        --filters "Name=tag:$tag_project,Values=$project" \
        "Name=tag:$tag_environment,Values=$cluster" >"$base.instances.json"
    for name in ${classic//,/ }; do
        call elb describe-instance-health --region "$region" \
            --load-balancer-name "$name" >"$base.classic.$name.json"
    done
    for name in ${groups//,/ }; do
        arn=$(call elbv2 describe-target-groups --region "$region" --names "$name" \
            --query 'TargetGroups[0].TargetGroupArn' --output text)
        call elbv2 describe-target-health --region "$region" \
            --target-group-arn "$arn" >"$base.target-group.$name.json"
    done
done 3<"$pairs"
