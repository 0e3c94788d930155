package charttest

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	certmanagerv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshguard/meshguard/catalog"
	"github.com/meshguard/meshguard/config"
	"github.com/meshguard/meshguard/policy"
	"github.com/meshguard/meshguard/proxyauth"
)

// otelVariables are the OpenTelemetry SDK's own variables the chart sets;
// they are not MeshGuard settings (docs/tracing.md).
var otelVariables = []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME"}

// existingSecretValues stand for what Secrets the chart does not create
// hold, so that the settings can be loaded as serve would.
var existingSecretValues = map[string]string{
	"ADMIN_TOKEN":          "existing-admin-token-0123456789abcdef",
	"JWT_SECRET":           "existing-hs256-secret-0123456789abcdef",
	"DATABASE_URL":         "postgres://meshguard:pw@db.meshguard-system.svc:5432/meshguard?sslmode=verify-full",
	"ALERT_WEBHOOK_SECRET": "webhook-signing-secret",
	"ALERT_SLACK_WEBHOOK":  "https://hooks.slack.com/services/T01AB2CD3/B04EF5GH6/q9w8e7r6t5y4u3i2",
	"ALERT_SMTP_PASS":      "smtp-password",
}

// serveEnv checks the container's environment the way `meshguard serve`
// reads it: every variable is a known setting (or one of OTel's), each
// secret comes from a Secret the chart renders (with that key) or one the
// values name as existing, and the whole loads with config.Load. It
// returns the environment, secrets resolved.
func serveEnv(r rendered, c corev1.Container, existing []string) (map[string]string, error) {
	known := map[string]bool{}
	for _, f := range config.Flags() {
		known[f.Env] = true
	}
	for _, v := range otelVariables {
		known[v] = true
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if !known[e.Name] {
			return nil, fmt.Errorf("env %s: not a setting of meshguard serve (docs/configuration.md)", e.Name)
		}
		if _, dup := env[e.Name]; dup {
			return nil, fmt.Errorf("env %s: set twice", e.Name)
		}
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, err := get[*corev1.Secret](r, "Secret", ref.Name)
			switch {
			case err == nil:
				v, ok := s.Data[ref.Key]
				if !ok {
					return nil, fmt.Errorf("env %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
				}
				env[e.Name] = string(v)
			case errors.Is(err, errNotFound) && slices.Contains(existing, ref.Name):
				env[e.Name] = existingSecretValues[e.Name]
			default:
				return nil, fmt.Errorf("env %s: %w, nor named by the values", e.Name, err)
			}
		default:
			return nil, fmt.Errorf("env %s: only values and Secrets", e.Name)
		}
	}
	if _, err := config.Load("", func(k string) string { return env[k] }, nil); err != nil {
		return nil, fmt.Errorf("meshguard serve would refuse the chart's settings: %w", err)
	}
	return env, nil
}

// mountedFile returns the volume a file path of the container lies in and
// the path relative to its mount.
func mountedFile(d *appsv1.Deployment, c corev1.Container, file string) (corev1.Volume, string, error) {
	for _, m := range c.VolumeMounts {
		if rel, ok := strings.CutPrefix(file, m.MountPath+"/"); ok || file == m.MountPath {
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Name == m.Name {
					return v, rel, nil
				}
			}
			return corev1.Volume{}, "", fmt.Errorf("%s: mount %s has no volume", file, m.Name)
		}
	}
	return corev1.Volume{}, "", fmt.Errorf("%s: not in a mounted volume", file)
}

// checkFiles checks that every file or directory setting lies in a mounted
// volume and that what the chart puts there is what serve accepts:
// policies, the service catalogue and the proxies list parse.
func checkFiles(r rendered, d *appsv1.Deployment, c corev1.Container, env map[string]string, existing []string) error {
	for _, name := range []string{"DATA_DIR", "POLICIES_DIR", "SERVICES_FILE", "PROXIES_FILE", "TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"} {
		file, ok := env[name]
		if !ok {
			continue
		}
		v, rel, err := mountedFile(d, c, file)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		switch {
		case v.ConfigMap != nil:
			cm, err := get[*corev1.ConfigMap](r, "ConfigMap", v.ConfigMap.Name)
			if errors.Is(err, errNotFound) && slices.Contains(existing, v.ConfigMap.Name) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := checkConfigMap(name, cm, rel); err != nil {
				return err
			}
		case v.Secret != nil:
			if v.Secret.SecretName == "" {
				return fmt.Errorf("%s: volume %s names no Secret", name, v.Name)
			}
			if !r.certificateSecret(v.Secret.SecretName) && !slices.Contains(existing, v.Secret.SecretName) {
				return fmt.Errorf("%s: Secret %s: neither rendered by cert-manager nor named by the values", name, v.Secret.SecretName)
			}
		case v.EmptyDir != nil || v.PersistentVolumeClaim != nil:
			if name != "DATA_DIR" {
				return fmt.Errorf("%s: in a writable volume", name)
			}
		default:
			return fmt.Errorf("%s: volume %s of an unexpected source", name, v.Name)
		}
	}
	return nil
}

// checkConfigMap parses what a rendered ConfigMap gives a setting.
func checkConfigMap(setting string, cm *corev1.ConfigMap, key string) error {
	switch setting {
	case "POLICIES_DIR":
		for file, text := range cm.Data {
			if path.Ext(file) != ".yaml" && path.Ext(file) != ".yml" {
				return fmt.Errorf("POLICIES_DIR: %s is not loaded (not .yaml)", file)
			}
			if _, err := policy.Parse(file, []byte(text)); err != nil {
				return fmt.Errorf("POLICIES_DIR: %w", err)
			}
		}
	case "SERVICES_FILE", "PROXIES_FILE":
		if _, ok := cm.Data[key]; !ok {
			return fmt.Errorf("%s: ConfigMap %s has no key %s", setting, cm.Name, key)
		}
	}
	switch setting {
	case "SERVICES_FILE":
		if _, err := catalog.Parse(key, []byte(cm.Data[key])); err != nil {
			return fmt.Errorf("SERVICES_FILE (%s): %w", key, err)
		}
	case "PROXIES_FILE":
		if _, err := proxyauth.Parse([]byte(cm.Data[key])); err != nil {
			return fmt.Errorf("PROXIES_FILE (%s): %w", key, err)
		}
	}
	return nil
}

// certificateSecret: a rendered cert-manager Certificate writes that Secret.
func (r rendered) certificateSecret(name string) bool {
	for _, o := range r.objects {
		if c, ok := o.value.(*certmanagerv1.Certificate); ok && c.Spec.SecretName == name {
			return true
		}
	}
	return false
}
