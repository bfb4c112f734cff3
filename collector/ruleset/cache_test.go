package ruleset

import (
	"errors"
	"sync"
	"testing"
	"time"
)

type countingSource struct {
	mu    sync.Mutex
	reads int
	err   error
}

func (s *countingSource) Read() (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	time.Sleep(10 * time.Millisecond)
	if s.err != nil {
		return nil, s.err
	}
	return &Snapshot{Generation: uint32(s.reads), ReadAt: time.Unix(int64(s.reads), 0)}, nil
}

// TestCache: callers within MaxAge share one read, concurrent ones
// included; an older cache reads again; a failure is cached as well.
func TestCache(t *testing.T) {
	src := &countingSource{}
	now := time.Unix(100, 0)
	c := &Cache{Source: src, MaxAge: 5 * time.Second, Now: func() time.Time { return now }}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s, err := c.Get(); err != nil || s.Generation != 1 {
				t.Errorf("%+v %v", s, err)
			}
		}()
	}
	wg.Wait()
	if src.reads != 1 {
		t.Fatalf("%d reads for 8 concurrent callers, want 1", src.reads)
	}
	now = now.Add(5 * time.Second)
	if s, _ := c.Get(); s.Generation != 2 || src.reads != 2 {
		t.Fatalf("after MaxAge: generation %d, reads %d", s.Generation, src.reads)
	}
	src.err = errors.New("boom")
	now = now.Add(6 * time.Second)
	for i := 0; i < 3; i++ {
		if _, err := c.Get(); err == nil {
			t.Fatal("error not returned")
		}
	}
	if src.reads != 3 {
		t.Fatalf("%d reads, want 3", src.reads)
	}
}
