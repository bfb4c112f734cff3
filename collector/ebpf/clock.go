package ebpf

import (
	"math"

	"golang.org/x/sys/unix"
)

// The program stamps records with bpf_ktime_get_boot_ns(), CLOCK_BOOTTIME:
// unlike CLOCK_MONOTONIC it goes on while the machine is suspended, as the
// wall clock does, so one offset converts both before and after a suspend.
// (CLOCK_TAI would need the kernel's TAI offset, which is 0 unless a time
// daemon sets it.) The offset changes only when the wall clock is set or
// stepped; wallClock measures it again when records arrive more than
// remeasureNs after the last measurement, so it never wakes up by itself.
const remeasureNs = 10e9

// wallClock converts CLOCK_BOOTTIME nanoseconds to Unix nanoseconds.
type wallClock struct {
	offset     int64  // CLOCK_REALTIME - CLOCK_BOOTTIME
	measuredAt uint64 // CLOCK_BOOTTIME of the measurement
}

func newWallClock() wallClock {
	var c wallClock
	c.measure()
	return c
}

// measure reads the wall clock between two readings of the boot clock, a few
// times, and keeps the pair read closest together.
func (c *wallClock) measure() {
	best := int64(math.MaxInt64)
	for range 5 {
		b1, r, b2 := clockNs(unix.CLOCK_BOOTTIME), clockNs(unix.CLOCK_REALTIME), clockNs(unix.CLOCK_BOOTTIME)
		if d := b2 - b1; d >= 0 && d < best {
			best = d
			c.offset = r - (b1 + d/2)
			c.measuredAt = uint64(b2)
		}
	}
}

// wall returns boot as Unix nanoseconds.
func (c *wallClock) wall(boot uint64) int64 {
	if boot > c.measuredAt && boot-c.measuredAt > remeasureNs {
		c.measure()
	}
	return int64(boot) + c.offset
}

func clockNs(id int32) int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(id, &ts)
	return ts.Nano()
}
