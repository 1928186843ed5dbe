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
{{- range $key, $value := dict "log_level" "logLevel" "log_format" "logFormat" }}
{{- if hasKey $server $key }}
{{- fail (printf "config.server.%s: set %s instead" $key $value) }}
{{- end }}
{{- end }}
{{- if hasKey ((($config.probes | default dict).replication) | default dict) "mode" }}
{{- fail "config.probes.replication.mode: set role instead (writer or regional)" }}
{{- end }}
{{- end }}

{{/*
The exporter's config.yaml: `config` from the values, with the keys the chart owns written in.
Secrets appear only as references ({env: ...}); their values stay in the Secret.
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
{{- $_ := set $config "server" $server }}
{{- $probes := deepCopy ($v.config.probes | default dict) }}
{{- $replication := deepCopy ($probes.replication | default dict) }}
{{- $_ := set $replication "mode" $v.role }}
{{- $_ := set $probes "replication" $replication }}
{{- $_ := set $config "probes" $probes }}
{{- toYaml $config }}
{{- end }}
