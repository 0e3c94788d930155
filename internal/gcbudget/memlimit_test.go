package gcbudget

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func files(kv ...string) fstest.MapFS {
	m := fstest.MapFS{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = &fstest.MapFile{Data: []byte(kv[i+1])}
	}
	return m
}

func TestCgroupMemoryLimit(t *testing.T) {
	const v1max = "9223372036854771712\n"
	for _, tc := range []struct {
		name string
		root fstest.MapFS
		want uint64
	}{
		{"no /proc: not Linux", files(), 0},
		{"v2 container: its own cgroup is the mount's root",
			files("proc/self/cgroup", "0::/\n", "sys/fs/cgroup/memory.max", "268435456\n"), 256 << 20},
		{"v2 without a limit", files("proc/self/cgroup", "0::/\n", "sys/fs/cgroup/memory.max", "max\n"), 0},
		{"v2 systemd unit: MemoryMax on the service",
			files("proc/self/cgroup", "0::/system.slice/meshguard.service\n",
				"sys/fs/cgroup/system.slice/meshguard.service/memory.max", "536870912\n",
				"sys/fs/cgroup/system.slice/memory.max", "max\n"), 512 << 20},
		{"v2: a parent's smaller limit binds",
			files("proc/self/cgroup", "0::/kubepods/pod1/c1\n",
				"sys/fs/cgroup/kubepods/pod1/c1/memory.max", "max\n",
				"sys/fs/cgroup/kubepods/pod1/memory.max", "201326592\n",
				"sys/fs/cgroup/kubepods/memory.max", "8589934592\n"), 192 << 20},
		{"v2 namespace shows the host's path: missing levels skipped",
			files("proc/self/cgroup", "0::/system.slice/docker-abc.scope\n", "sys/fs/cgroup/memory.max", "100000000\n"), 100000000},
		{"v1 container", files("proc/self/cgroup", "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n1:name=systemd:/docker/abc\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes", "134217728\n"), 128 << 20},
		{"v1 unlimited", files("proc/self/cgroup", "3:memory:/\n", "sys/fs/cgroup/memory/memory.limit_in_bytes", v1max), 0},
		{"v1's memory controller wins over a v2 line (hybrid host)",
			files("proc/self/cgroup", "3:memory:/\n0::/\n", "sys/fs/cgroup/memory/memory.limit_in_bytes", "1048576\n",
				"sys/fs/cgroup/memory.max", "2097152\n"), 1 << 20},
		{"a path climbing out of the mount stays in it",
			files("proc/self/cgroup", "0::/../../etc\n", "sys/fs/cgroup/memory.max", "4096\n", "etc/memory.max", "1\n"), 4096},
		{"no memory controller at all", files("proc/self/cgroup", "4:cpu:/\n"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CgroupMemoryLimit(tc.root)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("limit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCgroupMemoryLimitUnreadable(t *testing.T) {
	for _, tc := range []struct {
		name string
		root fstest.MapFS
		want string
	}{
		{"a limit that is not a number", files("proc/self/cgroup", "0::/\n", "sys/fs/cgroup/memory.max", "lots\n"),
			`sys/fs/cgroup/memory.max: "lots": expected a number of bytes or max`},
		{"a negative limit", files("proc/self/cgroup", "0::/\n", "sys/fs/cgroup/memory.max", "-1\n"), `"-1": expected`},
		{"a line without its fields", files("proc/self/cgroup", "garbage\n"), "a line without its three fields"},
		{"a relative path", files("proc/self/cgroup", "0::system.slice\n"), `the path "system.slice" is not absolute`},
		{"a limit file past the bound", files("proc/self/cgroup", "0::/\n", "sys/fs/cgroup/memory.max", strings.Repeat("1", maxCgroupFile+1)),
			"longer than 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CgroupMemoryLimit(tc.root)
			if !errors.Is(err, ErrCgroup) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CgroupMemoryLimit = %d, %v; want ErrCgroup saying %q", got, err, tc.want)
			}
		})
	}
}

func TestSoftLimit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   uint64
		percent int
		want    int64
	}{
		{"90% of 256 MiB", 256 << 20, 90, 241591910},
		{"no limit", 0, 90, 0},
		{"percent 0: off", 256 << 20, 0, 0},
		{"at most 100%", 1000, 250, 1000},
		{"the largest limit the parser returns", 1<<62 - 1, 100, 1<<62 - 1},
		{"past int64 is capped", ^uint64(0), 100, 1<<63 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SoftLimit(tc.limit, tc.percent); got != tc.want {
				t.Errorf("SoftLimit(%d, %d) = %d, want %d", tc.limit, tc.percent, got, tc.want)
			}
		})
	}
}

// FuzzCgroupMemoryLimit: whatever the kernel's files hold, the reader
// returns a limit below v1's "unlimited" or an ErrCgroup, never a panic.
func FuzzCgroupMemoryLimit(f *testing.F) {
	f.Add("0::/a/b\n", "max\n", "1048576\n")
	f.Add("3:memory:/x\n0::/\n", "123\n", "9223372036854771712")
	f.Add("0::/../..\n", "-5", "")
	f.Fuzz(func(t *testing.T, self, leaf, top string) {
		root := files("proc/self/cgroup", self, "sys/fs/cgroup/memory.max", top,
			"sys/fs/cgroup/a/b/memory.max", leaf, "sys/fs/cgroup/memory/memory.limit_in_bytes", top,
			"sys/fs/cgroup/memory/x/memory.limit_in_bytes", leaf)
		got, err := CgroupMemoryLimit(root)
		if err != nil && !errors.Is(err, ErrCgroup) {
			t.Fatalf("an error that is not ErrCgroup: %v", err)
		}
		if got >= v1Unlimited {
			t.Fatalf("limit %d: unlimited taken as a limit", got)
		}
	})
}
