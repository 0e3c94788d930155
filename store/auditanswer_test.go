package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshguard/meshguard/audit"
	"github.com/meshguard/meshguard/store/pgtest"
)

// openPostgresDB opens a handle on the PostgreSQL database u, closed when
// the test ends: one replica, or a reader, of a shared trail.
func openPostgresDB(t *testing.T, u string, opts ...Option) *db {
	t.Helper()
	s, err := OpenPostgres(t.Context(), u, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &s.db
}

// chainRecords are compactRecords of chain c: ids, decision ids and agents
// of their own, times shifted by 5c seconds (so a cut by time leaves each
// chain a different number of records), sealed in order.
func chainRecords(t *testing.T, c, n int) []audit.Record {
	t.Helper()
	rs := compactRecords(t, audit.GenesisHash, n)
	prev := audit.GenesisHash
	for i := range rs {
		r := &rs[i]
		r.ID = fmt.Sprintf("aud_01a2287480857309d0e%01x%04x", c, i)
		if r.DecisionID != "dec_elsewhere" {
			r.DecisionID = "dec_" + r.ID[len("aud_"):]
		}
		r.AgentID = fmt.Sprintf("agent_c%d_%d", c, i%5)
		r.Chain = append([]string(nil), r.Chain...)
		r.Chain[len(r.Chain)-1] = r.AgentID
		r.Timestamp = r.Timestamp.Add(time.Duration(c) * 5 * time.Second)
		if err := r.Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = r.Hash
	}
	return rs
}

// TestAnswersAcrossInterleavedChains: three PostgreSQL replicas, each
// with its own chain and its own in-memory agent dictionary, write
// interleaved batches of different sizes (rows that store their link and
// rows that do not, a chain's row just after another chain's); a fourth
// handle, which read pages while the trail grew (its dictionary learnt
// early), reads every page size, every filter on an agent and every record
// by id, as does a handle opened after (its dictionary empty: one batched
// read): each record reads back under its own agent, linked to its own
// chain's previous hash, and the trail verifies. Then retention cuts every
// chain at a different point, and all of it again.
func TestAnswersAcrossInterleavedChains(t *testing.T) {
	u := pgtest.NewDatabase(t)
	ctx := t.Context()
	open := func(opts ...Option) *db { return openPostgresDB(t, u, opts...) }
	reader := open()
	const chains, perChain = 3, 24
	writers := make([]*db, chains)
	all := make([][]audit.Record, chains)
	byID := map[string]audit.Record{}
	for c := range chains {
		writers[c] = open(WithAuditChain(fmt.Sprintf("replica-%d", c)))
		all[c] = chainRecords(t, c, perChain)
		for _, r := range all[c] {
			byID[r.ID] = r
		}
	}
	sizes := [chains][]int{{1, 2, 3}, {3, 1}, {2}}
	at := make([]int, chains)
	for round := 0; ; round++ {
		wrote := false
		for c := range chains {
			n := min(sizes[c][round%len(sizes[c])], perChain-at[c])
			if n == 0 {
				continue
			}
			if err := writers[c].AppendAudit(ctx, all[c][at[c]:at[c]+n]); err != nil {
				t.Fatal(err)
			}
			at[c] += n
			wrote = true
		}
		if !wrote {
			break
		}
		// The reader learns agent numbers as the trail grows.
		if _, err := reader.QueryAudit(ctx, AuditFilter{Limit: 5}); err != nil {
			t.Fatal(err)
		}
	}

	check := func(t *testing.T, reader *db, want int) {
		t.Helper()
		same := func(how string, r audit.Record) {
			t.Helper()
			w, ok := byID[r.ID]
			switch {
			case !ok:
				t.Errorf("%s: record %s was never written", how, r.ID)
			case r.AgentID != w.AgentID || r.PrevHash != w.PrevHash || r.Hash != w.Hash || r.Unreadable != "":
				t.Errorf("%s: %s reads back as agent %q linked to %.12s… (hash %.12s…, unreadable %q); want agent %q linked to %.12s… (hash %.12s…)",
					how, r.ID, r.AgentID, r.PrevHash, r.Hash, r.Unreadable, w.AgentID, w.PrevHash, w.Hash)
			default:
				if got, exp := canonicals(t, []audit.Record{r}), canonicals(t, []audit.Record{w}); got[0] != exp[0] {
					t.Errorf("%s: %s reads back as\n%s\nwant\n%s", how, r.ID, got[0], exp[0])
				}
			}
		}
		for _, limit := range []int{100, 7, 4, 3, 2, 1} { // the largest first: a fresh dictionary learns from one page
			n := 0
			for f := (AuditFilter{Limit: limit}); ; {
				page, err := reader.QueryAudit(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Records {
					same(fmt.Sprintf("pages of %d", limit), r)
				}
				n += len(page.Records)
				if page.Next == "" {
					break
				}
				f.Before = page.Next
			}
			if n != want {
				t.Errorf("pages of %d: %d records, want %d", limit, n, want)
			}
		}
		n := 0
		for c := range chains {
			for a := range 5 {
				page, err := reader.QueryAudit(ctx, AuditFilter{AgentID: fmt.Sprintf("agent_c%d_%d", c, a), Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Records {
					if w := fmt.Sprintf("agent_c%d_%d", c, a); r.AgentID != w {
						t.Errorf("the filter on %s gave %s of %s", w, r.ID, r.AgentID)
					}
					same("filter on an agent", r)
				}
				n += len(page.Records)
			}
		}
		if n != want {
			t.Errorf("filters on each agent: %d records, want %d", n, want)
		}
		for id := range byID {
			r, ok, err := reader.AuditRecord(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				same("by id", r)
			}
		}
		if n, err := audit.VerifyChains(ctx, reader); err != nil || int(n) != want {
			t.Fatalf("VerifyChains = %d, %v; want %d records", n, err, want)
		}
	}
	t.Run("whole, learnt as it grew", func(t *testing.T) { check(t, reader, chains*perChain) })
	t.Run("whole, fresh", func(t *testing.T) { check(t, open(), chains*perChain) })

	// Chain c's records start 5c seconds later: a cut 10 records into chain
	// 0 cuts chain 1 after 7, chain 2 after 4.
	cut := all[0][10].Timestamp
	pruned, err := reader.PruneAudit(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	for c := range chains {
		for _, r := range all[c] {
			if !r.Timestamp.Before(cut) {
				left++
			} else {
				delete(byID, r.ID)
			}
		}
	}
	if int(pruned) != chains*perChain-left || left == chains*perChain {
		t.Fatalf("PruneAudit = %d; want %d pruned", pruned, chains*perChain-left)
	}
	t.Run("after retention, learnt", func(t *testing.T) { check(t, reader, left) })
	t.Run("after retention, fresh", func(t *testing.T) { check(t, open(), left) })
}

// TestAnswersPastTheAgentDictionaryBound: with more agents than the
// in-memory dictionary keeps (maxAgentNames), the agents it has no room
// for are read from the database for every answer: every record of a
// trail of one agent each reads back under its own agent, in pages, by id
// and in a filter on its agent, whichever were learnt first.
func TestAnswersPastTheAgentDictionaryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 16,484 records")
	}
	s, _ := compactBackends()[0].open(t) // SQLite: the bound is the store's, not the dialect's
	ctx := t.Context()
	n := maxAgentNames + 100
	rs := compactRecords(t, audit.GenesisHash, n)
	prev := audit.GenesisHash
	for i := range rs {
		r := &rs[i]
		r.AgentID = fmt.Sprintf("agent_%05d", i)
		r.Chain = append([]string(nil), r.Chain...)
		r.Chain[len(r.Chain)-1] = r.AgentID
		if err := r.Seal(prev); err != nil {
			t.Fatal(err)
		}
		prev = r.Hash
	}
	for from := 0; from < n; from += 1000 {
		if err := s.AppendAudit(ctx, rs[from:min(from+1000, n)]); err != nil {
			t.Fatal(err)
		}
	}
	read := 0
	for f := (AuditFilter{Limit: MaxAuditLimit}); ; {
		page, err := s.QueryAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			if w := rs[n-1-read]; r.ID != w.ID || r.AgentID != w.AgentID || r.PrevHash != w.PrevHash {
				t.Fatalf("record %d of the pages: %s of %q linked to %.12s…, want %s of %q linked to %.12s…", read, r.ID, r.AgentID, r.PrevHash, w.ID, w.AgentID, w.PrevHash)
			}
			read++
		}
		if page.Next == "" {
			break
		}
		f.Before = page.Next
	}
	if read != n {
		t.Fatalf("the pages held %d records, want %d", read, n)
	}
	s.agentNames.mu.RLock()
	kept, keptNums := len(s.agentNames.m), len(s.agentNames.nums)
	s.agentNames.mu.RUnlock()
	if kept != maxAgentNames || keptNums != maxAgentNames {
		t.Fatalf("the dictionary keeps %d numbers and %d ids, want %d of each", kept, keptNums, maxAgentNames)
	}
	// The oldest were read last, past the bound; the newest were learnt.
	for _, i := range []int{0, 1, 99, n - 1} {
		page, err := s.QueryAudit(ctx, AuditFilter{AgentID: rs[i].AgentID})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Records) != 1 || page.Records[0].ID != rs[i].ID || page.Records[0].AgentID != rs[i].AgentID {
			t.Errorf("the filter on %s: %+v, want %s alone", rs[i].AgentID, page.Records, rs[i].ID)
		}
		r, ok, err := s.AuditRecord(ctx, rs[i].ID)
		if err != nil || !ok || r.AgentID != rs[i].AgentID {
			t.Errorf("record %s by id: %v, %v, agent %q; want %q", rs[i].ID, ok, err, r.AgentID, rs[i].AgentID)
		}
	}
}
