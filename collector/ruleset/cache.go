package ruleset

import (
	"sync"
	"time"
)

// Source reads a snapshot of the ruleset (Netlink does).
type Source interface {
	Read() (*Snapshot, error)
}

// Cache serves one read to every caller within MaxAge, so that concurrent
// scrapes (two Prometheus servers) share a read instead of each dumping the
// ruleset. A failed read is cached for MaxAge too: a ruleset that cannot be
// read is not hammered at every scrape.
type Cache struct {
	Source Source
	MaxAge time.Duration
	Now    func() time.Time // nil: time.Now

	mu   sync.Mutex // held during a read: callers wait for it and share it
	at   time.Time
	snap *Snapshot
	err  error
}

// Get returns the cached snapshot, or reads one when the cache is older
// than MaxAge. Snapshot.Age tells how old it is; Snapshot.ReadTook how
// long the read took.
func (c *Cache) Get() (*Snapshot, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now().Sub(c.at) < c.MaxAge {
		return c.snap, c.err
	}
	c.snap, c.err = c.Source.Read()
	c.at = now()
	return c.snap, c.err
}
