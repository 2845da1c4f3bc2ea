{{/* Names, labels and small shared snippets. */}}

{{- define "jhub-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart name>, as upstream: Services become api-<fullname> and traefik-<fullname>. */}}
{{- define "jhub-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "jhub-gateway.apiName" -}}api-{{ include "jhub-gateway.fullname" . }}{{- end }}
{{- define "jhub-gateway.controllerName" -}}controller-{{ include "jhub-gateway.fullname" . }}{{- end }}
{{- define "jhub-gateway.traefikName" -}}traefik-{{ include "jhub-gateway.fullname" . }}{{- end }}
{{- define "jhub-gateway.dashboardAuthName" -}}{{ include "jhub-gateway.fullname" . }}-dashboard-auth{{- end }}

{{/* Common labels; pass (dict "root" $ "component" "api"). */}}
{{- define "jhub-gateway.labels" -}}
app.kubernetes.io/name: {{ include "jhub-gateway.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
gateway.dask.org/instance: {{ include "jhub-gateway.fullname" .root }}
{{- end }}

{{- define "jhub-gateway.selector" -}}
app.kubernetes.io/name: {{ include "jhub-gateway.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* image: (dict "image" .Values.x.image "root" $) -> name:tag, tag defaulting to appVersion */}}
{{- define "jhub-gateway.image" -}}
{{- $tag := toString (default "" .image.tag) }}
{{- printf "%s:%s" .image.name (default .root.Chart.AppVersion $tag) }}
{{- end }}

{{- define "jhub-gateway.pullPolicy" -}}
{{- with .pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{/* imagePullSecrets from a list of {name} maps or bare names */}}
{{- define "jhub-gateway.pullSecrets" -}}
{{- if . }}
imagePullSecrets:
{{- range . }}
{{- if kindIs "string" . }}
  - name: {{ . }}
{{- else }}
  - name: {{ .name }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* nodeSelector/affinity/tolerations of a component's values (missing or null keys skipped) */}}
{{- define "jhub-gateway.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "jhub-gateway.serviceAccountName" -}}
{{- $sa := index .root.Values.rbac .component | default dict }}
{{- if $sa.serviceAccountName }}
{{- $sa.serviceAccountName }}
{{- else if .root.Values.rbac.enabled }}
{{- printf "%s-%s" (include "jhub-gateway.fullname" .root) .component }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/* Whether to create a component's ServiceAccount and Role: rbac on and no existing name. */}}
{{- define "jhub-gateway.createRbac" -}}
{{- $sa := index .root.Values.rbac .component | default dict }}
{{- if and .root.Values.rbac.enabled (not $sa.serviceAccountName) }}true{{ end }}
{{- end }}

{{/* The web and tcp ports Traefik listens on inside the pod. */}}
{{- define "jhub-gateway.tcpSeparate" -}}
{{- if ne (toString .Values.traefik.service.ports.tcp.port) "web" }}true{{ end }}
{{- end }}

{{/* The api prefix without trailing slash ("" for /). */}}
{{- define "jhub-gateway.prefix" -}}
{{- trimSuffix "/" (default "/" .Values.gateway.prefix) }}
{{- end }}

{{/* Names of the CRDs shipped in crds/ (for the controller's narrow CRD-upgrade rule). */}}
{{- define "jhub-gateway.crdNames" -}}
{{- $names := list }}
{{- range $path, $_ := .Files.Glob "crds/*.yaml" }}
{{- range splitList "\n---" ($.Files.Get $path) }}
{{- $doc := fromYaml . }}
{{- if and $doc $doc.metadata }}
{{- $names = append $names $doc.metadata.name }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* The namespaces a component's Role is needed in: the release's and the clusters'. */}}
{{- define "jhub-gateway.namespaces" -}}
{{- toJson (uniq (list .Release.Namespace (.Values.gateway.backend.namespace | default .Release.Namespace))) }}
{{- end }}
