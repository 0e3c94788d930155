package admin

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// queryParams returns r's query parameters, refusing any not in allowed and
// any given twice (a filter must not silently take one of two values), and
// a query string that does not parse: URL.Query skips a pair it cannot
// read, so ?agent=%zz would have answered with every agent's records.
func queryParams(r *http.Request, allowed ...string) (map[string]string, string) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, "the query string does not parse: " + err.Error()
	}
	out := map[string]string{}
	for k, vs := range q {
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		switch {
		case !known:
			return nil, "unknown query parameter " + strconv.Quote(k) + " (expected " + strings.Join(allowed, ", ") + ")"
		case len(vs) > 1:
			return nil, "query parameter " + strconv.Quote(k) + " is given more than once"
		}
		out[k] = vs[0]
	}
	return out, ""
}
