{{/*
Chart name.
*/}}
{{- define "ray-gan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every resource. Truncated to 26 characters: KubeRay limits
RayService/RayJob names to 47 (DNS-1035) and job names append "-train-<runId>".
*/}}
{{- define "ray-gan.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 26 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 26 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 26 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ray-gan.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of the chart's own resources.
*/}}
{{- define "ray-gan.labels" -}}
helm.sh/chart: {{ include "ray-gan.chart" . }}
{{ include "ray-gan.selectorLabels" . }}
app.kubernetes.io/part-of: ray-gan
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "ray-gan.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ray-gan.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of Ray pods (and the selector for monitoring). They must not set
app.kubernetes.io/name or app.kubernetes.io/created-by: KubeRay selects head pods
with app.kubernetes.io/name=kuberay, and pod-template labels override its own.
Call with (dict "root" $ "component" "serve").
*/}}
{{- define "ray-gan.rayPodSelectorLabels" -}}
app.kubernetes.io/part-of: ray-gan
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- define "ray-gan.rayPodLabels" -}}
{{ include "ray-gan.rayPodSelectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ray-gan.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ray-gan.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ray-gan.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end }}

{{/*
Where the Serve app's bearer tokens are mounted (rayService.serve.auth.existingSecret).
*/}}
{{- define "ray-gan.serveAuthDir" -}}
/etc/ray-gan/serve-auth
{{- end }}

{{/*
The Serve app's args as YAML (build_app validates them with ServeConfig(**args)):
rayService.serve.config, ServeConfig's own fields and nested layout, with
  - model: s3.modelUri where neither model nor models is set;
  - host 0.0.0.0 and port 8000: Serve's HTTP proxy (http_options), the container port
    "serve", the Service <fullname>-serve-svc and the NetworkPolicy use them, so the
    values cannot set them;
  - auth.token_file: the key of rayService.serve.auth.existingSecret, mounted read-only
    at ray-gan.serveAuthDir in every pod of the serving cluster. Without a Secret the
    values must say auth.insecure: true (the app refuses 0.0.0.0 without tokens).
Nothing else is added: every other default is ServeConfig's. Read it back with fromYaml.
*/}}
{{- define "ray-gan.serveArgs" -}}
{{- $serve := .Values.rayService.serve }}
{{- $args := deepCopy (default dict $serve.config) }}
{{- $http := dict "host" "0.0.0.0" "port" 8000 }}
{{- range $key := keys $http | sortAlpha }}
{{- if hasKey $args $key }}
{{- fail (printf "rayService.serve.config.%s: the RayService serves on %v:%v (Serve's http_options, the serve-svc Service and the NetworkPolicy); ServeConfig.%s is for `ray-gan serve`: leave it out" $key $http.host $http.port $key) }}
{{- end }}
{{- end }}
{{- if not (or $args.model $args.models) }}
{{- $_ := set $args "model" .Values.s3.modelUri }}
{{- end }}
{{- $auth := deepCopy (default dict $args.auth) }}
{{- if hasKey $auth "token_file" }}
{{- fail "rayService.serve.config.auth.token_file: the chart sets it to the Secret it mounts; name that Secret in rayService.serve.auth.existingSecret (and its key in rayService.serve.auth.key) instead" }}
{{- end }}
{{- with $serve.auth.existingSecret }}
{{- $_ := set $auth "token_file" (printf "%s/%s" (include "ray-gan.serveAuthDir" $) $serve.auth.key) }}
{{- else }}
{{- if not (eq true $auth.insecure) }}
{{- fail "rayService.serve.auth.existingSecret is empty: the Serve app listens on 0.0.0.0 and refuses to start without bearer tokens. Set rayService.serve.auth.existingSecret to an existing Secret holding the tokens (one per line, under the key rayService.serve.auth.key, default \"tokens\"), or set rayService.serve.config.auth.insecure: true to serve without authentication" }}
{{- end }}
{{- end }}
{{- if $auth }}
{{- $_ := set $args "auth" $auth }}
{{- end }}
{{- toYaml (merge $args $http) }}
{{- end }}

{{/*
The serving cluster's pod volume and mount of the bearer-token Secret (YAML lists; empty
without rayService.serve.auth.existingSecret). Only the one key is projected; no subPath,
so a changed Secret reaches the running pods (the app re-reads the file).
*/}}
{{- define "ray-gan.serveAuthVolumes" -}}
{{- $a := .Values.rayService.serve.auth }}
{{- if $a.existingSecret }}
- name: serve-auth
  secret:
    secretName: {{ $a.existingSecret }}
    {{- /* owner root, group fsGroup: readable by the ray user through its group only */}}
    defaultMode: {{ ternary 0440 0444 (hasKey .Values.podSecurityContext "fsGroup") }}
    items:
      - key: {{ $a.key }}
        path: {{ $a.key }}
{{- end }}
{{- end }}

{{- define "ray-gan.serveAuthMounts" -}}
{{- if .Values.rayService.serve.auth.existingSecret }}
- name: serve-auth
  mountPath: {{ include "ray-gan.serveAuthDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The training config as YAML (the ConfigMap's train.yaml, read by `ray-gan train --config`):
train.config, TrainConfig's own fields and nested layout, with dataset and out filled in
from s3.datasetUri and s3.modelUri where unset. Nothing else is added: every other
default is TrainConfig's. Read it back with fromYaml.
*/}}
{{- define "ray-gan.trainConfig" -}}
{{- $cfg := deepCopy (default dict .Values.train.config) }}
{{- if not $cfg.dataset }}
{{- $_ := set $cfg "dataset" .Values.s3.datasetUri }}
{{- end }}
{{- if not $cfg.out }}
{{- $_ := set $cfg "out" .Values.s3.modelUri }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/*
Command-line flags of a pydantic config's fields, as a YAML list of strings: a key
some_field becomes --some-field VALUE, a boolean --some-field / --no-some-field (the form
ray_gan's generated flags take); null values are left out. Call with
(dict "what" "<values path, for errors>" "values" <dict>).
*/}}
{{- define "ray-gan.flags" -}}
{{- $out := list }}
{{- range $key := keys .values | sortAlpha }}
{{- $v := get $.values $key }}
{{- $name := replace "_" "-" $key }}
{{- if kindIs "invalid" $v }}
{{- else if kindIs "bool" $v }}
{{- $out = append $out (ternary (printf "--%s" $name) (printf "--no-%s" $name) $v) }}
{{- else if or (kindIs "map" $v) (kindIs "slice" $v) }}
{{- fail (printf "%s.%s: a single value is expected (it becomes the flag --%s)" $.what $key $name) }}
{{- else if kindIs "string" $v }}
{{- $out = concat $out (list (printf "--%s" $name) $v) }}
{{- else }}
{{- $out = concat $out (list (printf "--%s" $name) (toJson $v)) }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
Names of the RayJobs (at most 47 characters).
*/}}
{{- define "ray-gan.trainJobName" -}}
{{- printf "%s-train-%s" (include "ray-gan.fullname" .) (toString .Values.train.runId) | trunc 47 | trimSuffix "-" }}
{{- end }}

{{- define "ray-gan.batchJobName" -}}
{{- printf "%s-batch-%s" (include "ray-gan.fullname" .) .Values.batch.spec.job_id | trunc 47 | trimSuffix "-" }}
{{- end }}

{{/*
Environment of every ray_gan container: S3 settings and credentials by reference.
*/}}
{{- define "ray-gan.env" -}}
{{- $s3 := .Values.s3 -}}
- name: AWS_REGION
  value: {{ $s3.region | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ $s3.region | quote }}
{{- with $s3.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $s3.credentialsSecret.name }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $s3.credentialsSecret.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $s3.credentialsSecret.secretAccessKeyKey }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Ray Serve's high-throughput mode on every pod of the serving cluster, for ServeConfig
ingress: direct (the default): HAProxy answers on port 8000 of each pod and balances over
the ingress replicas, which serve HTTP themselves; deployments call each other over gRPC.
Empty for ingress: proxy (Ray's Python HTTP proxy) and for job clusters.
*/}}
{{- define "ray-gan.serveIngressEnv" -}}
{{- if and .serve (eq (default "direct" .ingress) "direct") -}}
- name: RAY_SERVE_THROUGHPUT_OPTIMIZED
  value: "1"
- name: RAY_SERVE_ENABLE_HA_PROXY
  value: "1"
{{- end }}
{{- end }}

{{/*
The /tmp emptyDir volume.
*/}}
{{- define "ray-gan.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- end }}

{{- define "ray-gan.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
Worker container resources with the GPU count added to requests and limits.
Call with a merged worker dict.
*/}}
{{- define "ray-gan.workerResources" -}}
{{- $res := deepCopy (default dict .resources) }}
{{- if gt (int .gpus) 0 }}
{{- $req := default dict (get $res "requests") }}
{{- $lim := default dict (get $res "limits") }}
{{- $_ := set $req .gpuResourceName (int .gpus) }}
{{- $_ := set $lim .gpuResourceName (int .gpus) }}
{{- $_ := set $res "requests" $req }}
{{- $_ := set $res "limits" $lim }}
{{- end }}
{{- toYaml $res }}
{{- end }}

{{/*
A RayCluster spec (rayClusterConfig of the RayService, rayClusterSpec of a RayJob).
Call with (dict "root" $ "component" "serve|train|batch" "head" <overrides> "worker" <overrides>
  "autoscaling" <bool> "serve" <bool> "headExtraVolumes" <list> "headExtraMounts" <list>
  "headInitContainers" <list> "extraVolumes" <list> "extraMounts" <list>); extraVolumes and
extraMounts go to every Ray pod (head and workers), the headExtra ones to the head only.
Ray's token authentication (rayAuth) is the same for every cluster of the release.
*/}}
{{- define "ray-gan.rayClusterSpec" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $head := mergeOverwrite (deepCopy $v.head) (deepCopy (default dict .head)) }}
{{- $worker := mergeOverwrite (deepCopy $v.worker) (deepCopy (default dict .worker)) }}
{{- $autoscaling := .autoscaling }}
{{- $sa := include "ray-gan.serviceAccountName" $root -}}
rayVersion: {{ $v.rayVersion | quote }}
{{- /* KubeRay sets RAY_AUTH_MODE (and RAY_AUTH_TOKEN from the Secret) in every Ray container
       and uses the token itself (RayService Serve updates, RayJob submission). */}}
authOptions:
  mode: {{ $v.rayAuth.mode }}
  {{- if and (eq $v.rayAuth.mode "token") $v.rayAuth.secretName }}
  secretName: {{ $v.rayAuth.secretName }}
  {{- end }}
enableInTreeAutoscaling: {{ $autoscaling }}
{{- if $autoscaling }}
autoscalerOptions:
  upscalingMode: {{ $v.autoscaler.upscalingMode }}
  idleTimeoutSeconds: {{ $v.autoscaler.idleTimeoutSeconds }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  resources:
    {{- toYaml $v.autoscaler.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "ray-gan.tmpVolumeMount" $root | nindent 4 }}
{{- end }}
headGroupSpec:
  rayStartParams: {{- if $head.rayStartParams }}{{ toYaml $head.rayStartParams | nindent 4 }}{{ else }} {}{{ end }}
  template:
    metadata:
      labels:
        {{- include "ray-gan.rayPodLabels" (dict "root" $root "component" .component) | nindent 8 }}
        {{- with $head.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $head.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ $sa }}
      automountServiceAccountToken: {{ or $autoscaling $v.serviceAccount.automountServiceAccountToken }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $head.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $head.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $head.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .headInitContainers }}
      initContainers:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: ray-head
          image: {{ include "ray-gan.image" $root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          env:
            {{- include "ray-gan.env" $root | nindent 12 }}
            {{- include "ray-gan.serveIngressEnv" . | nindent 12 }}
          ports:
            - name: gcs-server
              containerPort: 6379
              protocol: TCP
            - name: dashboard
              containerPort: 8265
              protocol: TCP
            - name: client
              containerPort: 10001
              protocol: TCP
            {{- if .serve }}
            - name: serve
              containerPort: 8000
              protocol: TCP
            {{- end }}
            - name: metrics
              containerPort: 8080
              protocol: TCP
          resources:
            {{- toYaml $head.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "ray-gan.tmpVolumeMount" $root | nindent 12 }}
            {{- with .extraMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- with .headExtraMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        {{- include "ray-gan.tmpVolume" $root | nindent 8 }}
        {{- with .extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with .headExtraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
workerGroupSpecs:
  - groupName: {{ $worker.groupName }}
    replicas: {{ $worker.replicas }}
    minReplicas: {{ $worker.minReplicas }}
    maxReplicas: {{ $worker.maxReplicas }}
    rayStartParams: {{- if $worker.rayStartParams }}{{ toYaml $worker.rayStartParams | nindent 6 }}{{ else }} {}{{ end }}
    template:
      metadata:
        labels:
          {{- include "ray-gan.rayPodLabels" (dict "root" $root "component" .component) | nindent 10 }}
          {{- with $worker.podLabels }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        {{- with $worker.podAnnotations }}
        annotations:
          {{- toYaml . | nindent 10 }}
        {{- end }}
      spec:
        serviceAccountName: {{ $sa }}
        automountServiceAccountToken: {{ $v.serviceAccount.automountServiceAccountToken }}
        securityContext:
          {{- toYaml $v.podSecurityContext | nindent 10 }}
        {{- with $v.imagePullSecrets }}
        imagePullSecrets:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $worker.nodeSelector }}
        nodeSelector:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $worker.tolerations }}
        tolerations:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        {{- with $worker.affinity }}
        affinity:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        containers:
          - name: ray-worker
            image: {{ include "ray-gan.image" $root }}
            imagePullPolicy: {{ $v.image.pullPolicy }}
            env:
              {{- include "ray-gan.env" $root | nindent 14 }}
              {{- include "ray-gan.serveIngressEnv" . | nindent 14 }}
            ports:
              - name: metrics
                containerPort: 8080
                protocol: TCP
            resources:
              {{- include "ray-gan.workerResources" $worker | nindent 14 }}
            securityContext:
              {{- toYaml $v.securityContext | nindent 14 }}
            volumeMounts:
              {{- include "ray-gan.tmpVolumeMount" $root | nindent 14 }}
              {{- with .extraMounts }}
              {{- toYaml . | nindent 14 }}
              {{- end }}
        volumes:
          {{- include "ray-gan.tmpVolume" $root | nindent 10 }}
          {{- with .extraVolumes }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
{{- end }}

{{/*
Submitter pod template of a RayJob (K8sJobMode). KubeRay fills in the command
(`ray job submit ... -- <entrypoint>`) and RAY_DASHBOARD_ADDRESS.
Call with (dict "root" $ "component" "train|batch").
*/}}
{{- define "ray-gan.submitterPodTemplate" -}}
{{- $root := .root }}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "ray-gan.rayPodLabels" (dict "root" $root "component" (printf "%s-submitter" .component)) | nindent 4 }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "ray-gan.serviceAccountName" $root }}
  automountServiceAccountToken: false
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: ray-job-submitter
      image: {{ include "ray-gan.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      resources:
        {{- toYaml $v.submitter.resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "ray-gan.tmpVolumeMount" $root | nindent 8 }}
  volumes:
    {{- include "ray-gan.tmpVolume" $root | nindent 4 }}
{{- end }}

{{/*
GPU sanity checks: fail early instead of rendering a cluster whose Ray tasks can never be scheduled.
Call with (dict "what" "..." "need" <gpus> "worker" <merged worker dict>).
*/}}
{{- define "ray-gan.checkGpus" -}}
{{- if and (gt (float64 .need) 0.0) (eq (int .worker.gpus) 0) }}
{{- fail (printf "%s asks for GPUs but its worker group has gpus: 0; set worker.gpus (or the matching worker override) to at least 1" .what) }}
{{- end }}
{{- end }}
