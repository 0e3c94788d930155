package server

import (
	"net/http"
	"testing"

	"github.com/meshguard/meshguard/config"
)

// TestConsoleSwitch: the console is served by default and CONSOLE=false
// takes every /ui/ route away.
func TestConsoleSwitch(t *testing.T) {
	for _, tc := range []struct {
		name string
		on   bool
		want int
	}{
		{"on by default", true, http.StatusOK},
		{"CONSOLE=false", false, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, func(c *config.Config) { c.Console = tc.on })
			resp, err := http.Get("http://" + r.addrs.HTTP + "/ui/login")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("GET /ui/login: %s, want %d", resp.Status, tc.want)
			}
		})
	}
}
