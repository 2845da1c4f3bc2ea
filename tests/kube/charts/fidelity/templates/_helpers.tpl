{{- define "fidelity.labels" -}}
app.kubernetes.io/name: fidelity
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
