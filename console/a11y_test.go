package console_test

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// TestPagesAreAccessible: every page names its language and has a main
// landmark, and every form control a person fills in has a label — a
// <label for>, an enclosing <label>, or aria-label — so a screen reader
// can say what it is.
func TestPagesAreAccessible(t *testing.T) {
	fx := newFixture(t, nil)
	id := fx.check(t, "/secrets/key")
	signedIn := fx.client(t)
	fx.signIn(t, signedIn)
	for _, tc := range []struct {
		name, path string
		client     *http.Client
	}{
		{"sign-in", "/ui/login", fx.client(t)},
		{"overview", "/ui/overview", signedIn},
		{"decisions", "/ui/decisions", signedIn},
		{"a decision", "/ui/decisions/" + id, signedIn},
		{"a chain", "/ui/traces/" + traceID, signedIn},
		{"agents", "/ui/agents", signedIn},
		{"an agent", "/ui/agents/reader-1", signedIn},
		{"policies", "/ui/policies", signedIn},
		{"approvals", "/ui/approvals", signedIn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, body := fx.get(t, tc.client, tc.path)
			doc, err := html.Parse(strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			labelled := map[string]bool{}
			var controls []*html.Node
			var lang, main bool
			var walk func(n *html.Node, inLabel bool)
			walk = func(n *html.Node, inLabel bool) {
				if n.Type == html.ElementNode {
					switch n.Data {
					case "html":
						lang = attr(n, "lang") != ""
					case "main":
						main = true
					case "label":
						if f := attr(n, "for"); f != "" {
							labelled[f] = true
						}
						inLabel = true
					case "input", "select", "textarea":
						switch attr(n, "type") {
						case "hidden", "submit", "button":
						default:
							if !inLabel && attr(n, "aria-label") == "" {
								controls = append(controls, n)
							}
						}
					}
				}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					walk(c, inLabel)
				}
			}
			walk(doc, false)
			if !lang || !main {
				t.Errorf("lang attribute %t, main landmark %t", lang, main)
			}
			for _, c := range controls {
				if id := attr(c, "id"); id == "" || !labelled[id] {
					t.Errorf("a <%s name=%q> has no label", c.Data, attr(c, "name"))
				}
			}
		})
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}
