{{/* Names, labels and the exporter's config file. */}}

{{- define "cqrs-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cqrs-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cqrs-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cqrs-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cqrs-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cqrs-exporter.labels" -}}
helm.sh/chart: {{ include "cqrs-exporter.chart" . }}
{{ include "cqrs-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.role }}
cqrs-exporter/role: {{ .Values.role }}
cqrs-exporter/region: {{ .Values.region | quote }}
{{- end }}

{{- define "cqrs-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cqrs-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cqrs-exporter.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret that holds the Cassandra password: the user's, or the one this chart makes. */}}
{{- define "cqrs-exporter.secretName" -}}
{{- default (include "cqrs-exporter.fullname" .) .Values.cassandra.auth.existingSecret }}
{{- end }}

{{/* The environment variable the config names for the password. */}}
{{- define "cqrs-exporter.passwordEnv" -}}
CQRS_CASSANDRA_PASSWORD
{{- end }}

{{- define "cqrs-exporter.containerPort" -}}
9469
{{- end }}

{{- define "cqrs-exporter.configDir" -}}
/etc/cqrs-exporter
{{- end }}

{{/* Where the password file is mounted with cassandra.auth.passwordFrom: file. */}}
{{- define "cqrs-exporter.passwordFile" -}}
{{ include "cqrs-exporter.configDir" . }}/cassandra/password
{{- end }}

{{/* The web config: "true" when one is given, inline or as an existing Secret. */}}
{{- define "cqrs-exporter.webEnabled" -}}
{{- if or .Values.web.config .Values.web.existingSecret }}true{{ end }}
{{- end }}

{{/*
"true" when the main port needs TLS or basic auth, so the kubelet's probes go to a plain-HTTP
health listener: the inline web config has tls_server_config or basic_auth_users, or the web
config is an existing Secret the chart cannot read.
*/}}
{{- define "cqrs-exporter.healthSplit" -}}
{{- $web := .Values.web }}
{{- if $web.existingSecret }}true
{{- else if or (hasKey $web.config "tls_server_config") (hasKey $web.config "basic_auth_users") }}true
{{- end }}
{{- end }}

{{- define "cqrs-exporter.webDir" -}}
{{ include "cqrs-exporter.configDir" . }}/web
{{- end }}

{{- define "cqrs-exporter.webConfigFile" -}}
{{ include "cqrs-exporter.webDir" . }}/web-config.yml
{{- end }}

{{- define "cqrs-exporter.webSecretName" -}}
{{- if .Values.web.existingSecret }}
{{- .Values.web.existingSecret }}
{{- else }}
{{- include "cqrs-exporter.fullname" . | trunc 59 | trimSuffix "-" }}-web
{{- end }}
{{- end }}

{{/*
The web config the chart puts in its Secret: `web.config`, with the mounted certificate's
files filled in where tls_server_config leaves them out.
*/}}
{{- define "cqrs-exporter.webConfig" -}}
{{- $web := .Values.web }}
{{- $config := deepCopy $web.config }}
{{- if and $web.tls.existingSecret (hasKey $config "tls_server_config") }}
{{- $dir := include "cqrs-exporter.webDir" . }}
{{- $tls := deepCopy (get $config "tls_server_config" | default dict) }}
{{- if not (hasKey $tls "cert_file") }}
{{- $_ := set $tls "cert_file" (printf "%s/%s" $dir $web.tls.certKey) }}
{{- end }}
{{- if not (hasKey $tls "key_file") }}
{{- $_ := set $tls "key_file" (printf "%s/%s" $dir $web.tls.keyKey) }}
{{- end }}
{{- if and $web.tls.clientCaKey (not (hasKey $tls "client_ca_file")) }}
{{- $_ := set $tls "client_ca_file" (printf "%s/%s" $dir $web.tls.clientCaKey) }}
{{- end }}
{{- $_ := set $config "tls_server_config" $tls }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{- define "cqrs-exporter.healthPort" -}}
{{ int .Values.web.healthPort }}
{{- end }}

{{/* The port the kubelet probes: the health listener's when split off, else the main one. */}}
{{- define "cqrs-exporter.probePort" -}}
{{ if include "cqrs-exporter.healthSplit" . }}health{{ else }}http{{ end }}
{{- end }}

{{/* The headless Service that names the StatefulSet's pods when sharding. */}}
{{- define "cqrs-exporter.headlessName" -}}
{{ include "cqrs-exporter.fullname" . | trunc 54 | trimSuffix "-" }}-headless
{{- end }}

{{/*
Checks the values that the schema cannot: required values, and the keys under `config` that
the chart writes itself. Each failure names the value to fix.
*/}}
{{- define "cqrs-exporter.validate" -}}
{{- $v := .Values }}
{{- $dcs := $v.datacenters }}
{{- if not $v.region }}
{{- fail "region is required: the region this exporter runs in, e.g. us-east" }}
{{- end }}
{{- if not $dcs.write }}
{{- fail "datacenters.write is required: the datacenter that takes the commands" }}
{{- end }}
{{- if not $v.cassandra.contactPoints }}
{{- fail "cassandra.contactPoints is required: at least one Cassandra node this exporter can reach" }}
{{- end }}
{{- if eq $v.role "regional" }}
{{- if not $dcs.local }}
{{- fail "datacenters.local is required when role is regional: the read datacenter this exporter runs in" }}
{{- end }}
{{- if not (has $dcs.local $dcs.read) }}
{{- fail (printf "datacenters.local (%s) must be one of datacenters.read (%s) when role is regional" $dcs.local (join ", " $dcs.read)) }}
{{- end }}
{{- else if and $dcs.local (ne $dcs.local $dcs.write) }}
{{- fail (printf "datacenters.local (%s) must be empty or the write datacenter (%s) when role is writer; use role: regional for an exporter in a read region" $dcs.local $dcs.write) }}
{{- end }}
{{- $auth := $v.cassandra.auth }}
{{- if $auth.enabled }}
{{- if not $auth.username }}
{{- fail "cassandra.auth.username is required when cassandra.auth.enabled is true" }}
{{- end }}
{{- if and (not $auth.existingSecret) (not $auth.password) }}
{{- fail "cassandra.auth.enabled is true: set cassandra.auth.existingSecret (preferred) or cassandra.auth.password" }}
{{- end }}
{{- if and $auth.existingSecret $auth.password }}
{{- fail "set only one of cassandra.auth.existingSecret and cassandra.auth.password" }}
{{- end }}
{{- else if or $auth.password $auth.existingSecret }}
{{- fail "cassandra.auth.password or existingSecret is set but cassandra.auth.enabled is false: enable it, or remove them" }}
{{- end }}
{{- if and (eq $auth.passwordFrom "file") (not $auth.enabled) }}
{{- fail "cassandra.auth.passwordFrom is file but cassandra.auth.enabled is false: enable it, or remove passwordFrom" }}
{{- end }}
{{- $web := $v.web }}
{{- if and $web.config $web.existingSecret }}
{{- fail "set only one of web.config and web.existingSecret" }}
{{- end }}
{{- if and $web.tls.existingSecret (not (or $web.config $web.existingSecret)) }}
{{- fail "web.tls.existingSecret is set but there is no web config: set web.config (with tls_server_config) or web.existingSecret" }}
{{- end }}
{{- if and $web.tls.existingSecret (or (not $web.tls.certKey) (not $web.tls.keyKey)) }}
{{- fail "web.tls.certKey and web.tls.keyKey are required with web.tls.existingSecret" }}
{{- end }}
{{- with $web.config.tls_server_config }}
{{- if and (not $web.tls.existingSecret) (not (and .cert_file .key_file)) }}
{{- fail "web.config.tls_server_config needs cert_file and key_file, or web.tls.existingSecret (the chart then fills them in)" }}
{{- end }}
{{- end }}
{{- if eq (int $web.healthPort) (int (include "cqrs-exporter.containerPort" .)) }}
{{- fail (printf "web.healthPort must differ from the metrics port %s" (include "cqrs-exporter.containerPort" .)) }}
{{- end }}
{{- if and $v.sharding.enabled (not (semverCompare ">=1.28.0-0" .Capabilities.KubeVersion.Version)) }}
{{- fail (printf "sharding.enabled needs Kubernetes 1.28 or later (the pod label apps.kubernetes.io/pod-index); this cluster is %s" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- $tls := $v.cassandra.tls }}
{{- if and $tls.enabled (ne (empty $tls.certKey) (empty $tls.keyKey)) }}
{{- fail "cassandra.tls.certKey and cassandra.tls.keyKey go together: set both or neither" }}
{{- end }}
{{- if and $tls.existingSecret (not $tls.enabled) }}
{{- fail "cassandra.tls.existingSecret is set but cassandra.tls.enabled is false: enable it, or remove it" }}
{{- end }}
{{- if and $tls.enabled $tls.certKey (not $tls.existingSecret) }}
{{- fail "cassandra.tls.certKey needs cassandra.tls.existingSecret: the Secret that holds the certificate" }}
{{- end }}
{{- $config := $v.config }}
{{- if hasKey $config "datacenters" }}
{{- fail "config.datacenters: set datacenters.write, datacenters.read and datacenters.local instead" }}
{{- end }}
{{- range $key, $value := dict "contact_points" "cassandra.contactPoints" "port" "cassandra.port" "auth" "cassandra.auth" "tls" "cassandra.tls" }}
{{- if hasKey ($config.cluster | default dict) $key }}
{{- fail (printf "config.cluster.%s: set %s instead" $key $value) }}
{{- end }}
{{- end }}
{{- $server := $config.server | default dict }}
{{- if hasKey $server "listen" }}
{{- fail "config.server.listen: the chart sets it (the container listens on port 9469; set service.port for the Service's port)" }}
{{- end }}
{{- range $key, $value := dict "log_level" "logLevel" "log_format" "logFormat" "web_config_file" "web.config or web.existingSecret" "health_listen" "web.healthPort" }}
{{- if hasKey $server $key }}
{{- fail (printf "config.server.%s: set %s instead" $key $value) }}
{{- end }}
{{- end }}
{{- if hasKey $config "sharding" }}
{{- fail "config.sharding: set sharding.enabled and sharding.shards instead (each pod takes its index from its ordinal)" }}
{{- end }}
{{- if hasKey ((($config.probes | default dict).replication) | default dict) "mode" }}
{{- fail "config.probes.replication.mode: set role instead (writer or regional)" }}
{{- end }}
{{- end }}

{{/*
The exporter's config.yaml: `config` from the values, with the keys the chart owns written in.
Secrets appear only as references ({env: ...} or {file: ...}); their values stay in the Secret.
The web config is not named here: `serve --web.config.file` gives it.
*/}}
{{- define "cqrs-exporter.config" -}}
{{- include "cqrs-exporter.validate" . }}
{{- $v := .Values }}
{{- $config := deepCopy $v.config }}
{{- $cluster := deepCopy ($v.config.cluster | default dict) }}
{{- $_ := set $cluster "contact_points" $v.cassandra.contactPoints }}
{{- $_ := set $cluster "port" (int $v.cassandra.port) }}
{{- if $v.cassandra.auth.enabled }}
{{- $password := dict "env" (include "cqrs-exporter.passwordEnv" .) }}
{{- if eq $v.cassandra.auth.passwordFrom "file" }}
{{- $password = dict "file" (include "cqrs-exporter.passwordFile" .) }}
{{- end }}
{{- $_ := set $cluster "auth" (dict "username" $v.cassandra.auth.username "password" $password) }}
{{- end }}
{{- $tls := $v.cassandra.tls }}
{{- if $tls.enabled }}
{{- $tlsConfig := dict "enabled" true "verify_hostname" $tls.verifyHostname }}
{{- if $tls.existingSecret }}
{{- $dir := printf "%s/tls" (include "cqrs-exporter.configDir" .) }}
{{- $_ := set $tlsConfig "ca_file" (printf "%s/%s" $dir $tls.caKey) }}
{{- if $tls.certKey }}
{{- $_ := set $tlsConfig "cert_file" (printf "%s/%s" $dir $tls.certKey) }}
{{- $_ := set $tlsConfig "key_file" (printf "%s/%s" $dir $tls.keyKey) }}
{{- end }}
{{- end }}
{{- $_ := set $cluster "tls" $tlsConfig }}
{{- end }}
{{- $_ := set $config "cluster" $cluster }}
{{- $datacenters := dict "write" $v.datacenters.write "read" $v.datacenters.read }}
{{- if $v.datacenters.local }}
{{- $_ := set $datacenters "local" $v.datacenters.local }}
{{- end }}
{{- $_ := set $config "datacenters" $datacenters }}
{{- $server := deepCopy ($v.config.server | default dict) }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int (include "cqrs-exporter.containerPort" .))) }}
{{- $_ := set $server "log_level" $v.logLevel }}
{{- $_ := set $server "log_format" $v.logFormat }}
{{- if include "cqrs-exporter.healthSplit" . }}
{{- $_ := set $server "health_listen" (printf "0.0.0.0:%s" (include "cqrs-exporter.healthPort" .)) }}
{{- end }}
{{- $_ := set $config "server" $server }}
{{- $probes := deepCopy ($v.config.probes | default dict) }}
{{- $replication := deepCopy ($probes.replication | default dict) }}
{{- $_ := set $replication "mode" $v.role }}
{{- $_ := set $probes "replication" $replication }}
{{- $_ := set $config "probes" $probes }}
{{- toYaml $config }}
{{- end }}
