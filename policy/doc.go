// Package policy reads, validates, compiles and evaluates MeshGuard's YAML
// policies and their delegation rules (docs/policies.md).
//
// The flow is Parse → Compile → Evaluate:
//
//   - Parse decodes one file (one or more `---` documents) strictly: unknown
//     keys, wrong types and bad values are errors that name the file, line and
//     field and say what was expected.
//   - Compile turns a list of policies into an immutable Set: patterns become
//     Globs, actions are indexed so a decision costs the same with ten rules as
//     with ten thousand, and the set gets a revision hash.
//   - Set.Evaluate decides one Input (agent, action, resource, context,
//     delegation chain, time) and can explain itself.
//
// Loader keeps the last good Set when a file turns bad. Tests and agent files
// for offline `meshguard policy test` runs are read and run here too.
//
// The package must build for GOOS=wasip1 (the proxy-wasm filter embeds it),
// so it depends only on the standard library, gopkg.in/yaml.v3 and trust.
package policy
