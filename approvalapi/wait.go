package approvalapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshguard/meshguard/api"
)

// ErrBadWait: the asked wait is not whole seconds within
// api.MinApprovalWait..api.MaxApprovalWait.
var ErrBadWait = errors.New("bad wait")

// maxPreferLen bounds the Prefer header read (every limit bounded).
const maxPreferLen = 1024

// ParseWait reads how long r asks to be held: `?wait=N` (when query is
// true; it wins) or `Prefer: wait=N` (RFC 7240; fromPrefer then says so,
// for Preference-Applied). Zero without either. Anything but whole seconds
// within 1..60 is ErrBadWait, naming the bound.
func ParseWait(r *http.Request, query bool) (wait time.Duration, fromPrefer bool, err error) {
	if query {
		if vs, ok := r.URL.Query()["wait"]; ok {
			if len(vs) != 1 {
				return 0, false, fmt.Errorf("%w: wait: give it once", ErrBadWait)
			}
			n, err := seconds(vs[0])
			return n, false, err
		}
	}
	v, found, err := preferWait(r.Header.Values(api.HeaderPrefer))
	if err != nil || !found {
		return 0, false, err
	}
	n, err := seconds(v)
	return n, true, err
}

// preferWait finds the wait preference among Prefer headers: comma
// separated preferences, each `token[=value]` with `;` parameters.
func preferWait(headers []string) (string, bool, error) {
	total := 0
	var value string
	found := false
	for _, h := range headers {
		if total += len(h); total > maxPreferLen {
			return "", false, fmt.Errorf("%w: Prefer: longer than %d bytes", ErrBadWait, maxPreferLen)
		}
		for pref := range strings.SplitSeq(h, ",") {
			pref, _, _ = strings.Cut(pref, ";")
			name, val, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			if found {
				return "", false, fmt.Errorf("%w: Prefer: wait given twice", ErrBadWait)
			}
			value, found = strings.Trim(strings.TrimSpace(val), `"`), true
		}
	}
	return value, found, nil
}

func seconds(v string) (time.Duration, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < api.MinApprovalWait || n > api.MaxApprovalWait {
		return 0, fmt.Errorf("%w: wait=%.16q: expected whole seconds from %d to %d", ErrBadWait, v, api.MinApprovalWait, api.MaxApprovalWait)
	}
	return time.Duration(n) * time.Second, nil
}

// Applied is the Preference-Applied value for a wait.
func Applied(wait time.Duration) string {
	return "wait=" + strconv.Itoa(int(wait/time.Second))
}

// readGrace is how long past a wait a held connection may stay unread.
const readGrace = 10 * time.Second

// HoldOpen moves w's connection read deadline past a wait about to start:
// the server's read deadline (30 s for the API) would otherwise cancel the
// request's context mid-wait, and the caller would get no answer.
func HoldOpen(w http.ResponseWriter, wait time.Duration) {
	// Not every ResponseWriter supports deadlines; the server's does.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(wait + readGrace))
}
