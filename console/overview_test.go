package console_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestOverviewPage: the last hour's decisions as a chart — a bar a
// minute whose titles add up to what was decided — and the rankings of
// denial reasons and agents, named.
func TestOverviewPage(t *testing.T) {
	fx := newFixture(t, nil)
	fx.check(t, "/docs/a")
	fx.check(t, "/docs/b")
	fx.check(t, "/secrets/key")
	c := fx.client(t)
	fx.signIn(t, c)
	resp, body := fx.get(t, c, "/ui/overview")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s", resp.Status)
	}
	var allowed, denied int
	for _, m := range regexp.MustCompile(`<title>\d\d:\d\d: (\d+) allowed, (\d+) denied</title>`).FindAllStringSubmatch(body, -1) {
		a, _ := strconv.Atoi(m[1])
		d, _ := strconv.Atoi(m[2])
		allowed, denied = allowed+a, denied+d
	}
	if allowed != 2 || denied != 1 {
		t.Errorf("the minutes' bars add up to %d allowed, %d denied; want 2 and 1", allowed, denied)
	}
	for _, want := range []string{
		"<strong>3</strong> decisions", "2 allowed</span>", "1 denied</span>",
		`<svg id="per-minute" role="img"`,
		"<title>rule_deny: 1 decisions, 1 denied</title><text x=\"0\" y=\"16\">rule_deny</text>",
		"<text x=\"0\" y=\"16\">reader-1</text>", // named, not the id
		`aria-current="page">Overview`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview lacks %q", want)
		}
	}
	if strings.Contains(body, "<title>rule_allow") {
		t.Error("an allow reason ranked among the denials")
	}
}

// TestOverviewEmpty: an hour with no decisions says so instead of
// drawing empty charts.
func TestOverviewEmpty(t *testing.T) {
	fx := newFixture(t, nil)
	c := fx.client(t)
	fx.signIn(t, c)
	_, body := fx.get(t, c, "/ui/overview")
	for _, want := range []string{"<strong>0</strong> decisions", "No denial in the last hour.", "No decision in the last hour."} {
		if !strings.Contains(body, want) {
			t.Errorf("the empty overview lacks %q", want)
		}
	}
	if strings.Contains(body, `class="minute"`) {
		t.Error("a bar for an empty hour")
	}
}
