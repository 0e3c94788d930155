package edge

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// What CheckText finds wrong with a text field. Callers word the message
// for their own contract; the rule itself lives here only.
var (
	ErrTextTooLong = errors.New("longer than the limit")
	ErrTextNotUTF8 = errors.New("not valid UTF-8")
	ErrTextControl = errors.New("contains a control character")
)

// CheckText is the one rule for a text field MeshGuard decides on, stores
// or shows: at most limit bytes, valid UTF-8, and no C0 control character
// or DEL. A NUL would be refused by PostgreSQL's text columns when the
// record is stored, and ESC would let a caller rewrite an operator's
// terminal in `meshguard audit tail`. It returns one of the ErrText
// sentinels, unwrapped, so the request path allocates nothing.
func CheckText(v string, limit int) error {
	switch {
	case len(v) > limit:
		return ErrTextTooLong
	case !utf8.ValidString(v):
		return ErrTextNotUTF8
	case HasControl(v):
		return ErrTextControl
	}
	return nil
}

// HasControl reports whether s holds a C0 control character or DEL.
func HasControl(s string) bool {
	// Bytewise: every C0 byte and DEL is that character in UTF-8, and no
	// byte of a multi-byte sequence is below 0x80.
	for i := 0; i < len(s); i++ {
		if IsControl(rune(s[i])) {
			return true
		}
	}
	return false
}

// IsControl is the control-character rule: C0 and DEL. A space and
// everything from 0x80 up are ordinary characters.
func IsControl(c rune) bool { return c < 0x20 || c == 0x7f }

// HasSpaceOrControl reports whether s holds a space, a C0 control
// character or DEL: the rule for tokens such as paths and actions, which
// are the text rule without spaces.
func HasSpaceOrControl(s string) bool {
	return strings.ContainsFunc(s, func(c rune) bool { return c == ' ' || IsControl(c) })
}
