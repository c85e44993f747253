package budget

import "time"

// secondBuckets counts the grants of the last minute one bucket per second
// of the clock, so that its size does not grow with the rate: at thousands
// of requests a second (the simulator unthrottled) a slice of every grant
// time held megabytes. A grant counts as "of the last minute" while its
// second is one of the last 60 (so up to a second longer than exactly 60 s),
// which errs on the side of reporting fewer requests left.
type secondBuckets struct {
	sec [60]int64 // the Unix second each bucket counts, or stale
	n   [60]int
}

func (b *secondBuckets) add(t time.Time, d int) {
	s := t.Unix()
	i := int(((s % 60) + 60) % 60)
	if b.sec[i] != s {
		if d < 0 {
			return // the second already left the minute: nothing to take back
		}
		b.sec[i], b.n[i] = s, 0
	}
	b.n[i] = max(b.n[i]+d, 0)
}

// count is the number of grants of the last 60 seconds of the clock at now.
func (b *secondBuckets) count(now time.Time) int {
	s := now.Unix()
	total := 0
	for i := range b.sec {
		if age := s - b.sec[i]; age >= 0 && age < 60 {
			total += b.n[i]
		}
	}
	return total
}
