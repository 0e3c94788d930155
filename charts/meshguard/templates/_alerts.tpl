{{/* The ALERT_* settings: plain values from values, credentials from Secrets. */}}
{{- define "meshguard.alertEnv" -}}
{{- $a := .Values.alerts }}
{{- with $a.raiseOn }}
- { name: ALERT_ON, value: {{ . | quote }} }
{{- end }}
{{- with $a.webhook.url }}
- { name: ALERT_WEBHOOK_URL, value: {{ . | quote }} }
{{- end }}
{{- if $a.webhook.secretRef.name }}
{{ include "meshguard.secretEnv" (dict "env" "ALERT_WEBHOOK_SECRET" "value" "alerts.webhook.secretRef" "ref" $a.webhook.secretRef) }}
{{- end }}
{{- if $a.slack.urlSecretRef.name }}
{{ include "meshguard.secretEnv" (dict "env" "ALERT_SLACK_WEBHOOK" "value" "alerts.slack.urlSecretRef" "ref" $a.slack.urlSecretRef) }}
{{- end }}
{{- if $a.email.smtp.host }}
- { name: ALERT_EMAIL_FROM, value: {{ required "alerts.email.from: the sender of alert email" $a.email.from | quote }} }
- { name: ALERT_EMAIL_TO, value: {{ required "alerts.email.to: the recipients of alert email" $a.email.to | join "," | quote }} }
- { name: ALERT_SMTP_HOST, value: {{ $a.email.smtp.host | quote }} }
- { name: ALERT_SMTP_PORT, value: {{ $a.email.smtp.port | toString | quote }} }
{{- with $a.email.smtp.user }}
- { name: ALERT_SMTP_USER, value: {{ . | quote }} }
{{- end }}
{{- if $a.email.smtp.passwordSecretRef.name }}
{{ include "meshguard.secretEnv" (dict "env" "ALERT_SMTP_PASS" "value" "alerts.email.smtp.passwordSecretRef" "ref" $a.email.smtp.passwordSecretRef) }}
{{- end }}
{{- else if or $a.email.from $a.email.to }}
{{- fail "alerts.email.smtp.host: required with alerts.email.from and alerts.email.to" }}
{{- end }}
{{- if ne (int $a.rateLimit) 10 }}
- { name: ALERT_RATE_LIMIT, value: {{ $a.rateLimit | toString | quote }} }
{{- end }}
{{- with $a.instanceName }}
- { name: ALERT_INSTANCE_NAME, value: {{ . | quote }} }
{{- end }}
{{- with $a.environment }}
- { name: ALERT_ENVIRONMENT, value: {{ . | quote }} }
{{- end }}
{{- end }}
