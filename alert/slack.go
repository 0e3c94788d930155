package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Slack posts to a Slack incoming webhook (ALERT_SLACK_WEBHOOK) a Block Kit
// message a person reads at a glance: the title, then agent, decision,
// action, policy, request, trace id and reason, then where it came from.
type Slack struct {
	URL string
	// Client makes the requests (one with DefaultTimeout if nil).
	Client *http.Client
}

// Name identifies the provider in metrics and logs.
func (s *Slack) Name() string { return "slack" }

// Send delivers a.
func (s *Slack) Send(ctx context.Context, a *Alert) error {
	body, err := json.Marshal(slackMessage(a))
	if err != nil {
		return fmt.Errorf("slack: encoding alert %s: %w", a.ID, err)
	}
	return post(ctx, s.Client, "slack", s.URL, http.Header{}, body)
}

// The parts of Block Kit MeshGuard uses.
type (
	slackText struct {
		Type string `json:"type"` // plain_text or mrkdwn
		Text string `json:"text"`
		// Verbatim keeps mrkdwn from turning URLs and names into links.
		Verbatim bool `json:"verbatim,omitempty"`
	}
	slackBlock struct {
		Type     string      `json:"type"` // header, section, context
		Text     *slackText  `json:"text,omitempty"`
		Fields   []slackText `json:"fields,omitempty"`
		Elements []any       `json:"elements,omitempty"` // slackText; slackButton in actions
	}
	// slackButton is a link button: Slack opens its URL in the browser,
	// where the confirmation page asks again (a GET never decides).
	slackButton struct {
		Type  string    `json:"type"` // button
		Text  slackText `json:"text"`
		URL   string    `json:"url"`
		Style string    `json:"style,omitempty"` // primary, danger
	}
	slackPayload struct {
		Text   string       `json:"text"` // the notification's fallback
		Blocks []slackBlock `json:"blocks"`
	}
)

var severityMark = map[Severity]string{SeverityCritical: "🔴", SeverityWarning: "🟠", SeverityInfo: "🔵"}

func slackMessage(a *Alert) slackPayload {
	title := severityMark[a.Severity] + " " + a.Title
	e := &a.Entry
	blocks := []slackBlock{
		{Type: "header", Text: &slackText{Type: "plain_text", Text: cut(title, 140)}},
		{Type: "section", Text: &slackText{Type: "mrkdwn", Text: cut(escape(a.Message), 2900), Verbatim: true}},
	}
	if a.Approval != nil {
		blocks = append(blocks, slackApproval(a.Approval)...)
	} else if a.Trigger == TriggerDeny || a.Trigger == TriggerRateLimit {
		request := strings.TrimSpace(e.Method + " " + e.Path)
		var fields []slackText
		for _, f := range [][2]string{
			{"Agent", orUnknown(e.AgentName) + " (" + orUnknown(e.TrustTier) + ")"},
			{"Decision", e.Decision},
			{"Action", e.Action},
			{"Policy", e.PolicyName},
			{"Request", request},
			{"Reason", e.Reason},
			{"Trace ID", e.TraceID},
		} {
			if f[1] != "" {
				fields = append(fields, slackText{Type: "mrkdwn", Text: "*" + f[0] + "*\n" + code(f[1]), Verbatim: true})
			}
		}
		blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	}
	origin := "MeshGuard"
	if a.Instance != "" {
		origin += " " + a.Instance
	}
	if a.Environment != "" {
		origin += " · " + a.Environment
	}
	blocks = append(blocks, slackBlock{Type: "context", Elements: []any{slackText{Type: "mrkdwn", Verbatim: true, Text: cut(escape(fmt.Sprintf("%s · %s · %s · %s",
		origin, a.Severity, a.Trigger, a.Timestamp.Format("2006-01-02 15:04:05 MST"))), 1900)}}})
	// The fallback text is what notifications show, and Slack reads
	// mentions in it: escaped like every mrkdwn text.
	return slackPayload{Text: escape(cut(title, 300)), Blocks: blocks}
}

// slackApproval is what a person decides on: the request's fields, then
// the Approve and Deny buttons (signed links), or the CLI command when
// there are no links. A section holds at most 10 fields: the fields fill
// as many sections as they need, none left out (a person must see all
// that the approval is bound to).
func slackApproval(r *ApprovalRequest) []slackBlock {
	var blocks []slackBlock
	for f := range slices.Chunk(approvalLines(r), 10) {
		fields := make([]slackText, 0, len(f))
		for _, l := range f {
			fields = append(fields, slackText{Type: "mrkdwn", Text: "*" + l[0] + "*\n" + code(l[1]), Verbatim: true})
		}
		blocks = append(blocks, slackBlock{Type: "section", Fields: fields})
	}
	if r.Links != nil {
		return append(blocks, slackBlock{Type: "actions", Elements: []any{
			slackButton{Type: "button", Text: slackText{Type: "plain_text", Text: "Approve"}, URL: r.Links.Approve, Style: "primary"},
			slackButton{Type: "button", Text: slackText{Type: "plain_text", Text: "Deny"}, URL: r.Links.Deny, Style: "danger"},
		}})
	}
	return append(blocks, slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Verbatim: true,
		Text: "Decide with " + code(r.Command) + " (or `meshguard approvals deny " + escape(r.ID) + "`)."}})
}

// escape makes caller-supplied text inert in mrkdwn: it cannot mention
// channels or users or forge links.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// code sets a value in inline code, where mrkdwn formats nothing; escaped
// first, then cut, so it stays within a field's 2,000 characters.
func code(s string) string {
	return "`" + cut(strings.ReplaceAll(escape(s), "`", "'"), 1500) + "`"
}

// cut bounds text to n bytes on a rune boundary, an ellipsis after (Slack's
// limits: 150 characters in a header, 2,000 in a field, 3,000 in a
// section; bytes are never fewer than characters).
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
