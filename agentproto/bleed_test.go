package agentproto_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/meshguard/meshguard/agentproto"
)

// TestArgumentsDoNotBleedBetweenCalls: calls parsed at once, on many
// goroutines, each of the same length (so an argument index made for one
// would fit another's bytes), each read only their own arguments, top
// level and nested, and a call keeps reading its own after others were
// parsed.
func TestArgumentsDoNotBleedBetweenCalls(t *testing.T) {
	body := func(i int) []byte {
		return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"u%04d@x","o":{"cc":"c%04d@y"}}}}`, i, i, i)
	}
	first, err := agentproto.ParseMCP("mail", body(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := g * 100; i < g*100+100; i++ {
				c, err := agentproto.ParseMCP("mail", body(i), nil)
				if err != nil {
					errs <- err
					return
				}
				for path, want := range map[string]string{"to": fmt.Sprintf("u%04d@x", i), "o.cc": fmt.Sprintf("c%04d@y", i)} {
					if v, ok, err := c.Argument(path); err != nil || !ok || v != want {
						errs <- fmt.Errorf("call %d: arguments.%s = %v (%v, %v), want %s", i, path, v, ok, err, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v, _, _ := first.Argument("to"); v != "u0000@x" {
		t.Fatalf("the first call reads arguments.to = %v after the others", v)
	}
}
