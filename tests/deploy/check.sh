#!/usr/bin/env bash
# tests/deploy/check.sh: CI checks of the deployment side by real tools; exit non-zero on any failure.
#
#   helm lint --strict / helm template (default, values-production.yaml, CPU-HPA variant), the
#   values schema rejecting typos and wrong types, rendered-object assertions (KEDA xor HPA,
#   replicas capped at partitions, security defaults, 0400 key, checksum roll, release labels),
#   kubectl-validate of every rendered manifest (CRDs from tests/deploy/crds), promtool check rules
#   + promtool test rules on the PrometheusRule, dashboard JSON (parses, unique panel ids), xmllint
#   on sf/, sf/ fields vs the code and sfk-sim, metric names vs what the binaries expose (scrapes
#   of sfk-bridge, three sfk-workers and sfk-loader running on a private tests/stack/up stack while
#   a Lead flows through), image runtime packages vs ldd, NOTES.txt, vendored CRD provenance.
#
# helm and kubectl-validate are built with `go install` from the Go module proxy into the Go bin
# dir (SFK_TOOLS_BIN overrides) and reused when the right version is already there.
# Binaries: $SFK_BIN_DIR, else <SFK_BUILD_DIR, default $SFK_SOURCE_DIR/build>/bin after cmake +
# ninja of the product binaries, sfk-sim and sfk-devkafka (incremental).
# Knobs: SFK_DEPLOY_KEEP=1 keeps the work dir; SFK_DEPLOY_LENIENT_METRICS=1 turns metric names
# only promised by DESIGN.md into warnings; SFK_DEPLOY_VERIFY_CRDS=1 downloads the CRD modules.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SFK_SOURCE_DIR=${SFK_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
src=$SFK_SOURCE_DIR
chart=$src/helm/salesforce-kpis

HELM_VERSION=v3.21.4
HELM_K8S_MINOR=36 # client-go v0.36 of helm v3.21.4 (helm's Makefile derives it the same way)
KV_MODULE=sigs.k8s.io/kubectl-validate
KV_VERSION=v0.0.5-0.20260105161640-a97ccfaca20b # main of 2026-01-05: builtin schemas 1.23..1.35
KV_K8S=1.35

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
tools=${SFK_TOOLS_BIN:-$(go env GOPATH 2>/dev/null)/bin}
helm=$tools/helm
kv=$tools/kubectl-validate

work=$(mktemp -d "${TMPDIR:-/tmp}/sfk-deploy-check.XXXXXX")
cleanup() {
	[ -n "${SFK_DEPLOY_KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT

failed=()
t_start=$(date +%s)
# step NAME FUNCTION: run one check, its output indented; remember failures and go on.
step() {
	local name=$1 t0 rc
	shift
	t0=$(date +%s)
	echo "=== $name"
	("$@") 2>&1 | sed -u 's/^/    /'
	rc=${PIPESTATUS[0]}
	if [ $rc -eq 0 ]; then
		echo "--- PASS $name ($(($(date +%s) - t0))s)"
	else
		echo "--- FAIL $name ($(($(date +%s) - t0))s)"
		failed+=("$name")
	fi
}
die() { echo "FAIL $*"; exit 1; }
# expect_fail DESCRIPTION PATTERN CMD...: CMD must fail and print PATTERN (the check can fail).
expect_fail() {
	local what=$1 pat=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		echo "FAIL accepted: $what"
		return 1
	fi
	grep -qiE -- "$pat" <<<"$out" || { echo "FAIL $what: rejected without /$pat/:"; echo "$out" | tail -5; return 1; }
	echo "ok rejected: $what"
}

# ---- tools -----------------------------------------------------------------------------------
# go version -m shows the module version a binary was built from (-trimpath hides -ldflags).
have_tool() { # have_tool BINARY MODULE VERSION
	[ -x "$1" ] || return 1
	local info
	info=$(go version -m "$1" 2>/dev/null) || return 1
	grep -qE "^[[:space:]]+mod[[:space:]]+$2[[:space:]]+$3([[:space:]]|$)" <<<"$info"
}
tool_helm() {
	local k8s="-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
	# the version string is set by -ldflags: a plain `go install` build says v3.21
	if have_tool "$helm" helm.sh/helm/v3 "$HELM_VERSION" &&
		[ "$("$helm" version --template '{{.Version}}')" = "$HELM_VERSION" ]; then
		echo "helm $HELM_VERSION cached at $helm"
	else
		echo "building helm $HELM_VERSION (go install, first run only)"
		GOBIN=$tools go install -trimpath -ldflags "-s -w \
			-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
			-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 $k8s \
			-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
			-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR" \
			"helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || return 1
	fi
	"$helm" version --short
}
tool_kv() {
	if have_tool "$kv" "$KV_MODULE" "$KV_VERSION"; then
		echo "kubectl-validate $KV_VERSION cached at $kv"
	else
		echo "building kubectl-validate $KV_VERSION (go install, first run only)"
		GOBIN=$tools go install -trimpath -ldflags "-s -w" "$KV_MODULE@$KV_VERSION" || return 1
	fi
}

# ---- chart -----------------------------------------------------------------------------------
H() { # helm, with the Kubernetes version pinned also for a helm built without the ldflags
	local sub=$1
	shift
	case $sub in lint | template) set -- "$sub" --kube-version "1.$HELM_K8S_MINOR.0" "$@" ;; *) set -- "$sub" "$@" ;; esac
	"$helm" "$@" 2> >(grep -v 'found symbolic link in path' >&2)
}
render() { # render NAME [helm args...] -> $work/render/NAME (files) and $work/NAME.yaml (stream)
	local name=$1
	shift
	rm -rf "$work/render/$name"
	H template rel "$chart" --namespace sfk "$@" --output-dir "$work/render/$name" >/dev/null || return 1
	H template rel "$chart" --namespace sfk "$@" > "$work/$name.yaml" || return 1
	# helm leaves hook files apart too; kubectl-validate reads the directory
	echo "rendered $name: $(grep -c '^kind:' "$work/$name.yaml") objects ($(grep '^kind:' "$work/$name.yaml" | sort | uniq -c | awk '{printf "%s %s, ", $1, $3}'))"
}
kinds() { grep -c "^kind: $2\$" "$work/$1.yaml"; }
# doc NAME KIND: the YAML documents of one kind, separated by ---
docs() { awk -v k="kind: $2" 'BEGIN{RS="\n---\n"} $0 ~ "(^|\n)" k "(\n|$)" {print; print "---"}' "$work/$1.yaml"; }

check_policies_link() {
	local l=$chart/files/policies
	[ -L "$l" ] || die "$l is not a symlink to the repository's policies/"
	[ "$(readlink -f "$l")" = "$(readlink -f "$src/policies")" ] || die "$l points to $(readlink -f "$l")"
	ls "$l"/*.json >/dev/null || die "no policy in $l"
	echo "chart carries policies/ through files/policies -> $(readlink "$l"): $(cd "$l" && ls ./*.json | tr '\n' ' ')"
}
check_lint() {
	H lint --strict "$chart" || return 1
	H lint --strict "$chart" -f "$chart/values-production.yaml" || return 1
}
check_schema() {
	local rc=0
	expect_fail "typo bridge.replicaCont" "additional properties|replicaCont" \
		H template rel "$chart" --set bridge.replicaCont=3 || rc=1
	expect_fail "typo at the top level (kafak)" "additional properties|kafak" \
		H template rel "$chart" --set kafak.bootstrapServers=x:1 || rc=1
	expect_fail "wrong type bridge.replicaCount=two" "replicaCount|integer" \
		H template rel "$chart" --set-string bridge.replicaCount=two || rc=1
	expect_fail "wrong enum logLevel=verbose" "logLevel|must be one of" \
		H template rel "$chart" --set logLevel=verbose || rc=1
	expect_fail "worker without workload id" "workload" \
		H template rel "$chart" --set workers.extra.replicas=1 || rc=1
	expect_fail "slaSeconds not a histogram bucket edge" "slaSeconds|must be one of" \
		H template rel "$chart" --set metrics.prometheusRule.rules.slaSeconds=120 || rc=1
	H template rel "$chart" --set workers.extra.workload=lead.route >/dev/null &&
		echo "ok accepted: an extra worker entry" || { echo "FAIL extra worker entry rejected"; rc=1; }
	return $rc
}
check_render() {
	render default || return 1
	render production -f "$chart/values-production.yaml" || return 1
	render hpa --set worker.autoscaling.enabled=true --set kafka.topics.partitions=4 || return 1
	render releases --set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true \
		--set metrics.serviceMonitor.release=kps --set metrics.prometheusRule.release=kps2 || return 1
}
# assert DESCRIPTION EXPECTED ACTUAL
assert() { if [ "$2" = "$3" ]; then echo "ok $1 ($3)"; else echo "FAIL $1: expected $2, got $3"; return 1; fi; }
check_objects() {
	local rc=0 n pods
	n=$(grep -c '^kind: Deployment$' "$work/default.yaml")
	assert "default: Deployments (bridge + 4 workers + loader; notify off)" 6 "$n" || rc=1
	assert "default: no HPA" 0 "$(kinds default HorizontalPodAutoscaler)" || rc=1
	assert "default: no ScaledObject" 0 "$(kinds default ScaledObject)" || rc=1
	assert "default: PodDisruptionBudgets" 5 "$(kinds default PodDisruptionBudget)" || rc=1
	assert "default: NetworkPolicy" 1 "$(kinds default NetworkPolicy)" || rc=1
	assert "default: dashboard ConfigMaps labelled grafana_dashboard=1" \
		"$(ls "$chart"/dashboards/*.json | wc -l)" "$(grep -c '^    grafana_dashboard: "1"$' "$work/default.yaml")" || rc=1
	assert "bridge: readiness on /healthz (a standby answers 503 on /readyz), workers/loader on /readyz" \
		"/healthz /readyz /readyz /readyz /readyz /readyz" \
		"$(docs default Deployment | awk '/readinessProbe:/{r=1} r&&/path:/{print $2; r=0}' | tr '\n' ' ' | sed 's/ $//')" || rc=1
	assert "bridge: 2 replicas" 2 "$(docs default Deployment | awk '/^  name: rel-salesforce-kpis-bridge$/{f=1} f&&/^  replicas:/{print $2; exit}')" || rc=1
	# hooks
	assert "topics Job is a pre-install,pre-upgrade hook running sfk topics create" 1 \
		"$(docs default Job | grep -c 'helm.sh/hook: pre-install,pre-upgrade')" || rc=1
	assert "topics Job command" 1 "$(docs default Job | grep -c 'command: \["sfk", "topics", "create"\]')" || rc=1
	# scaling
	assert "production (KEDA): one ScaledObject per worker" 4 "$(kinds production ScaledObject)" || rc=1
	assert "production (KEDA): no HPA beside them" 0 "$(kinds production HorizontalPodAutoscaler)" || rc=1
	assert "production: maxReplicaCount capped at 12 partitions / worker override 4" "12 12 12 4" \
		"$(docs production ScaledObject | awk '/maxReplicaCount:/{print $2}' | sort -rn | tr '\n' ' ' | sed 's/ $//')" || rc=1
	assert "production: consumer groups sfk.<workload>" \
		'"sfk.lead.first_touch_detect" "sfk.lead.route" "sfk.lead.sla_watch" "sfk.outreach.template_suggest"' \
		"$(docs production ScaledObject | awk '/consumerGroup:/{print $2}' | sort | tr '\n' ' ' | sed 's/ $//')" || rc=1
	assert "production: lag topics" '"sfk.wl.lead.first_touch_detect" "sfk.wl.lead.route" "sfk.wl.lead.sla_watch" "sfk.wl.outreach.template_suggest"' \
		"$(docs production ScaledObject | awk '/ topic:/{print $2}' | sort | tr '\n' ' ' | sed 's/ $//')" || rc=1
	assert "production: worker Deployments leave replicas to KEDA" 0 \
		"$(docs production Deployment | awk '/^  name: .*-worker-/{f=1} /^  name: .*-(bridge|loader)$/{f=0} f&&/^  replicas:/' | wc -l)" || rc=1
	assert "hpa: one CPU HPA per worker" 4 "$(kinds hpa HorizontalPodAutoscaler)" || rc=1
	assert "hpa: maxReplicas capped at 4 partitions" "4 4 4 4" \
		"$(docs hpa HorizontalPodAutoscaler | awk '/maxReplicas:/{print $2}' | tr '\n' ' ' | sed 's/ $//')" || rc=1
	# security defaults, every container of every pod (init containers included)
	for v in default production; do
		pods=$(grep -cE '^ {6,10}image: ' "$work/$v.yaml")
		for want in 'runAsNonRoot: true' 'readOnlyRootFilesystem: true' 'allowPrivilegeEscalation: false' \
			'privileged: false' '- ALL'; do
			assert "$v: '$want' on every container" "$pods" "$(grep -cE "^ +${want}\$" "$work/$v.yaml")" || rc=1
		done
		assert "$v: automountServiceAccountToken false on every pod + the ServiceAccount" \
			"$(($(kinds $v Deployment) + $(kinds $v Job) + 1))" \
			"$(grep -cE '^ *automountServiceAccountToken: false$' "$work/$v.yaml")" || rc=1
		assert "$v: seccomp RuntimeDefault (pods + containers)" \
			"$((pods + $(kinds $v Deployment) + $(kinds $v Job)))" \
			"$(grep -cE '^ +type: RuntimeDefault$' "$work/$v.yaml")" || rc=1
	done
	# private key: Secret mounted read-only with mode 0400 (YAML 0400 = 256)
	assert "key Secret volumes with defaultMode 0400" "$(kinds production Deployment)" \
		"$(grep -A2 'secretName: sfk-salesforce-jwt' "$work/production.yaml" | grep -c 'defaultMode: 0400\|defaultMode: 256')" || rc=1
	assert "key Secret mounts read-only" "$(kinds production Deployment)" \
		"$(grep -A2 'mountPath: /run/secrets/sfk-key' "$work/production.yaml" | grep -c 'readOnly: true')" || rc=1
	assert "production: webhook Service from the webhook Secret" 1 \
		"$(grep -c 'name: sfk-webhook$' "$work/production.yaml")" || rc=1
	# KAFKA_* pass-through
	assert "kafka.config security.protocol -> KAFKA_SECURITY_PROTOCOL" 1 \
		"$(docs production Deployment | grep -A1 'name: KAFKA_SECURITY_PROTOCOL' | grep -c 'value: "SASL_SSL"' | awk '{print ($1>0)}')" || rc=1
	# release labels for kube-prometheus-stack
	assert "ServiceMonitor release label" 'release: "kps"' \
		"$(docs releases ServiceMonitor | grep -m1 -o 'release: "kps"')" || rc=1
	assert "PrometheusRule release label" 'release: "kps2"' \
		"$(docs releases PrometheusRule | grep -m1 -o 'release: "kps2"')" || rc=1
	# a policy change rolls the pods: the checksum follows the policies ConfigMap
	local c1 c2
	mkdir -p "$work/chart2" && cp -rL "$chart" "$work/chart2/" || return 1
	c1=$(H template rel "$work/chart2/salesforce-kpis" | grep -m1 'checksum/policies' | awk '{print $2}')
	jq '.version = "9.9.9-check"' "$src/policies/workloads.json" > "$work/chart2/salesforce-kpis/files/policies/workloads.json"
	c2=$(H template rel "$work/chart2/salesforce-kpis" | grep -m1 'checksum/policies' | awk '{print $2}')
	if [ -n "$c1" ] && [ -n "$c2" ] && [ "$c1" != "$c2" ]; then echo "ok policy change changes checksum/policies"; else
		echo "FAIL checksum/policies did not change ($c1 -> $c2)"; rc=1; fi
	# NOTES.txt: helm renders it only on install (needs a cluster); in the copy it becomes a named
	# template shown through a ConfigMap
	local t=$work/chart2/salesforce-kpis/templates
	{ echo '{{- define "sfk.notesCheck" -}}'; cat "$chart/templates/NOTES.txt"; echo '{{- end -}}'; } > "$t/_notes-check.tpl"
	printf '%s\n' 'apiVersion: v1' 'kind: ConfigMap' 'metadata: {name: notes-check}' 'data:' '  notes: |-' \
		'    {{- include "sfk.notesCheck" . | nindent 4 }}' > "$t/notes-check.yaml"
	H template rel "$work/chart2/salesforce-kpis" --show-only templates/notes-check.yaml > "$work/notes-default.txt" || rc=1
	H template rel "$work/chart2/salesforce-kpis" -f "$chart/values-production.yaml" \
		--show-only templates/notes-check.yaml > "$work/notes-production.txt" || rc=1
	sed -i 's/^    //' "$work/notes-default.txt" "$work/notes-production.txt"
	assert "NOTES: how to run sfk doctor in a pod" 2 \
		"$(cat "$work"/notes-*.txt | grep -c 'exec deploy/rel-salesforce-kpis-bridge -c sfk-bridge -- sfk doctor')" || rc=1
	assert "NOTES: default values warn about the 5 empty required settings" 5 \
		"$(sed -n '/^WARNING/,/^$/p' "$work/notes-default.txt" | grep -c '^  - ')" || rc=1
	assert "NOTES: production values warn about nothing" 0 "$(grep -c '^WARNING' "$work/notes-production.txt")" || rc=1
	return $rc
}
check_validate() {
	local rc=0 d
	for d in default production hpa releases; do
		echo "kubectl-validate $d"
		KUBECONFIG=/dev/null "$kv" --version "$KV_K8S" --local-crds "$here/crds" "$work/render/$d" || rc=1
	done
	# the validator and the CRD schemas do bite
	mkdir -p "$work/bad"
	awk 'BEGIN{RS="\n---\n"} /(^|\n)kind: Deployment\n/ {print; exit}' "$work/default.yaml" |
		sed 's/^  replicas: 2$/  replicas: two/' > "$work/bad/deploy.yaml"
	grep -q 'replicas: two' "$work/bad/deploy.yaml" || { echo "FAIL could not build the bad Deployment"; return 1; }
	expect_fail "Deployment with replicas: two" "replicas" \
		env KUBECONFIG=/dev/null "$kv" --version "$KV_K8S" --local-crds "$here/crds" "$work/bad/deploy.yaml" || rc=1
	rm -f "$work/bad/deploy.yaml"
	docs production ScaledObject | awk 'BEGIN{RS="---\n"} NR==1{print}' |
		sed 's/^  maxReplicaCount: .*/  maxReplicaCount: many/' > "$work/bad/so.yaml"
	expect_fail "ScaledObject with maxReplicaCount: many (CRD schema)" "maxReplicaCount" \
		env KUBECONFIG=/dev/null "$kv" --version "$KV_K8S" --local-crds "$here/crds" "$work/bad/so.yaml" || rc=1
	return $rc
}
# Vendored CRDs: byte-identical to the files in their Go modules (provenance).
crd_sources=(
	"keda.sh_scaledobjects.yaml github.com/kedacore/keda/v2@v2.16.1 config/crd/bases/keda.sh_scaledobjects.yaml"
	"monitoring.coreos.com_servicemonitors.yaml github.com/prometheus-operator/prometheus-operator@v0.85.0 example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
	"monitoring.coreos.com_prometheusrules.yaml github.com/prometheus-operator/prometheus-operator@v0.85.0 example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
)
check_crds() {
	local rc=0 line file mod path dir
	for line in "${crd_sources[@]}"; do
		read -r file mod path <<<"$line"
		[ -f "$here/crds/$file" ] || { echo "FAIL missing tests/deploy/crds/$file"; rc=1; continue; }
		dir=$(go env GOMODCACHE)/$(sed 's/[A-Z]/!\L&/g' <<<"${mod%@*}")@${mod#*@}
		if [ ! -d "$dir" ] && [ -n "${SFK_DEPLOY_VERIFY_CRDS:-}" ]; then
			dir=$(go mod download -json "$mod" | jq -r .Dir) || { echo "FAIL go mod download $mod"; rc=1; continue; }
		fi
		if [ -d "$dir" ]; then
			cmp -s "$here/crds/$file" "$dir/$path" && echo "ok $file = $mod/$path" ||
				{ echo "FAIL $file differs from $mod/$path"; rc=1; }
		else
			echo "skip $file: $mod not in the module cache (SFK_DEPLOY_VERIFY_CRDS=1 downloads it)"
		fi
	done
	return $rc
}
check_rules() {
	docs production PrometheusRule > "$work/prometheusrule.yaml"
	[ -s "$work/prometheusrule.yaml" ] || die "no PrometheusRule in the production render"
	# spec: holds exactly a Prometheus rules file (groups:) indented by two
	awk '/^spec:$/{f=1; next} f&&/^---$/{exit} f{sub(/^  /, ""); print}' "$work/prometheusrule.yaml" > "$work/rules.yaml"
	promtool check rules "$work/rules.yaml" || return 1
	sed "s|@RULES@|$work/rules.yaml|" "$here/rules_test.yaml" > "$work/rules_test.yaml"
	promtool test rules "$work/rules_test.yaml"
}
check_dashboards() {
	local rc=0 f ids dup uids
	for f in "$chart"/dashboards/*.json; do
		jq -e . "$f" >/dev/null || { echo "FAIL $f does not parse"; rc=1; continue; }
		ids=$(jq -r '[.panels[], (.panels[] | .panels[]?)] | map(.id) | .[]' "$f")
		dup=$(sort <<<"$ids" | uniq -d | tr '\n' ' ')
		[ -z "$dup" ] || { echo "FAIL $(basename "$f"): duplicate panel ids $dup"; rc=1; }
		jq -e '[.panels[] | select(.type != "row") | (.targets // []) | length > 0 and all(.[]; (.expr // "") != "")] | all' "$f" >/dev/null ||
			{ echo "FAIL $(basename "$f"): a panel without a query"; rc=1; }
		jq -e '[.. | objects | select(has("id") and (.gridPos? != null)) | .id] | all(type == "number")' "$f" >/dev/null ||
			{ echo "FAIL $(basename "$f"): non-numeric panel id"; rc=1; }
		echo "ok $(basename "$f"): $(wc -l <<<"$ids") panels, ids unique, uid $(jq -r .uid "$f")"
	done
	uids=$(jq -r .uid "$chart"/dashboards/*.json | sort | uniq -d)
	[ -z "$uids" ] || { echo "FAIL duplicate dashboard uid $uids"; rc=1; }
	return $rc
}
check_sf() {
	local rc=0 n
	n=$(find "$src/sf" -name '*.xml' | wc -l)
	[ "$n" -gt 0 ] || die "no XML under sf/"
	find "$src/sf" -name '*.xml' -print0 | xargs -0 xmllint --noout || rc=1
	echo "xmllint: $n files"
	jq -e '.packageDirectories[0].path == "force-app"' "$src/sf/sfdx-project.json" >/dev/null ||
		{ echo "FAIL sf/sfdx-project.json"; rc=1; }
	# channel members for the three change events, FLS for every field
	for e in LeadChangeEvent TaskChangeEvent EmailMessageChangeEvent; do
		grep -qs "<selectedEntity>$e</selectedEntity>" "$src"/sf/force-app/main/default/platformEventChannelMembers/*.xml ||
			{ echo "FAIL no PlatformEventChannelMember for $e"; rc=1; }
	done
	for f in "$src"/sf/force-app/main/default/objects/Lead/fields/*.field-meta.xml; do
		n=$(basename "$f" .field-meta.xml)
		grep -q "<field>Lead.$n</field>" "$src"/sf/force-app/main/default/permissionsets/*.xml ||
			{ echo "FAIL permission set gives no field access to Lead.$n"; rc=1; }
	done
	python3 "$here/check_sf_fields.py" --source "$src" ${design:+--design "$design"} || rc=1
	# the comparison bites: a copy with a wrong length must fail
	mkdir -p "$work/sfcopy/tests/sfsim"
	cp -r "$src/sf" "$work/sfcopy/" && cp "$src/tests/sfsim/org_schema.c" "$work/sfcopy/tests/sfsim/"
	sed -i 's|<length>255</length>|<length>80</length>|' "$work/sfcopy/sf/force-app/main/default/objects/Lead/fields/Routing_Reason__c.field-meta.xml"
	expect_fail "sf/ field length differing from sfk-sim" "Routing_Reason__c" \
		python3 "$here/check_sf_fields.py" --source "$work/sfcopy" || rc=1
	return $rc
}

# ---- metrics ---------------------------------------------------------------------------------
build_dir=${SFK_BUILD_DIR:-$src/build}
bin_dir=${SFK_BIN_DIR:-$build_dir/bin}
# DESIGN.md (section 2 fields, section 7 metrics) lives beside the repository, not in it
design=${SFK_DESIGN_MD:-$src/../shared/docs/DESIGN.md}
[ -f "$design" ] || design=
ensure_binaries() {
	if [ -n "${SFK_BIN_DIR:-}" ]; then
		echo "binaries from SFK_BIN_DIR=$SFK_BIN_DIR: $(cd "$bin_dir" && ls sfk sfk-* 2>/dev/null | tr '\n' ' ')"
		return 0
	fi
	cmake -S "$src" -B "$build_dir" -G Ninja >/dev/null || return 1
	local t want=()
	t=$(ninja -C "$build_dir" -t targets all | sed -n 's/^\(sfk[a-z-]*\): phony$/\1/p')
	for b in sfk-bridge sfk-worker sfk-loader sfk sfk-sim sfk-devkafka; do
		grep -qx "$b" <<<"$t" && want+=("$b")
	done
	ninja -C "$build_dir" "${want[@]}" | tail -1 || return 1
	echo "built: ${want[*]}"
}
# scrape_binaries: run sfk-bridge, one sfk-worker per workload and sfk-loader against sfk-sim +
# mock Kafka + Redis (tests/stack/up), create a Lead through the sim so CDC flows through the
# bridge to the workers, and save each /metrics.
scrape_binaries() {
	[ -x "$bin_dir/sfk-bridge" ] && [ -x "$bin_dir/sfk-sim" ] || die "sfk-bridge / sfk-sim not built in $bin_dir"
	local envs deadline pre="deploychk$$." name port
	pids=() # global: the EXIT trap below reads it after this function returned
	envs=$(SFK_BIN_DIR=$bin_dir "$src/tests/stack/up" --kafka mock --sim) || die "tests/stack/up failed"
	eval "$envs"
	# this runs in the step's subshell: stop what it started when it ends, whichever way
	trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; "$src/tests/stack/down" >/dev/null 2>&1' EXIT
	# shellcheck source=../stack/lib/common.sh
	. "$src/tests/stack/lib/common.sh"
	cd "$src" || return 1 # relative policy/schema defaults
	export SFK_TOPIC_PREFIX=$pre SFK_GROUP_PREFIX=$pre SFK_BRIDGE_LEASE_KEY="sfk:lease:$pre" \
		SFK_BRIDGE_TRANSACTIONAL_ID="${pre}bridge" SFK_LOADER_TOPIC="${pre}flywheel" \
		SFK_LOADER_GROUP="${pre}loader" SFK_LOADER_DLQ_TOPIC="${pre}dlq.loader" FLYWHEEL_DIR="$work/flywheel"
	declare -gA admin=()
	start_bin() { # start_bin NAME BINARY [ARGS]
		local n=$1 p
		shift
		p=$(stack_free_port)
		admin[$n]=$p
		SFK_ADMIN_ADDR=127.0.0.1:$p "$@" > "$work/$n.log" 2>&1 &
		pids+=($!)
	}
	start_bin bridge "$bin_dir/sfk-bridge"
	if [ -x "$bin_dir/sfk-worker" ]; then
		for w in lead.route lead.first_touch_detect outreach.template_suggest; do
			start_bin "worker-$w" "$bin_dir/sfk-worker" --workload "$w"
		done
	fi
	[ -x "$bin_dir/sfk-loader" ] && start_bin loader "$bin_dir/sfk-loader"
	deadline=$(($(date +%s) + 60))
	until grep -q '"cometd subscribed"' "$work/bridge.log"; do
		kill -0 "${pids[0]}" 2>/dev/null || { tail -5 "$work/bridge.log"; die "sfk-bridge exited"; }
		[ "$(date +%s)" -lt "$deadline" ] || { tail -5 "$work/bridge.log"; die "sfk-bridge did not subscribe in 60 s"; }
		sleep 0.2
	done
	curl -sf --cacert "$SF_CA_FILE" -H 'Content-Type: application/json' \
		-d '{"LastName":"Deploycheck","Company":"Acme","Country":"Germany","NumberOfEmployees":50}' \
		"$SF_SIM_URL/sim/records/Lead" >/dev/null || die "could not create a Lead in sfk-sim"
	until curl -sf "http://127.0.0.1:${admin[bridge]}/metrics" > "$work/bridge.metrics" &&
		grep -q '^sfk_cdc_events_total{' "$work/bridge.metrics" &&
		grep -q '^sfk_bridge_checkpoint_timestamp_seconds{' "$work/bridge.metrics"; do
		kill -0 "${pids[0]}" 2>/dev/null || { tail -5 "$work/bridge.log"; die "sfk-bridge exited"; }
		[ "$(date +%s)" -lt "$deadline" ] || { tail -5 "$work/bridge.log"; die "no CDC event through sfk-bridge in 60 s"; }
		sleep 0.3
	done
	# the workers' decisions are a bonus (more families with samples), not a requirement here
	if [ -n "${admin[worker-lead.route]:-}" ]; then
		deadline=$(($(date +%s) + 20))
		until curl -sf "http://127.0.0.1:${admin[worker-lead.route]}/metrics" | grep -q '^sfk_decisions_total{' ||
			[ "$(date +%s)" -ge "$deadline" ]; do sleep 0.5; done
	fi
	for name in "${!admin[@]}"; do
		port=${admin[$name]}
		if curl -sf "http://127.0.0.1:$port/metrics" > "$work/$name.metrics"; then
			echo "scraped $name: $(grep -c '^# TYPE sfk_' "$work/$name.metrics") sfk_ families"
			promtool check metrics < "$work/$name.metrics" || { echo "FAIL promtool check metrics: $name"; return 1; }
		else
			echo "FAIL $name serves no /metrics (log: $(tail -1 "$work/$name.log"))"
			return 1
		fi
	done
	echo "promtool check metrics: OK"
}
check_metrics() {
	ensure_binaries || return 1
	scrape_binaries || return 1
	[ -s "$work/rules.yaml" ] || die "no extracted rules (the promtool step failed)"
	local scrapes=() f strict=(--strict-pending)
	for f in "$work"/*.metrics; do scrapes+=(--scrape "$f"); done
	[ -z "${SFK_DEPLOY_LENIENT_METRICS:-}" ] || strict=()
	python3 "$here/check_metrics.py" --dashboards "$chart"/dashboards/*.json --rules "$work/rules.yaml" \
		"${scrapes[@]}" --bin-dir "$bin_dir" --source "$src" \
		${design:+--design "$design"} --requested "$here/metrics-requested.txt" \
		"${strict[@]}" || return 1
	# the comparison bites: an unknown name and a _bucket of a counter fail
	echo '{"panels":[{"id":1,"targets":[{"expr":"rate(sfk_no_such_metric_total[5m]) + sfk_cdc_events_total_bucket"}]}]}' > "$work/bad-dashboard.json"
	expect_fail "dashboard using sfk_no_such_metric_total" "sfk_no_such_metric_total" \
		python3 "$here/check_metrics.py" --dashboards "$work/bad-dashboard.json" "${scrapes[@]}" \
		--bin-dir "$bin_dir" --source "$src" "${strict[@]}" || return 1
}
check_image() {
	"$here/check_image_libs.sh" "$bin_dir" || return 1
	sed 's/^ARG SFK_RUNTIME_PACKAGES="librdkafka1 /ARG SFK_RUNTIME_PACKAGES="/' "$src/Dockerfile" > "$work/Dockerfile.bad"
	expect_fail "runtime stage without librdkafka1" "missing package librdkafka1" \
		env SFK_DOCKERFILE="$work/Dockerfile.bad" "$here/check_image_libs.sh" "$bin_dir"
}

for t in go jq xmllint promtool python3 curl; do
	command -v $t >/dev/null || { echo "FAIL $t not installed (tests/stack/deps installs it)"; exit 1; }
done
step "tools: helm $HELM_VERSION" tool_helm
step "tools: kubectl-validate" tool_kv
[ ${#failed[@]} -eq 0 ] || { echo "FAILED: ${failed[*]}"; exit 1; }
step "chart carries the policies" check_policies_link
step "helm lint --strict" check_lint
step "values.schema.json rejects typos and wrong types" check_schema
step "helm template" check_render
step "rendered objects" check_objects
step "vendored CRDs match their Go modules" check_crds
step "kubectl-validate --version $KV_K8S" check_validate
step "promtool check/test rules" check_rules
step "dashboards" check_dashboards
step "sf/ metadata" check_sf
step "metric names vs binaries" check_metrics
step "image runtime packages vs ldd" check_image

echo "deploy checks: $(($(date +%s) - t_start))s"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]}"
	exit 1
fi
echo "all deploy checks passed"
