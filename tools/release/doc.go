// Package release pins GoReleaser as a Go tool in a module of its own, so
// its large dependency tree stays out of MeshGuard's go.mod: `make release`
// runs `go tool -modfile=tools/release/go.mod goreleaser` on the repository's
// .goreleaser.yaml. Its test guards that file cheaply (no release run, which
// takes minutes): loaded strictly by GoReleaser's own loader, it must build
// every platform with cgo off and the version stamps cmd/meshguard declares,
// and ship the wasm filter.
package release
