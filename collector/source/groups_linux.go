//go:build linux

package source

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// New returns the source cfg describes: a replay of cfg.ReplayFile, or live
// readers of cfg.Groups, one socket each.
func New(cfg Config, logger *slog.Logger) (Source, error) {
	if len(cfg.Groups) == 0 {
		return nil, errors.New("no NFLOG group configured")
	}
	if cfg.ReplayFile != "" {
		return &Replay{Path: cfg.ReplayFile, Groups: cfg.Groups}, nil
	}
	m := &liveGroups{}
	for _, g := range cfg.Groups {
		m.live = append(m.live, NewLive(g, cfg, logger.With("group", g)))
	}
	return m, nil
}

// ErrNoNetAdmin is returned by Open of a live source without CAP_NET_ADMIN.
var ErrNoNetAdmin = errors.New("nfdrop_exporter needs CAP_NET_ADMIN to bind NFLOG groups: run it as root or grant the capability (systemd AmbientCapabilities=CAP_NET_ADMIN, or setcap cap_net_admin+ep on the binary)")

// liveGroups is the live source of one or more groups: one reader (and goroutine) each.
type liveGroups struct{ live []*Live }

func (m *liveGroups) Open(h Handler) error {
	if !HasNetAdmin() {
		return ErrNoNetAdmin
	}
	for i, l := range m.live {
		if err := l.Open(h); err != nil {
			for _, o := range m.live[:i] {
				o.Close()
			}
			return err
		}
		l.logger.Info("Bound NFLOG group")
	}
	return nil
}

func (m *liveGroups) Run(ctx context.Context, h Handler) error {
	var wg sync.WaitGroup
	errs := make([]error, len(m.live))
	for i, l := range m.live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Run(ctx, h)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (m *liveGroups) Close() error {
	for _, l := range m.live {
		l.Close()
	}
	return nil
}
