{{/*
Every long-running process of the release, as data: the workload templates, the
Services, PodDisruptionBudgets, NetworkPolicies and ScaledObjects all range over
this one list, so a component cannot have a Deployment but lack its policy.
  kind       StatefulSet (workers: a stable transactional id and data volume per pod) or Deployment
  args       arguments of the image's `cqrs` entrypoint
  needs      what it talks to besides Kafka: registry, postgres, search
  group/topics the consumer group and the topics KEDA watches (none: not scaled)
  httpPort   a second port, `http`, that the component serves (registry, query; absent: none)
  metricsPort  name of the port serving /metrics, /livez and /readyz: `metrics`
             (metrics.port) for all but the query service, which serves them on `http`
  postgresRole  `reader` for the query service (postgres.reader); absent: the runtime role
*/}}
{{- define "cqrs.components" -}}
{{- $v := .Values -}}
{{- $items := list -}}
{{- if $v.commandProcessor.enabled -}}
{{- $base := omit (deepCopy $v.commandProcessor) "aggregates" -}}
{{- if $v.commandProcessor.aggregates -}}
{{- range $aggregate, $entry := $v.commandProcessor.aggregates -}}
{{- if and $entry $entry.enabled -}}
{{- $c := mergeOverwrite (deepCopy $base) (deepCopy $entry) -}}
{{- $items = append $items (dict "name" (printf "command-processor-%s" $c.slug) "kind" "StatefulSet" "args" (list "worker" "--aggregate" $aggregate) "needs" (list "registry") "replicas" $c.replicas "resources" $c.resources "grace" $c.terminationGracePeriodSeconds "store" $c.store "standby" $c.standbyReplicas "persistence" $c.persistence "group" (printf "cqrs-command-processor-%s" $c.slug) "topics" (list $c.commands) "autoscaling" $c.autoscaling) -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $c := $base -}}
{{- $items = append $items (dict "name" "command-processor" "kind" "StatefulSet" "args" (list "worker") "needs" (list "registry") "replicas" $c.replicas "resources" $c.resources "grace" $c.terminationGracePeriodSeconds "store" $c.store "standby" $c.standbyReplicas "persistence" $c.persistence "group" "cqrs-command-processor" "topics" (list "commands") "autoscaling" $c.autoscaling) -}}
{{- end -}}
{{- end -}}
{{- range $name, $manager := $v.processManagers -}}
{{- if $manager.enabled -}}
{{- $c := merge (deepCopy $manager) (deepCopy $v.processManager) -}}
{{- $items = append $items (dict "name" (printf "pm-%s" $name) "kind" "StatefulSet" "args" (list "saga" $name) "needs" (list "registry") "replicas" $c.replicas "resources" $c.resources "grace" $c.terminationGracePeriodSeconds "store" $c.store "standby" $c.standbyReplicas "persistence" $c.persistence "group" (printf "cqrs-%s" $name) "topics" list "autoscaling" dict) -}}
{{- end -}}
{{- end -}}
{{- range $projection, $sink := $v.sinks.projections -}}
{{- if $sink.enabled -}}
{{- $items = append $items (dict "name" (printf "sink-%s" $projection) "kind" "Deployment" "args" (list "sink" "run" $projection) "needs" (concat (list "registry") $sink.stores) "replicas" $v.sinks.replicas "resources" $v.sinks.resources "grace" $v.sinks.terminationGracePeriodSeconds "group" (printf "cqrs-sink-%s" $projection) "topics" $v.sinks.eventTopics "autoscaling" $v.sinks.autoscaling) -}}
{{- end -}}
{{- end -}}
{{- if $v.query.enabled -}}
{{- $q := $v.query -}}
{{- if not $q.apiKeys.existingSecret -}}
{{- fail "query.apiKeys.existingSecret is empty: the query service needs API keys (it refuses to listen beyond loopback without them); name a Secret holding, under query.apiKeys.key, a JSON list of {\"name\", \"key\", \"scopes\"}, or set query.enabled=false" -}}
{{- end -}}
{{- $port := int $q.port -}}
{{- $items = append $items (dict "name" "query" "kind" "Deployment" "args" (list "query" "serve" "--host" "0.0.0.0" "--port" (toString $port)) "needs" (list "registry" "postgres" "search") "replicas" $q.replicas "resources" $q.resources "grace" $q.terminationGracePeriodSeconds "group" "" "topics" list "autoscaling" dict "httpPort" $port "metricsPort" "http" "postgresRole" "reader" "apiKeys" $q.apiKeys) -}}
{{- end -}}
{{- if $v.lagExporter.enabled -}}
{{- $items = append $items (dict "name" "lag-exporter" "kind" "Deployment" "args" (list "lag" "serve") "needs" list "replicas" 1 "resources" $v.lagExporter.resources "grace" $v.lagExporter.terminationGracePeriodSeconds "group" "" "topics" list "autoscaling" dict) -}}
{{- end -}}
{{- if $v.registry.embedded -}}
{{- $items = append $items (dict "name" "registry" "kind" "Deployment" "args" (list "registry") "needs" list "replicas" 1 "resources" $v.registry.resources "grace" $v.registry.terminationGracePeriodSeconds "group" "" "topics" list "autoscaling" dict "httpPort" (int $v.registry.port)) -}}
{{- end -}}
{{- toJson (dict "items" $items) -}}
{{- end -}}

{{/* The container every component runs; `.c` is one entry of cqrs.components. */}}
{{- define "cqrs.container" -}}
{{- $root := .root -}}
{{- $c := .c -}}
- name: {{ $c.name }}
  image: {{ include "cqrs.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args: {{ toJson $c.args }}
  envFrom:
    - configMapRef:
        name: {{ include "cqrs.fullname" $root }}-settings
  {{- $env := include "cqrs.containerEnv" (dict "root" $root "c" $c) | trim }}
  {{- if $env }}
  env:
    {{- $env | nindent 4 }}
  {{- end }}
  ports:
    {{- if eq (include "cqrs.metricsPortName" $c) "metrics" }}
    - {name: metrics, containerPort: {{ $root.Values.metrics.port }}, protocol: TCP}
    {{- end }}
    {{- if $c.httpPort }}
    - {name: http, containerPort: {{ int $c.httpPort }}, protocol: TCP}
    {{- end }}
  {{- include "cqrs.probes" (dict "root" $root "port" (include "cqrs.metricsPortName" $c)) | nindent 2 }}
  resources:
    {{- toYaml $c.resources | nindent 4 }}
  securityContext:
    {{- include "cqrs.containerSecurityContext" $root | nindent 4 }}
  volumeMounts:
    - {name: tmp, mountPath: /tmp}
    {{- if eq $c.kind "StatefulSet" }}
    - {name: state, mountPath: /var/lib/cqrs}
    {{- end }}
    {{- with include "cqrs.certMounts" (dict "root" $root "needs" $c.needs) | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- if $c.apiKeys }}
    - {name: query-api-keys, mountPath: /etc/cqrs/query-api-keys, readOnly: true}
    {{- end }}
{{- end -}}

{{- define "cqrs.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- include "cqrs.certVolumes" (dict "root" .root "needs" .c.needs) }}
{{- with .c.apiKeys }}
# The query service's API keys, as one file whatever the Secret's key is called.
- name: query-api-keys
  secret:
    secretName: {{ .existingSecret }}
    items: [{key: {{ .key | quote }}, path: api-keys.json}]
    defaultMode: 288   # 0440: read by the owner and the pod's group (fsGroup) only
{{- end }}
{{- end -}}

{{/* Name of the port a component serves /metrics, /livez and /readyz on; `.` is one component. */}}
{{- define "cqrs.metricsPortName" -}}
{{- default "metrics" .metricsPort -}}
{{- end -}}

{{/* Number of that port. */}}
{{- define "cqrs.metricsPortNumber" -}}
{{- if eq (include "cqrs.metricsPortName" .c) "metrics" -}}
{{- int .root.Values.metrics.port -}}
{{- else -}}
{{- int .c.httpPort -}}
{{- end -}}
{{- end -}}

{{- define "cqrs.containerEnv" -}}
{{- $root := .root -}}
{{- $c := .c -}}
{{- if eq $c.kind "StatefulSet" }}
- {name: CQRS_PROCESSOR__STORE, value: {{ $c.store | quote }}}
- {name: CQRS_PROCESSOR__STANDBY_REPLICAS, value: {{ $c.standby | quote }}}
{{- end }}
{{- if eq $c.name "registry" }}
# The registry binds where its URL points; clients use the Service's name.
- {name: CQRS_REGISTRY__URL, value: {{ printf "http://0.0.0.0:%d" (int $root.Values.registry.port) | quote }}}
{{- end }}
{{- if eq $c.name "query" }}
{{- $q := $root.Values.query }}
- {name: CQRS_QUERY__API_KEYS_FILE, value: /etc/cqrs/query-api-keys/api-keys.json}
- {name: CQRS_QUERY__MAX_WAIT_S, value: {{ $q.maxWaitSeconds | toString | quote }}}
- {name: CQRS_QUERY__DEFAULT_WAIT_S, value: {{ $q.defaultWaitSeconds | toString | quote }}}
- {name: CQRS_QUERY__PAGE_SIZE, value: {{ int $q.pageSize | toString | quote }}}
- {name: CQRS_QUERY__MAX_PAGE_SIZE, value: {{ int $q.maxPageSize | toString | quote }}}
- {name: CQRS_QUERY__COMMAND_TIMEOUT_S, value: {{ $q.commandTimeoutSeconds | toString | quote }}}
- {name: CQRS_QUERY__POOL_SIZE, value: {{ int $q.poolSize | toString | quote }}}
{{- end }}
{{- if eq (default "" $c.postgresRole) "reader" }}
# Reads only: the least-privilege role instead of the sinks' (ConfigMap) one.
- {name: CQRS_POSTGRES__USER, value: {{ $root.Values.postgres.reader.user | quote }}}
{{- end }}
{{- include "cqrs.certEnv" (dict "root" $root "needs" $c.needs) }}
{{- include "cqrs.secretEnv" (dict "root" $root "needs" $c.needs "postgresRole" (default "" $c.postgresRole)) }}
{{- end -}}
