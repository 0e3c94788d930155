package store

import (
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The stored forms of an audit row's id, trace id, decision and source
// (migration sqlite/0015, docs/storage.md). What the engine writes is kept
// in fewer bytes: an id "aud_" and 24 lower-case hex digits as its 12
// bytes, a trace id of 32 lower-case hex digits as its 16, the decision as
// 0 (allow) or 1 (deny), a known source as its number in auditSources.
// Anything else (an id or trace id a client chose, a source this list does
// not know) is kept as the text it is, in the same column: SQLite's ANY
// columns keep the type they are given, and a BLOB never equals a TEXT, so
// each value has exactly one stored form and uniqueness and lookups hold.
// Reading turns every form back into the text it came from; the record's
// hash covers that text, so an edited column breaks verification.
//
// PostgreSQL (migration postgres/0018, taggedCols) has no column that
// holds either type: there the id, trace id and source are bytea with a
// tag byte, tagEngine and the engine's form (the source's number as one
// byte) or tagText and the text, and the decision is a smallint.

// auditIDPrefix starts every id the engine makes (engine.NewAuditID).
const auditIDPrefix = "aud_"

// auditSources are the sources the engine writes, by their stored number:
// append only, never reorder. The first two are stored in no bytes.
var auditSources = [...]string{"ext_authz-grpc", "ext_authz-http", "gateway", "wasm", "api", "delegation"}

// The tag byte of a PostgreSQL id, trace id or source (0018).
const (
	tagEngine byte = 0
	tagText   byte = 1
)

// form is a value as d stores it: engine, its engine form (nil if it has
// none), else text.
func (d dialect) form(engine []byte, text string) any {
	switch {
	case d.taggedCols && engine != nil:
		return append([]byte{tagEngine}, engine...)
	case d.taggedCols:
		return append([]byte{tagText}, text...)
	case engine != nil:
		return engine
	}
	return text
}

// lowerHexBytes is s's bytes when s is exactly n bytes in lower-case hex.
func lowerHexBytes(s string, n int) ([]byte, bool) {
	if !isLowerHex(s, n) {
		return nil, false
	}
	b, err := hex.DecodeString(s)
	return b, err == nil
}

// isLowerHex says whether s is exactly n bytes in lower-case hex.
func isLowerHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// The kinds of a stored value: what a column's text is stored as, and
// what a scanned value is (colText.kind).
const (
	kindText  byte = 's'
	kindBytes byte = 'b'
	kindInt   byte = 'i'
)

// kindOf is the kind of a value a driver scanned.
func kindOf(v any) byte {
	switch v.(type) {
	case string:
		return kindText
	case []byte:
		return kindBytes
	case int64:
		return kindInt
	}
	return 0
}

// storedForm says which column of a row read back holds a value in a form
// the store never writes for its text (an edit: the engine's id as text,
// a client's hex id as bytes, a known source as its name, text that is
// not UTF-8), or "" if none.
// Such a row reads back as the sealed record, so its hash holds, but a
// lookup by the text looks for the one form it is stored in and misses
// it, and stats count it apart: verification must report it.
func (d dialect) storedForm(c *auditColumns, id, decision, trace, source *colText) string {
	idKind, traceKind, decisionKind, sourceKind := kindText, kindText, kindText, kindText
	if d.compactCols || d.taggedCols {
		if rest, ok := strings.CutPrefix(c.id, auditIDPrefix); ok && isLowerHex(rest, 12) {
			idKind = kindBytes
		}
		if isLowerHex(c.traceID, 16) {
			traceKind = kindBytes
		}
		decisionKind = kindInt
		for _, k := range auditSources {
			if k == c.source {
				sourceKind = kindInt
			}
		}
	}
	switch {
	case id.kind != idKind:
		return "id"
	case trace.kind != traceKind:
		return "trace_id"
	case decision.kind != decisionKind:
		return "decision"
	case source.kind != sourceKind:
		return "source"
	}
	// A column whose U+FFFD was made an invalid byte would still verify.
	if col := nonUTF8Column(c.id, c.traceID, c.action, c.reason, c.source); col != "" {
		return col
	}
	if !utf8.ValidString(c.agentID) {
		return "agent"
	}
	return ""
}

// nonUTF8Column names the first of a row's text columns (its id, trace
// id, action, reason and source) that is not UTF-8, "" if none. The store
// writes UTF-8 only, and reading checks it (storedForm; the agent's is
// checked with the dictionary): the canonical encoding, which the hash
// covers, writes an invalid byte as U+FFFD, so SQLite (and PostgreSQL's
// tagged columns) would keep a value other than the one hashed, which
// verification then reports as an edit, or a lookup by the hashed value
// misses. Refused when written, the record is dead-lettered on both
// engines alike.
func nonUTF8Column(id, traceID, action, reason, source string) string {
	for _, c := range [...]struct{ name, v string }{
		{"id", id}, {"trace_id", traceID}, {"action", action}, {"reason", reason}, {"source", source},
	} {
		if !utf8.ValidString(c.v) {
			return c.name
		}
	}
	return ""
}

// idArg is a record id as stored.
func (d dialect) idArg(id string) any {
	if d.compactCols || d.taggedCols {
		if rest, ok := strings.CutPrefix(id, auditIDPrefix); ok {
			if b, ok := lowerHexBytes(rest, 12); ok {
				return d.form(b, "")
			}
		}
	}
	return d.form(nil, id)
}

// traceArg is a trace id as stored.
func (d dialect) traceArg(t string) any {
	if d.compactCols || d.taggedCols {
		if b, ok := lowerHexBytes(t, 16); ok {
			return d.form(b, "")
		}
	}
	return d.form(nil, t)
}

// tracePrefixSQL is the audit_trace index's expression.
func (d dialect) tracePrefixSQL() string {
	if d.taggedCols {
		return "substr(trace_id, 1, 7)"
	}
	return "substr(trace_id, 1, 8)"
}

// tracePrefixArg is what the audit_trace index holds for a trace id
// (tracePrefixSQL): on PostgreSQL the first 7 bytes of its stored form;
// on SQLite its stored form's first 8 bytes, or the text's first 8
// characters (not bytes: a trace id of multi-byte characters was never
// found).
func (d dialect) tracePrefixArg(t string) any {
	if b, ok := d.traceArg(t).([]byte); ok && d.taggedCols {
		return b[:min(len(b), 7)]
	} else if ok {
		return b[:8]
	}
	n := 0
	for i := range t {
		if n == 8 {
			return t[:i]
		}
		n++
	}
	return t
}

// decisionArg is a decision (allow or deny) as stored.
func (d dialect) decisionArg(decision string) any {
	if d.compactCols || d.taggedCols {
		if decision == "deny" {
			return int64(1)
		}
		return int64(0)
	}
	return decision
}

// denySQL is a decision column's value for deny, in SQL.
func (d dialect) denySQL() string {
	if d.compactCols || d.taggedCols {
		return "1"
	}
	return "'deny'"
}

// sourceArg is a source as stored.
func (d dialect) sourceArg(src string) any {
	if d.compactCols || d.taggedCols {
		for i, k := range auditSources {
			if k == src && d.taggedCols {
				return []byte{tagEngine, byte(i)}
			} else if k == src {
				return int64(i)
			}
		}
	}
	return d.form(nil, src)
}

// idText is a stored id (either form) as its text.
func idText(v any) string {
	switch v := v.(type) {
	case []byte:
		return auditIDPrefix + hex.EncodeToString(v)
	case string:
		return v
	case int64: // only by an edit: it then names no record
		return "#" + strconv.FormatInt(v, 10)
	}
	return ""
}

// traceText is a stored trace id (either form) as its text.
func traceText(v any) string {
	switch v := v.(type) {
	case []byte:
		return hex.EncodeToString(v)
	case string:
		return v
	case int64:
		return "#" + strconv.FormatInt(v, 10)
	}
	return ""
}

// decisionText is a stored decision (either form) as its text. A number
// that is neither (an edit) reads as no decision, which its hash reports.
func decisionText(v any) string {
	n, ok := v.(int64)
	if !ok {
		return textOf(v)
	}
	switch n {
	case 0:
		return "allow"
	case 1:
		return "deny"
	}
	return "#" + strconv.FormatInt(n, 10)
}

// sourceText is a stored source (either form) as its text.
func sourceText(v any) string {
	n, ok := v.(int64)
	if !ok {
		return textOf(v)
	}
	if n >= 0 && n < int64(len(auditSources)) {
		return auditSources[n]
	}
	return "#" + strconv.FormatInt(n, 10)
}

// textOf is a text column scanned into an any.
func textOf(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// The engine forms of PostgreSQL's tagged values (0018) as their text;
// false if b is no such form (an edit).
func idOfBytes(b []byte) (string, bool) {
	return auditIDPrefix + hex.EncodeToString(b), len(b) == 12
}

func traceOfBytes(b []byte) (string, bool) { return hex.EncodeToString(b), len(b) == 16 }

func sourceOfBytes(b []byte) (string, bool) {
	if len(b) != 1 || int(b[0]) >= len(auditSources) {
		return "#" + hex.EncodeToString(b), false
	}
	return auditSources[b[0]], true
}

// untag is a tagged value's text and kind: kindText for tagText, engine's
// kind for the engine form, 0 for anything else (an edit; the text then
// names the bytes, which no record holds).
func untag(b []byte, engine func([]byte) (string, bool), engineKind byte) (string, byte) {
	if len(b) > 0 && b[0] == tagText {
		return string(b[1:]), kindText
	}
	if len(b) > 0 && b[0] == tagEngine {
		if s, ok := engine(b[1:]); ok {
			return s, engineKind
		}
	}
	return "#" + hex.EncodeToString(b), 0
}

// auditCols are the scanners of a row's id, decision, trace id and source
// in d's stored forms.
func (d dialect) auditCols() (id, decision, trace, source colText) {
	id, decision, trace, source = colText{text: idText}, colText{text: decisionText}, colText{text: traceText}, colText{text: sourceText}
	if d.taggedCols {
		id.engine, id.engineKind = idOfBytes, kindBytes
		trace.engine, trace.engineKind = traceOfBytes, kindBytes
		source.engine, source.engineKind = sourceOfBytes, kindInt
	}
	return id, decision, trace, source
}

// sourceKey is a stored source (a stats key) as its text.
func (d dialect) sourceKey(v any) string {
	_, _, _, c := d.auditCols()
	_ = c.Scan(v)
	return c.s
}

// colText scans a column of either stored form into its text with one of
// the functions above: as a sql.Scanner it gets the driver's value as it
// is, without the copy and boxing scanning into an any costs (three
// allocations a row of a page).
type colText struct {
	text func(any) string
	// engine, if set, reads a tagged column (PostgreSQL's): bytes are
	// untagged, the engine form read by engine and of kind engineKind.
	engine     func([]byte) (string, bool)
	engineKind byte
	s          string
	kind       byte // of the value scanned (kindOf)
}

func (c *colText) Scan(v any) error {
	if b, ok := v.([]byte); ok && c.engine != nil {
		c.s, c.kind = untag(b, c.engine, c.engineKind)
		return nil
	}
	c.s, c.kind = c.text(v), kindOf(v)
	if c.engine != nil {
		c.kind = 0 // a tagged column holds bytes only
	}
	return nil
}
