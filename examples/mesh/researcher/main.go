// Command researcher is the Go agent of the example mesh (examples/mesh):
// it takes research tasks that reach it through MeshGuard's gateway, which
// decided the hop and minted the delegation it acts for; asks MeshGuard
// before it reads (acting for that chain); and hands the report on to the
// emailer through the gateway too, with the Go SDK's HTTP client
// (client/agent), which adds its token, the delegation and the trace.
//
// It listens on 127.0.0.1 (LISTEN, default an ephemeral port) and prints
// "listening on http://ADDR" first; MESHGUARD_URL and MESHGUARD_TOKEN
// configure it, EMAILER_SERVICE names the emailer's service in MeshGuard's
// catalogue (default emailer).
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
	emailer := os.Getenv("EMAILER_SERVICE")
	if emailer == "" {
		emailer = "emailer"
	}
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	// The emailer is reached through the gateway: /proxy/<its service>.
	r := &researcher{me: a, emailer: strings.TrimSuffix(os.Getenv("MESHGUARD_URL"), "/") + "/proxy/" + emailer}
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
	emailer string // the emailer's base URL, on MeshGuard's gateway
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
	fmt.Printf("task received: %s\n", t.Topic)
	// Continue the trace of the agent that handed the task on, and act for
	// its chain: MeshGuard's gateway decided the hop and minted this
	// agent's delegation (it strips any the caller sent). Without one
	// there is no task to act on.
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

	// 2. Hand the report on to the emailer, through the gateway: MeshGuard
	// decides each hop for this chain and mints the emailer's delegation.
	// It sends the report, then is asked to file a draft in notes: the
	// orchestrator's ceiling does not reach that far, so MeshGuard refuses
	// that hop and the emailer never hears of it.
	peers := me.HTTPClient(nil)
	body := map[string]string{"to": t.ReportTo, "subject": "Survey: " + t.Topic, "text": "Three papers on " + t.Topic + "."}
	for _, path := range []string{"/send", "/drafts"} {
		steps, err := r.callEmailer(ctx, peers, path, body)
		if err != nil {
			say(step{Agent: "emailer", Action: path, Outcome: "unreachable", Reason: err.Error()})
			reply(w, http.StatusBadGateway, out)
			return
		}
		out.Steps = append(out.Steps, steps...)
	}
	reply(w, http.StatusOK, out)
}

// callEmailer posts to the emailer through MeshGuard's gateway with the
// SDK's client (this agent's token, the delegation it acts for, the
// trace); it returns the steps the emailer reports, or, when MeshGuard
// refused the hop, that refusal as the researcher's step.
func (r *researcher) callEmailer(ctx context.Context, peers *http.Client, path string, body any) ([]step, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.emailer+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := peers.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the emailer: %w", err)
	}
	defer res.Body.Close()
	var refusal *agent.Error
	if errors.As(agent.DenialFrom(res), &refusal) {
		// MeshGuard's own answer: the hop was refused, nothing reached the emailer.
		s := step{Agent: "researcher", Action: refusal.Action, Outcome: "refused", Reason: refusal.Reason}
		if refusal.Kind == agent.KindDenied {
			s.Outcome = "denied"
		}
		fmt.Println(strings.TrimSpace("hand-on " + path + " " + s.Outcome + " " + s.Reason))
		return []step{s}, nil
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("the emailer's answer (%d): %w", res.StatusCode, err)
	}
	var a answer
	if err := json.Unmarshal(data, &a); err != nil {
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
