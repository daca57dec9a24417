{{/*
The chart name, or nameOverride.
*/}}
{{- define "fleetmq-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: fullnameOverride, else the release name, followed by the
chart name unless the release name already contains it. Truncated to 63 characters with
room for the longest suffix this chart appends ("-mqttbroker-editor" is 18).
*/}}
{{- define "fleetmq-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "fleetmq-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "fleetmq-operator.labels" -}}
helm.sh/chart: {{ include "fleetmq-operator.chart" . }}
{{ include "fleetmq-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fleetmq
{{- end }}

{{/*
Labels that select the operator pods; they never change across upgrades, because a
Deployment's selector is immutable.
*/}}
{{- define "fleetmq-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleetmq-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The service account the operator runs as.
*/}}
{{- define "fleetmq-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fleetmq-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image.
*/}}
{{- define "fleetmq-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The image of broker pods whose MQTTBroker sets no spec.image: the operator's own image
unless brokerImage is set, since one image holds both binaries.
*/}}
{{- define "fleetmq-operator.brokerImage" -}}
{{- default (include "fleetmq-operator.image" .) .Values.brokerImage }}
{{- end }}
