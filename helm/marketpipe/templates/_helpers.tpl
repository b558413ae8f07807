{{/* Names and labels ------------------------------------------------------------------------------ */}}

{{- define "marketpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "marketpipe.fullname" -}}
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

{{- define "marketpipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "marketpipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: marketpipe
{{- end }}

{{/* Selector labels of one component; call with (dict "root" $ "component" "processors") */}}
{{- define "marketpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "marketpipe.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "marketpipe.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "marketpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "marketpipe.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "marketpipe.commonConfigName" -}}
{{- printf "%s-common" (include "marketpipe.fullname" .) }}
{{- end }}

{{- define "marketpipe.secretName" -}}
{{- printf "%s-credentials" (include "marketpipe.fullname" .) }}
{{- end }}

{{/* A scalar as settings text: whole numbers without helm's float formatting (2000000, not 2e+06),
     booleans lower-case, everything else as is. */}}
{{- define "marketpipe.scalar" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) }}{{ int64 . }}{{ else }}{{ toString . }}{{ end }}
{{- end }}

{{- define "marketpipe.csv" -}}
{{- $items := list }}
{{- range . }}{{- $items = append $items (include "marketpipe.scalar" .) }}{{- end -}}
{{ join "," $items }}
{{- end }}

{{/* Environment shared by every service ------------------------------------------------------------ */}}

{{/* Data of the common ConfigMap (no secrets): Kafka, registry, topics, logging. */}}
{{- define "marketpipe.commonConfigData" -}}
MARKETPIPE_KAFKA_BOOTSTRAP: {{ .Values.kafka.bootstrap | quote }}
MARKETPIPE_KAFKA_SECURITY_PROTOCOL: {{ .Values.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}
MARKETPIPE_KAFKA_SASL_MECHANISM: {{ .Values.kafka.sasl.mechanism | quote }}
{{- end }}
{{- if and (hasSuffix "SSL" .Values.kafka.securityProtocol) .Values.kafka.tls.existingSecret }}
{{- with .Values.kafka.tls }}
{{- if .caKey }}
MARKETPIPE_KAFKA_SSL_CAFILE: {{ printf "%s/%s" .mountPath .caKey | quote }}
{{- end }}
{{- if .certKey }}
MARKETPIPE_KAFKA_SSL_CERTFILE: {{ printf "%s/%s" .mountPath .certKey | quote }}
{{- end }}
{{- if .keyKey }}
MARKETPIPE_KAFKA_SSL_KEYFILE: {{ printf "%s/%s" .mountPath .keyKey | quote }}
{{- end }}
{{- end }}
{{- end }}
MARKETPIPE_REGISTRY_URL: {{ .Values.registry.url | quote }}
MARKETPIPE_CREATE_TOPICS: {{ .Values.topics.create | toString | quote }}
MARKETPIPE_TOPIC_REPLICATION: {{ .Values.topics.replication | toString | quote }}
MARKETPIPE_TOPIC_MIN_INSYNC_REPLICAS: {{ .Values.topics.minInsyncReplicas | toString | quote }}
MARKETPIPE_REGISTER_SCHEMAS: {{ (not .Values.schemaRegistration.enabled) | toString | quote }}
MARKETPIPE_LOG_LEVEL: {{ .Values.logLevel | quote }}
{{- end }}

{{- define "marketpipe.saslEnabled" -}}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{- define "marketpipe.tlsMounted" -}}
{{- if and (hasSuffix "SSL" .Values.kafka.securityProtocol) .Values.kafka.tls.existingSecret }}true{{ end }}
{{- end }}

{{/* Data of the chart-managed Secret (inline credentials only; existing Secrets are referenced). */}}
{{- define "marketpipe.commonSecretData" -}}
{{- if and (include "marketpipe.saslEnabled" .) (not .Values.kafka.sasl.existingSecret) }}
kafka-sasl-username: {{ .Values.kafka.sasl.username | b64enc | quote }}
kafka-sasl-password: {{ .Values.kafka.sasl.password | b64enc | quote }}
{{- end }}
{{- if and .Values.registry.basicAuth.enabled (not .Values.registry.basicAuth.existingSecret) }}
registry-username: {{ .Values.registry.basicAuth.username | b64enc | quote }}
registry-password: {{ .Values.registry.basicAuth.password | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Inline secret settings of one producer (credentials.values), keyed "<producer>-<field>" in the chart's
     Secret; call with (dict "name" NAME "p" VALUES) */}}
{{- define "marketpipe.producerSecretData" -}}
{{- $c := default dict .p.credentials }}
{{- range $field, $value := (default dict $c.values) }}
{{ printf "%s-%s" $.name (replace "_" "-" $field) }}: {{ include "marketpipe.scalar" $value | b64enc | quote }}
{{- end }}
{{- end }}

{{- define "marketpipe.secretData" -}}
{{- include "marketpipe.commonSecretData" . }}
{{- range $name, $p := .Values.producers }}
{{- include "marketpipe.producerSecretData" (dict "name" $name "p" $p) }}
{{- end }}
{{- end }}

{{/* A secretKeyRef env entry; call with (dict "env" NAME "secret" SECRET "key" KEY) */}}
{{- define "marketpipe.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .key | quote }}
{{- end }}

{{/* Secret-backed env of every service: Kafka SASL and registry basic auth. Inline credentials come from
     the chart's Secret (or the one named by "chartSecret"); call with (dict "root" $ "chartSecret" NAME). */}}
{{- define "marketpipe.credentialsEnvFrom" -}}
{{- $chartSecret := .chartSecret }}
{{- $v := .root.Values }}
{{- if include "marketpipe.saslEnabled" .root }}
{{- with $v.kafka.sasl }}
{{- $s := default $chartSecret .existingSecret }}
{{ include "marketpipe.secretEnv" (dict "env" "MARKETPIPE_KAFKA_SASL_USERNAME" "secret" $s "key" (ternary .usernameKey "kafka-sasl-username" (not (empty .existingSecret)))) }}
{{ include "marketpipe.secretEnv" (dict "env" "MARKETPIPE_KAFKA_SASL_PASSWORD" "secret" $s "key" (ternary .passwordKey "kafka-sasl-password" (not (empty .existingSecret)))) }}
{{- end }}
{{- end }}
{{- if $v.registry.basicAuth.enabled }}
{{- with $v.registry.basicAuth }}
{{- $s := default $chartSecret .existingSecret }}
{{ include "marketpipe.secretEnv" (dict "env" "REGISTRY_BASIC_AUTH_USERNAME" "secret" $s "key" (ternary .usernameKey "registry-username" (not (empty .existingSecret)))) }}
{{ include "marketpipe.secretEnv" (dict "env" "REGISTRY_BASIC_AUTH_PASSWORD" "secret" $s "key" (ternary .passwordKey "registry-password" (not (empty .existingSecret)))) }}
- name: MARKETPIPE_REGISTRY_BASIC_AUTH
  value: "$(REGISTRY_BASIC_AUTH_USERNAME):$(REGISTRY_BASIC_AUTH_PASSWORD)"
{{- end }}
{{- end }}
{{- end }}

{{- define "marketpipe.credentialsEnv" -}}
{{- include "marketpipe.credentialsEnvFrom" (dict "root" . "chartSecret" (include "marketpipe.secretName" .)) }}
{{- end }}

{{/* Volumes and mounts for the Kafka TLS Secret and a writable /tmp (the root filesystem is read-only). */}}
{{- define "marketpipe.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- if include "marketpipe.tlsMounted" . }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret | quote }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "marketpipe.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "marketpipe.tlsMounted" . }}
- name: kafka-tls
  mountPath: {{ .Values.kafka.tls.mountPath | quote }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Checksums that roll pods when their configuration changes. Existing Secrets are hashed through a
     cluster lookup at install/upgrade time (empty under `helm template`). */}}
{{- /* call with (dict "root" $ "extra" LIST-OF-SECRET-NAMES): the shared Secrets plus a workload's own */}}
{{- define "marketpipe.existingSecretsChecksum" -}}
{{- $v := .root.Values }}
{{- $data := dict }}
{{- $names := concat (list $v.kafka.sasl.existingSecret $v.kafka.tls.existingSecret $v.registry.basicAuth.existingSecret) (default list .extra) }}
{{- range $s := compact $names | uniq }}
{{- $found := lookup "v1" "Secret" $.root.Release.Namespace $s }}
{{- $_ := set $data $s (default dict $found.data) }}
{{- end }}
{{- $data | toJson | sha256sum }}
{{- end }}

{{/* MARKETPIPE_<FIELD> entries from a map of extra settings: lists comma-separated (every list field of
     the services splits commas; not all of them parse JSON), maps as JSON. */}}
{{- define "marketpipe.extraSettings" -}}
{{- range $k, $v := . }}
{{- if kindIs "slice" $v }}
{{ printf "MARKETPIPE_%s" (upper $k) }}: {{ include "marketpipe.csv" $v | quote }}
{{- else if kindIs "map" $v }}
{{ printf "MARKETPIPE_%s" (upper $k) }}: {{ $v | toJson | quote }}
{{- else }}
{{ printf "MARKETPIPE_%s" (upper $k) }}: {{ include "marketpipe.scalar" $v | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Producers ----------------------------------------------------------------------------------- */}}

{{/* A producer's values merged over producerDefaults; call with (dict "root" $ "name" NAME "p" VALUES) */}}
{{/* The venues `marketpipe produce` accepts: marketpipe/venues.py, like values.schema.json's
producers.*.venue enum (tests/helm/test_venue_registry.py keeps all three equal) */}}
{{- define "marketpipe.venues" -}}
rabbitx drift econia binance okx kraken bybit coinbase ccxt
{{- end }}

{{- define "marketpipe.producer" -}}
{{- $merged := mergeOverwrite (deepCopy .root.Values.producerDefaults) (deepCopy .p) }}
{{- $_ := set $merged "venue" (default .name .p.venue) }}
{{- /* a key used as the venue must be a venue too */}}
{{- $venues := include "marketpipe.venues" . | splitList " " }}
{{- if not (has $merged.venue $venues) }}
{{- fail (printf "producers.%s: venue %q is not one of %s; set producers.%s.venue" .name $merged.venue (join ", " $venues) .name) }}
{{- end }}
{{- if and (eq $merged.venue "ccxt") (not (dig "exchange" "" (default dict $merged.settings))) }}
{{- fail (printf "producers.%s: venue ccxt runs any ccxt.pro exchange: name it in producers.%s.settings.exchange" .name .name) }}
{{- end }}
{{- $merged | toJson }}
{{- end }}

{{- define "marketpipe.producerFullname" -}}
{{- printf "%s-%s" (include "marketpipe.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Data of a producer's ConfigMap; call with (dict "root" $ "name" NAME "p" MERGED) */}}
{{- define "marketpipe.producerConfigData" -}}
{{- /* markets as a JSON list of strings: every feed's settings parse that (RabbitXSettings only that) */}}
{{- $markets := list }}
{{- range .p.markets }}{{- $markets = append $markets (include "marketpipe.scalar" .) }}{{- end -}}
MARKETPIPE_MARKETS: {{ $markets | toJson | quote }}
{{- with .p.channels }}
MARKETPIPE_CHANNELS: {{ include "marketpipe.csv" . | quote }}
{{- end }}
{{- with .p.wsUrl }}
MARKETPIPE_WS_URL: {{ . | quote }}
{{- end }}
{{- with .p.restUrl }}
MARKETPIPE_REST_URL: {{ . | quote }}
{{- end }}
{{- with .p.accountId }}
MARKETPIPE_ACCOUNT_ID: {{ . | quote }}
{{- end }}
MARKETPIPE_HEALTH_PORT: {{ include "marketpipe.scalar" .p.healthPort | quote }}
MARKETPIPE_HEALTH_HOST: "0.0.0.0"
{{- include "marketpipe.extraSettings" (default dict .p.settings) }}
{{- end }}

{{/* Secret-backed env of a producer: MARKETPIPE_<FIELD> for each credentials.keys entry (from the existing
     Secret) and each credentials.values entry (from the chart's Secret). */}}
{{- define "marketpipe.producerCredentialsEnv" -}}
{{- $c := default dict .p.credentials }}
{{- $chartSecret := include "marketpipe.secretName" .root }}
{{- range $field, $key := (default dict $c.keys) }}
{{- if not (hasKey (default dict $c.values) $field) }}
{{ include "marketpipe.secretEnv" (dict "env" (printf "MARKETPIPE_%s" (upper $field)) "secret" $c.existingSecret "key" $key) }}
{{- end }}
{{- end }}
{{- range $field, $value := (default dict $c.values) }}
{{ include "marketpipe.secretEnv" (dict "env" (printf "MARKETPIPE_%s" (upper $field)) "secret" $chartSecret "key" (printf "%s-%s" $.name (replace "_" "-" $field))) }}
{{- end }}
{{- end }}

{{/* Processors ---------------------------------------------------------------------------------- */}}

{{- define "marketpipe.processorsFullname" -}}
{{- printf "%s-processors" (include "marketpipe.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "marketpipe.processorsConfigData" -}}
{{- with .Values.processors -}}
MARKETPIPE_PROCESSOR_APP_ID: {{ .appId | quote }}
MARKETPIPE_PROCESSOR_STORE_URL: "rocksdb://"
MARKETPIPE_PROCESSOR_DATA_DIR: {{ .dataDir | quote }}
MARKETPIPE_PROCESSOR_WEB_PORT: {{ include "marketpipe.scalar" .webPort | quote }}
MARKETPIPE_PROCESSOR_PROCESSING_GUARANTEE: {{ .processingGuarantee | quote }}
MARKETPIPE_PROCESSOR_TOPIC_PARTITIONS: {{ include "marketpipe.scalar" $.Values.topics.partitions | quote }}
{{- if not (kindIs "invalid" .topicReplication) }}
MARKETPIPE_PROCESSOR_TOPIC_REPLICATION: {{ include "marketpipe.scalar" .topicReplication | quote }}
{{- end }}
MARKETPIPE_PROCESSOR_STANDBY_REPLICAS: {{ include "marketpipe.scalar" .standbyReplicas | quote }}
{{- /* comma-separated: ProcessorSettings splits commas but passes JSON text through unparsed */}}
MARKETPIPE_PROCESSOR_CANDLE_INTERVALS: {{ include "marketpipe.csv" .candleIntervals | quote }}
MARKETPIPE_PROCESSOR_BOOK_DEPTH: {{ include "marketpipe.scalar" .bookDepth | quote }}
{{- include "marketpipe.extraSettings" (default dict .settings) }}
{{- end }}
{{- end }}
