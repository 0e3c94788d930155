// Command researcher is the Go agent of the example mesh (examples/mesh):
// it takes research tasks handed to it with a delegation token, asks
// MeshGuard before it reads (acting for the chain that handed it the task),
// and hands the report on to the emailer with a delegation of its own,
// minted through the Go SDK (client/agent).
//
// It listens on 127.0.0.1 (LISTEN, default an ephemeral port) and prints
// "listening on http://ADDR" first; MESHGUARD_URL, MESHGUARD_TOKEN and
// EMAILER_URL configure it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/client/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "researcher:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	a, err := agent.New(os.Getenv("MESHGUARD_URL"), os.Getenv("MESHGUARD_TOKEN"))
	if err != nil {
		return err
	}
	emailer := os.Getenv("EMAILER_URL")
	if emailer == "" {
		return errors.New("EMAILER_URL is not set")
	}
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	r := &researcher{me: a, emailer: emailer, peers: &http.Client{Timeout: 30 * time.Second}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tasks", r.task)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type researcher struct {
	me      *agent.Agent
	emailer string
	// peers calls the other agents: it carries the delegation token and the
	// trace, never this agent's own token (that is for MeshGuard only).
	peers *http.Client
}

// task is one research task: {"topic": "...", "reportTo": "..."}.
type task struct {
	Topic    string `json:"topic"`
	ReportTo string `json:"reportTo"`
}

// step is one thing an agent did or was refused, as the mesh reports it.
type step struct {
	Agent   string `json:"agent"`
	Action  string `json:"action"`
	Outcome string `json:"outcome"` // allowed, denied, minted, refused
	Reason  string `json:"reason,omitempty"`
}

type answer struct {
	Steps []step `json:"steps"`
}

func (r *researcher) task(w http.ResponseWriter, req *http.Request) {
	var t task
	if err := json.NewDecoder(io.LimitReader(req.Body, 64<<10)).Decode(&t); err != nil || t.Topic == "" || t.ReportTo == "" {
		http.Error(w, `{"error":"bad_request","message":"expected {\"topic\",\"reportTo\"}"}`, http.StatusBadRequest)
		return
	}
	// Continue the trace of the agent that handed the task on, and act for
	// its chain: without a delegation token there is no task to act on.
	ctx, err := agent.WithTraceParent(req.Context(), req.Header.Get(api.HeaderTraceParent))
	if err != nil {
		ctx = req.Context()
	}
	me, err := r.me.ActingFor(req.Header.Get(api.HeaderDelegation))
	if err != nil {
		http.Error(w, `{"error":"unauthorized","message":"a task comes with a delegation token"}`, http.StatusUnauthorized)
		return
	}
	var out answer
	say := func(s step) {
		out.Steps = append(out.Steps, s)
		fmt.Println(strings.TrimSpace(s.Action + " " + s.Outcome + " " + s.Reason))
	}

	// 1. Read the papers, if MeshGuard allows it for this chain.
	if _, err := me.Require(ctx, "read:papers", "/papers/"+t.Topic, nil); err != nil {
		say(refusal("researcher", "read:papers", err))
		reply(w, statusOf(err), out)
		return
	}
	say(step{Agent: "researcher", Action: "read:papers", Outcome: "allowed"})

	// 2. Hand the report on to the emailer: one hop, mail and drafts.
	del, err := me.Delegate(ctx, "emailer", []string{"write:email", "write:notes/drafts/*"}, 1, 10*time.Minute)
	if err != nil {
		say(refusal("researcher", "delegate:emailer", err))
		reply(w, statusOf(err), out)
		return
	}
	say(step{Agent: "researcher", Action: "delegate:emailer", Outcome: "minted"})

	// 3. The emailer sends the report, then is asked to file a draft in
	// notes: the orchestrator's ceiling does not reach that far.
	body := map[string]string{"to": t.ReportTo, "subject": "Survey: " + t.Topic, "text": "Three papers on " + t.Topic + "."}
	for _, path := range []string{"/send", "/drafts"} {
		steps, err := r.callEmailer(ctx, path, del.Token, body)
		if err != nil {
			say(step{Agent: "emailer", Action: path, Outcome: "unreachable", Reason: err.Error()})
			reply(w, http.StatusBadGateway, out)
			return
		}
		out.Steps = append(out.Steps, steps...)
	}
	reply(w, http.StatusOK, out)
}

// callEmailer posts to the emailer with the delegation minted for it and
// the current trace; it returns the steps the emailer reports.
func (r *researcher) callEmailer(ctx context.Context, path, delegation string, body any) ([]step, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.emailer+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderDelegation, delegation)
	req.Header.Set(api.HeaderTraceParent, agent.TraceParent(ctx))
	res, err := r.peers.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the emailer: %w", err)
	}
	defer res.Body.Close()
	var a answer
	if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(&a); err != nil {
		return nil, fmt.Errorf("the emailer's answer (%d): %w", res.StatusCode, err)
	}
	return a.Steps, nil
}

// refusal is the step for a call MeshGuard refused or could not answer:
// either way the agent does not act.
func refusal(who, action string, err error) step {
	s := step{Agent: who, Action: action, Outcome: "refused", Reason: err.Error()}
	var e *agent.Error
	if errors.As(err, &e) {
		s.Reason = e.Reason
		if e.Kind == agent.KindDenied {
			s.Outcome = "denied"
		}
		if s.Reason == "" {
			s.Reason = string(e.Kind)
		}
	}
	return s
}

func statusOf(err error) int {
	var e *agent.Error
	if errors.As(err, &e) && e.Status != 0 {
		return e.Status
	}
	return http.StatusBadGateway
}

func reply(w http.ResponseWriter, status int, a answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a)
}
