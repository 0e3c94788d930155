// Package charttest checks the Helm chart in charts/meshguard: it renders the
// chart with Helm's Go SDK, decodes every manifest strictly into its
// Kubernetes, Istio, cert-manager or prometheus-operator type, checks that
// what the Deployment sets are settings `meshguard serve` accepts, and runs
// Helm's linter. It is a module of its own so that Helm's dependencies stay
// out of the server's go.mod; `make test` runs it.
package charttest
