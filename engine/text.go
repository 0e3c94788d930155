package engine

import "github.com/meshguard/meshguard/wire"

// The engine's names for wire's text rule (wire.CheckText says why), kept
// for the engine's callers; the rule itself lives in wire only.
var (
	ErrTextTooLong = wire.ErrTextTooLong
	ErrTextNotUTF8 = wire.ErrTextNotUTF8
	ErrTextControl = wire.ErrTextControl
)

// CheckText is wire.CheckText.
func CheckText(v string, limit int) error { return wire.CheckText(v, limit) }

// hasControl is wire.HasControl.
func hasControl(s string) bool { return wire.HasControl(s) }

// isControl is wire.IsControl.
func isControl(c rune) bool { return wire.IsControl(c) }
