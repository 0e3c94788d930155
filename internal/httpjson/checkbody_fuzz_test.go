package httpjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/meshguard/meshguard/api"
)

// FuzzCheckBody: the /v1/check body as the decision gets it. Whatever
// decodeStrict accepts — the request and its caller-given context, which
// policies read and the audit record keeps — has no key twice in any
// object (checked the slow way, apart from the scan) and means one thing:
// encoded again and decoded again, it is the same request, so a log, a
// proxy or a replay reading the recorded JSON sees what was decided.
func FuzzCheckBody(f *testing.F) {
	for _, seed := range []string{
		`{"action":"write:email","resource":"mail/outbox","context":{"recipient":"a@example.com","n":2,"tags":["a","b"]}}`,
		`{"action":"read:x","context":{"to":"a","to":"b"}}`,
		`{"action":"read:x","context":{"a":[{"b":1,"b":2}]}}`,
		`{"action":"read:x","context":{"\u0074o":"a","to":"b"}}`,
		`{"action":"read:x","Action":"delete:x"}`,
		`{"action":"read:x","context":{"k":"\ud800"}}`,
		`{"action":"read:x","context":{"\xff":1,"\xfe":2}}`,
		`{"action":"read:x","context":{"big":1e400}}`,
		`{"action":"read:x"} {}`,
		`{"action":"read:x","context":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req api.CheckRequest
		if msg := DecodeStrict(body, &req); msg != "" {
			return
		}
		if scanKeys(json.NewDecoder(bytes.NewReader(body)), 0).repeated {
			t.Fatalf("accepted with a key twice in one object: %s", body)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("accepted %s, which does not encode again: %v", body, err)
		}
		var back api.CheckRequest
		if msg := DecodeStrict(again, &back); msg != "" {
			t.Fatalf("accepted %s; its encoding %s is refused: %s", body, again, msg)
		}
		if len(req.Context) == 0 {
			req.Context = nil // "context":{} and none are one (omitempty)
		}
		if !reflect.DeepEqual(req, back) {
			t.Fatalf("accepted %s as %#v; encoded and decoded again it is %#v", body, req, back)
		}
	})
}
