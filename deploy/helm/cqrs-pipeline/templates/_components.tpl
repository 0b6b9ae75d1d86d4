{{/*
Every long-running process of the release, as data: the workload templates, the
Services, PodDisruptionBudgets, NetworkPolicies and ScaledObjects all range over
this one list, so a component cannot have a Deployment but lack its policy.
  kind       StatefulSet (workers: a stable transactional id and data volume per pod) or Deployment
  args       arguments of the image's `cqrs` entrypoint
  needs      what it talks to besides Kafka: registry, postgres, search
  group/topic  the consumer group and topic KEDA watches (empty: not scaled)
*/}}
{{- define "cqrs.components" -}}
{{- $v := .Values -}}
{{- $items := list -}}
{{- if $v.commandProcessor.enabled -}}
{{- $c := $v.commandProcessor -}}
{{- $items = append $items (dict "name" "command-processor" "kind" "StatefulSet" "args" (list "worker") "needs" (list "registry") "replicas" $c.replicas "resources" $c.resources "grace" $c.terminationGracePeriodSeconds "store" $c.store "standby" $c.standbyReplicas "persistence" $c.persistence "group" "cqrs-command-processor" "topic" "commands" "autoscaling" $c.autoscaling) -}}
{{- end -}}
{{- range $name, $manager := $v.processManagers -}}
{{- if $manager.enabled -}}
{{- $c := merge (deepCopy $manager) (deepCopy $v.processManager) -}}
{{- $items = append $items (dict "name" (printf "pm-%s" $name) "kind" "StatefulSet" "args" (list "saga" $name) "needs" (list "registry") "replicas" $c.replicas "resources" $c.resources "grace" $c.terminationGracePeriodSeconds "store" $c.store "standby" $c.standbyReplicas "persistence" $c.persistence "group" (printf "cqrs-%s" $name) "topic" "" "autoscaling" dict) -}}
{{- end -}}
{{- end -}}
{{- range $projection, $sink := $v.sinks.projections -}}
{{- if $sink.enabled -}}
{{- $items = append $items (dict "name" (printf "sink-%s" $projection) "kind" "Deployment" "args" (list "sink" "run" $projection) "needs" (concat (list "registry") $sink.stores) "replicas" $v.sinks.replicas "resources" $v.sinks.resources "grace" $v.sinks.terminationGracePeriodSeconds "group" (printf "cqrs-sink-%s" $projection) "topic" "events" "autoscaling" $v.sinks.autoscaling) -}}
{{- end -}}
{{- end -}}
{{- if $v.lagExporter.enabled -}}
{{- $items = append $items (dict "name" "lag-exporter" "kind" "Deployment" "args" (list "lag" "serve") "needs" list "replicas" 1 "resources" $v.lagExporter.resources "grace" $v.lagExporter.terminationGracePeriodSeconds "group" "" "topic" "" "autoscaling" dict) -}}
{{- end -}}
{{- if $v.registry.embedded -}}
{{- $items = append $items (dict "name" "registry" "kind" "Deployment" "args" (list "registry") "needs" list "replicas" 1 "resources" $v.registry.resources "grace" $v.registry.terminationGracePeriodSeconds "group" "" "topic" "" "autoscaling" dict) -}}
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
    - {name: metrics, containerPort: {{ $root.Values.metrics.port }}, protocol: TCP}
    {{- if eq $c.name "registry" }}
    - {name: http, containerPort: {{ $root.Values.registry.port }}, protocol: TCP}
    {{- end }}
  {{- include "cqrs.probes" $root | nindent 2 }}
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
{{- end -}}

{{- define "cqrs.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- include "cqrs.certVolumes" (dict "root" .root "needs" .c.needs) }}
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
{{- include "cqrs.certEnv" (dict "root" $root "needs" $c.needs) }}
{{- include "cqrs.secretEnv" (dict "root" $root "needs" $c.needs) }}
{{- end -}}
