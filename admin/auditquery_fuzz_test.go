package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/meshguard/meshguard/admin"
	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/internal/httpjson"
	"github.com/meshguard/meshguard/store"
)

// queriedAudit is the real audit trail, noting each filter GET /admin/audit
// queries it with and what the store answered.
type queriedAudit struct {
	admin.AuditLog
	mu      sync.Mutex
	filters []store.AuditFilter
	errs    []error
}

func (q *queriedAudit) QueryAudit(ctx context.Context, f store.AuditFilter) (store.AuditPage, error) {
	page, err := q.AuditLog.QueryAudit(ctx, f)
	q.mu.Lock()
	q.filters, q.errs = append(q.filters, f), append(q.errs, err)
	q.mu.Unlock()
	return page, err
}

// take returns the queries since the last take.
func (q *queriedAudit) take() ([]store.AuditFilter, []error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f, e := q.filters, q.errs
	q.filters, q.errs = nil, nil
	return f, e
}

var traceIDHex = regexp.MustCompile(`^[0-9a-f]{32}$`)

// FuzzAuditQuery: GET /admin/audit with any query string. A query the API
// takes becomes a bounded filter (a page of 1 to store.MaxAuditLimit
// records, a decision of allow or deny, a well-formed trace id, text a
// record can hold) that the client encodes back to the very same filter; a
// query it refuses gets a 400 naming what is wrong, and no query of the
// trail runs (the store refuses a bad cursor before any SQL). Nothing is
// a 500, and a query string that does not parse is refused, not read in
// part.
func FuzzAuditQuery(f *testing.F) {
	for _, seed := range []string{
		"", "limit=10", "limit=0", "limit=1001", "limit=+5", "limit=-1", "limit=99999999999999999999",
		"agent=orchestrator", "agent=agent_x&action=read:*", "action=write:email", "action=%00", "agent=%FF",
		"decision=allow", "decision=DENY", "traceId=4bf92f3577b34da6a3ce929d0e0e4736", "traceId=4BF9",
		"from=2026-03-02T10:00:00Z&to=2026-03-02T11:00:00%2B01:00", "from=2026-03-02T11:00:00Z&to=2026-03-02T10:00:00Z", "from=yesterday",
		"cursor=c1z", "cursor=x", "cursor=c-1", "limit=1&limit=2", "since=2026-03-02T10:00:00Z", "agent=%zz", "limit=5;agent=x",
	} {
		f.Add(seed)
	}
	fx := enginetest.NewMesh(f, enginetest.Options{})
	spy := &queriedAudit{AuditLog: fx.F.Store}
	a, err := admin.New(admin.Config{
		Store: fx.F.Store, Keys: fx.F.Keys, Issuer: fx.F.Issuer, Verifier: fx.F.Verifier, Tokens: fx.F.Cached, Agents: fx.F.Agents,
		Policies: fx.F.Policies, Audit: spy, AdminToken: adminToken, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	router := httpjson.NewRouter(nil)
	a.Register(router)
	srv := httptest.NewServer(router)
	f.Cleanup(srv.Close)
	c, err := client.New(client.Config{BaseURL: srv.URL, AdminToken: adminToken, Timeout: 10 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/admin/audit", nil)
		req.URL.RawQuery = raw
		req.Header.Set("X-Admin-Token", adminToken)
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, req)
		queried, errs := spy.take()

		_, perr := url.ParseQuery(raw)
		switch {
		case rec.Code == http.StatusBadRequest:
			var b api.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error != "bad_request" || b.Message == "" {
				t.Fatalf("a refusal without a message: %s", rec.Body)
			}
			for _, err := range errs {
				if !errors.Is(err, store.ErrInvalidFilter) {
					t.Fatalf("?%s refused (%s), after a query of the trail ran (%v)", raw, b.Message, err)
				}
			}
			return
		case rec.Code != http.StatusOK:
			t.Fatalf("?%s: status %d: %s", raw, rec.Code, rec.Body)
		case perr != nil:
			t.Fatalf("?%s does not parse (%v), and was taken", raw, perr)
		case len(queried) != 1 || errs[0] != nil:
			t.Fatalf("?%s taken, with %d queries of the trail (%v)", raw, len(queried), errs)
		}
		got := queried[0]
		switch {
		case got.Limit < 0 || got.Limit > store.MaxAuditLimit:
			t.Fatalf("?%s: limit %d", raw, got.Limit)
		case got.Decision != "" && got.Decision != "allow" && got.Decision != "deny":
			t.Fatalf("?%s: decision %q", raw, got.Decision)
		case got.TraceID != "" && !traceIDHex.MatchString(got.TraceID):
			t.Fatalf("?%s: trace id %q", raw, got.TraceID)
		case got.After != "":
			t.Fatalf("?%s: a page query with after %q", raw, got.After)
		}
		for _, s := range []string{got.AgentID, got.Action} {
			if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
				t.Fatalf("?%s: %q reached the store", raw, s)
			}
		}

		// Encoded again by the client, the filter is the same.
		if _, err := c.QueryAudit(t.Context(), client.AuditFilter{Agent: got.AgentID, Action: got.Action, Decision: got.Decision,
			TraceID: got.TraceID, From: got.From, To: got.To, Limit: got.Limit, Cursor: got.Before}); err != nil {
			t.Fatalf("?%s was taken as %+v, which the client cannot send: %v", raw, got, err)
		}
		again, _ := spy.take()
		if len(again) != 1 || !sameFilter(again[0], got) {
			t.Fatalf("?%s was taken as %+v; the client's encoding of it as %+v", raw, got, again)
		}
	})
}

func sameFilter(a, b store.AuditFilter) bool {
	if !a.From.Equal(b.From) || !a.To.Equal(b.To) {
		return false
	}
	a.From, a.To, b.From, b.To = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return a == b
}
