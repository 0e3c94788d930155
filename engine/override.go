package engine

import "strings"

// methodOverrideHeaders name a method that servers with override
// middleware (Rails, Laravel, Express, ASP.NET) execute instead of the
// request's own.
var methodOverrideHeaders = [...]string{"x-http-method-override", "x-http-method", "x-method-override"}

// methodOverride refuses a POST that asks the upstream to execute another
// method, by a header or a _method query parameter (Spring's
// HiddenHttpMethodFilter and Symfony read the query too): the action is
// derived from the method, so a POST decided as a write would run as a
// DELETE. Every override middleware named above honours POST only, so
// other methods pay nothing here. An override naming POST itself is
// harmless. A _method in a form body cannot be seen; an upstream that
// reads one must map its routes (config routes:, the catalogue). Its
// refusal is errMethodOverride.
func methodOverride(r *Request, method string) error {
	if method != "POST" {
		return nil
	}
	if r.Headers != nil {
		for _, name := range methodOverrideHeaders {
			if v, n := r.Headers.Lookup(name); n > 1 || n == 1 && !strings.EqualFold(strings.TrimSpace(v), method) {
				return refused(errMethodOverride, "header %s asks the upstream to execute another method than %q; MeshGuard decides on the method the upstream executes: send that method itself", name, method)
			}
		}
	}
	q := rawQuery(r.Path)
	for q != "" {
		var pair string
		if i := strings.IndexAny(q, "&;"); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			pair, q = q, ""
		}
		k, v, _ := strings.Cut(pair, "=")
		if dk, ok := formUnescape(k); !ok || !sameParam(dk, "_method") {
			continue
		}
		if dv, ok := formUnescape(v); !ok || !strings.EqualFold(strings.TrimSpace(dv), method) {
			return refused(errMethodOverride, "query parameter _method asks the upstream to execute another method than %q; MeshGuard decides on the method the upstream executes: send that method itself", method)
		}
	}
	return nil
}
