{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "roomevents.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: "<release>-<chart>" unless the release already contains the chart name. */}}
{{- define "roomevents.fullname" -}}
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

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "roomevents.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every resource. */}}
{{- define "roomevents.labels" -}}
helm.sh/chart: {{ include "roomevents.chart" . }}
{{ include "roomevents.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: roomevents
{{- end }}

{{/* Selector labels shared by every role; add app.kubernetes.io/component per role. */}}
{{- define "roomevents.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roomevents.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Name of the ServiceAccount used by the role pods. */}}
{{- define "roomevents.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "roomevents.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference; the tag defaults to the chart's appVersion. */}}
{{- define "roomevents.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the Secret holding the Twilio auth token(s). */}}
{{- define "roomevents.secretName" -}}
{{- default (include "roomevents.fullname" .) .Values.twilio.existingSecret }}
{{- end }}

{{/* Whether the history store (and so the archive) is configured. */}}
{{- define "roomevents.database.enabled" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/* Name of the Secret holding ROOMEVENTS_DATABASE_URL. */}}
{{- define "roomevents.database.secretName" -}}
{{- default (printf "%s-database" (include "roomevents.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{/* ROOMEVENTS_DATABASE_URL from its Secret, for the ingress and the archive (nothing without a database). */}}
{{- define "roomevents.databaseEnv" -}}
{{- if include "roomevents.database.enabled" . }}
- name: ROOMEVENTS_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "roomevents.database.secretName" . }}
      key: {{ if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}ROOMEVENTS_DATABASE_URL{{ end }}
{{- end }}
{{- end }}

{{/* Fail early on settings without which no pod can work. */}}
{{- define "roomevents.validate" -}}
{{- if not .Values.kafka.bootstrapServers }}
{{- fail "kafka.bootstrapServers is required" }}
{{- end }}
{{- if not .Values.twilio.accountSid }}
{{- fail "twilio.accountSid is required (TWILIO_ACCOUNT_SID)" }}
{{- end }}
{{- if not (regexMatch "^AC[0-9a-fA-F]{32}$" .Values.twilio.accountSid) }}
{{- fail "twilio.accountSid must be \"AC\" followed by 32 hex digits" }}
{{- end }}
{{- if and (not .Values.twilio.existingSecret) (not .Values.twilio.authToken) }}
{{- fail "set twilio.authToken, or twilio.existingSecret naming a Secret that holds TWILIO_AUTH_TOKEN" }}
{{- end }}
{{- if and (not .Values.config.publicUrl) (not .Values.config.allowAnyHost) }}
{{- fail "config.publicUrl is required (the URL Twilio signs callbacks for); config.allowAnyHost=true accepts signatures for any Host instead (see README)" }}
{{- end }}
{{- if lt (int .Values.topics.partitions) 1 }}
{{- fail "topics.partitions must be >= 1" }}
{{- end }}
{{- if lt (int .Values.topics.replication) 1 }}
{{- fail "topics.replication must be >= 1" }}
{{- end }}
{{- /* SIGTERM budget: preStop sleep, then up to shutdownGraceSeconds (+5 s for the materializer's close). */}}
{{- $grace := int .Values.config.shutdownGraceSeconds }}
{{- if lt (int .Values.roles.ingress.terminationGracePeriodSeconds) (add (int .Values.roles.ingress.preStopSleepSeconds) $grace 5) }}
{{- fail "roles.ingress.terminationGracePeriodSeconds must be >= preStopSleepSeconds + config.shutdownGraceSeconds + 5" }}
{{- end }}
{{- if lt (int .Values.roles.materializer.terminationGracePeriodSeconds) (add (int .Values.roles.materializer.preStopSleepSeconds) $grace 5) }}
{{- fail "roles.materializer.terminationGracePeriodSeconds must be >= preStopSleepSeconds + config.shutdownGraceSeconds + 5" }}
{{- end }}
{{- if lt (int .Values.roles.archive.terminationGracePeriodSeconds) (add (int .Values.roles.archive.preStopSleepSeconds) $grace 5) }}
{{- fail "roles.archive.terminationGracePeriodSeconds must be >= preStopSleepSeconds + config.shutdownGraceSeconds + 5" }}
{{- end }}
{{- if and .Values.database.url (not .Values.database.existingSecret) (not (regexMatch "^postgres(ql)?://" .Values.database.url)) }}
{{- fail "database.url must be a postgres:// or postgresql:// URL" }}
{{- end }}
{{- end }}

{{/* envFrom shared by every role container: the settings ConfigMap. */}}
{{- define "roomevents.envFrom" -}}
- configMapRef:
    name: {{ include "roomevents.fullname" . }}
{{- end }}

{{/* The auth token(s) from the Secret; the secondary token is optional, and so are the LiveKit and
Zoom credentials (a provider's webhook route exists only when they are set). */}}
{{- define "roomevents.secretEnv" -}}
- name: TWILIO_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "roomevents.secretName" . }}
      key: {{ if .Values.twilio.existingSecret }}{{ .Values.twilio.existingSecretAuthTokenKey }}{{ else }}TWILIO_AUTH_TOKEN{{ end }}
- name: TWILIO_AUTH_TOKEN_SECONDARY
  valueFrom:
    secretKeyRef:
      name: {{ include "roomevents.secretName" . }}
      key: {{ if .Values.twilio.existingSecret }}{{ .Values.twilio.existingSecretAuthTokenSecondaryKey }}{{ else }}TWILIO_AUTH_TOKEN_SECONDARY{{ end }}
      optional: true
{{- range list "LIVEKIT_API_KEY" "LIVEKIT_API_SECRET" "LIVEKIT_API_KEY_SECONDARY" "LIVEKIT_API_SECRET_SECONDARY" "ZOOM_WEBHOOK_SECRET_TOKEN" "ZOOM_WEBHOOK_SECRET_TOKEN_SECONDARY" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "roomevents.secretName" $ }}
      key: {{ . }}
      optional: true
{{- end }}
{{- end }}

{{/* Checksums that roll the pods when the ConfigMap or chart-managed Secret changes. */}}
{{- define "roomevents.configChecksums" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.twilio.existingSecret }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- if and .Values.database.url (not .Values.database.existingSecret) }}
checksum/database-secret: {{ include (print $.Template.BasePath "/database-secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}
