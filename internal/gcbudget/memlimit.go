package gcbudget

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"path"
	"strconv"
	"strings"
)

// ErrCgroup is CgroupMemoryLimit's error for a cgroup file it cannot read
// as the kernel writes it.
var ErrCgroup = errors.New("gcbudget: unreadable cgroup memory limit")

// maxCgroupFile bounds what is read of /proc/self/cgroup and of a limit
// file: the kernel's are a few hundred bytes.
const maxCgroupFile = 64 << 10

// v1Unlimited: cgroup v1 reports "no limit" as the largest page-aligned
// int64 (9223372036854771712); anything this large is no limit.
const v1Unlimited = 1 << 62

// CgroupMemoryLimit is the memory limit (bytes) of the cgroup this process
// runs in, as its container runtime or systemd unit set it, or 0 if it has
// none. root is the file system at "/" (os.DirFS("/")); the process's
// cgroup is read from proc/self/cgroup. The limit is the smallest set on
// the cgroup or any cgroup above it within the mount (a limit on a parent
// binds its children); a level that has no limit file, or "max", sets
// none. cgroup v1's memory controller is used when it is mounted, else
// cgroup v2's (a host with both mounts v1's memory controller only).
func CgroupMemoryLimit(root fs.FS) (uint64, error) {
	self, err := readSmall(root, "proc/self/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // not Linux, or no /proc
	}
	if err != nil {
		return 0, err
	}
	var v2Path, v1Path string
	var v2, v1 bool
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		id, rest, ok1 := strings.Cut(sc.Text(), ":")
		controllers, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("%w: proc/self/cgroup: a line without its three fields", ErrCgroup)
		}
		switch {
		case id == "0" && controllers == "":
			v2, v2Path = true, p
		case hasController(controllers, "memory"):
			v1, v1Path = true, p
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%w: proc/self/cgroup: %w", ErrCgroup, err)
	}
	switch {
	case v1:
		return smallestLimit(root, "sys/fs/cgroup/memory", v1Path, "memory.limit_in_bytes")
	case v2:
		return smallestLimit(root, "sys/fs/cgroup", v2Path, "memory.max")
	}
	return 0, nil
}

// smallestLimit reads file in the cgroup p below mount and in each of its
// parents up to mount, and returns the smallest limit found (0: none). A
// cgroup namespace shows a container its own cgroup as the mount's root
// while proc/self/cgroup may still name the host's path: the levels that
// do not exist below the mount are skipped, so the walk ends at the
// container's own limit.
func smallestLimit(root fs.FS, mount, p, file string) (uint64, error) {
	if !strings.HasPrefix(p, "/") {
		return 0, fmt.Errorf("%w: proc/self/cgroup: the path %q is not absolute", ErrCgroup, p)
	}
	var least uint64
	// path.Clean of an absolute path never climbs above "/".
	for dir := path.Clean(p); ; dir = path.Dir(dir) {
		name := path.Join(mount, dir, file)
		b, err := readSmall(root, name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return 0, err
		default:
			limit, err := parseLimit(b)
			if err != nil {
				return 0, fmt.Errorf("%w: %s: %w", ErrCgroup, name, err)
			}
			if limit != 0 && (least == 0 || limit < least) {
				least = limit
			}
		}
		if dir == "/" {
			return least, nil
		}
	}
}

// parseLimit reads a limit file's one line: bytes, or "max" (no limit,
// 0). A v1 "unlimited" is 0 too.
func parseLimit(b []byte) (uint64, error) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: expected a number of bytes or max", s)
	}
	if n >= v1Unlimited {
		return 0, nil
	}
	return n, nil
}

// hasController says whether a v1 line's comma-separated controller list
// names c.
func hasController(list, c string) bool {
	for l := range strings.SplitSeq(list, ",") {
		if l == c {
			return true
		}
	}
	return false
}

// readSmall reads name from root, failing past maxCgroupFile bytes.
func readSmall(root fs.FS, name string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil { // fs.ErrNotExist stays visible to errors.Is
		return nil, fmt.Errorf("%w: %w", ErrCgroup, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCgroupFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCgroup, name, err)
	}
	if len(b) > maxCgroupFile {
		return nil, fmt.Errorf("%w: %s: longer than %d bytes", ErrCgroup, name, maxCgroupFile)
	}
	return b, nil
}

// SoftLimit is percent of a cgroup's memory limit, for
// debug.SetMemoryLimit: the headroom left is for what Go's limit does not
// count (the binary's own pages, memory outside the Go runtime).
func SoftLimit(limit uint64, percent int) int64 {
	if percent <= 0 || limit == 0 {
		return 0
	}
	hi, lo := bits.Mul64(limit, uint64(min(percent, 100)))
	q, _ := bits.Div64(hi, lo, 100) // hi < 100: percent is at most 100
	return int64(min(q, 1<<63-1))
}
