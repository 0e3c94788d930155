package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshguard/meshguard/client/agent"
)

// TestWaitForApprovalPacesAServerThatDoesNotHold: a server that answers
// "pending" at once instead of holding the poll (a buggy proxy, an old
// server, one shutting down) must not get a poll storm: WaitForApproval
// polls it at most once a second until its wait ends.
func TestWaitForApprovalPacesAServerThatDoesNotHold(t *testing.T) {
	var polls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"apr_s","status":"pending","action":"a:b","agentId":"ag","createdAt":"2026-01-01T00:00:00Z","expiresAt":"2026-01-01T00:00:00Z","traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}`)
	}))
	t.Cleanup(srv.Close)
	a, err := agent.New(srv.URL, secretToken)
	if err != nil {
		t.Fatal(err)
	}
	const wait = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err = a.WaitForApproval(ctx, "apr_s")
	if !errors.Is(err, agent.ErrApprovalTimeout) {
		t.Fatalf("err = %v, want ErrApprovalTimeout", err)
	}
	// One poll a second at most, plus the first: unpaced, it is thousands.
	if n, most := polls.Load(), int64(wait/time.Second)+1; n > most {
		t.Fatalf("%d polls in a %v wait, want at most %d", n, wait, most)
	}
}
