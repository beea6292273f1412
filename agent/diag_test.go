package agent

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// The configuration and logs the agent hands to vigil bugtool keep their
// shape and lose every secret.
func TestRedaction(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Export.Webhook = "https://siem-user:hunter2@siem.example.com/ingest?token=s3cr3t-query&tenant=acme"
	cfg.Export.WebhookHeaders = []string{"Authorization: Bearer s3cr3t-bearer", "X-Api-Key: s3cr3t-apikey"}
	cfg.Export.WebhookKeyFile = "/etc/vigil/tls/client.key"
	cfg.Export.Syslog = "tcp+tls://logger:pa55@syslog.example.com:6514"
	cfg.UI.Auth.TokenFile = "/etc/vigil/ui-token"
	a := &Agent{cfg: cfg}
	tree, err := a.effectiveConfig()
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	agentFatal(t, enc.Encode(tree))
	out := buf.String()
	for _, secret := range []string{"hunter2", "siem-user", "s3cr3t", "pa55", "acme"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q in the configuration: %s", secret, out)
		}
	}
	for _, kept := range []string{
		`"export-webhook-header":["Authorization: <redacted>","X-Api-Key: <redacted>"]`,
		`"export-webhook":"https://<redacted>@siem.example.com/ingest?tenant=<redacted>&token=<redacted>"`,
		`"export-webhook-key-file":"/etc/vigil/tls/client.key"`,
		`"TokenFile":"/etc/vigil/ui-token"`,
		`"export-syslog":"tcp+tls://<redacted>@syslog.example.com:6514"`,
		`"NodeName":"`,
	} {
		if !strings.Contains(out, kept) {
			t.Errorf("configuration lacks %s: %s", kept, out)
		}
	}

	ring := newLogRing()
	log := logrus.New()
	log.SetOutput(&strings.Builder{})
	log.AddHook(ring)
	log.WithField("url", "https://u:pw-in-url@h.example/x?sig=abc123").Warn("webhook failed: Authorization: Bearer tok-in-log, password=pw-in-text")
	log.Info("-----BEGIN PRIVATE KEY-----\nMIIBVwIBADANBg\n-----END PRIVATE KEY-----")
	for i := 0; i < logRingLines+5; i++ {
		log.Info("filler")
	}
	got := string(ring.snapshot())
	if n := strings.Count(got, "\n"); n != logRingLines {
		t.Errorf("%d lines kept, want %d", n, logRingLines)
	}
	ring = newLogRing()
	log.ReplaceHooks(logrus.LevelHooks{})
	log.AddHook(ring)
	log.WithField("url", "https://u:pw-in-url@h.example/x?sig=abc123").Warn("webhook failed: Authorization: Bearer tok-in-log, password=pw-in-text")
	log.Info("-----BEGIN PRIVATE KEY-----\nMIIBVwIBADANBg\n-----END PRIVATE KEY-----")
	got = string(ring.snapshot())
	for _, secret := range []string{"pw-in-url", "abc123", "tok-in-log", "pw-in-text", "MIIBVwIBADANBg"} {
		if strings.Contains(got, secret) {
			t.Errorf("secret %q in the logs: %s", secret, got)
		}
	}
	if !strings.Contains(got, "webhook failed") || !strings.Contains(got, "h.example") {
		t.Errorf("redacted logs lost their text: %s", got)
	}
}

func agentFatal(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
