package gateway_test

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/meshguard/meshguard/engine/enginetest"
	"github.com/meshguard/meshguard/gateway"
	"github.com/meshguard/meshguard/trust"
)

// The streaming tests are not parallel: they measure the process's
// allocations while a body larger than any buffer passes through.

const (
	streamSize = 64 << 20 // bytes through the gateway
	firstChunk = 1 << 20  // sent before the other side lets the rest go
	// allocBudget: what the whole exchange may allocate. Buffering the body
	// anywhere would allocate at least streamSize.
	allocBudget = streamSize / 8
	waitLimit   = 10 * time.Second
)

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

func streamingGateway(t *testing.T, up *upstream) (string, string) {
	f := enginetest.New(t, testPolicies, enginetest.Options{})
	_, tok := f.Agent(t, "reader", trust.Verified, []string{"reader"})
	return startGateway(t, gateway.Config{Checker: f.Engine, Target: mustURL(t, up.URL)}), tok
}

func TestStreamsLargeResponse(t *testing.T) {
	release := make(chan struct{})
	finished := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(finished)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(streamSize))
		body := &pattern{n: streamSize}
		if _, err := io.CopyN(w, body, firstChunk); err != nil {
			return
		}
		_ = http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.Copy(w, body)
	})
	gw, tok := streamingGateway(t, up)

	req, _ := http.NewRequest("GET", gw+"/proxy/big", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.ContentLength != streamSize {
		t.Fatalf("status %d, length %d", res.StatusCode, res.ContentLength)
	}

	// The first bytes arrive while the upstream still holds the rest.
	v := &verifier{}
	head := make(chan error, 1)
	go func() {
		_, err := io.CopyN(v, res.Body, firstChunk/2)
		head <- err
	}()
	select {
	case err := <-head:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		close(release)
		t.Fatal("no bytes reached the client before the upstream finished: the response is buffered")
	}
	select {
	case <-finished:
		t.Fatal("the upstream finished before it was released")
	default:
	}

	close(release)
	before := totalAlloc()
	if _, err := io.Copy(v, res.Body); err != nil {
		t.Fatal(err)
	}
	alloc := totalAlloc() - before
	if v.off != streamSize || v.err != nil {
		t.Fatalf("received %d bytes (want %d): %v", v.off, streamSize, v.err)
	}
	t.Logf("%d MiB streamed with %.1f MiB allocated", streamSize>>20, float64(alloc)/(1<<20))
	if alloc > allocBudget {
		t.Errorf("the exchange allocated %d bytes for a %d-byte body: something buffers it", alloc, streamSize)
	}
}

func TestStreamsRequestBody(t *testing.T) {
	gotFirst := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		v := &verifier{}
		if _, err := io.CopyN(v, r.Body, firstChunk); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		close(gotFirst)
		if _, err := io.Copy(v, r.Body); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if v.err != nil {
			http.Error(w, v.err.Error(), 500)
			return
		}
		_, _ = io.WriteString(w, strconv.FormatInt(v.off, 10))
	})
	gw, tok := streamingGateway(t, up)

	// The client sends the first MiB, then waits for the upstream to have
	// it before sending the rest: a gateway that buffered the body would
	// never pass the first MiB on.
	pr, pw := io.Pipe()
	go func() {
		body := &pattern{n: streamSize}
		if _, err := io.CopyN(pw, body, firstChunk); err != nil {
			return // the request failed; the test reports it
		}
		select {
		case <-gotFirst:
		case <-time.After(waitLimit):
			pw.CloseWithError(errBuffered)
			return
		}
		_, err := io.Copy(pw, body)
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", gw+"/proxy/api/upload", pr)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/octet-stream")
	before := totalAlloc()
	res := send(t, newClient(t), req)
	alloc := totalAlloc() - before
	if res.Status != 200 || string(res.Body) != strconv.Itoa(streamSize) {
		t.Fatalf("status %d: %s", res.Status, res.Body)
	}
	t.Logf("%d MiB streamed with %.1f MiB allocated", streamSize>>20, float64(alloc)/(1<<20))
	if alloc > allocBudget {
		t.Errorf("the exchange allocated %d bytes for a %d-byte body: something buffers it", alloc, streamSize)
	}
}

var errBuffered = errors.New("the upstream did not receive the first MiB before the body ended: the request is buffered")

func TestServerSentEventsAreFlushed(t *testing.T) {
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	})
	gw, tok := streamingGateway(t, up)
	req, _ := http.NewRequest("GET", gw+"/proxy/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	event := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		event <- line
	}()
	select {
	case line := <-event:
		if line != "data: one\n" {
			t.Fatalf("first event %q", line)
		}
	case <-time.After(waitLimit):
		close(release)
		t.Fatal("the first event was held back by the gateway")
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest %q, %v", rest, err)
	}
}
