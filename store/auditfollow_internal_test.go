package store

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestFollowCursorRoundTripsAndFoldsBeyondTheCap(t *testing.T) {
	var c FollowCursor
	for i := range MaxFollowChains + 44 {
		c.set(fmt.Sprintf("chain-%04d", i), int64(1000+i))
	}
	if len(c.Chains) != MaxFollowChains || c.Floor != 1043 {
		t.Fatalf("%d chains, floor %d; want %d chains, the 44 oldest folded into floor 1043", len(c.Chains), c.Floor, MaxFollowChains)
	}
	if _, kept := c.Chains["chain-0043"]; kept || c.pos("chain-0043") != 1043 || c.pos("chain-0044") != 1044 || c.pos("new") != 1043 {
		t.Fatalf("positions after folding: %v", c)
	}
	enc := c.Encode()
	if len(enc) > maxFollowCursor {
		t.Fatalf("a full cursor is %d bytes, over the %d the decoder takes", len(enc), maxFollowCursor)
	}
	got, err := DecodeFollowCursor(enc)
	if err != nil || got.Floor != c.Floor || len(got.Chains) != len(c.Chains) || got.Chains["chain-0299"] != 1299 {
		t.Fatalf("decoded %v, %v", got, err)
	}
	if legacy, err := DecodeFollowCursor(encodeCursor(77)); err != nil || legacy.Floor != 77 || len(legacy.Chains) != 0 {
		t.Fatalf("a query's cursor: %v, %v", legacy, err)
	}
}

func TestFollowCursorRefusesWhatMeshGuardDidNotGive(t *testing.T) {
	b64 := func(s string) string { return followPrefix + base64.RawURLEncoding.EncodeToString([]byte(s)) }
	many := make([]string, 0, MaxFollowChains+1)
	for i := range MaxFollowChains + 1 {
		many = append(many, fmt.Sprintf("%q:1", fmt.Sprint(i)))
	}
	for _, tc := range []struct{ name, cursor string }{
		{"empty", ""},
		{"unknown prefix", "x123"},
		{"not base64", "f!!!"},
		{"not JSON", b64("nope")},
		{"unknown field", b64(`{"f":0,"c":{},"x":1}`)},
		{"trailing data", b64(`{"f":0,"c":{}}{}`)},
		{"negative floor", b64(`{"f":-1,"c":{}}`)},
		{"negative position", b64(`{"f":0,"c":{"a":-5}}`)},
		{"name too long", b64(`{"f":0,"c":{"` + strings.Repeat("a", maxChainName+1) + `":1}}`)},
		{"too many chains", b64(`{"f":0,"c":{` + strings.Join(many, ",") + `}}`)},
		{"too long", followPrefix + strings.Repeat("A", maxFollowCursor)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeFollowCursor(tc.cursor); !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("%.60q: %v; want ErrInvalidFilter", tc.cursor, err)
			}
		})
	}
}
