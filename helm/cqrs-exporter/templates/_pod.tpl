{{/*
The exporter's pod template, shared by the Deployment and, with sharding, the StatefulSet.
*/}}
{{- define "cqrs-exporter.podTemplate" -}}
{{- $auth := .Values.cassandra.auth }}
{{- $tls := .Values.cassandra.tls }}
{{- $web := .Values.web }}
{{- $configDir := include "cqrs-exporter.configDir" . }}
{{- $passwordEnv := and $auth.enabled (ne $auth.passwordFrom "file") }}
{{- $sharding := .Values.sharding -}}
metadata:
  annotations:
    # Roll the pod when its configuration or a Secret the chart makes changes. An existing
    # Secret is not seen here: see podAnnotations in values.yaml.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if and $auth.enabled (not $auth.existingSecret) }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- if and $web.config (not $web.existingSecret) }}
    checksum/web-config: {{ include "cqrs-exporter.webConfig" . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "cqrs-exporter.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "cqrs-exporter.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  containers:
    - name: exporter
      image: {{ include "cqrs-exporter.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config
        - {{ $configDir }}/config.yaml
        {{- if include "cqrs-exporter.webEnabled" . }}
        - --web.config.file
        - {{ include "cqrs-exporter.webConfigFile" . }}
        {{- end }}
        {{- if $sharding.enabled }}
        # This pod's shard: its ordinal in the StatefulSet, of sharding.shards.
        - --shard
        - $(POD_INDEX)/{{ int $sharding.shards }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ include "cqrs-exporter.containerPort" . }}
          protocol: TCP
        {{- if include "cqrs-exporter.healthSplit" . }}
        # Plain HTTP, /health/live and /health/ready only: the kubelet's probes.
        - name: health
          containerPort: {{ include "cqrs-exporter.healthPort" . }}
          protocol: TCP
        {{- end }}
      {{- if or $passwordEnv $sharding.enabled .Values.extraEnv }}
      env:
        {{- if $sharding.enabled }}
        - name: POD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- end }}
        {{- if $passwordEnv }}
        - name: {{ include "cqrs-exporter.passwordEnv" . }}
          valueFrom:
            secretKeyRef:
              name: {{ include "cqrs-exporter.secretName" . }}
              key: {{ $auth.passwordKey }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      livenessProbe:
        httpGet:
          path: /health/live
          port: {{ include "cqrs-exporter.probePort" . }}
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /health/ready
          port: {{ include "cqrs-exporter.probePort" . }}
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ $configDir }}
          readOnly: true
        # The root filesystem is read-only; Python and the driver may still want a /tmp.
        - name: tmp
          mountPath: /tmp
  volumes:
    # One read-only directory: config.yaml; tls/ when a TLS Secret is given; cassandra/password
    # with passwordFrom: file; web/ with a web config. Not subPath mounts: the kubelet updates
    # the files in place when a Secret changes, so the exporter sees a rotated certificate.
    - name: config
      projected:
        defaultMode: 0440
        sources:
          - configMap:
              name: {{ include "cqrs-exporter.fullname" . }}
              items:
                - key: config.yaml
                  path: config.yaml
          {{- if and $tls.enabled $tls.existingSecret }}
          - secret:
              name: {{ $tls.existingSecret }}
              items:
                - key: {{ $tls.caKey }}
                  path: tls/{{ $tls.caKey }}
                {{- if $tls.certKey }}
                - key: {{ $tls.certKey }}
                  path: tls/{{ $tls.certKey }}
                - key: {{ $tls.keyKey }}
                  path: tls/{{ $tls.keyKey }}
                {{- end }}
          {{- end }}
          {{- if and $auth.enabled (eq $auth.passwordFrom "file") }}
          - secret:
              name: {{ include "cqrs-exporter.secretName" . }}
              items:
                - key: {{ $auth.passwordKey }}
                  path: cassandra/password
          {{- end }}
          {{- if include "cqrs-exporter.webEnabled" . }}
          - secret:
              name: {{ include "cqrs-exporter.webSecretName" . }}
              items:
                - key: {{ $web.key }}
                  path: web/web-config.yml
          {{- end }}
          {{- if $web.tls.existingSecret }}
          - secret:
              name: {{ $web.tls.existingSecret }}
              items:
                - key: {{ $web.tls.certKey }}
                  path: web/{{ $web.tls.certKey }}
                - key: {{ $web.tls.keyKey }}
                  path: web/{{ $web.tls.keyKey }}
                {{- if $web.tls.clientCaKey }}
                - key: {{ $web.tls.clientCaKey }}
                  path: web/{{ $web.tls.clientCaKey }}
                {{- end }}
          {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
