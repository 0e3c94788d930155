package agentproto

// The scanner's stacks and the argument index a Call keeps: values with
// no pointer into the scanner, so that a parse's scanner stays on its
// stack (scan.go).

// spill8 is a stack of T held in an array of 8 until it outgrows it,
// then in a slice of its own.
type spill8[T any] struct {
	n    int
	arr  [8]T
	more []T // all of the stack, once it outgrew arr
}

func (st *spill8[T]) push(v T) {
	if st.more == nil && st.n < len(st.arr) {
		st.arr[st.n] = v
		st.n++
		return
	}
	if st.more == nil {
		st.more = append(make([]T, 0, 2*len(st.arr)), st.arr[:st.n]...)
	}
	st.more = append(st.more, v)
	st.n++
}

// all is the stack, bottom first; it is valid until the next push.
func (st *spill8[T]) all() []T {
	if st.more != nil {
		return st.more[:st.n]
	}
	return st.arr[:st.n]
}

func (st *spill8[T]) truncate(n int) {
	st.n = n
	if st.more != nil {
		st.more = st.more[:n]
	}
}

// spill16 is a stack of T held in an array of 16 until it outgrows it,
// then in a slice of its own.
type spill16[T any] struct {
	n    int
	arr  [16]T
	more []T // all of the stack, once it outgrew arr
}

func (st *spill16[T]) push(v T) {
	if st.more == nil && st.n < len(st.arr) {
		st.arr[st.n] = v
		st.n++
		return
	}
	if st.more == nil {
		st.more = append(make([]T, 0, 2*len(st.arr)), st.arr[:st.n]...)
	}
	st.more = append(st.more, v)
	st.n++
}

// all is the stack, bottom first; it is valid until the next push.
func (st *spill16[T]) all() []T {
	if st.more != nil {
		return st.more[:st.n]
	}
	return st.arr[:st.n]
}

func (st *spill16[T]) truncate(n int) {
	st.n = n
	if st.more != nil {
		st.more = st.more[:n]
	}
}

// spill256 is a stack of T held in an array of 256 until it outgrows it,
// then in a slice of its own.
type spill256[T any] struct {
	n    int
	arr  [256]T
	more []T // all of the stack, once it outgrew arr
}

func (st *spill256[T]) push(v T) {
	if st.more == nil && st.n < len(st.arr) {
		st.arr[st.n] = v
		st.n++
		return
	}
	if st.more == nil {
		st.more = append(make([]T, 0, 2*len(st.arr)), st.arr[:st.n]...)
	}
	st.more = append(st.more, v)
	st.n++
}

// all is the stack, bottom first; it is valid until the next push.
func (st *spill256[T]) all() []T {
	if st.more != nil {
		return st.more[:st.n]
	}
	return st.arr[:st.n]
}

func (st *spill256[T]) truncate(n int) {
	st.n = n
	if st.more != nil {
		st.more = st.more[:n]
	}
}

// maxArgIndex is how many top-level arguments a Call indexes; Argument
// reads the arguments of a call with more (or with an escaped key) again.
const maxArgIndex = 8

// argSpan is where one top-level argument sits in the arguments object:
// its key's raw bytes at [k0, k1) and its value at [v0, v1), as offsets
// from the object's '{'.
type argSpan struct{ k0, k1, v0, v1 uint32 }

// argIndex is the top-level members of a call's arguments object, as
// offsets into Call.RawArguments: a value with no pointer, so a Call
// keeps nothing of the parse that made it.
type argIndex struct {
	// ok: the index is complete for an object of size bytes.
	ok   bool
	n    uint8
	size uint32
	span [maxArgIndex]argSpan
}

// members is the index as members of raw (which must be the object it
// was made for), appended to dst; ok is false if there is no index.
func (x *argIndex) members(raw []byte, dst []member) ([]member, bool) {
	if !x.ok || int(x.size) != len(raw) {
		return nil, false
	}
	for _, sp := range x.span[:x.n] {
		dst = append(dst, member{raw: raw[sp.k0:sp.k1:sp.k1], val: raw[sp.v0:sp.v1:sp.v1]})
	}
	return dst, true
}

// indexArg adds the argument whose key starts at k0 and whose value runs
// from v0 to s.i to s.args, the object starting at o0; an escaped key (raw
// nil) or one argument too many leaves no index.
func (s *scanner) indexArg(o0, k0 int, raw []byte, v0 int) {
	x := &s.args
	if !x.ok || raw == nil || int(x.n) == maxArgIndex {
		x.ok = false
		return
	}
	x.span[x.n] = argSpan{k0: uint32(k0 - o0), k1: uint32(k0 + len(raw) - o0), v0: uint32(v0 - o0), v1: uint32(s.i - o0)}
	x.n++
}
