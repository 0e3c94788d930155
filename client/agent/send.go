package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/meshguard/meshguard/api"
)

// request is one call to MeshGuard.
type request struct {
	op, method, path string
	body             []byte
	// retryAnswers: a 503, and a 429 that names its wait, are retried.
	retryAnswers bool
	// idempotent: nothing changes however often it is sent (a GET), so a
	// connection error, a timeout and any 5xx are retried too.
	idempotent bool
	// hold is how long MeshGuard may hold the answer (a long poll): the
	// request's own timeout is the hold plus the SDK's timeout. With
	// prefer, the request asks for it with Prefer: wait=N (RFC 7240).
	hold   time.Duration
	prefer bool
	query  string
}

// send sends one call, retrying what is safe to retry, and returns the
// final answer and the trace id it sent (every attempt carries the same
// traceparent); an error is always an *Error of kind unavailable.
//
// The rule, the same in every SDK (docs/sdk.md): a refused connection is
// retried (nothing reached a server); with retryAnswers, so is a 503, and a
// 429 that names its wait (Retry-After). A 429 naming none is returned at
// once: MeshGuard always names one, so a proxy answered. A wait of 0 is the
// backoff, never a hot loop; a wait over maxWait is returned to the caller.
func (a *Agent) send(ctx context.Context, r request) (status int, hdr http.Header, data []byte, trace string, err error) {
	u := *a.base
	u.Path += r.path
	u.RawQuery = r.query
	headers := a.Headers(ctx)
	if r.prefer {
		headers.Set("Prefer", "wait="+strconv.Itoa(int(r.hold/time.Second)))
	}
	trace = traceID(headers.Get(api.HeaderTraceParent))
	for attempt := 0; ; attempt++ {
		status, hdr, data, err := a.once(ctx, r, u.String(), headers)
		var wait time.Duration
		switch {
		case err != nil && ctx.Err() == nil && (refused(err) || r.idempotent):
			wait = backoff(attempt)
		case err != nil:
			return 0, nil, nil, trace, &Error{Kind: KindUnavailable, Op: r.op, Message: "MeshGuard could not be asked", Err: err, TraceID: trace}
		case r.idempotent && status >= 500 && status != http.StatusServiceUnavailable:
			wait = backoff(attempt)
		case (r.retryAnswers || r.idempotent) && (status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests):
			named, ok := retryAfter(hdr, data)
			if !ok && status == http.StatusTooManyRequests {
				return status, hdr, data, trace, nil
			}
			wait = max(named, backoff(attempt))
			if wait > a.maxWait {
				return status, hdr, data, trace, nil // the caller decides whether to wait that long
			}
		default:
			return status, hdr, data, trace, nil
		}
		if attempt >= a.retries {
			if err != nil {
				return 0, nil, nil, trace, &Error{Kind: KindUnavailable, Op: r.op, Message: fmt.Sprintf("MeshGuard could not be asked (%d attempts)", attempt+1), Err: err, TraceID: trace}
			}
			return status, hdr, data, trace, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, nil, nil, trace, &Error{Kind: KindUnavailable, Op: r.op, Message: "gave up waiting to retry", Err: ctx.Err(), TraceID: trace}
		case <-t.C:
		}
	}
}

// backoff is the wait before retry attempt+1 when MeshGuard named none.
func backoff(attempt int) time.Duration {
	return time.Duration(100<<min(attempt, 4)) * time.Millisecond
}

// refused reports whether the request never reached a server (connection
// refused), so sending it again cannot act twice.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// once sends the request once and reads the answer, bounded.
func (a *Agent) once(ctx context.Context, r request, u string, headers http.Header) (int, http.Header, []byte, error) {
	hc := a.hc
	if r.hold > 0 {
		// The client's timeout would cut a held answer short: bound this
		// request by the hold plus that timeout instead.
		limit := hc.Timeout
		if limit <= 0 {
			limit = DefaultTimeout
		}
		cp := *hc
		cp.Timeout = 0
		hc = &cp
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.hold+limit)
		defer cancel()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, vs := range headers {
		req.Header[k] = vs
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "meshguard-go-sdk")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerBytes+1))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	if len(data) > MaxAnswerBytes {
		return 0, nil, nil, fmt.Errorf("the answer is larger than %d bytes", MaxAnswerBytes)
	}
	return resp.StatusCode, resp.Header, data, nil
}
