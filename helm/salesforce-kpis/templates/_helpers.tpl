{{/*
_helpers.tpl - names, labels, and the pod template shared by the bridge, the workers and the loader.
*/}}

{{- define "sfk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sfk.fullname" -}}
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

{{/* <fullname>-<suffix>, at most 63 characters */}}
{{- define "sfk.componentName" -}}
{{- printf "%s-%s" (include "sfk.fullname" .ctx) .suffix | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sfk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sfk.labels" -}}
helm.sh/chart: {{ include "sfk.chart" . }}
app.kubernetes.io/name: {{ include "sfk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: salesforce-kpis
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* dict ctx component */}}
{{- define "sfk.componentLabels" -}}
{{ include "sfk.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* dict ctx component */}}
{{- define "sfk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sfk.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sfk.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "sfk.image" -}}
{{- $registry := default .Values.image.registry .Values.global.imageRegistry -}}
{{- $repo := .Values.image.repository -}}
{{- $ref := "" -}}
{{- if .Values.image.digest -}}
{{- $ref = printf "@%s" .Values.image.digest -}}
{{- else -}}
{{- $ref = printf ":%s" (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- if $registry -}}
{{- printf "%s/%s%s" $registry $repo $ref -}}
{{- else -}}
{{- printf "%s%s" $repo $ref -}}
{{- end -}}
{{- end -}}

{{- define "sfk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sfk.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sfk.policiesConfigMap" -}}
{{- printf "%s-policies" (include "sfk.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* KAFKA_* name of a librdkafka property: security.protocol -> KAFKA_SECURITY_PROTOCOL */}}
{{- define "sfk.kafkaEnvName" -}}
{{- printf "KAFKA_%s" (. | upper | replace "." "_" | replace "-" "_") -}}
{{- end -}}

{{/* Environment every sfk process reads (DESIGN.md section 6). */}}
{{- define "sfk.commonEnv" -}}
- name: SFK_ADMIN_ADDR
  value: {{ printf "0.0.0.0:%d" (int .Values.adminPort) | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: SFK_CLIENT_ID
  value: {{ .Values.clientId | quote }}
- name: SFK_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
{{- range $k, $v := .Values.kafka.config }}
- name: {{ include "sfk.kafkaEnvName" $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- if and .Values.kafka.tls.caSecret (not (hasKey .Values.kafka.config "ssl.ca.location")) }}
- name: KAFKA_SSL_CA_LOCATION
  value: /etc/sfk/kafka-ca/ca.crt
{{- end }}
{{- if .Values.redis.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.existingSecretKey }}
{{- else if .Values.redis.url }}
- name: REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- end }}
- name: SF_LOGIN_URL
  value: {{ .Values.salesforce.loginUrl | quote }}
{{- if .Values.salesforce.tokenUrl }}
- name: SF_TOKEN_URL
  value: {{ .Values.salesforce.tokenUrl | quote }}
{{- end }}
- name: SF_CLIENT_ID
  value: {{ .Values.salesforce.clientId | quote }}
- name: SF_USERNAME
  value: {{ .Values.salesforce.username | quote }}
- name: SF_PRIVATE_KEY_PATH
  value: /run/sfk/key/private-key.pem
- name: SF_API_VERSION
  value: {{ .Values.salesforce.apiVersion | quote }}
{{- if .Values.salesforce.caSecret }}
- name: SF_CA_FILE
  value: /etc/sfk/sf-ca/ca.crt
{{- end }}
- name: SFK_GROUP_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: SFK_WORKLOADS_POLICY
  value: /etc/sfk/policies/workloads.json
- name: SFK_ROUTING_POLICY
  value: /etc/sfk/policies/routing_policy.json
- name: SFK_TEMPLATE_POLICY
  value: /etc/sfk/policies/templates.json
- name: SFK_NOTIFY_POLICY
  value: /etc/sfk/policies/notifications.json
- name: SFK_DOCTOR_POLICIES
  value: /etc/sfk/policies/workloads.json,/etc/sfk/policies/routing_policy.json,/etc/sfk/policies/templates.json
- name: SFK_TOPIC_PARTITIONS
  value: {{ .Values.kafka.topics.partitions | quote }}
{{- with .Values.extraEnvVars }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- /* envFrom of a container: the Kafka secret, extraEnvVarsCM/Secret, and the
component's own secret (.secret, e.g. a worker's envFromSecret). Call with
(dict "ctx" $ "secret" NAME). */ -}}
{{- define "sfk.envFrom" -}}
{{- $v := .ctx.Values -}}
{{- if or $v.kafka.existingSecret $v.extraEnvVarsCM $v.extraEnvVarsSecret .secret -}}
envFrom:
{{- if $v.kafka.existingSecret }}
  - secretRef:
      name: {{ $v.kafka.existingSecret }}
{{- end }}
{{- if $v.extraEnvVarsCM }}
  - configMapRef:
      name: {{ $v.extraEnvVarsCM }}
{{- end }}
{{- if $v.extraEnvVarsSecret }}
  - secretRef:
      name: {{ $v.extraEnvVarsSecret }}
{{- end }}
{{- if .secret }}
  - secretRef:
      name: {{ .secret }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "sfk.containerSecurityContext" -}}
{{- if .Values.containerSecurityContext.enabled -}}
securityContext:
  {{- toYaml (omit .Values.containerSecurityContext "enabled") | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* dict ctx readinessPath */}}
{{- define "sfk.probes" -}}
{{- $readinessPath := .readinessPath -}}
{{- with .ctx -}}
{{- if .Values.livenessProbe.enabled }}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml (omit .Values.livenessProbe "enabled") | nindent 2 }}
{{- end }}
{{- if .Values.readinessProbe.enabled }}
readinessProbe:
  httpGet:
    path: {{ $readinessPath }}
    port: admin
  {{- toYaml (omit .Values.readinessProbe "enabled") | nindent 2 }}
{{- end }}
{{- if .Values.startupProbe.enabled }}
startupProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml (omit .Values.startupProbe "enabled") | nindent 2 }}
{{- end }}
{{- end -}}
{{- end -}}

{{/*
The private key: the Secret is mounted read-only with mode 0400; an init container copies it into a
memory-backed emptyDir owned by the runtime user with mode 0600, because the processes refuse a key
readable by group/others and Kubernetes adds group-read to Secret files when fsGroup is set.
*/}}
{{- define "sfk.keyInitContainer" -}}
- name: copy-private-key
  image: {{ include "sfk.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["/bin/sh", "-c", "umask 077 && cat /run/secrets/sfk-key/private-key.pem > /run/sfk/key/private-key.pem && chmod 0600 /run/sfk/key/private-key.pem"]
  {{- include "sfk.containerSecurityContext" . | nindent 2 }}
  resources:
    requests: {cpu: 5m, memory: 8Mi}
    limits: {memory: 32Mi}
  volumeMounts:
    - name: sf-private-key-secret
      mountPath: /run/secrets/sfk-key
      readOnly: true
    - name: sf-private-key
      mountPath: /run/sfk/key
{{- end -}}

{{- define "sfk.volumeMounts" -}}
- name: policies
  mountPath: /etc/sfk/policies
  readOnly: true
- name: sf-private-key
  mountPath: /run/sfk/key
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.salesforce.caSecret }}
- name: sf-ca
  mountPath: /etc/sfk/sf-ca
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/sfk/kafka-ca
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sfk.volumes" -}}
- name: policies
  configMap:
    name: {{ include "sfk.policiesConfigMap" . }}
- name: sf-private-key-secret
  secret:
    secretName: {{ .Values.salesforce.privateKey.existingSecret | default (printf "%s-sf-key" (include "sfk.fullname" .)) }}
    defaultMode: 0400
    items:
      - key: {{ .Values.salesforce.privateKey.key }}
        path: private-key.pem
- name: sf-private-key
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.salesforce.caSecret }}
- name: sf-ca
  secret:
    secretName: {{ .Values.salesforce.caSecret }}
    defaultMode: 0444
{{- end }}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    defaultMode: 0444
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Pod template of one sfk process.
dict: ctx, component, container, command (list), env (list, extra), resources, volumes (list),
volumeMounts (list), ports (list, extra), podLabels (map), readinessPath (default /readyz)
*/}}
{{- define "sfk.podTemplate" -}}
{{- $ctx := .ctx -}}
metadata:
  labels:
    {{- include "sfk.selectorLabels" (dict "ctx" $ctx "component" .component) | nindent 4 }}
    app.kubernetes.io/part-of: salesforce-kpis
    {{- with .podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $ctx.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/policies: {{ include (print $ctx.Template.BasePath "/configmap-policies.yaml") $ctx | sha256sum }}
    {{- with $ctx.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "sfk.serviceAccountName" $ctx }}
  automountServiceAccountToken: {{ $ctx.Values.serviceAccount.automountServiceAccountToken }}
  {{- $pullSecrets := concat $ctx.Values.global.imagePullSecrets $ctx.Values.image.pullSecrets }}
  {{- if $pullSecrets }}
  imagePullSecrets:
    {{- range $pullSecrets }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  {{- if $ctx.Values.podSecurityContext.enabled }}
  securityContext:
    {{- toYaml (omit $ctx.Values.podSecurityContext "enabled") | nindent 4 }}
  {{- end }}
  {{- with $ctx.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $ctx.Values.terminationGracePeriodSeconds }}
  {{- with $ctx.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $ctx.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $ctx.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $ctx.Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  initContainers:
    {{- include "sfk.keyInitContainer" $ctx | nindent 4 }}
  containers:
    - name: {{ .container }}
      image: {{ include "sfk.image" $ctx }}
      imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
      command:
        {{- toYaml .command | nindent 8 }}
      {{- include "sfk.containerSecurityContext" $ctx | nindent 6 }}
      env:
        {{- include "sfk.commonEnv" $ctx | nindent 8 }}
        {{- with .env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with (include "sfk.envFrom" (dict "ctx" $ctx "secret" .envFromSecret)) }}
      {{- . | nindent 6 }}
      {{- end }}
      ports:
        - name: admin
          containerPort: {{ $ctx.Values.adminPort }}
          protocol: TCP
        {{- with .ports }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- include "sfk.probes" (dict "ctx" $ctx "readinessPath" (.readinessPath | default "/readyz")) | nindent 6 }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      volumeMounts:
        {{- include "sfk.volumeMounts" $ctx | nindent 8 }}
        {{- with .volumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    {{- include "sfk.volumes" $ctx | nindent 4 }}
    {{- with .volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
