package jaegertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Span is one span as Jaeger stored it, flattened for assertions.
type Span struct {
	TraceID       string // 32 hex digits, as trace.TraceID.String() spells it
	SpanID        string
	ParentSpanID  string // empty for a root span
	OperationName string
	ServiceName   string
	// Tags are the span's attributes plus what Jaeger derives from the OTLP
	// span (span.kind, otel.scope.name, otel.status_code, ...). Non-string
	// values keep their JSON spelling: 42, true, 1.5.
	Tags map[string]string
	// ProcessTags are the resource attributes other than service.name.
	ProcessTags map[string]string
}

// The subset of the query service's JSON (the API behind Jaeger's UI) that
// Trace needs. That API is used rather than /api/v3 because in v1.76.0 it is
// a plain JSON document with hex IDs and explicit parent references, whereas
// api/v3 returns OTLP JSON, which is harder to flatten and has changed shape
// between releases.
type (
	apiResponse struct {
		Data   []apiTrace `json:"data"`
		Errors []struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		} `json:"errors"`
	}
	apiTrace struct {
		TraceID   string                `json:"traceID"`
		Spans     []apiSpan             `json:"spans"`
		Processes map[string]apiProcess `json:"processes"`
	}
	apiSpan struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		Tags      []apiKeyValue `json:"tags"`
		ProcessID string        `json:"processID"`
	}
	apiProcess struct {
		ServiceName string        `json:"serviceName"`
		Tags        []apiKeyValue `json:"tags"`
	}
	apiKeyValue struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
)

// Trace fetches a trace by its hex ID from GET /api/traces/{id}. A trace that
// Jaeger does not (yet) have yields no spans and no error, because ingestion
// is asynchronous and callers usually poll; see WaitTrace.
func (j *Jaeger) Trace(ctx context.Context, traceID string) ([]Span, error) {
	u := j.QueryURL() + "/api/traces/" + url.PathEscape(traceID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("jaeger trace %s: %w", traceID, err)
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jaeger trace %s: %w", traceID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("jaeger trace %s: reading response: %w", traceID, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("jaeger trace %s: %s: %s", traceID, resp.Status, body)
	}
	spans, err := parseTrace(body)
	if err != nil {
		return nil, fmt.Errorf("jaeger trace %s: %w", traceID, err)
	}
	return spans, nil
}

// WaitTrace polls Trace until at least wantSpans spans of the trace are
// stored, or ctx ends; in that case it returns what it last saw along with
// the error, so a test can report which spans did arrive.
func (j *Jaeger) WaitTrace(ctx context.Context, traceID string, wantSpans int) ([]Span, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		spans, err := j.Trace(ctx, traceID)
		if err == nil && len(spans) >= wantSpans {
			return spans, nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return spans, fmt.Errorf("waiting for %d spans of trace %s (have %d): %w", wantSpans, traceID, len(spans), err)
		case <-tick.C:
		}
	}
}

func parseTrace(body []byte) ([]Span, error) {
	var resp apiResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decoding query response: %w", err)
	}
	if len(resp.Errors) > 0 {
		return nil, fmt.Errorf("query API error %d: %s", resp.Errors[0].Code, resp.Errors[0].Msg)
	}
	var spans []Span
	for _, tr := range resp.Data {
		for _, s := range tr.Spans {
			proc := tr.Processes[s.ProcessID]
			tags, err := tagMap(s.Tags)
			if err != nil {
				return nil, fmt.Errorf("span %s: %w", s.SpanID, err)
			}
			ptags, err := tagMap(proc.Tags)
			if err != nil {
				return nil, fmt.Errorf("span %s process: %w", s.SpanID, err)
			}
			spans = append(spans, Span{
				TraceID:       fullTraceID(s.TraceID),
				SpanID:        s.SpanID,
				ParentSpanID:  parentOf(s),
				OperationName: s.OperationName,
				ServiceName:   proc.ServiceName,
				Tags:          tags,
				ProcessTags:   ptags,
			})
		}
	}
	return spans, nil
}

// parentOf follows Jaeger's own rule (model.Span.ParentSpanID): the first
// CHILD_OF reference within the same trace. OTLP span links become
// FOLLOWS_FROM references and are not parents.
func parentOf(s apiSpan) string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" && r.TraceID == s.TraceID {
			return r.SpanID
		}
	}
	return ""
}

func tagMap(kvs []apiKeyValue) (map[string]string, error) {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := string(kv.Value)
		if strings.HasPrefix(v, `"`) {
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				return nil, fmt.Errorf("tag %q: %w", kv.Key, err)
			}
		}
		m[kv.Key] = v
	}
	return m, nil
}

// fullTraceID undoes Jaeger's shortening of trace IDs whose high 64 bits are
// zero to 16 hex digits, so IDs compare equal to OpenTelemetry's spelling.
func fullTraceID(id string) string {
	if len(id) < 32 {
		return strings.Repeat("0", 32-len(id)) + id
	}
	return id
}
