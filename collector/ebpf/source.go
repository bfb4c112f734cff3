package ebpf

import (
	"context"
	"errors"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
)

// Source is the eBPF drop source as a source.Source: it hands every record
// to the handler as a message of classify.GroupEBPF, in the order the kernel
// produced them, and ends a batch each time the ring is empty. Losses are
// not messages: the program counts them (Counts.Lost), and the exporter
// reads them at scrape time.
type Source struct {
	p   *Program
	msg source.Message // reused for every record
}

// NewSource returns the source of p's drops; Close closes p.
func NewSource(p *Program) *Source { return &Source{p: p} }

// Open reports the group bound: the program is attached already.
func (s *Source) Open(h source.Handler) error {
	h.Bound(classify.GroupEBPF, true)
	return nil
}

// Run reads the ring buffer until ctx ends or the program is closed.
func (s *Source) Run(ctx context.Context, h source.Handler) error {
	m := &s.msg
	err := s.p.readRecords(ctx, func(r *Record) {
		*m = source.Message{Group: classify.GroupEBPF, Family: r.AddressFamily(), Payload: r.Payload,
			TimestampNs: r.TimestampNs, HasTimestamp: true}
		h.Packet(m)
	}, func() { h.Flush(classify.GroupEBPF) })
	if err != nil && !errors.Is(err, ErrClosed) {
		h.ReceiveError(classify.GroupEBPF, source.ReasonOther)
		h.Bound(classify.GroupEBPF, false)
		return err
	}
	return nil
}

// Close detaches the program.
func (s *Source) Close() error { return s.p.Close() }

var _ source.Source = (*Source)(nil)
