{{- define "mosaic.labels" -}}
app.kubernetes.io/part-of: mosaic
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "mosaic.network" -}}
{{- if contains "/" .name -}}{{ .name }}{{- else -}}{{ .namespace }}/{{ .name }}{{- end -}}
{{- end -}}
