{{/* The name of every object of the release. */}}
{{- define "vigil.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vigil.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: vigil
{{- end -}}

{{- define "vigil.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vigil.serviceAccount" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The agent's config file: flag names as keys. */}}
{{- define "vigil.config" -}}
{{- $c := dict "export-stdout" .Values.export.stdout -}}
{{- with .Values.export.file.path -}}
{{- $_ := set $c "export-file" . -}}
{{- $_ := set $c "export-file-max-size-mb" $.Values.export.file.maxSizeMB -}}
{{- $_ := set $c "export-file-max-backups" $.Values.export.file.maxBackups -}}
{{- $_ := set $c "export-file-compress" $.Values.export.file.compress -}}
{{- end -}}
{{- with .Values.export.webhook.url -}}
{{- $_ := set $c "export-webhook" . -}}
{{- $_ := set $c "export-webhook-gzip" $.Values.export.webhook.gzip -}}
{{- with $.Values.export.webhook.headers }}{{ $_ := set $c "export-webhook-header" . }}{{ end -}}
{{- if $.Values.export.webhook.tlsSecret -}}
{{- $_ := set $c "export-webhook-ca-file" "/etc/vigil/webhook-tls/ca.crt" -}}
{{- end -}}
{{- end -}}
{{- with .Values.export.syslog.address -}}
{{- $_ := set $c "export-syslog" . -}}
{{- end -}}
{{- if .Values.policies -}}
{{- $_ := set $c "policy" (list "/etc/vigil/policies") -}}
{{- end -}}
{{- if not .Values.defaultPolicies -}}
{{- $_ := set $c "no-default-policies" true -}}
{{- end -}}
{{- if .Values.keepEnforcementOnExit -}}
{{- $_ := set $c "keep-enforcement-on-exit" true -}}
{{- $_ := set $c "bpf-pin-dir" .Values.keepEnforcementPinDir -}}
{{- end -}}
{{- if .Values.metrics.enabled -}}
{{- $_ := set $c "metrics-addr" (printf "0.0.0.0:%d" (int .Values.metrics.port)) -}}
{{- else -}}
{{- $_ := set $c "metrics-addr" "" -}}
{{- end -}}
{{- if .Values.relay.enabled -}}
{{/* The Observer API on the node for the relay, with mTLS; the agent's
     own UI then also wants a client certificate, so it is left off: the
     cluster's UI is the relay's. */}}
{{- $_ := set $c "hubble-addr" (printf "0.0.0.0:%d" (int .Values.agentAPI.port)) -}}
{{- $_ := set $c "ui-addr" "" -}}
{{- $_ := set $c "api-tls-cert-file" "/etc/vigil/agent-tls/tls.crt" -}}
{{- $_ := set $c "api-tls-key-file" "/etc/vigil/agent-tls/tls.key" -}}
{{- $_ := set $c "api-tls-client-ca-file" "/etc/vigil/agent-tls/ca.crt" -}}
{{- end -}}
{{- toYaml (merge (deepCopy .Values.config) $c) -}}
{{- end -}}

{{- define "vigil.relay.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-relay
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: vigil
{{- end -}}

{{- define "vigil.relay.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-relay
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
