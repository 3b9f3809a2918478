{{/* Names, labels, the broker URL, settings as TOML, and worker groups with defaults merged. */}}

{{- define "whisperfarm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "whisperfarm.fullname" -}}
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

{{/* Labels every object carries; call with (dict "root" $ "component" "api"). */}}
{{- define "whisperfarm.labels" -}}
{{ include "whisperfarm.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "whisperfarm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "whisperfarm.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .group }}
whisperfarm.io/worker-group: {{ . }}
{{- end }}
{{- end }}

{{/* <repository>:<tag>-<variant>; call with (dict "root" $ "variant" "cuda"). */}}
{{- define "whisperfarm.image" -}}
{{- $image := .root.Values.image }}
{{- printf "%s:%s-%s" $image.repository (default .root.Chart.AppVersion $image.tag) .variant }}
{{- end }}

{{- define "whisperfarm.redisHost" -}}
{{- printf "%s-redis" (include "whisperfarm.fullname" .) }}
{{- end }}

{{- define "whisperfarm.checkRedis" -}}
{{- $external := .Values.redis.external }}
{{- if and (not .Values.redis.bundled.enabled) (not $external.existingSecret) (not $external.sentinel.addresses) }}
{{- fail "redis.external.existingSecret (or redis.external.sentinel.addresses) is required when redis.bundled.enabled is false" }}
{{- end }}
{{- if and $external.sentinel.addresses (not $external.sentinel.masterName) }}
{{- fail "redis.external.sentinel.masterName is required with redis.external.sentinel.addresses" }}
{{- end }}
{{- end }}

{{/* The broker URL through an external Sentinel set. */}}
{{- define "whisperfarm.sentinelUrl" -}}
{{- $external := .Values.redis.external }}
{{- $hosts := list }}
{{- range $address := $external.sentinel.addresses }}
{{- $hosts = append $hosts (printf "sentinel://%s/%d" $address (int $external.databaseIndex)) }}
{{- end }}
{{- printf "%s?master_name=%s" (join ";" $hosts) $external.sentinel.masterName }}
{{- end }}

{{/* FARM_BROKER_URL for every container: the bundled Redis, or the external URL Secret. */}}
{{- define "whisperfarm.env" -}}
{{- include "whisperfarm.checkRedis" . -}}
- name: FARM_ENV
  value: {{ .Values.environment | quote }}
{{- if .Values.redis.bundled.enabled }}
- name: FARM_BROKER_URL
  value: {{ printf "redis://%s:%d/0" (include "whisperfarm.redisHost" .) (int .Values.redis.bundled.port) | quote }}
{{- else if .Values.redis.external.existingSecret }}
- name: FARM_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.external.existingSecret }}
      key: {{ .Values.redis.external.urlKey }}
{{- else }}
- name: FARM_BROKER_URL
  value: {{ include "whisperfarm.sentinelUrl" . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* One TOML value: strings quoted (JSON escapes are valid TOML), maps as inline tables. */}}
{{- define "whisperfarm.tomlValue" -}}
{{- if kindIs "map" . -}}
{ {{- $first := true }}{{ range $k, $v := . }}{{ if not $first }},{{ end }} {{ $k }} = {{ include "whisperfarm.tomlValue" $v }}{{ $first = false }}{{ end }} }
{{- else if kindIs "slice" . -}}
[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "whisperfarm.tomlValue" $v }}{{ end }}]
{{- else if or (kindIs "string" .) (kindIs "bool" .) -}}
{{ toJson . }}
{{- else if kindIs "float64" . -}}
{{- if eq . (floor .) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else -}}
{{ . }}
{{- end -}}
{{- end }}

{{/* A [default] table from a map of settings. */}}
{{- define "whisperfarm.toml" -}}
[default]
{{- range $key, $value := . }}
{{ $key }} = {{ include "whisperfarm.tomlValue" $value }}
{{- end }}
{{- end }}

{{/* Worker groups, defaults merged, as YAML: name -> group (with "name" and "deployment"). */}}
{{- define "whisperfarm.workerGroups" -}}
{{- $defaults := omit .Values.workers "groups" }}
{{- $groups := dict }}
{{- range $name, $overrides := .Values.workers.groups }}
{{- $own := default (dict) $overrides }}
{{- if or (not (hasKey $own "enabled")) $own.enabled }}
{{- $group := mergeOverwrite (deepCopy $defaults) (deepCopy (omit $own "enabled")) }}
{{- $_ := set $group "name" $name }}
{{- $_ := set $group "deployment" (printf "%s-worker-%s" (include "whisperfarm.fullname" $) $name | trunc 63 | trimSuffix "-") }}
{{- $slots := mul (max 1 (int $group.gpusPerPod)) (int $group.concurrencyPerGpu) }}
{{- $_ := set $group "jobsPerPod" (int (default $slots $group.keda.jobsPerPod)) }}
{{- $pods := ternary $group.keda.maxReplicaCount $group.replicas $group.keda.enabled }}
{{- $_ := set $group "capacity" (mul $group.jobsPerPod (int $pods)) }}
{{- $_ := set $groups $name $group }}
{{- end }}
{{- end }}
{{- toYaml $groups }}
{{- end }}

{{/*
Jobs all groups can hold at once, per queue they consume (each group: jobsPerPod x its most
pods). KEDA gives each group the share of a queue's backlog its capacity bears, so
a shared queue is counted once across groups, not once per group.
*/}}
{{- define "whisperfarm.queueCapacity" -}}
{{- $capacity := dict }}
{{- range $name, $group := include "whisperfarm.workerGroups" . | fromYaml }}
{{- range $queue := include "whisperfarm.queues" $group | fromJsonArray }}
{{- $_ := set $capacity $queue (add (int (get $capacity $queue | default 0)) (int $group.capacity)) }}
{{- end }}
{{- end }}
{{- toYaml $capacity }}
{{- end }}

{{/* soft_time_limit < time_limit < visibility_timeout, or the pods would exit at start. */}}
{{- define "whisperfarm.checkLimits" -}}
{{- $where := index . 0 }}
{{- $settings := index . 1 }}
{{- $soft := int (get $settings "soft_time_limit" | default 1800) }}
{{- $hard := int (get $settings "time_limit" | default 1900) }}
{{- $visibility := int (get $settings "visibility_timeout" | default 3600) }}
{{- if ge $soft $hard }}
{{- fail (printf "%s: soft_time_limit (%d) must be below time_limit (%d) so a job can fail cleanly" $where $soft $hard) }}
{{- end }}
{{- if ge $hard $visibility }}
{{- fail (printf "%s: time_limit (%d) must be below visibility_timeout (%d) or long jobs run twice" $where $hard $visibility) }}
{{- end }}
{{- end }}

{{/* Device names of a group's worker processes: gpu0..gpuN-1, or cpu. */}}
{{- define "whisperfarm.nodeNames" -}}
{{- if eq (int .gpusPerPod) 0 }}cpu{{ else }}{{ range $i := until (int .gpusPerPod) }}{{ if $i }} {{ end }}gpu{{ $i }}{{ end }}{{ end }}
{{- end }}

{{/* Celery queues a group's pods consume: the per-device queues, then the shared one. */}}
{{- define "whisperfarm.queues" -}}
{{- $queues := list }}
{{- range $node := splitList " " (include "whisperfarm.nodeNames" .) }}
{{- $queues = append $queues (printf "farm.%s" $node) }}
{{- end }}
{{- toJson (append $queues "farm") }}
{{- end }}

{{/* Settings only this group has, layered over settings.local.toml. */}}
{{- define "whisperfarm.groupSettings" -}}
{{- $settings := dict "concurrency" (int .concurrencyPerGpu) "batch_size" (int .batchSizePerGpu) }}
{{- if eq (int .gpusPerPod) 0 }}
{{- $_ := set $settings "devices" "cpu" }}
{{- else }}
{{- $indexes := list }}
{{- range $i := until (int .gpusPerPod) }}{{ $indexes = append $indexes (toString $i) }}{{ end }}
{{- $_ := set $settings "devices" (join "," $indexes) }}
{{- end }}
{{- with .model }}{{ $_ := set $settings "model" . }}{{ end }}
{{- with .engine }}{{ $_ := set $settings "engine" . }}{{ end }}
{{- with .computeType }}{{ $_ := set $settings "compute_type" . }}{{ end }}
{{- toYaml (mergeOverwrite $settings (deepCopy .settings)) }}
{{- end }}

{{/* Hard time limit in force for a group: its own setting, the chart's, or the default. */}}
{{- define "whisperfarm.timeLimit" -}}
{{- $group := index . 0 }}
{{- $root := index . 1 }}
{{- int (default (default 1900 $root.Values.settings.time_limit) $group.settings.time_limit) }}
{{- end }}

{{/* The chart's settings as every pod mounts them: .Values.settings plus what the chart decides. */}}
{{- define "whisperfarm.settings" -}}
{{- $settings := deepCopy .Values.settings }}
{{- if .Values.uploads.sharedVolume.enabled }}
{{- $_ := set $settings "upload_dir" "/uploads" }}
{{- end }}
{{- toYaml $settings }}
{{- end }}

{{- define "whisperfarm.apiTokenSecret" -}}
{{- .Values.api.auth.existingSecret | default (printf "%s-api-token" (include "whisperfarm.fullname" .)) }}
{{- end }}

{{/* checksum/config of a pod: the settings it mounts. Call with (dict "root" $ "group" $group). */}}
{{- define "whisperfarm.configChecksum" -}}
{{- $text := include "whisperfarm.toml" (include "whisperfarm.settings" .root | fromYaml) }}
{{- with .group }}
{{- $text = print $text (include "whisperfarm.toml" (include "whisperfarm.groupSettings" . | fromYaml)) }}
{{- end }}
{{- sha256sum $text }}
{{- end }}

{{/* Mount of the settings ConfigMap and the models volume, shared by every pod. */}}
{{- define "whisperfarm.volumes" -}}
- name: settings
  configMap:
    name: {{ include "whisperfarm.fullname" . }}-settings
- name: models
{{- if .Values.models.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.models.existingClaim }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.models.emptyDirSizeLimit }}
{{- end }}
{{- with .Values.uploads.sharedVolume }}
{{- if .enabled }}
- name: uploads
  persistentVolumeClaim:
    claimName: {{ .existingClaim | default (printf "%s-uploads" (include "whisperfarm.fullname" $)) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "whisperfarm.volumeMounts" -}}
- name: settings
  mountPath: /etc/whisperfarm
  readOnly: true
- name: models
  mountPath: /models
{{- if .Values.uploads.sharedVolume.enabled }}
- name: uploads
  mountPath: /uploads
{{- end }}
{{- end }}

{{- define "whisperfarm.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.runAsUser }}
runAsGroup: {{ .Values.runAsUser }}
fsGroup: {{ .Values.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "whisperfarm.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end }}

{{/* Every key of a settings map is a farm setting (files/setting-keys.txt), else render
fails naming the closest one; secrets never travel in the ConfigMap. */}}
{{- define "whisperfarm.checkKeys" -}}
{{- $where := index . 0 }}
{{- $settings := index . 1 }}
{{- $known := index . 2 }}
{{- $secrets := list "api_token" "flower_basic_auth" "s3_access_key_id" "s3_secret_access_key" "webhook_secret" }}
{{- range $key := keys $settings | sortAlpha }}
{{- if has $key $secrets }}
{{- fail (printf "%s.%s is a secret: give it through api.auth (the API token) or extraEnv from a Secret, never the ConfigMap" $where $key) }}
{{- else if not (has $key $known) }}
{{- fail (printf "%s: unknown setting '%s'%s" $where $key (include "whisperfarm.didYouMean" (list $key $known))) }}
{{- end }}
{{- end }}
{{- end }}

{{/* " (did you mean 'x'?)" for the known key sharing most of the unknown one's letter pairs. */}}
{{- define "whisperfarm.didYouMean" -}}
{{- $key := index . 0 }}
{{- $best := "" }}
{{- $bestScore := 0 }}
{{- range $candidate := index . 1 }}
{{- $score := 0 }}
{{- range $i := until (int (sub (len $key) 1)) }}
{{- if contains (substr $i (int (add $i 2)) $key) $candidate }}{{ $score = add1 $score }}{{ end }}
{{- end }}
{{- if gt $score $bestScore }}{{ $best = $candidate }}{{ $bestScore = $score }}{{ end }}
{{- end }}
{{- if ge (mul $bestScore 2) (len $key) }} (did you mean '{{ $best }}'?){{ end }}
{{- end }}
