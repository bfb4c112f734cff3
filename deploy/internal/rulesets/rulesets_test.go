package rulesets

import (
	"fmt"
	"slices"
	"testing"
)

// errorRecorder stands in for a test to collect CheckGroup's failures.
type errorRecorder struct {
	testing.TB
	errs []string
}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestCheckGroup: the shipped rulesets log to group 0, so a check for group 0 passes
// and a check for any other group fails once per log rule, naming file and reader.
func TestCheckGroup(t *testing.T) {
	CheckGroup(t, 0, "this test reads")
	r := &errorRecorder{TB: t}
	CheckGroup(r, 7, "nobody reads")
	if len(r.errs) == 0 {
		t.Fatal("group 7 passed: the check cannot fail")
	}
	for _, file := range []string{"iptables.rules", "ip6tables.rules", "nftables.nft"} {
		want := file + " logs to group 0, nobody reads group 7"
		if !slices.Contains(r.errs, want) {
			t.Errorf("no failure %q among %q", want, r.errs)
		}
	}
}
