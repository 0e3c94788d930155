package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The WAL is checkpointed here, from a connection of its own; the writer
// connection's automatic checkpoint is off. Run by the writer, a checkpoint
// (copying the WAL into the file, an fsync of each) sat inside the audit
// writer's commit and, on a busy disk, pushed a commit past the 500 ms lag
// bound. A checkpoint runs every DefaultCheckpointInterval and, sooner,
// once walCheckpointRecords audit records were committed since the last
// (about the 1000 pages at which SQLite's automatic one ran). Durability is
// the same: with synchronous(NORMAL) a commit is never fsynced, a process
// crash loses nothing either way, and a power cut loses what the last
// checkpoint had not synced.
//
// A PASSIVE checkpoint waits for no one; the writer restarts the WAL from
// its start at its next transaction once a checkpoint has copied it all.
// Under commits back to back that may not happen for a while, so a WAL
// grown past walRestartFrames gets a RESTART checkpoint, which waits for
// the writer (busy_timeout) and has little left to copy by then.

// DefaultCheckpointInterval is how often the WAL is checkpointed.
const DefaultCheckpointInterval = time.Second

// walRestartFrames is the WAL length (4 KiB pages: 16 MB) past which the
// checkpointer waits for the writer to restart the log.
const walRestartFrames = 4000

// walCheckpointRecords is how many audit records committed since the last
// checkpoint start the next one before the timer.
const walCheckpointRecords = 2000

// WithCheckpointInterval sets how often the WAL is checkpointed (default
// DefaultCheckpointInterval).
func WithCheckpointInterval(d time.Duration) Option {
	return func(o *options) { o.checkpointEvery = d }
}

type walCheckpointer struct {
	db   *sql.DB
	stop chan struct{}
	done chan struct{}
	once sync.Once
	// kick starts a checkpoint before the timer; written counts the
	// records committed since the last one.
	kick    chan struct{}
	written atomic.Int64
	// restartFrames is walRestartFrames (tests set less).
	restartFrames atomic.Int64
	// runs counts checkpoints that succeeded (tests wait on it), restarts
	// those of them that restarted the WAL.
	mu       sync.Mutex
	runs     int
	restarts int
	err      error // the last one's error
}

// startCheckpointer opens the checkpointer's connection and starts it.
func startCheckpointer(ctx context.Context, dsn string, every time.Duration) (*walCheckpointer, error) {
	db, err := openPool(ctx, dsn, 1)
	if err != nil {
		return nil, fmt.Errorf("checkpointer: %w", err)
	}
	c := &walCheckpointer{db: db, stop: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	c.restartFrames.Store(walRestartFrames)
	go c.run(every)
	return c, nil
}

func (c *walCheckpointer) run(every time.Duration) {
	defer close(c.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.kick:
		}
		c.written.Store(0)
		ctx, cancel := context.WithTimeout(context.Background(), max(10*time.Second, every))
		restarted, err := c.checkpoint(ctx)
		cancel()
		// A failed checkpoint is retried at the next tick; the WAL only
		// grows meanwhile, which the next successful one undoes.
		c.mu.Lock()
		c.err = err
		if err == nil {
			c.runs++
			if restarted {
				c.restarts++
			}
		}
		c.mu.Unlock()
	}
}

// committed tells the checkpointer n audit records were committed.
func (c *walCheckpointer) committed(n int) {
	if c.written.Add(int64(n)) >= walCheckpointRecords {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// checkpoint copies what it can of the WAL into the database file, and
// says whether the WAL was past its bound and restarted.
func (c *walCheckpointer) checkpoint(ctx context.Context) (restarted bool, err error) {
	var busy, frames, copied int
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		return false, fmt.Errorf("wal checkpoint: %w", err)
	}
	if int64(frames) < c.restartFrames.Load() {
		return false, nil
	}
	if err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &frames, &copied); err != nil {
		return false, fmt.Errorf("wal checkpoint (restart): %w", err)
	}
	return true, nil
}

// status is how many checkpoints succeeded and the last one's error.
func (c *walCheckpointer) status() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs, c.err
}

// restarted is how many checkpoints restarted the WAL.
func (c *walCheckpointer) restarted() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts
}

// close stops the checkpointer and closes its connection; safe to call
// more than once.
func (c *walCheckpointer) close() error {
	var err error
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		err = c.db.Close()
	})
	return err
}
