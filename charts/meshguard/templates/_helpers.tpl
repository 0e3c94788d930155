{{/* The chart's name, at most 63 characters (a DNS label). */}}
{{- define "meshguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the name of the Deployment, Service and their kin. */}}
{{- define "meshguard.fullname" -}}
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

{{- define "meshguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "meshguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "meshguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "meshguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "meshguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* MeshGuard's Service as the mesh names it. */}}
{{- define "meshguard.host" -}}
{{ include "meshguard.fullname" . }}.{{ .Release.Namespace }}.svc.cluster.local
{{- end }}

{{- define "meshguard.adminSecretName" -}}
{{- default (printf "%s-admin" (include "meshguard.fullname" .)) .Values.adminToken.existingSecret }}
{{- end }}

{{/* True (non-empty) when MeshGuard uses PostgreSQL. */}}
{{- define "meshguard.postgres" -}}
{{- if or .Values.database.existingSecret .Values.database.url }}true{{ end }}
{{- end }}

{{- define "meshguard.databaseSecretName" -}}
{{- default (printf "%s-database" (include "meshguard.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "meshguard.tlsSecretName" -}}
{{- if .Values.tls.certManager.enabled }}
{{- printf "%s-tls" (include "meshguard.fullname" .) }}
{{- else }}
{{- .Values.tls.existingSecret }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the HTTP port serves TLS: the probes and the scrape use HTTPS. */}}
{{- define "meshguard.httpTLS" -}}
{{- if and .Values.tls.enabled (has "http" (splitList "," .Values.tls.ports)) }}true{{ end }}
{{- end }}

{{- define "meshguard.policiesConfigMap" -}}
{{- default (printf "%s-policies" (include "meshguard.fullname" .)) .Values.policies.existingConfigMap }}
{{- end }}

{{- define "meshguard.servicesConfigMap" -}}
{{- if .Values.services.existingConfigMap }}{{ .Values.services.existingConfigMap }}
{{- else if .Values.services.catalogue }}{{ printf "%s-services" (include "meshguard.fullname" .) }}
{{- end }}
{{- end }}

{{- define "meshguard.proxiesConfigMap" -}}
{{- if .Values.proxies.existingConfigMap }}{{ .Values.proxies.existingConfigMap }}
{{- else if .Values.proxies.list }}{{ printf "%s-proxies" (include "meshguard.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The meshConfig entry naming MeshGuard as Istio's ext_authz provider over gRPC.
Fails closed: with MeshGuard unreachable, requests are denied.
*/}}
{{- define "meshguard.extensionProvider" -}}
meshConfig:
  extensionProviders:
    - name: {{ .Values.istio.extensionProvider.name }}
      envoyExtAuthzGrpc:
        service: {{ include "meshguard.host" . }}
        port: {{ .Values.service.grpcPort }}
        timeout: {{ .Values.istio.extensionProvider.timeout }}
        failOpen: false
{{- end }}

{{/*
The combinations the chart refuses, each with the value to change. Included by
the Deployment, so every render checks them.
*/}}
{{- define "meshguard.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not (include "meshguard.postgres" .)) }}
{{- fail (printf "replicaCount: %d replicas need PostgreSQL (set database.existingSecret or database.url); SQLite keeps its data in one pod" (int .Values.replicaCount)) }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) .Values.persistence.enabled }}
{{- fail "persistence.enabled: a ReadWriteOnce volume serves one replica; with replicaCount > 1 (PostgreSQL) leave it off" }}
{{- end }}
{{- if and .Values.database.existingSecret .Values.database.url }}
{{- fail "database.url: set database.existingSecret or database.url, not both" }}
{{- end }}
{{- if and .Values.policies.existingConfigMap .Values.policies.files }}
{{- fail "policies.files: set policies.existingConfigMap or policies.files, not both" }}
{{- end }}
{{- if and .Values.services.existingConfigMap .Values.services.catalogue }}
{{- fail "services.catalogue: set services.existingConfigMap or services.catalogue, not both" }}
{{- end }}
{{- if and .Values.proxies.existingConfigMap .Values.proxies.list }}
{{- fail "proxies.list: set proxies.existingConfigMap or proxies.list, not both" }}
{{- end }}
{{- if .Values.tls.enabled }}
{{- $sources := 0 }}
{{- if .Values.tls.certManager.enabled }}{{ $sources = add1 $sources }}{{ end }}
{{- if .Values.tls.existingSecret }}{{ $sources = add1 $sources }}{{ end }}
{{- if ne $sources 1 }}
{{- fail "tls: with tls.enabled, set exactly one of tls.existingSecret and tls.certManager.enabled" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.issuerRef.name: the cert-manager issuer that signs MeshGuard's certificate" }}
{{- end }}
{{- else if or .Values.tls.clientCA .Values.tls.certManager.enabled .Values.tls.existingSecret }}
{{- fail "tls.enabled: tls.clientCA, tls.existingSecret and tls.certManager need tls.enabled: true" }}
{{- end }}
{{- if and (include "meshguard.httpTLS" .) .Values.tls.clientCA (eq .Values.tls.clientAuth "require") }}
{{- fail "tls.clientAuth: require on the HTTP port refuses the kubelet's probes (they present no certificate); use verify-if-given" }}
{{- end }}
{{- if and .Values.istio.wasmPlugin.enabled (not .Values.istio.wasmPlugin.url) }}
{{- fail "istio.wasmPlugin.url: the oci:// or https:// URL of meshguard-filter.wasm" }}
{{- end }}
{{- if and .Values.istio.wasmPlugin.enabled (not .Values.istio.wasmPlugin.token) }}
{{- fail "istio.wasmPlugin.token: the proxies' credential (meshguard filter token NAME)" }}
{{- end }}
{{- if and .Values.alerts.webhook.secretRef.name (not .Values.alerts.webhook.url) }}
{{- fail "alerts.webhook.url: required with alerts.webhook.secretRef" }}
{{- end }}
{{- if and .Values.istio.authorizationPolicy.enabled (empty .Values.istio.authorizationPolicy.rules) }}
{{- fail "istio.authorizationPolicy.rules: an AuthorizationPolicy with action CUSTOM and no rules matches no request, so nothing would reach MeshGuard; [{}] sends every request" }}
{{- end }}
{{- range $name, $_ := .Values.settings }}
{{- /* Set twice, the later copy (settings) would silently win. */}}
{{- if has $name (list "HOST" "DATA_DIR" "POLICIES_DIR" "ADMIN_TOKEN" "DATABASE_URL" "JWT_SECRET" "SERVICES_FILE" "PROXIES_FILE" "MODE" "LOG_LEVEL" "LOG_FORMAT" "PORT" "GRPC_PORT" "XDS_AUTHZ_ADDRESS" "XDS_HTTP_ADDRESS" "OTEL_EXPORTER_OTLP_ENDPOINT" "OTEL_EXPORTER_OTLP_PROTOCOL" "OTEL_SERVICE_NAME") }}
{{- fail (printf "settings.%s: the chart sets %s itself; use its own value" $name $name) }}
{{- end }}
{{- /* A plain env value is readable by whoever may read the Deployment. */}}
{{- if regexMatch "SECRET|TOKEN|PASS|HEADERS|CREDENTIAL|_KEY" $name }}
{{- fail (printf "settings.%s: a secret would be a plain environment value; give it from a Secret (adminToken, database, jwtSecret, alerts' secretRefs)" $name) }}
{{- end }}
{{- if eq $name "XDS_INSECURE_ALLOW_UNAUTHENTICATED" }}
{{- fail "settings.XDS_INSECURE_ALLOW_UNAUTHENTICATED: lets any client read the xDS configuration; development only, never a cluster (list the proxies in proxies instead)" }}
{{- end }}
{{- if or (hasPrefix "TLS_" $name) (hasPrefix "ALERT_" $name) (hasPrefix "XDS_ENVOY_" $name) }}
{{- fail (printf "settings.%s: set it through the chart's tls or alerts values" $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A secretKeyRef env entry; both name and key must be set. */}}
{{- define "meshguard.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "%s.name" .value) .ref.name }}
      key: {{ required (printf "%s.key" .value) .ref.key }}
{{- end }}
