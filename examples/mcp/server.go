package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// office is the example's state: a mailbox and a paper library, in memory.
// The walk reads it to show that a denied call reached no tool.
type office struct {
	mu     sync.Mutex
	inbox  []string
	sent   []string // "to: subject", in order
	papers map[string]string
}

func newOffice() *office {
	return &office{
		inbox: []string{"ann@example.com: standup notes", "bob@example.com: draft for review"},
		papers: map[string]string{
			"p1": "Delegation chains for agent meshes",
			"p2": "Tool calling considered harmful",
			"p3": "Agents that read papers",
		},
	}
}

// Sent returns the mails sent so far.
func (o *office) Sent() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.sent)
}

// Papers returns the ids of the library's papers, sorted.
func (o *office) Papers() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Sorted(maps.Keys(o.papers))
}

type sendArgs struct {
	To      string `json:"to" jsonschema:"the recipient's address"`
	Subject string `json:"subject" jsonschema:"the subject line"`
	Body    string `json:"body,omitempty" jsonschema:"the text of the mail"`
}

type searchArgs struct {
	Query string `json:"query" jsonschema:"words the title contains"`
	Limit int    `json:"limit,omitempty" jsonschema:"at most this many results"`
}

type deleteArgs struct {
	ID string `json:"id" jsonschema:"the paper's id"`
}

func text(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// mailServer is the mail service: send_email and list_inbox.
func (o *office) mailServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mail", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "send_email", Description: "Send a mail"},
		func(_ context.Context, _ *mcp.CallToolRequest, in sendArgs) (*mcp.CallToolResult, any, error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.sent = append(o.sent, in.To+": "+in.Subject)
			return text("sent %q to %s", in.Subject, in.To), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "list_inbox", Description: "List the mails in the inbox"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			return text("%d mails: %s", len(o.inbox), strings.Join(o.inbox, "; ")), nil, nil
		})
	return s
}

// papersServer is the papers service: search_papers and delete_paper.
func (o *office) papersServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "papers", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "search_papers", Description: "Find papers by words in their title"},
		func(_ context.Context, _ *mcp.CallToolRequest, in searchArgs) (*mcp.CallToolResult, any, error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			var found []string
			for _, id := range slices.Sorted(maps.Keys(o.papers)) {
				if strings.Contains(strings.ToLower(o.papers[id]), strings.ToLower(in.Query)) {
					found = append(found, id+" "+o.papers[id])
				}
			}
			if in.Limit > 0 && len(found) > in.Limit {
				found = found[:in.Limit]
			}
			return text("%d found: %s", len(found), strings.Join(found, "; ")), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "delete_paper", Description: "Delete a paper from the library"},
		func(_ context.Context, _ *mcp.CallToolRequest, in deleteArgs) (*mcp.CallToolResult, any, error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			if _, ok := o.papers[in.ID]; !ok {
				return nil, nil, fmt.Errorf("no paper %q", in.ID)
			}
			delete(o.papers, in.ID)
			return text("deleted %s", in.ID), nil, nil
		})
	return s
}

// handler serves both services over Streamable HTTP: mail at /mail/mcp,
// papers at /papers/mcp. Stateless, answering in JSON: each POST stands on
// its own, so a curl with one tools/call needs no initialize handshake.
func (o *office) handler() http.Handler {
	opts := &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}
	mail, papers := o.mailServer(), o.papersServer()
	mux := http.NewServeMux()
	mux.Handle("/mail/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return mail }, opts))
	mux.Handle("/papers/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return papers }, opts))
	return mux
}
