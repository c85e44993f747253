package cekatsim

import "time"

// tfmt is one of the time stamp formats the simulator serves.
type tfmt uint8

const (
	fmtZ           tfmt = iota // 2006-01-02T15:04:05Z
	fmtOffset                  // 2006-01-02T15:04:05+00:00
	fmtMilliZ                  // 2006-01-02T15:04:05.000Z
	fmtMicroOffset             // 2006-01-02T15:04:05.000000+00:00
	fmtNanoZ                   // RFC3339Nano: 1 to 9 fraction digits, trailing zeros trimmed
	fmtJakarta                 // 2006-01-02 15:04:05, no zone, Asia/Jakarta local time
	fmtPostgres                // 2006-01-02 15:04:05.000000+00
	numFormats
)

// jakarta is Asia/Jakarta (UTC+7, no daylight saving time since 1964),
// fixed so the simulator does not depend on the tz database.
var jakarta = time.FixedZone("WIB", 7*3600)

// digits is the number of fraction digits the format keeps; h picks the
// length for the variable one.
func (f tfmt) digits(h uint64) int {
	switch f {
	case fmtMilliZ:
		return 3
	case fmtMicroOffset, fmtPostgres:
		return 6
	case fmtNanoZ:
		return 1 + int(h%9)
	}
	return 0
}

func (f tfmt) format(t time.Time) string {
	t = t.UTC()
	switch f {
	case fmtOffset:
		return t.Format("2006-01-02T15:04:05") + "+00:00"
	case fmtMilliZ:
		return t.Format("2006-01-02T15:04:05.000Z")
	case fmtMicroOffset:
		return t.Format("2006-01-02T15:04:05.000000") + "+00:00"
	case fmtNanoZ:
		return t.Format(time.RFC3339Nano)
	case fmtJakarta:
		return t.In(jakarta).Format("2006-01-02 15:04:05")
	case fmtPostgres:
		return t.Format("2006-01-02 15:04:05.000000") + "+00"
	}
	return t.Format("2006-01-02T15:04:05Z")
}

var pow10 = [...]int64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// fraction returns nanoseconds with exactly the precision of k digits.
func fraction(h uint64, k int) time.Duration {
	if k <= 0 {
		return 0
	}
	return time.Duration(int64(h%uint64(pow10[k])) * pow10[9-k])
}
