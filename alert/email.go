package alert

import (
	"context"
	"crypto/tls"
	"fmt"
	"html"
	"strings"

	mail "github.com/wneessen/go-mail"
)

// Email sends alerts over SMTP (ALERT_SMTP_HOST, ALERT_SMTP_PORT) from
// ALERT_EMAIL_FROM to every address of ALERT_EMAIL_TO, as plain text with
// an HTML alternative. STARTTLS is mandatory: a server that does not offer
// it gets nothing, so credentials and alerts never cross the network in
// clear. With ALERT_SMTP_USER, the client authenticates with the strongest
// mechanism the server offers after STARTTLS.
type Email struct {
	From       string
	To         []string
	Host       string
	Port       int
	User, Pass string
	// TLSConfig verifies the server (nil: the system roots, for Host).
	TLSConfig *tls.Config
}

// Name identifies the provider in metrics and logs.
func (e *Email) Name() string { return "email" }

// Send delivers a to every recipient in one message.
func (e *Email) Send(ctx context.Context, a *Alert) error {
	m := mail.NewMsg()
	if err := m.From(e.From); err != nil {
		return fmt.Errorf("%w: email: from %q: %w", ErrDelivery, e.From, err)
	}
	if err := m.To(e.To...); err != nil {
		return fmt.Errorf("%w: email: to: %w", ErrDelivery, err)
	}
	m.Subject(fmt.Sprintf("[MeshGuard %s] %s", a.Severity, a.Title))
	m.SetBodyString(mail.TypeTextPlain, emailText(a))
	m.AddAlternativeString(mail.TypeTextHTML, emailHTML(a))

	opts := []mail.Option{mail.WithPort(e.Port), mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTimeout(DefaultTimeout)}
	tc := e.TLSConfig
	if tc == nil {
		tc = &tls.Config{ServerName: e.Host, MinVersion: tls.VersionTLS12}
	}
	opts = append(opts, mail.WithTLSConfig(tc))
	if e.User != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(e.User), mail.WithPassword(e.Pass))
	}
	c, err := mail.NewClient(e.Host, opts...)
	if err != nil {
		return fmt.Errorf("%w: email: %w", ErrDelivery, err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("%w: email via %s:%d: %w", ErrDelivery, e.Host, e.Port, err)
	}
	return nil
}

// emailLines are the alert's fields as label and value, in reading order.
func emailLines(a *Alert) [][2]string {
	e := &a.Entry
	lines := [][2]string{{"Severity", string(a.Severity)}, {"Trigger", string(a.Trigger)}}
	if a.Approval != nil {
		lines = append(lines, approvalLines(a.Approval)...)
		return append(lines, [2]string{"Alert ID", a.ID})
	}
	for _, f := range [][2]string{
		{"Agent", strings.TrimSpace(e.AgentName + " " + e.AgentID)}, {"Trust tier", e.TrustTier}, {"Decision", e.Decision},
		{"Action", e.Action}, {"Request", strings.TrimSpace(e.Method + " " + e.Path)}, {"Policy", e.PolicyName},
		{"Reason", e.Reason}, {"Trace ID", e.TraceID},
	} {
		if f[1] != "" {
			lines = append(lines, f)
		}
	}
	lines = append(lines, [2]string{"Time", a.Timestamp.Format("2006-01-02 15:04:05 MST")})
	if a.Instance != "" || a.Environment != "" {
		lines = append(lines, [2]string{"From", strings.TrimSpace(a.Instance + " " + a.Environment)})
	}
	return append(lines, [2]string{"Alert ID", a.ID})
}

func emailText(a *Alert) string {
	var b strings.Builder
	b.WriteString(a.Title + "\n\n" + a.Message + "\n\n")
	for _, l := range emailLines(a) {
		fmt.Fprintf(&b, "%-12s %s\n", l[0]+":", l[1])
	}
	if r := a.Approval; r != nil {
		if r.Links != nil {
			// Each link opens a page that asks again: following it decides nothing.
			fmt.Fprintf(&b, "\nApprove: %s\nDeny:    %s\n", r.Links.Approve, r.Links.Deny)
		} else {
			fmt.Fprintf(&b, "\nDecide with: %s  (or: meshguard approvals deny %s)\n", r.Command, r.ID)
		}
	}
	return b.String()
}

// emailHTML escapes every value: agent names, actions and paths come from
// the mesh, not from MeshGuard.
func emailHTML(a *Alert) string {
	var b strings.Builder
	b.WriteString("<html><body><h2>" + html.EscapeString(a.Title) + "</h2><p>" + html.EscapeString(a.Message) + "</p><table>")
	for _, l := range emailLines(a) {
		b.WriteString("<tr><th align=\"left\">" + html.EscapeString(l[0]) + "</th><td><code>" + html.EscapeString(l[1]) + "</code></td></tr>")
	}
	b.WriteString("</table>")
	if r := a.Approval; r != nil {
		if r.Links != nil {
			b.WriteString(`<p><a href="` + html.EscapeString(r.Links.Approve) + `">Approve</a> · <a href="` + html.EscapeString(r.Links.Deny) + `">Deny</a></p>`)
		} else {
			b.WriteString("<p>Decide with <code>" + html.EscapeString(r.Command) + "</code> (or <code>meshguard approvals deny " + html.EscapeString(r.ID) + "</code>).</p>")
		}
	}
	b.WriteString("</body></html>")
	return b.String()
}
