package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Webhook headers (docs/alerting.md).
const (
	HeaderEvent     = "X-MeshGuard-Event"
	HeaderTrigger   = "X-MeshGuard-Trigger"
	HeaderSignature = "X-MeshGuard-Signature"
)

// DefaultTimeout bounds one delivery.
const DefaultTimeout = 10 * time.Second

// ErrDelivery wraps every failed delivery; the outbox retries them.
var ErrDelivery = errors.New("alert delivery failed")

// ErrRejected also wraps a delivery the receiver refused as bad (a 4xx
// other than 408 and 429): retrying the same alert will not help for long.
var ErrRejected = errors.New("the receiver refused the alert")

// Webhook posts the JSON payload of docs/alerting.md to a URL (ALERT_WEBHOOK_URL),
// signed with ALERT_WEBHOOK_SECRET when one is set.
type Webhook struct {
	URL    string
	Secret []byte
	// Client makes the requests (one with DefaultTimeout if nil).
	Client *http.Client
}

// Name identifies the provider in metrics and logs.
func (w *Webhook) Name() string { return "webhook" }

// Send delivers a. Anything but a 2xx answer is an ErrDelivery.
func (w *Webhook) Send(ctx context.Context, a *Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("webhook: encoding alert %s: %w", a.ID, err)
	}
	hdr := http.Header{}
	hdr.Set(HeaderEvent, a.Event)
	hdr.Set(HeaderTrigger, string(a.Trigger))
	if len(w.Secret) > 0 {
		hdr.Set(HeaderSignature, Sign(w.Secret, body))
	}
	return post(ctx, w.Client, "webhook", w.URL, hdr, body)
}

// Sign is the X-MeshGuard-Signature of body: "sha256=" and the hex
// HMAC-SHA256 of the raw body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is body's under secret, in constant
// time: what a receiver calls on the raw body before parsing it.
func Verify(secret, body []byte, signature string) bool {
	hexSum, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// post sends one JSON body; a non-2xx answer or a transport failure is an
// ErrDelivery that says which (never the URL's query, which may hold a
// token, as Slack's paths do: only the host).
func post(ctx context.Context, c *http.Client, provider, url string, hdr http.Header, body []byte) error {
	if c == nil {
		c = &http.Client{Timeout: DefaultTimeout}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		// Not err itself: it would quote the URL, and its path may hold a
		// token.
		return fmt.Errorf("%w: %s: its URL cannot be used", ErrDelivery, provider)
	}
	req.Header = hdr
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "meshguard-alerts/1")
	res, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s to %s: %w", ErrDelivery, provider, req.URL.Host, errors.Unwrap(err))
	}
	defer res.Body.Close()
	// Read a little, so the connection can be reused; never the whole.
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	switch c := res.StatusCode; {
	case c >= 400 && c < 500 && c != 408 && c != 429:
		return fmt.Errorf("%w: %w: %s to %s answered %d", ErrDelivery, ErrRejected, provider, req.URL.Host, c)
	case c < 200 || c > 299:
		return fmt.Errorf("%w: %s to %s answered %d", ErrDelivery, provider, req.URL.Host, c)
	}
	return nil
}
