package ebpf

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWallClock: a boot-clock reading of now converts to now, and a stale
// offset is measured again once records come more than remeasureNs after
// the last measurement.
func TestWallClock(t *testing.T) {
	c := newWallClock()
	// Generous: a busy machine may preempt the test between the readings;
	// the stale offset below is an hour off.
	near := func(got int64) bool {
		d := time.Since(time.Unix(0, got))
		return d > -50*time.Millisecond && d < 50*time.Millisecond
	}
	if got := c.wall(uint64(clockNs(unix.CLOCK_BOOTTIME))); !near(got) {
		t.Errorf("now converts to %v", time.Unix(0, got))
	}
	// As if the wall clock had been stepped an hour after the measurement.
	c.offset += int64(time.Hour)
	if got := c.wall(uint64(clockNs(unix.CLOCK_BOOTTIME))); near(got) {
		t.Errorf("a record right after the measurement measured again")
	}
	c.measuredAt -= remeasureNs + 1
	if got := c.wall(uint64(clockNs(unix.CLOCK_BOOTTIME))); !near(got) {
		t.Errorf("a record %v after the measurement converts to %v", time.Duration(remeasureNs), time.Unix(0, got))
	}
}

func TestLoadRingSize(t *testing.T) {
	for _, size := range []int{1, 4095, 3 << 12, -4096, 2 << 30} {
		_, err := Load(Config{RingSize: size})
		if err == nil || !strings.Contains(err.Error(), "ring buffer size") {
			t.Errorf("ring size %d: %v", size, err)
		}
	}
}

func TestNetnsInode(t *testing.T) {
	ino, err := netnsInode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil || uint64(ino) != st.Ino {
		t.Errorf("inode %d, stat says %d (%v)", ino, st.Ino, err)
	}
	for _, path := range []string{"/proc/self/ns/pid", "/proc/self/status", "/nonexistent"} {
		if _, err := netnsInode(path); err == nil {
			t.Errorf("%s taken for a network namespace", path)
		} else {
			t.Log(err)
		}
	}
}
