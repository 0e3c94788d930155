package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/internal/httpjson"
)

// Checkpoints signs the audit trail's heads (audit.Checkpointer).
type Checkpoints interface {
	Sign(ctx context.Context) (audit.Checkpoint, error)
	Last() *audit.Checkpoint
	VerifierKey() string
}

// maxVerifyBody bounds POST /admin/audit/verify's body (a checkpoint
// lists one line a chain).
const maxVerifyBody = 4 << 20

// verifyProgressEvery is how often a streamed verification reports
// progress (and keeps the connection alive).
const verifyProgressEvery = 250 * time.Millisecond

// auditCheckpoint is GET /admin/audit/checkpoint: the trail's current
// heads, signed now.
func (a *API) auditCheckpoint(w http.ResponseWriter, r *http.Request) {
	if _, msg := queryParams(r); msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	cp, err := a.cfg.Checkpoints.Sign(r.Context())
	if errors.Is(err, audit.ErrCheckpointNotReached) {
		httpjson.WriteError(w, http.StatusConflict, "conflict", "%s", err)
		return
	}
	if err != nil {
		a.internalError(w, r, "signing an audit checkpoint", err)
		return
	}
	httpjson.WriteJSON(w, http.StatusOK, cp)
}

// verifyAuditStream is POST /admin/audit/verify: the verification as an
// NDJSON stream — a progress line every second, then the result — so it is
// bound by no request timeout, whatever the trail's size.
func (a *API) verifyAuditStream(w http.ResponseWriter, r *http.Request) {
	if _, msg := queryParams(r); msg != "" {
		httpjson.BadRequest(w, "%s", msg)
		return
	}
	body, ok := httpjson.ReadBody(w, r, maxVerifyBody)
	if !ok {
		return
	}
	var req api.AuditVerifyRequest
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			httpjson.BadRequest(w, "body: %v", err)
			return
		}
	}
	var opts audit.VerifyOptions
	var used *api.AuditCheckpointUsed
	switch {
	case req.Checkpoint != "" && req.Incremental:
		httpjson.BadRequest(w, "give a checkpoint or incremental, not both")
		return
	case req.Checkpoint != "":
		cp, err := audit.ParseCheckpoint([]byte(req.Checkpoint), req.Key)
		if err != nil {
			httpjson.BadRequest(w, "checkpoint: %v", err)
			return
		}
		opts.Checkpoint = &cp
	case req.Incremental:
		if a.cfg.Checkpoints == nil || a.cfg.Checkpoints.Last() == nil {
			httpjson.BadRequest(w, "incremental: this server has signed no checkpoint yet; verify in full")
			return
		}
		opts.Checkpoint = a.cfg.Checkpoints.Last()
	}
	if cp := opts.Checkpoint; cp != nil {
		used = &api.AuditCheckpointUsed{Time: cp.Time, Key: cp.Key}
		used.SignedHere = a.cfg.Checkpoints != nil && cp.Key == a.cfg.Checkpoints.VerifierKey()
	}

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()    // the headers now: a client waits for them no longer than its request timeout
	var mu sync.Mutex // the progress ticker and the result share w
	send := func(line api.AuditVerifyLine) {
		mu.Lock()
		defer mu.Unlock()
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		b, _ := json.Marshal(line)
		_, _ = w.Write(append(b, '\n'))
		_ = rc.Flush()
	}
	send(api.AuditVerifyLine{}) // started: the client knows before the first second
	var verified atomic.Int64
	opts.Progress = verified.Store
	opts.ProgressEvery = 10_000
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(verifyProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				send(api.AuditVerifyLine{Verified: verified.Load()})
			}
		}
	}()
	rep, err := audit.Verify(r.Context(), a.cfg.Audit, opts)
	close(done)
	out, err := verifyResult(rep, err)
	if err != nil {
		// The status is sent: the result says it failed, the log why.
		a.log.Error("admin: verifying the audit trail", "error", err)
		if errors.Is(r.Context().Err(), context.Canceled) {
			return // the client went away
		}
		send(api.AuditVerifyLine{Verified: rep.Verified, Result: &api.AuditVerifyResult{Verified: rep.Verified,
			Error: "the verification could not finish: reading the store failed (see the server log)"}})
		return
	}
	out.Checkpoint = used
	send(api.AuditVerifyLine{Verified: out.Verified, Result: &out})
}
