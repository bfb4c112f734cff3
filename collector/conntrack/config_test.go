package conntrack

import (
	"testing"
	"time"

	"github.com/nfdrop/nfdrop_exporter/collector/classify"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no group", func(c *Config) { c.Groups = nil }, "no NFLOG group configured: give at least one group"},
		{"window shorter than hold", func(c *Config) { c.Window = time.Second }, "--conntrack.window=1s: want at least --conntrack.hold (2s) and at most 24h"},
		{"hold too long", func(c *Config) { c.Hold = 2 * time.Minute }, "--conntrack.hold=2m0s: want 0 to 1m"},
		{"no flows", func(c *Config) { c.MaxFlows = 0 }, "--conntrack.max-flows=0: want 1 to 16777216"},
		{"negative lookups", func(c *Config) { c.LookupsPerSecond = -1 }, "--conntrack.lookups-per-second=-1: want 0 to 1000000"},
		{"no queue", func(c *Config) { c.QueueSize = 0 }, "--conntrack.hold-queue=0: want 1 to 4194304"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.mod(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
	c := testConfig()
	c.Groups = []classify.Group{3, 3}
	if _, err := New(c, nopLogger()); err == nil || err.Error() != "NFLOG group 3 is given twice: give each group once" {
		t.Errorf("New with a duplicate group: %v", err)
	}
}
