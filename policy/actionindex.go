package policy

import (
	"slices"
	"strings"
)

// ruleRef names one rule: its policy's index in the Set and its position in
// that policy. Refs sort by policy, then rule, which is exactly evaluation
// order (policies by name, rules in order).
type ruleRef struct{ policy, rule int32 }

func (r ruleRef) less(o ruleRef) bool {
	return r.policy < o.policy || (r.policy == o.policy && r.rule < o.rule)
}

// entry is one action pattern of one rule in the index. check is set when
// landing in the entry's bucket does not by itself prove a match (a pattern
// with stars in the middle), so the glob must still be tried.
type entry struct {
	ref   ruleRef
	glob  Glob
	check bool
}

// actionIndex finds the rules whose action patterns can match an action
// without trying every rule. A pattern is filed under the most selective
// literal it must contain:
//
//	read:docs           literal            → exact map
//	read:* , read:*/x   text before a *    → prefix maps, one per distinct prefix length
//	*:email, *a*:email  text after a *     → suffix maps, one per distinct suffix length
//	*, *a*              nothing anchored   → a short list tried glob by glob
//
// so a lookup costs a map probe per distinct prefix/suffix length, however
// many rules there are. Each bucket holds entries in evaluation order;
// candidates merges them lazily.
type actionIndex struct {
	exact    map[string][]entry
	prefixes []affixTable
	suffixes []affixTable
	general  []entry
}

type affixTable struct {
	n       int
	entries map[string][]entry
	// edge has a bit for each byte that ends a prefix key (starts a suffix
	// key) in this table: most probes are ruled out by one bit test
	// instead of hashing a string.
	edge [4]uint64
}

func (t *affixTable) mayHold(c byte) bool { return t.edge[c>>6]&(1<<(c&63)) != 0 }

type indexBuilder struct {
	exact              map[string][]entry
	prefixes, suffixes map[int]map[string][]entry
	general            []entry
}

func (b *indexBuilder) add(pattern string, ref ruleRef) {
	if b.exact == nil {
		b.exact = map[string][]entry{}
		b.prefixes = map[int]map[string][]entry{}
		b.suffixes = map[int]map[string][]entry{}
	}
	put := func(m map[int]map[string][]entry, key string, e entry) {
		t := m[len(key)]
		if t == nil {
			t = map[string][]entry{}
			m[len(key)] = t
		}
		t[key] = append(t[key], e)
	}
	g := CompileGlob(pattern)
	first := strings.IndexByte(pattern, '*')
	last := strings.LastIndexByte(pattern, '*')
	switch {
	case first < 0:
		b.exact[pattern] = append(b.exact[pattern], entry{ref: ref, glob: g})
	case first > 0:
		// Only "prefix*" is proven by its bucket; "pre*fix" needs the glob.
		put(b.prefixes, pattern[:first], entry{ref: ref, glob: g, check: last != len(pattern)-1 || first != last})
	case last < len(pattern)-1:
		put(b.suffixes, pattern[last+1:], entry{ref: ref, glob: g, check: first != last})
	default:
		b.general = append(b.general, entry{ref: ref, glob: g, check: pattern != "*" && strings.Trim(pattern, "*") != ""})
	}
}

func (b *indexBuilder) build() actionIndex {
	freeze := func(m map[int]map[string][]entry, prefix bool) []affixTable {
		out := make([]affixTable, 0, len(m))
		for n, entries := range m {
			t := affixTable{n: n, entries: entries}
			for key := range entries {
				c := key[0]
				if prefix {
					c = key[len(key)-1]
				}
				t.edge[c>>6] |= 1 << (c & 63)
			}
			out = append(out, t)
		}
		slices.SortFunc(out, func(a, b affixTable) int { return a.n - b.n })
		return out
	}
	return actionIndex{exact: b.exact, prefixes: freeze(b.prefixes, true), suffixes: freeze(b.suffixes, false), general: b.general}
}

// maxCursors covers the common case on the stack; more buckets than this
// spill to the heap, still correct.
const maxCursors = 16

// candidates yields, in evaluation order and without repeats, every rule
// with an action pattern matching action. fn returns false to stop.
func (x *actionIndex) candidates(action string, fn func(ruleRef) bool) {
	var buf [maxCursors][]entry
	lists := buf[:0]
	if es := x.exact[action]; len(es) > 0 {
		lists = append(lists, es)
	}
	for i := range x.prefixes {
		t := &x.prefixes[i]
		if t.n > len(action) {
			break
		}
		if !t.mayHold(action[t.n-1]) {
			continue
		}
		if es := t.entries[action[:t.n]]; len(es) > 0 {
			lists = append(lists, es)
		}
	}
	for i := range x.suffixes {
		t := &x.suffixes[i]
		if t.n > len(action) {
			break
		}
		if !t.mayHold(action[len(action)-t.n]) {
			continue
		}
		if es := t.entries[action[len(action)-t.n:]]; len(es) > 0 {
			lists = append(lists, es)
		}
	}
	if len(x.general) > 0 {
		lists = append(lists, x.general)
	}
	last := ruleRef{policy: -1}
	for {
		best, bestList := ruleRef{}, -1
		for i, l := range lists {
			if len(l) > 0 && (bestList < 0 || l[0].ref.less(best)) {
				best, bestList = l[0].ref, i
			}
		}
		if bestList < 0 {
			return
		}
		e := &lists[bestList][0]
		lists[bestList] = lists[bestList][1:]
		if best == last || (e.check && !e.glob.Match(action)) {
			continue
		}
		last = best
		if !fn(best) {
			return
		}
	}
}
