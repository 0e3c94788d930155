// Package archtest holds no code, only the test that guards the package
// layering docs/architecture.md describes: which package may import which,
// that the Go SDK (client, api) pulls in nothing heavy, and that every
// package of the module has its row on that page. A new import that
// crosses a layer fails here, in `make test`, before a reviewer has to
// notice it. It also holds the docs to the repository: no relative link
// leaves it or names a file that is missing.
package archtest
