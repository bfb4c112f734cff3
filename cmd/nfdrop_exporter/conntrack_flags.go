package main

import (
	"fmt"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/nfdrop/nfdrop_exporter/collector/conntrack"
)

// conntrackFlags are the --conntrack.* flags (teardown evidence).
type conntrackFlags struct {
	correlate     bool
	window        time.Duration
	hold          time.Duration
	maxFlows      int
	lookups       float64
	queue         int
	receiveBuffer units.Base2Bytes
}

func addConntrackFlags(app *kingpin.CmdClause) *conntrackFlags {
	f := &conntrackFlags{}
	app.Flag("conntrack.correlate", "Add conntrack evidence to teardown-shaped drops (nfdrop_teardown_evidence_total): listen to conntrack DESTROY events and look flows up. Needs CAP_NET_ADMIN; if conntrack is unavailable the exporter warns once and counts the evidence as skipped.").Default("true").BoolVar(&f.correlate)
	app.Flag("conntrack.window", "How long an ended TCP flow is remembered: a late packet up to this long after conntrack destroyed its flow gets evidence \"destroyed\".").Default(conntrack.DefaultWindow.String()).DurationVar(&f.window)
	app.Flag("conntrack.hold", "How long a teardown-shaped drop waits (from its NFLOG timestamp) for its flow's DESTROY event before the flow is looked up.").Default(conntrack.DefaultHold.String()).DurationVar(&f.hold)
	app.Flag("conntrack.max-flows", "Most ended TCP flows remembered; the oldest are forgotten first. Costs 56 bytes per flow, reserved at start.").Default(fmt.Sprint(conntrack.DefaultMaxFlows)).IntVar(&f.maxFlows)
	app.Flag("conntrack.lookups-per-second", "Most direct conntrack table lookups per second, for drops of flows not remembered; beyond it evidence is \"skipped\". 0 disables lookups.").Default(fmt.Sprint(conntrack.DefaultLookupsPerSecond)).Float64Var(&f.lookups)
	app.Flag("conntrack.hold-queue", "Most teardown-shaped drops waiting out the hold; beyond it evidence is \"skipped\".").Default(fmt.Sprint(conntrack.DefaultQueueSize)).IntVar(&f.queue)
	app.Flag("conntrack.socket.receive-buffer", "Receive buffer of the conntrack event socket (SO_RCVBUFFORCE): how large a burst of DESTROY events survives; the rest is counted in nfdrop_conntrack_events_lost_total.").Default("8MiB").BytesVar(&f.receiveBuffer)
	return f
}

// config returns the tracker's configuration, or nil with
// --no-conntrack.correlate or when replaying a capture: its packets never
// passed this kernel's conntrack, so any evidence would be made up. The
// collector validates it.
func (f *conntrackFlags) config(replay bool) *conntrack.Config {
	if !f.correlate || replay {
		return nil
	}
	return &conntrack.Config{
		Window:           f.window,
		Hold:             f.hold,
		MaxFlows:         f.maxFlows,
		LookupsPerSecond: f.lookups,
		QueueSize:        f.queue,
		ReceiveBuffer:    int(f.receiveBuffer),
	}
}
