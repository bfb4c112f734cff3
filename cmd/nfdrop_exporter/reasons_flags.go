package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/nfdrop/nfdrop_exporter/collector/classify"
	"github.com/nfdrop/nfdrop_exporter/collector/ctlog"
	"github.com/nfdrop/nfdrop_exporter/collector/source"
)

// reasonsGroup is the NFLOG group the kernel writes conntrack's own messages
// to (nfnetlink_log's default logger configuration).
const reasonsGroup = classify.Group(0)

// reasonsFlags are the --conntrack.reasons* flags: conntrack's reason for
// each drop, from conntrack's own INVALID log messages.
type reasonsFlags struct {
	join   bool
	bind   bool
	window time.Duration
	added  bool // group 0 is read only because of --conntrack.reasons.bind
}

func addReasonsFlags(app *kingpin.CmdClause) *reasonsFlags {
	f := &reasonsFlags{}
	app.Flag("conntrack.reasons", "Join every drop to conntrack's reason for the same packet (nfdrop_drop_reasons_total), from the messages conntrack logs to NFLOG group 0 when net.netfilter.nf_conntrack_log_invalid is set; needs group 0 to be read. Conntrack's messages are never counted as drops either way.").Default("true").BoolVar(&f.join)
	app.Flag("conntrack.reasons.bind", "Also bind NFLOG group 0, where conntrack writes its messages, when --nflog.group does not include it (the drop rule logs to another group). The exporter exits if another process (ulogd2) holds group 0.").BoolVar(&f.bind)
	app.Flag("conntrack.reasons.window", "Longest a drop read from another group than 0 waits for conntrack's reason before it is counted with reason none.").Default(ctlog.DefaultWindow.String()).DurationVar(&f.window)
	return f
}

// config validates the flags, adds group 0 to the NFLOG groups when asked
// to, and returns the configuration of the count of conntrack's messages
// (never nil: they are counted, and never as drops, even without the join).
func (f *reasonsFlags) config(groups *[]classify.Group) (*ctlog.Config, error) {
	if f.window <= 0 || f.window > time.Minute {
		return nil, fmt.Errorf("--conntrack.reasons.window=%s: want more than 0 and at most 1m", f.window)
	}
	if f.bind && !f.join {
		return nil, fmt.Errorf("--conntrack.reasons.bind needs --conntrack.reasons: drop one of them")
	}
	if f.bind && !slices.Contains(*groups, reasonsGroup) {
		*groups = append(*groups, reasonsGroup)
		f.added = true
	}
	return &ctlog.Config{ReasonsGroup: reasonsGroup, Join: f.join, Window: f.window}, nil
}

// bindError explains a failure to bind group 0 that --conntrack.reasons.bind asked for.
func (f *reasonsFlags) bindError(err error) error {
	var be *source.BindError
	if !f.added || !errors.As(err, &be) || classify.NFLOGGroup(be.Group) != reasonsGroup {
		return err
	}
	return fmt.Errorf("%v; --conntrack.reasons.bind needs group 0 because conntrack writes its messages there: stop the other reader of group 0 or run without --conntrack.reasons.bind", err)
}
