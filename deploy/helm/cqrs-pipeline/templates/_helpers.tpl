{{/* Names and labels. */}}
{{- define "cqrs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cqrs.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: <fullname>-<component>, at most 63 characters. */}}
{{- define "cqrs.componentName" -}}
{{- printf "%s-%s" (include "cqrs.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cqrs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cqrs.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "cqrs.labels" -}}
{{ include "cqrs.selectorLabels" . }}
app.kubernetes.io/part-of: cqrs-pipeline
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of objects that belong to the release as a whole. */}}
{{- define "cqrs.releaseLabels" -}}
app.kubernetes.io/name: {{ include "cqrs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: cqrs-pipeline
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "cqrs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cqrs.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cqrs.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The domain's topic table: topics.table (`cqrs deploy values`), else the shop's
files/topics.json (`cqrs deploy topics`). */}}
{{- define "cqrs.topicTable" -}}
{{- if .Values.topics.table -}}
{{- toJson .Values.topics.table -}}
{{- else -}}
{{- .Files.Get "files/topics.json" -}}
{{- end -}}
{{- end -}}

{{/* Partitions of every product topic: the value, or the generated table's count. */}}
{{- define "cqrs.partitions" -}}
{{- $table := include "cqrs.topicTable" . | fromJson -}}
{{- $generated := (index $table.productTopics 0).partitions -}}
{{- int (default $generated .Values.topics.partitions) -}}
{{- end -}}

{{- define "cqrs.registryUrl" -}}
{{- if .Values.registry.embedded -}}
{{- printf "http://%s:%d" (include "cqrs.componentName" (dict "root" . "component" "registry")) (int .Values.registry.port) -}}
{{- else -}}
{{- required "registry.url is required when registry.embedded is false" .Values.registry.url -}}
{{- end -}}
{{- end -}}

{{- define "cqrs.kafkaTls" -}}
{{- if or .Values.kafka.security.tls.enabled (eq .Values.kafka.security.mode "mtls") -}}true{{- end -}}
{{- end -}}

{{- define "cqrs.kafkaProtocol" -}}
{{- $mode := .Values.kafka.security.mode -}}
{{- $tls := include "cqrs.kafkaTls" . -}}
{{- if eq $mode "scram" -}}{{ ternary "SASL_SSL" "SASL_PLAINTEXT" (eq $tls "true") }}
{{- else if eq $mode "mtls" -}}SSL
{{- else if eq $mode "none" -}}{{ ternary "SSL" "PLAINTEXT" (eq $tls "true") }}
{{- else -}}{{ fail (printf "kafka.security.mode must be none, scram or mtls, not %q" $mode) }}
{{- end -}}
{{- end -}}

{{/*
A secretKeyRef for one credential: the user's Secret when named, otherwise the
chart's own Secret when the value was given inline, otherwise a clear failure.
*/}}
{{- define "cqrs.secretRef" -}}
{{- if .existing -}}
name: {{ .existing }}
key: {{ .key }}
{{- else if .inline -}}
name: {{ include "cqrs.fullname" .root }}-credentials
key: {{ .chartKey }}
{{- else -}}
{{- fail (printf "%s: set %s.existingSecret (a Secret you manage) or %s.password" .what .path .path) -}}
{{- end -}}
{{- end -}}

{{/* Components that need a store: does this component's `needs` list name it? */}}
{{- define "cqrs.needs" -}}
{{- if has .store .needs -}}true{{- end -}}
{{- end -}}

{{/* Credentials as environment variables from Secrets, only those the component needs. */}}
{{- define "cqrs.secretEnv" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- if eq $v.kafka.security.mode "scram" }}
- name: CQRS_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- include "cqrs.secretRef" (dict "root" $root "existing" $v.kafka.security.scram.existingSecret "key" $v.kafka.security.scram.passwordKey "inline" $v.kafka.security.scram.password "chartKey" "kafka-password" "what" "Kafka SCRAM password" "path" "kafka.security.scram") | nindent 6 }}
{{- end }}
{{- if and (has "registry" .needs) (not $v.registry.embedded) $v.registry.auth.username }}
- name: CQRS_REGISTRY__PASSWORD
  valueFrom:
    secretKeyRef:
      {{- include "cqrs.secretRef" (dict "root" $root "existing" $v.registry.auth.existingSecret "key" $v.registry.auth.passwordKey "inline" $v.registry.auth.password "chartKey" "registry-password" "what" "registry basic-auth password" "path" "registry.auth") | nindent 6 }}
{{- end }}
{{- if and (has "postgres" .needs) (eq (default "" .postgresRole) "reader") }}
- name: CQRS_POSTGRES__PASSWORD
  valueFrom:
    secretKeyRef:
      {{- include "cqrs.secretRef" (dict "root" $root "existing" $v.postgres.reader.existingSecret "key" $v.postgres.reader.passwordKey "inline" $v.postgres.reader.password "chartKey" "postgres-reader-password" "what" "PostgreSQL reader role password" "path" "postgres.reader") | nindent 6 }}
{{- else if has "postgres" .needs }}
- name: CQRS_POSTGRES__PASSWORD
  valueFrom:
    secretKeyRef:
      {{- include "cqrs.secretRef" (dict "root" $root "existing" $v.postgres.existingSecret "key" $v.postgres.passwordKey "inline" $v.postgres.password "chartKey" "postgres-password" "what" "PostgreSQL runtime role password" "path" "postgres") | nindent 6 }}
{{- end }}
{{- if and (has "search" .needs) (eq $v.search.auth.mode "basic") }}
- name: CQRS_SEARCH__PASSWORD
  valueFrom:
    secretKeyRef:
      {{- include "cqrs.secretRef" (dict "root" $root "existing" $v.search.auth.existingSecret "key" $v.search.auth.passwordKey "inline" $v.search.auth.password "chartKey" "search-password" "what" "search password" "path" "search.auth") | nindent 6 }}
{{- end }}
{{- if and (has "search" .needs) (eq $v.search.auth.mode "apiKey") }}
- name: CQRS_SEARCH__API_KEY
  valueFrom:
    secretKeyRef:
      {{- include "cqrs.secretRef" (dict "root" $root "existing" $v.search.auth.existingSecret "key" $v.search.auth.apiKeyKey "inline" $v.search.auth.apiKey "chartKey" "search-api-key" "what" "search API key" "path" "search.auth") | nindent 6 }}
{{- end }}
{{- end -}}

{{/* Certificate volumes (Secrets) a component needs, and where they are mounted. */}}
{{- define "cqrs.certVolumes" -}}
{{- $v := .root.Values -}}
{{- if include "cqrs.kafkaTls" .root }}
- name: kafka-ca
  secret:
    secretName: {{ $v.kafka.security.tls.caSecret }}
    items: [{key: {{ $v.kafka.security.tls.caKey }}, path: ca.crt}]
{{- end }}
{{- if eq $v.kafka.security.mode "mtls" }}
- name: kafka-client
  secret:
    secretName: {{ required "kafka.security.mtls.existingSecret is required for mtls" $v.kafka.security.mtls.existingSecret }}
    items:
      - {key: {{ $v.kafka.security.mtls.certKey }}, path: client.crt}
      - {key: {{ $v.kafka.security.mtls.keyKey }}, path: client.key}
{{- end }}
{{- if and (has "registry" .needs) (not $v.registry.embedded) $v.registry.tls.caSecret }}
- name: registry-ca
  secret:
    secretName: {{ $v.registry.tls.caSecret }}
    items: [{key: {{ $v.registry.tls.caKey }}, path: ca.crt}]
{{- end }}
{{- if and (has "postgres" .needs) $v.postgres.caSecret }}
- name: postgres-ca
  secret:
    secretName: {{ $v.postgres.caSecret }}
    items: [{key: {{ $v.postgres.caKey }}, path: ca.crt}]
{{- end }}
{{- if and (has "search" .needs) $v.search.caSecret }}
- name: search-ca
  secret:
    secretName: {{ $v.search.caSecret }}
    items: [{key: {{ $v.search.caKey }}, path: ca.crt}]
{{- end }}
{{- end -}}

{{- define "cqrs.certMounts" -}}
{{- $v := .root.Values -}}
{{- if include "cqrs.kafkaTls" .root }}
- {name: kafka-ca, mountPath: /etc/cqrs/kafka-ca, readOnly: true}
{{- end }}
{{- if eq $v.kafka.security.mode "mtls" }}
- {name: kafka-client, mountPath: /etc/cqrs/kafka-client, readOnly: true}
{{- end }}
{{- if and (has "registry" .needs) (not $v.registry.embedded) $v.registry.tls.caSecret }}
- {name: registry-ca, mountPath: /etc/cqrs/registry-ca, readOnly: true}
{{- end }}
{{- if and (has "postgres" .needs) $v.postgres.caSecret }}
- {name: postgres-ca, mountPath: /etc/cqrs/postgres-ca, readOnly: true}
{{- end }}
{{- if and (has "search" .needs) $v.search.caSecret }}
- {name: search-ca, mountPath: /etc/cqrs/search-ca, readOnly: true}
{{- end }}
{{- end -}}

{{/* Paths of mounted certificates, as settings; only for what the component mounts. */}}
{{- define "cqrs.certEnv" -}}
{{- $v := .root.Values -}}
{{- if and (has "postgres" .needs) $v.postgres.caSecret }}
- {name: PGSSLROOTCERT, value: /etc/cqrs/postgres-ca/ca.crt}
{{- end }}
{{- if and (has "search" .needs) $v.search.caSecret }}
- {name: CQRS_SEARCH__CA_CERTS, value: /etc/cqrs/search-ca/ca.crt}
{{- end }}
{{- if and (has "registry" .needs) (not $v.registry.embedded) $v.registry.tls.caSecret }}
- {name: CQRS_REGISTRY__SSL_CAFILE, value: /etc/cqrs/registry-ca/ca.crt}
{{- end }}
{{- end -}}

{{- define "cqrs.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "cqrs.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Health probes on the named port (`.port`) that serves /livez and /readyz. */}}
{{- define "cqrs.probes" -}}
{{- $p := .root.Values.probes -}}
startupProbe:
  httpGet: {path: /livez, port: {{ .port }}}
  periodSeconds: {{ $p.startup.periodSeconds }}
  failureThreshold: {{ $p.startup.failureThreshold }}
livenessProbe:
  httpGet: {path: /livez, port: {{ .port }}}
  periodSeconds: {{ $p.liveness.periodSeconds }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds }}
  failureThreshold: {{ $p.liveness.failureThreshold }}
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  periodSeconds: {{ $p.readiness.periodSeconds }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds }}
  failureThreshold: {{ $p.readiness.failureThreshold }}
{{- end -}}

{{/* Pod-level fields every workload shares, under the release's ServiceAccount. */}}
{{- define "cqrs.podCommon" -}}
serviceAccountName: {{ include "cqrs.serviceAccountName" . }}
{{ include "cqrs.podShared" . }}
{{- end -}}

{{/* The same without the ServiceAccount (a hook Job brings its own). */}}
{{- define "cqrs.podShared" -}}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- include "cqrs.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Annotations of one component's pods (`.c`): the scrape port is the one serving /metrics. */}}
{{- define "cqrs.podAnnotations" -}}
{{- $root := .root -}}
checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
{{- if $root.Values.metrics.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ include "cqrs.metricsPortNumber" . | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with $root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Consumer group names, prefixed like the topics. */}}
{{- define "cqrs.group" -}}
{{- printf "%s%s" .root.Values.kafka.topicPrefix .group -}}
{{- end -}}

{{/* NetworkPolicy peers; an empty list would allow every destination, so it is refused. */}}
{{- define "cqrs.peers" -}}
{{- if not .peers -}}
{{- fail (printf "networkPolicy.%s.peers is empty, which would allow any destination; name the peers or disable networkPolicy" .what) -}}
{{- end -}}
{{- toYaml .peers -}}
{{- end -}}
