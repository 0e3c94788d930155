package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	_ "github.com/jackc/pgx/v5/stdlib" // the test's own connection, to lock the table
	_ "modernc.org/sqlite"             // the test's own connection, to hold the write lock

	"github.com/meshguard/meshguard/api"
	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/client"
	"github.com/meshguard/meshguard/engine"
	"github.com/meshguard/meshguard/store"
	"github.com/meshguard/meshguard/store/pgtest"
)

// crashMaxLag is the AUDIT_MAX_LAG_MS the crash tests run with.
const crashMaxLag = 200 * time.Millisecond

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binary builds meshguard once for the tests of this package.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshguard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "meshguard")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// served is a `meshguard serve` child process.
type served struct {
	cmd     *exec.Cmd
	dataDir string
	admin   *client.Client
	grpc    *grpc.ClientConn
}

// serve runs `meshguard serve` in dir (its DATA_DIR is dir/data) with a
// readers policy and env added, and waits until it answers.
func serve(t *testing.T, dir string, env ...string) *served {
	t.Helper()
	bin := binary(t)
	policies := filepath.Join(dir, "policies")
	if err := os.MkdirAll(policies, 0o755); err != nil {
		t.Fatal(err)
	}
	policy := "name: readers\nappliesTo: {tags: [reader]}\nrules:\n  - {name: reads, effect: allow, actions: [\"read:*\"]}\n"
	if err := os.WriteFile(filepath.Join(policies, "readers.yaml"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	httpPort, grpcPort := freePort(t), freePort(t)
	const adminToken = "crash-test-admin-token-0123456789abcdef"
	s := &served{dataDir: filepath.Join(dir, "data")}
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT="+strconv.Itoa(httpPort), "GRPC_PORT="+strconv.Itoa(grpcPort),
		"DATA_DIR="+s.dataDir, "POLICIES_DIR="+policies, "LOG_LEVEL=warn", "ADMIN_TOKEN="+adminToken,
		"AUDIT_FLUSH_MS=20", "AUDIT_MAX_LAG_MS="+strconv.Itoa(int(crashMaxLag/time.Millisecond)))
	s.cmd.Env = append(s.cmd.Env, env...)
	logFile, err := os.OpenFile(filepath.Join(dir, "serve.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(httpPort)
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(base + "/health")
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.admin, err = client.New(client.Config{BaseURL: base, AdminToken: adminToken}); err != nil {
		t.Fatal(err)
	}
	if s.grpc, err = grpc.NewClient("127.0.0.1:"+strconv.Itoa(grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.grpc.Close() })
	return s
}

// allowed is one decision answered "allow": its id and when the answer
// arrived.
type allowed struct {
	id string
	at time.Time
}

// load sends Checks from several goroutines until stop is closed and
// returns every allow, and the time of the first refusal (zero if none).
// Anything but an allow or UNAVAILABLE fails the test.
func load(t *testing.T, s *served, token string, stop <-chan struct{}) (func() ([]allowed, time.Time, int), func() time.Time) {
	t.Helper()
	authz := authv3.NewAuthorizationClient(s.grpc)
	var mu sync.Mutex
	var allows []allowed
	var firstRefusal time.Time
	refused := 0
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/docs/%d-%d", g, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := authz.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
					Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "docs.internal", Path: path,
						Headers: map[string]string{"authorization": "Bearer " + token, ":path": path, ":method": "GET"}}}}})
				cancel()
				at := time.Now()
				switch {
				case err == nil && codes.Code(resp.GetStatus().GetCode()) == codes.OK:
					id := ""
					for _, h := range resp.GetOkResponse().GetHeaders() {
						if h.GetHeader().GetKey() == engine.HeaderDecisionID {
							id = h.GetHeader().GetValue()
						}
					}
					if id == "" {
						id = resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
					}
					if id == "" {
						t.Errorf("an allow without a decision id: %v", resp)
						return
					}
					mu.Lock()
					allows = append(allows, allowed{id: id, at: at})
					mu.Unlock()
				case status.Code(err) == codes.Unavailable:
					mu.Lock()
					if firstRefusal.IsZero() {
						firstRefusal = at
					}
					refused++
					mu.Unlock()
					time.Sleep(time.Millisecond)
				case ctx.Err() != nil:
					// No answer before the deadline: not given.
				default:
					t.Errorf("check %s: %v %v", path, resp, err)
					return
				}
			}
		}()
	}
	result := func() ([]allowed, time.Time, int) {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return allows, firstRefusal, refused
	}
	refusedAt := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return firstRefusal
	}
	return result, refusedAt
}

// crashDuringOutage runs the Done-when scenario: allowed Checks, the store
// stops accepting writes (down), the process is killed with SIGKILL well
// after it started refusing, the store comes back (up), and every allowed
// decision must be in the store but those answered within
// AUDIT_MAX_LAG_MS before the kill.
func crashDuringOutage(t *testing.T, s *served, down, up func(), restart func() *served, stored func() map[string]bool) {
	t.Helper()
	a, err := s.admin.CreateAgent(context.Background(), api.CreateAgentRequest{Name: "reader", TrustTier: "verified", Tags: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	result, refusedAt := load(t, s, a.Token, stop)
	time.Sleep(300 * time.Millisecond)
	down()
	deadline := time.Now().Add(30 * time.Second)
	for refusedAt().IsZero() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if refusedAt().IsZero() {
		close(stop)
		result()
		t.Fatal("checks were still allowed 30 s into the store's outage")
	}
	// Well past AUDIT_MAX_LAG_MS into the refusal: whatever was allowed
	// before must survive the kill.
	time.Sleep(5 * crashMaxLag)
	if err := s.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	_ = s.cmd.Wait()
	close(stop)
	allows, firstRefusal, refused := result()
	up()
	// The next start stores what the killed process journaled, before it
	// decides anything; then it stops.
	again := restart()
	if err := again.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := again.cmd.Wait(); err != nil {
		t.Fatalf("the restarted server's exit: %v", err)
	}

	have := stored()
	var lost, lostInWindow, allowedAfterRefusal int
	for _, d := range allows {
		if d.at.After(firstRefusal) {
			allowedAfterRefusal++
		}
		if have[d.id] {
			continue
		}
		if killedAt.Sub(d.at) <= crashMaxLag {
			lostInWindow++
			continue
		}
		lost++
		if lost <= 5 {
			t.Errorf("decision %s, allowed %v before the kill (%v after the first refusal), has no record", d.id,
				killedAt.Sub(d.at).Round(time.Millisecond), d.at.Sub(firstRefusal).Round(time.Millisecond))
		}
	}
	t.Logf("allowed %d (%d after the first refusal), refused %d; allowed but unrecorded: %d older than AUDIT_MAX_LAG_MS before the kill, %d within it",
		len(allows), allowedAfterRefusal, refused, lost, lostInWindow)
	if lost > 0 {
		t.Fatalf("%d allowed decisions older than AUDIT_MAX_LAG_MS (%v) before the kill have no record", lost, crashMaxLag)
	}
	if len(allows) == 0 {
		t.Fatal("no check was allowed")
	}
}

// TestKillDuringStoreOutageSQLite: another connection holds SQLite's write
// lock while allowed Checks go on; the server is killed with SIGKILL.
func TestKillDuringStoreOutageSQLite(t *testing.T) {
	dir := t.TempDir()
	s := serve(t, dir)
	dbPath := filepath.Join(s.dataDir, "meshguard.db")
	// busy_timeout: the server may hold the write lock for a commit just
	// as the outage starts; wait for it rather than fail the test.
	locker, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(30000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	conn, err := locker.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	down := func() {
		if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
	}
	up := func() {
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	}
	crashDuringOutage(t, s, down, up, func() *served { return serve(t, dir) }, func() map[string]bool {
		return storedDecisions(t, func(ctx context.Context) (verifiable, error) { return store.OpenSQLite(ctx, dbPath) })
	})
}

// TestKillDuringStoreOutagePostgres: another connection holds
// `LOCK TABLE audit IN ACCESS EXCLUSIVE MODE` while allowed Checks go on;
// the server is killed with SIGKILL.
func TestKillDuringStoreOutagePostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	dir := t.TempDir()
	s := serve(t, dir, "DATABASE_URL="+url)
	locker, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = locker.Close() })
	var tx *sql.Tx
	down := func() {
		if tx, err = locker.BeginTx(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("LOCK TABLE audit IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
	}
	up := func() {
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
	crashDuringOutage(t, s, down, up, func() *served { return serve(t, dir, "DATABASE_URL="+url) }, func() map[string]bool {
		return storedDecisions(t, func(ctx context.Context) (verifiable, error) { return store.OpenPostgres(ctx, url) })
	})
}

// storedDecisions verifies the trail and reads every stored record's
// decision id.
func storedDecisions(t *testing.T, open func(context.Context) (verifiable, error)) map[string]bool {
	t.Helper()
	ctx := context.Background()
	db, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := audit.Verify(ctx, db, audit.VerifyOptions{}); err != nil {
		t.Errorf("the trail after the crash and restart: %v", err)
	}
	have := map[string]bool{}
	if err := db.ScanAudit(ctx, func(r audit.Record) error { have[r.DecisionID] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return have
}

// verifiable is a store opened to read the trail back.
type verifiable interface {
	audit.Chains
	ScanAudit(ctx context.Context, fn func(audit.Record) error) error
	Close() error
}
