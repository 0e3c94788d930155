package filterdecider_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/meshguard/meshguard/filterconfig"
	"github.com/meshguard/meshguard/filterconfig/filtertest"
	"github.com/meshguard/meshguard/filterdecider"
)

// TestProtocolDecisionsMatchTheServer: MCP tool calls and A2A messages,
// decided on their bodies, get the same decisions from the filter's
// engine as from MeshGuard's when ext_authz hands it the body with the
// route context of a catalogue service declaring the protocol — or the
// filter defers, with the route's protocol, exactly where MeshGuard mints
// the delegation of an A2A hop. A denial of a JSON-RPC POST is a
// JSON-RPC error on both sides.
func TestProtocolDecisionsMatchTheServer(t *testing.T) {
	env := filtertest.New(t)
	cfg, err := filterconfig.Parse(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	local, err := filterdecider.New(cfg, filterdecider.Options{Now: func() time.Time { return filtertest.Now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range env.ProtocolCases() {
		t.Run(c.Name, func(t *testing.T) {
			sr, bad := env.ServerRequest(&c)
			if bad != "" {
				t.Fatalf("refused by the header scan: %s", bad)
			}
			want, err := env.F.Engine.Check(ctx, &sr)
			if err != nil {
				t.Fatal(err)
			}
			if want.Status != c.Status || want.Reason != c.Reason || want.Action != c.Action {
				t.Fatalf("the server decided %d %s %q (%s), the table says %d %s %q", want.Status, want.Reason, want.Action, want.Message, c.Status, c.Reason, c.Action)
			}

			lr, _ := request(&c.Case)
			lr.Body = c.Body
			local.Prepare(&lr)
			if reads := c.Method == "POST"; local.WantsBody(&lr) != reads {
				t.Fatalf("WantsBody = %v for %s %s", !reads, c.Method, c.Path)
			}
			got, err := local.Check(ctx, &lr)
			if c.Defer {
				if !errors.Is(err, filterdecider.ErrDefer) {
					t.Fatalf("the filter decided %d %s (%v); it must defer to MeshGuard", got.Status, got.Reason, err)
				}
				if lr.RouteProtocol != sr.RouteProtocol || lr.RouteService != sr.RouteService {
					t.Fatalf("deferred with protocol %q service %q; Envoy's route gives %q %q", lr.RouteProtocol, lr.RouteService, sr.RouteProtocol, sr.RouteService)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			Same(t, &want, &got)
			if !want.Allowed {
				wb, gb := rpcError(t, want.DenyBody()), rpcError(t, got.DenyBody())
				if wb != gb || (c.Method == "POST") != (wb.JSONRPC == "2.0") {
					t.Fatalf("deny bodies\nserver: %+v\nfilter: %+v", wb, gb)
				}
			}
		})
	}
}

// rpcErr is a denial as its client reads it — a JSON-RPC error response
// (for a JSON-RPC POST) or the plain deny body — but for the ids of the
// decision.
type rpcErr struct {
	JSONRPC, ID          string
	Code                 int
	Message, Reason, Err string
}

func rpcError(t *testing.T, body []byte) rpcErr {
	t.Helper()
	var b struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("deny body %q: %v", body, err)
	}
	if b.JSONRPC == "" {
		var d struct{ Error, Message, Reason string }
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatalf("deny body %q: %v", body, err)
		}
		return rpcErr{Message: d.Message, Reason: d.Reason, Err: d.Error}
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Error, Reason string
		} `json:"data"`
	}
	if err := json.Unmarshal(b.Error, &e); err != nil {
		t.Fatalf("JSON-RPC error %q: %v", b.Error, err)
	}
	return rpcErr{b.JSONRPC, string(b.ID), e.Code, e.Message, e.Data.Reason, e.Data.Error}
}
