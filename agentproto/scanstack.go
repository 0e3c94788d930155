package agentproto

// The scanner's stacks and the argument index a Call keeps: values with
// no pointer into the scanner, so that a parse's scanner stays on its
// stack (scan.go).

// spill8, spill16 and spill256 are stacks of T held in an array of 8, 16
// or 256 until they outgrow it, then in a slice of their own. Go cannot
// make an array's length a type parameter, so each size is its own type;
// they share their logic through the spill* functions, which take the
// array as a slice they do not keep (a slice kept into the scanner's own
// array would move the scanner to the heap).
type spill8[T any] struct {
	n    int
	arr  [8]T
	more []T // all of the stack, once it outgrew arr
}

type spill16[T any] struct {
	n    int
	arr  [16]T
	more []T
}

type spill256[T any] struct {
	n    int
	arr  [256]T
	more []T
}

func (st *spill8[T]) push(v T)         { spillPush(st.arr[:], &st.n, &st.more, v) }
func (st *spill8[T]) all() []T         { return spillAll(st.arr[:], st.n, st.more) }
func (st *spill8[T]) truncate(n int)   { spillTruncate(&st.n, &st.more, n) }
func (st *spill16[T]) push(v T)        { spillPush(st.arr[:], &st.n, &st.more, v) }
func (st *spill16[T]) all() []T        { return spillAll(st.arr[:], st.n, st.more) }
func (st *spill16[T]) truncate(n int)  { spillTruncate(&st.n, &st.more, n) }
func (st *spill256[T]) push(v T)       { spillPush(st.arr[:], &st.n, &st.more, v) }
func (st *spill256[T]) all() []T       { return spillAll(st.arr[:], st.n, st.more) }
func (st *spill256[T]) truncate(n int) { spillTruncate(&st.n, &st.more, n) }

// spillPush pushes v on the stack of n values in arr, or in *more once
// it outgrew arr.
func spillPush[T any](arr []T, n *int, more *[]T, v T) {
	if *more == nil && *n < len(arr) {
		arr[*n] = v
		*n++
		return
	}
	if *more == nil {
		*more = append(make([]T, 0, 2*len(arr)), arr[:*n]...)
	}
	*more = append(*more, v)
	*n++
}

// spillAll is the stack, bottom first; it is valid until the next push.
func spillAll[T any](arr []T, n int, more []T) []T {
	if more != nil {
		return more[:n]
	}
	return arr[:n]
}

// spillTruncate keeps the stack's first to values.
func spillTruncate[T any](n *int, more *[]T, to int) {
	*n = to
	if *more != nil {
		*more = (*more)[:to]
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
