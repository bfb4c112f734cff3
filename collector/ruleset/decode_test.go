package ruleset

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/nfdrop/nfdrop_exporter/collector/internal/nlmsg"
)

// The recorded files are one read of Debian's real ufw (deny incoming,
// allow 80, after 9 INVALID packets and 5 NEW ones to closed ports) and
// firewalld, as the kernel sent them.

func recorded(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRecordedUFW(t *testing.T) {
	s, err := Decode(recorded(t, "ufw.nlmsg"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tables) != 2 || s.RuleCount() != 174 || s.Generation == 0 {
		t.Fatalf("%d tables, %d rules, generation %d", len(s.Tables), s.RuleCount(), s.Generation)
	}
	in := s.Table(FamilyIP, "filter").Chain("INPUT")
	if in.Base == nil || in.Base.Policy != Drop || in.Base.Counter == nil || in.Base.Counter.Packets != 5 {
		t.Fatalf("INPUT: %+v", in.Base)
	}
	var invalid *Rule
	for _, r := range s.Table(FamilyIP, "filter").Chain("ufw-before-input").Rules {
		if r.Verdict.Kind == Drop {
			invalid = r
		}
	}
	if invalid == nil || !reflect.DeepEqual(invalid.Terms, []string{"ct-state-any(0x1)"}) || invalid.Counter.Packets != 9 || !invalid.CounterExact {
		t.Fatalf("INVALID drop: %+v", invalid)
	}
}

func TestDecodeRecordedFirewalld(t *testing.T) {
	s, err := Decode(recorded(t, "firewalld.nlmsg"))
	if err != nil {
		t.Fatal(err)
	}
	tb := s.Table(FamilyINet, "firewalld")
	if tb == nil || len(tb.Chains) != 75 {
		t.Fatalf("table: %+v", tb)
	}
	in := tb.Chain("filter_INPUT")
	if in.Base == nil || in.Base.Priority != 10 || in.Base.Counter != nil || in.HookName() != "input" {
		t.Fatalf("filter_INPUT: %+v", in.Base)
	}
	// "ct state { established, related } accept": an anonymous set read by
	// content.
	first := in.Rules[0]
	if len(first.Terms) != 1 || first.Verdict.Kind != Accept {
		t.Fatalf("first rule: %+v", first)
	}
}

// TestDecodeMalformed: every truncation of a real read is either decoded or
// refused with an error, never a panic, and a cut inside a message is an
// error.
func TestDecodeMalformed(t *testing.T) {
	b := recorded(t, "firewalld.nlmsg")
	for n := 0; n < len(b); n += 7 {
		_, _ = Decode(b[:n])
	}
	m := nlmsg.NewMessages(b)
	m.Next()
	m.Next()
	cut := b[:len(b)-len(m.Data)/2]
	if _, err := Decode(append(cut[:len(cut):len(cut)], 0xff, 0xff, 0xff, 0xff)); err == nil {
		t.Error("a message with a broken header decoded without error")
	}
	if _, err := Decode([]byte{20, 0, 0, 0, 6, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0}); err == nil {
		t.Error("a rule of no table decoded without error")
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"INPUT":        "INPUT",
		"ünïcode":      "ünïcode",
		"a\xffb":       `a\xffb`,
		"\xc3":         `\xc3`,
		"ok\xe2\x82":   `ok\xe2\x82`,
		"":             "",
		"\x00\x80\x7f": "\x00\\x80\x7f",
	} {
		if got := Printable(in); got != want || !utf8.ValidString(got) {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// recordedRulesets are the recorded rulesets the fuzz targets start from.
var recordedRulesets = []string{"ufw.nlmsg", "firewalld.nlmsg"}

// maxFuzzInput bounds what the fuzz targets that analyze or recount take:
// Go's fuzzer spends up to a minute minimizing each new input, and on a whole
// recorded ruleset that took the run. TestDecodeRecorded* and
// TestRecountRecorded check the whole rulesets.
const maxFuzzInput = 8 << 10

// addRecordedSeeds adds small seeds cut from the recorded rulesets: their
// first messages (up to maxFuzzInput bytes), and each message alone (of the
// first 40).
func addRecordedSeeds(f *testing.F) {
	for _, name := range recordedRulesets {
		b := recorded(f, name)
		m := nlmsg.NewMessages(b)
		off := 0
		for i := 0; m.Next() && i < 40; i++ {
			l := nlmsg.HeaderLen + len(m.Data)
			f.Add(b[off : off+l])
			off += (l + 3) &^ 3
			if off <= maxFuzzInput {
				f.Add(b[:off])
			}
		}
	}
}

// FuzzDecode: any bytes decode or fail with an error; a decoded snapshot is
// consistent (rules know their chain and position, names turn into valid
// label values) and decoding is deterministic.
func FuzzDecode(f *testing.F) {
	addRecordedSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("second decode failed: %v", err)
		}
		for ti, tb := range s.Tables {
			if !utf8.ValidString(Printable(tb.Name)) {
				t.Fatalf("table label %q", Printable(tb.Name))
			}
			for ci, c := range tb.Chains {
				if c.Table != tb || !utf8.ValidString(Printable(c.Name)) {
					t.Fatalf("chain %q", c.Name)
				}
				for i, r := range c.Rules {
					if r.Chain != c || r.Index != i {
						t.Fatalf("rule %d of %q: index %d", i, c.Name, r.Index)
					}
					o := again.Tables[ti].Chains[ci].Rules[i]
					if !reflect.DeepEqual(r.Terms, o.Terms) || r.Verdict != o.Verdict {
						t.Fatalf("decode not deterministic: %q vs %q", r.Terms, o.Terms)
					}
				}
			}
		}
	})
}
