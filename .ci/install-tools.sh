#!/usr/bin/env bash
# Installs the Helm chart's test tools at pinned versions into .tools/ (idempotent):
#   .tools/bin/helm, .tools/bin/kubeconform     built with `go install` from the Go module proxy
#   .tools/kubernetes-json-schema/<version>-local-strict/*.json
#                                               Kubernetes' JSON schemas, from the PyPI package
#                                               kubernetes-validate, so kubeconform runs offline
# A second run with everything in place does nothing. Needs go (>= 1.26) and a Python with pip.
set -euo pipefail

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.7.0
# Helm's release builds take their default Kubernetes version from the client-go they vendor
# (v0.37.0 for Helm v3.22.0): the same here, so `helm template` and `helm lint` agree with them.
HELM_KUBE_MINOR=37
SCHEMAS_PACKAGE=kubernetes-validate==1.37.0
SCHEMAS_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the package has.
SCHEMA_VERSIONS="v1.25.0 v1.37.0"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${CQRS_TOOLS_DIR:-$ROOT/.tools}
BIN=$TOOLS/bin
SCHEMAS=$TOOLS/kubernetes-json-schema

say() { printf 'install-tools: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The official Go tarball's place, for shells whose PATH does not have it.
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null 2>&1 || die "go is not installed; the chart tools are built with 'go install'"

# The module version a Go binary was built from, or nothing.
built_version() { # binary module
    [ -x "$1" ] || return 0
    go version -m "$1" 2>/dev/null | awk -v mod="$2" '$1 == "mod" && $2 == mod { print $3 }'
}

go_install() { # name module package version ldflags
    local name=$1 module=$2 package=$3 version=$4 ldflags=$5
    if [ "$(built_version "$BIN/$name" "$module")" = "$version" ]; then
        say "$name $version already in $BIN"
        return
    fi
    say "building $name $version (a few minutes on a small machine)"
    mkdir -p "$BIN"
    GOBIN=$BIN CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
        go install -trimpath -ldflags "$ldflags" "$package@$version"
    [ "$(built_version "$BIN/$name" "$module")" = "$version" ] \
        || die "$BIN/$name is not $module $version after go install"
}

go_install helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
    "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_KUBE_MINOR \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_KUBE_MINOR"

go_install kubeconform github.com/yannh/kubeconform \
    github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" \
    "-s -w -X main.version=$KUBECONFORM_VERSION"

# --- Kubernetes JSON schemas -------------------------------------------------------------
stamp="$SCHEMAS_PACKAGE sha256:$SCHEMAS_SHA256 $SCHEMA_VERSIONS"
if [ -f "$SCHEMAS/.installed" ] && [ "$(cat "$SCHEMAS/.installed")" = "$stamp" ]; then
    say "Kubernetes schemas ($SCHEMA_VERSIONS) already in $SCHEMAS"
    exit 0
fi

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip; set PYTHON to one that has"

work=$(mktemp -d "${TMPDIR:-/tmp}/cqrs-tools.XXXXXX")
trap 'rm -rf "$work"' EXIT
printf '%s --hash=sha256:%s\n' "$SCHEMAS_PACKAGE" "$SCHEMAS_SHA256" >"$work/requirements.txt"
say "downloading $SCHEMAS_PACKAGE (schemas only; nothing is installed into Python)"
"$PYTHON" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    -r "$work/requirements.txt" -d "$work/wheel"

# The package's schemas refer to one another by absolute URL under https://kubernetes.io/api/,
# which kubeconform would try to fetch. Rewritten to sibling file names, they resolve on disk.
"$PYTHON" - "$work/wheel" "$work/schemas" $SCHEMA_VERSIONS <<'PY'
import glob
import json
import sys
import zipfile
from pathlib import Path

wheel_dir, out, *versions = sys.argv[1:]
(wheel,) = glob.glob(f"{wheel_dir}/*.whl")
PREFIX = "/api/_definitions.json#"


def relative(node):
    if isinstance(node, dict):
        node.pop("$id", None)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(PREFIX):
            node["$ref"] = "_definitions.json#" + ref[len(PREFIX):]
        for value in node.values():
            relative(value)
    elif isinstance(node, list):
        for value in node:
            relative(value)


with zipfile.ZipFile(wheel) as archive:
    for version in versions:
        source = f"kubernetes_validate/kubernetes-json-schema/{version}-local-strict/"
        names = [n for n in archive.namelist() if n.startswith(source) and n.endswith(".json")]
        if not names:
            sys.exit(f"{Path(wheel).name} has no schemas for Kubernetes {version}")
        target = Path(out) / f"{version}-local-strict"
        target.mkdir(parents=True)
        for name in names:
            schema = json.loads(archive.read(name))
            relative(schema)
            (target / name[len(source):]).write_text(json.dumps(schema), encoding="utf-8")
        print(f"install-tools: {len(names)} schemas for Kubernetes {version}", file=sys.stderr)
PY
printf '%s\n' "$stamp" >"$work/schemas/.installed"
rm -rf "$SCHEMAS"
mkdir -p "$TOOLS"
mv "$work/schemas" "$SCHEMAS"
say "Kubernetes schemas installed in $SCHEMAS"
