#!/usr/bin/env bash
# Sets up this machine and this checkout for one of the Makefile's commands, doing only what
# is missing, one line of output per step:
#
#   scripts/setup.sh --for run    `make run`: JDK 17, Maven, Prometheus, Toxiproxy, the venv,
#                                 the Cassandra jars
#   scripts/setup.sh --for test   `make test`: the same, and wrk, Chromium, helm, kubeconform,
#                                 Kubernetes' JSON schemas
#   scripts/setup.sh --for unit   `make test-unit`: Prometheus (for promtool) and the venv
#
#   --dry-run   say what would be installed or built, and change nothing
#   --list      print what the part needs, one `kind name [version]` a line
#
# Where things go:
#   Debian packages     apt-get, as root; `apt-get update` runs once, and only when a package
#                       is missing. Not root: the step is skipped and the command to run is
#                       printed.
#   .venv/              the Python environment (`make install`)
#   .tools/bin/         Go tools at pinned versions, built with `go install` from the Go module
#                       proxy (needs Go; /usr/local/go/bin is looked in too)
#   .tools/kubernetes-json-schema/<version>-local-strict/*.json
#                       Kubernetes' JSON schemas from the PyPI package kubernetes-validate
#                       (pinned, checked by hash), so kubeconform validates offline
#   the Cassandra jars  `python -m testbed jars`: Maven Central, into ~/.cache/cqrs-exporter
#
# Environment: PYTHON (default python3) builds the venv; CQRS_TOOLS_DIR (default .tools) holds
# the Go tools and schemas; CQRS_TESTBED_CACHE (see testbed/jars.py) the jars.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${CQRS_TOOLS_DIR:-$ROOT/.tools}
BIN=$TOOLS/bin
SCHEMAS=$TOOLS/kubernetes-json-schema
VENV=$ROOT/.venv
PYTHON=${PYTHON:-python3}

# --- what each part needs ------------------------------------------------------------------

# openjdk-17-jdk-headless: Cassandra 5.0 runs on JDK 17 (it does not start on 24+).
# maven: fetches the Cassandra jars from Maven Central.
# prometheus: promtool for the rule tests; a real Prometheus for the end-to-end tests and the demo.
# wrk: the health endpoints' latency benchmark. chromium: headless dashboard screenshots.
DEBIAN_UNIT=(prometheus)
DEBIAN_RUN=(openjdk-17-jdk-headless maven prometheus)
DEBIAN_TEST=(openjdk-17-jdk-headless maven prometheus wrk chromium)

# helm and kubeconform: the chart tests. Toxiproxy: network faults between datacenters.
GO_RUN=(toxiproxy-server toxiproxy-cli)
GO_TEST=(helm kubeconform toxiproxy-server toxiproxy-cli)

HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.7.0
TOXIPROXY_VERSION=v2.5.0
# Helm's release builds take their default Kubernetes version from the client-go they vendor
# (v0.37.0 for Helm v3.22.0): the same here, so `helm template` and `helm lint` agree with them.
HELM_KUBE_MINOR=37

declare -A GO_MODULE GO_PACKAGE GO_VERSION GO_LDFLAGS GO_TIME
GO_MODULE[helm]=helm.sh/helm/v3
GO_PACKAGE[helm]=helm.sh/helm/v3/cmd/helm
GO_VERSION[helm]=$HELM_VERSION
GO_LDFLAGS[helm]="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$HELM_KUBE_MINOR \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$HELM_KUBE_MINOR"
GO_TIME[helm]="a few minutes the first time"

GO_MODULE[kubeconform]=github.com/yannh/kubeconform
GO_PACKAGE[kubeconform]=github.com/yannh/kubeconform/cmd/kubeconform
GO_VERSION[kubeconform]=$KUBECONFORM_VERSION
GO_LDFLAGS[kubeconform]="-s -w -X main.version=$KUBECONFORM_VERSION"
GO_TIME[kubeconform]="a minute the first time"

# The release binaries carry the version without its "v" (`toxiproxy-server -version`).
for name in toxiproxy-server toxiproxy-cli; do
    GO_MODULE[$name]=github.com/Shopify/toxiproxy/v2
    GO_VERSION[$name]=$TOXIPROXY_VERSION
    GO_LDFLAGS[$name]="-s -w -X github.com/Shopify/toxiproxy/v2.Version=${TOXIPROXY_VERSION#v}"
done
GO_PACKAGE[toxiproxy-server]=github.com/Shopify/toxiproxy/v2/cmd/server
GO_PACKAGE[toxiproxy-cli]=github.com/Shopify/toxiproxy/v2/cmd/cli
GO_TIME[toxiproxy-server]="a minute or two the first time"
GO_TIME[toxiproxy-cli]="seconds once toxiproxy-server is built"

SCHEMAS_PACKAGE=kubernetes-validate==1.37.0
SCHEMAS_SHA256=85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest the package has.
SCHEMA_VERSIONS="v1.25.0 v1.37.0"
SCHEMAS_STAMP="$SCHEMAS_PACKAGE sha256:$SCHEMAS_SHA256 $SCHEMA_VERSIONS"

# --- command line --------------------------------------------------------------------------

usage() {
    printf 'usage: %s --for run|test|unit [--dry-run] [--list]\n' "$0" >&2
    exit 2
}

part="" dry_run=0 list=0
while [ $# -gt 0 ]; do
    case $1 in
        --for) [ $# -ge 2 ] || usage; part=$2; shift 2 ;;
        --for=*) part=${1#--for=}; shift ;;
        --dry-run) dry_run=1; shift ;;
        --list) list=1; shift ;;
        *) usage ;;
    esac
done
case $part in
    unit) debian=("${DEBIAN_UNIT[@]}") go_tools=() schemas=0 jars=0 ;;
    run) debian=("${DEBIAN_RUN[@]}") go_tools=("${GO_RUN[@]}") schemas=0 jars=1 ;;
    test) debian=("${DEBIAN_TEST[@]}") go_tools=("${GO_TEST[@]}") schemas=1 jars=1 ;;
    *) usage ;;
esac
make_command="make $part"
[ "$part" != unit ] || make_command="make test-unit"

if [ "$list" = 1 ]; then
    for package in "${debian[@]}"; do printf 'debian %s\n' "$package"; done
    for name in "${go_tools[@]}"; do printf 'go %s %s\n' "$name" "${GO_VERSION[$name]}"; done
    printf 'venv %s\n' "${VENV#"$ROOT"/}"
    [ "$schemas" = 0 ] || printf 'schemas %s\n' "$SCHEMAS_STAMP"
    [ "$jars" = 0 ] || printf 'jars cassandra\n'
    exit 0
fi

# --- helpers -------------------------------------------------------------------------------

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# Scratch files and folders, removed however the script ends.
scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT

started=${EPOCHREALTIME//[!0-9]/}
elapsed() { # seconds since the start, two decimals
    local us=$(( ${EPOCHREALTIME//[!0-9]/} - started ))
    printf '%d.%02d' $(( us / 1000000 )) $(( us / 10000 % 100 ))
}

# Each step's time, for the closing line (the CI budget is watched step by step).
timings=() step_started=0
step() { step_started=${EPOCHREALTIME//[!0-9]/}; }
step_done() { # name
    local us=$(( ${EPOCHREALTIME//[!0-9]/} - step_started ))
    timings+=("$1 $(( (us + 500000) / 1000000 )) s")
}

# The official Go tarball's place, for shells whose PATH does not have it.
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin

# The Debian packages among the arguments that are not installed (all of them off Debian).
debian_missing() {
    local status package
    status=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true)
    for package in "$@"; do
        grep -qx "$package installed" <<<"$status" || printf '%s\n' "$package"
    done
}

# The module version a Go binary was built from, or nothing.
built_version() { # binary module
    [ -x "$1" ] && command -v go >/dev/null 2>&1 || return 0
    go version -m "$1" 2>/dev/null | awk -v mod="$2" '$1 == "mod" && $2 == mod { print $3 }'
}

# The venv's Python once it exists; before, the one that builds it (testbed.jars needs only
# the standard library).
python_for_repo() {
    if [ -x "$VENV/bin/python" ]; then
        printf '%s\n' "$VENV/bin/python"
    else
        printf '%s\n' "$PYTHON"
    fi
}

# Make as a child of this script, not of the make that may have started it (no -n, no -q).
repo_make() { MAKEFLAGS='' MFLAGS='' make --no-print-directory -s -C "$ROOT" "$@"; }

# --- what is missing -----------------------------------------------------------------------

need_venv=0
repo_make -q install PYTHON="$PYTHON" >/dev/null 2>&1 || need_venv=1

need_debian=()
if [ ${#debian[@]} -gt 0 ]; then mapfile -t need_debian < <(debian_missing "${debian[@]}"); fi
# Debian's Python makes no venv without python3-venv (ensurepip lives there).
if [ "$need_venv" = 1 ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    [ -z "$(debian_missing python3-venv)" ] || need_debian+=(python3-venv)
fi

need_go=()
for name in "${go_tools[@]}"; do
    [ "$(built_version "$BIN/$name" "${GO_MODULE[$name]}")" = "${GO_VERSION[$name]}" ] \
        || need_go+=("$name")
done

need_schemas=0
if [ "$schemas" = 1 ]; then
    [ -f "$SCHEMAS/.installed" ] && [ "$(cat "$SCHEMAS/.installed")" = "$SCHEMAS_STAMP" ] \
        || need_schemas=1
fi

need_jars=0 cassandra_version="" java_home=""
if [ "$jars" = 1 ]; then
    query='from testbed.jars import DEFAULT_VERSION, is_cached, java_home
print(DEFAULT_VERSION, int(is_cached()), java_home())'
    jars_state=$(PYTHONPATH=$ROOT "$(python_for_repo)" -c "$query") \
        || die "cannot tell whether the Cassandra jars are cached (testbed.jars failed)"
    read -r cassandra_version cached java_home <<<"$jars_state"
    [ "$cached" = 1 ] || need_jars=1
fi

# The one command that installs the missing packages, for someone who is not root.
apt_command() {
    printf "sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends %s'" "$*"
}

if [ "$dry_run" = 1 ]; then
    todo=0
    if [ ${#need_debian[@]} -gt 0 ]; then
        say "would install Debian packages: ${need_debian[*]} (apt-get update first)"
        [ "$(id -u)" = 0 ] || say "not root: that step needs $(apt_command "${need_debian[@]}")"
        todo=1
    fi
    if [ "$need_venv" = 1 ]; then
        say "would set up the Python environment in .venv (make install)"
        todo=1
    fi
    for name in "${need_go[@]}"; do
        say "would build $name ${GO_VERSION[$name]} into $BIN"
        todo=1
    done
    if [ "$need_schemas" = 1 ]; then
        say "would fetch the Kubernetes schemas ($SCHEMA_VERSIONS) into $SCHEMAS"
        todo=1
    fi
    if [ "$need_jars" = 1 ]; then
        say "would fetch the Cassandra $cassandra_version jars from Maven Central"
        todo=1
    fi
    [ "$todo" = 1 ] || say "nothing to do: all set-up for \`$make_command\` is in place"
    exit 0
fi

# --- doing it ------------------------------------------------------------------------------

incomplete=()

if [ ${#need_debian[@]} -gt 0 ]; then
    step
    if ! command -v apt-get >/dev/null 2>&1; then
        say "skipping Debian packages: no apt-get here;" \
            "install ${need_debian[*]} (or their equivalents) yourself"
        incomplete+=("${need_debian[@]}")
    elif [ "$(id -u)" != 0 ]; then
        say "skipping Debian packages ${need_debian[*]}: installing them needs root; run"
        say "  $(apt_command "${need_debian[@]}")"
        incomplete+=("${need_debian[@]}")
    else
        say "installing Debian packages: ${need_debian[*]} (apt-get update first; a minute or two)"
        log=$(mktemp "${TMPDIR:-/tmp}/cqrs-setup-apt.XXXXXX")
        scratch+=("$log")
        export DEBIAN_FRONTEND=noninteractive
        if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
                -o Dpkg::Use-Pty=0 "${need_debian[@]}"; } >"$log" 2>&1; then
            tail -n 30 "$log" >&2
            die "apt-get could not install ${need_debian[*]}"
        fi
    fi
    step_done "Debian packages"
fi

if [ "$need_venv" = 1 ]; then
    step
    say "setting up the Python environment in .venv (pip install -e '.[test]'; a minute the first time)"
    repo_make install PYTHON="$PYTHON"
    step_done venv
fi

if [ ${#need_go[@]} -gt 0 ]; then
    command -v go >/dev/null 2>&1 \
        || die "go is not installed (looked on PATH and in /usr/local/go/bin):" \
               "${need_go[*]} are built with 'go install' and need Go 1.26"
    mkdir -p "$BIN"
    for name in "${need_go[@]}"; do
        module=${GO_MODULE[$name]} version=${GO_VERSION[$name]} package=${GO_PACKAGE[$name]}
        step
        say "building $name $version (${GO_TIME[$name]})"
        # go install names the binary after its package; built aside, then renamed into place.
        gobin=$(mktemp -d "$TOOLS/.build.XXXXXX")
        scratch+=("$gobin")
        GOBIN=$gobin CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
            go install -trimpath -ldflags "${GO_LDFLAGS[$name]}" "$package@$version"
        mv -f "$gobin/${package##*/}" "$BIN/$name"
        [ "$(built_version "$BIN/$name" "$module")" = "$version" ] \
            || die "$BIN/$name is not $module $version after go install"
        step_done "$name"
    done
fi

if [ "$need_schemas" = 1 ]; then
    step
    say "fetching Kubernetes' JSON schemas ($SCHEMA_VERSIONS) from PyPI's $SCHEMAS_PACKAGE"
    python=$(python_for_repo)
    "$python" -m pip --version >/dev/null 2>&1 || die "$python has no pip; set PYTHON to one that has"
    work=$(mktemp -d "${TMPDIR:-/tmp}/cqrs-setup-schemas.XXXXXX")
    scratch+=("$work")
    printf '%s --hash=sha256:%s\n' "$SCHEMAS_PACKAGE" "$SCHEMAS_SHA256" >"$work/requirements.txt"
    # Only downloaded and unpacked: nothing is installed into Python.
    "$python" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
        -r "$work/requirements.txt" -d "$work/wheel"
    # The package's schemas refer to one another by absolute URL under
    # https://kubernetes.io/api/, which kubeconform would try to fetch. Rewritten to sibling
    # file names, they resolve on disk.
    # shellcheck disable=SC2086  # one argument per version
    "$python" - "$work/wheel" "$work/schemas" $SCHEMA_VERSIONS <<'PY'
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
PY
    printf '%s\n' "$SCHEMAS_STAMP" >"$work/schemas/.installed"
    rm -rf "$SCHEMAS"
    mkdir -p "$TOOLS"
    mv "$work/schemas" "$SCHEMAS"
    step_done schemas
fi

if [ "$need_jars" = 1 ]; then
    step
    if ! command -v mvn >/dev/null 2>&1 || [ ! -x "$java_home/bin/java" ]; then
        say "skipping the Cassandra jars: fetching them needs mvn and a JDK 17 in $java_home"
        incomplete+=("the Cassandra jars")
    else
        say "fetching the Cassandra $cassandra_version jars from Maven Central (under a minute the first time)"
        "$VENV/bin/python" -m testbed jars >/dev/null
    fi
    step_done jars
fi

steps=$(IFS=,; printf '%s' "${timings[*]}")
if [ ${#incomplete[@]} -gt 0 ]; then
    say "set-up for \`$make_command\` incomplete after $(elapsed) s: missing ${incomplete[*]} (see above)"
elif [ ${#timings[@]} -gt 0 ]; then
    say "set-up for \`$make_command\` done in $(elapsed) s (${steps//,/, })"
else
    say "all set-up for \`$make_command\` in place, nothing needed ($(elapsed) s)"
fi
