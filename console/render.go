package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/meshguard/meshguard/audit"
)

// nodeView is one node of the chain page's tree.
type nodeView struct {
	Node *audit.TraceNode
	Top  bool
}

// view is what every page gets: the layout's fields and the page's Data.
// html/template escapes every value by its context.
type view struct {
	Title    string
	Active   string // the nav entry of this page
	SignedIn bool
	CSRF     string
	Error    string
	Text     string
	Data     any
}

// pageNames are the templates/<name>.html pages, each drawn inside layout.html.
var pageNames = []string{"login", "problem", "decisions", "decision", "trace", "policies", "overview", "approvals", "approval", "alerts", "xds", "agents", "agent"}

var funcs = template.FuncMap{
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") },
	"join": strings.Join,
	// dict passes a tree node and whether it is a root to the node template.
	"dict": func(n *audit.TraceNode, top bool) nodeView { return nodeView{Node: n, Top: top} },
	// denied reports whether a node holds a denied decision.
	"denied": func(n *audit.TraceNode) bool {
		for _, r := range n.Decisions {
			if r.Decision == "deny" {
				return true
			}
		}
		return false
	},
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render draws a page; the layout's sign-out form gets the session's CSRF
// token.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	v.CSRF = c.csrf(r)
	v.SignedIn = v.CSRF != ""
	var b bytes.Buffer
	if err := c.pages[name].Execute(&b, v); err != nil {
		c.log.Error("console: rendering a page", "page", name, "error", err)
		http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// problem is a page that says what went wrong.
func (c *Console) problem(w http.ResponseWriter, r *http.Request, status int, title, text string) {
	c.render(w, r, status, "problem", view{Title: title, Text: text})
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	c.problem(w, r, http.StatusNotFound, "Not found", "There is nothing here.")
}
